using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

// mmap() and munmap() (mm/mmap.c, mm/vma.c, arch/x86/kernel/sys_x86_64.c): the checks in the kernel's order with
// its error numbers, the unmapped-area search, mmap_region() with VMA merging, MAP_FIXED / MAP_FIXED_NOREPLACE,
// MAP_POPULATE, and the unmap path (split, detach, zap the PTEs, free the page tables nobody needs).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>TASK_UNMAPPED_BASE for the bottom-up fallback: PAGE_ALIGN(TASK_SIZE / 3).</summary>
    internal static ulong TaskUnmappedBase => ((TArch.TaskSizeMax / 3) + PageSize.Bytes - 1) & ~(PageSize.Bytes - 1);

    private static ulong PageAlign(ulong x) => (x + PageSize.Bytes - 1) & ~(PageSize.Bytes - 1);

    private static bool OffsetInPage(ulong x) => (x & (PageSize.Bytes - 1)) != 0;

    /// <summary>calc_vm_prot_bits().</summary>
    internal static VmFlags CalcVmProtBits(Prot prot) =>
        ((prot & Prot.Read) != 0 ? VmFlags.Read : 0) | ((prot & Prot.Write) != 0 ? VmFlags.Write : 0) | ((prot & Prot.Exec) != 0 ? VmFlags.Exec : 0);

    /// <summary>calc_vm_flag_bits().</summary>
    private static VmFlags CalcVmFlagBits(MapFlags flags) =>
        ((flags & MapFlags.GrowsDown) != 0 ? VmFlags.GrowsDown : 0) | ((flags & MapFlags.Locked) != 0 ? VmFlags.Locked : 0) |
        ((flags & MapFlags.StackHint) != 0 ? VmFlags.NoHugePage : 0);

    /// <summary>
    /// ksys_mmap_pgoff() + do_mmap(): the whole mmap() system call on a locked mm. <paramref name="fd"/> is ignored
    /// for MAP_ANONYMOUS. Returns the address or the kernel's error.
    /// </summary>
    internal SysResult DoMmap(Cpu cpu, MmState<TArch> mm, ulong addr, ulong len, Prot prot, MapFlags flags, int fd, ulong offset)
    {
        // sys_mmap(): the offset must be page aligned.
        if (OffsetInPage(offset))
            return SysResult.Fail(Errno.EINVAL);
        ulong pgoff = offset >> PageSize.Shift;
        ulong file = 0;
        if ((flags & MapFlags.Anonymous) == 0)
        {
            file = Fget(fd);
            if (file == 0)
                return SysResult.Fail(Errno.EBADF);
        }
        else if ((flags & MapFlags.HugeTlb) != 0)
        {
            return SysResult.Fail(Errno.ENOMEM); // no huge pages are reserved (hugetlb_file_setup() fails)
        }
        return DoMmapFile(cpu, mm, file, addr, len, prot, flags, pgoff);
    }

    internal SysResult DoMmapFile(Cpu cpu, MmState<TArch> mm, ulong file, ulong addr, ulong len, Prot prot, MapFlags flags, ulong pgoff)
    {
        if (len == 0)
            return SysResult.Fail(Errno.EINVAL);
        if ((flags & MapFlags.FixedNoReplace) != 0)
            flags |= MapFlags.Fixed;
        if ((flags & MapFlags.Fixed) == 0)
            addr = RoundHintToMin(addr);
        len = PageAlign(len);
        if (len == 0)
            return SysResult.Fail(Errno.ENOMEM);
        if (pgoff + (len >> PageSize.Shift) < pgoff)
            return SysResult.Fail(Errno.EOVERFLOW);
        if (MapCount(mm) > MaxMapCount)
            return SysResult.Fail(Errno.ENOMEM);

        VmFlags vmFlags = CalcVmProtBits(prot) | CalcVmFlagBits(flags) | (VmFlags)GetMmLong(mm.H, MmOff<TArch>.DefFlags) |
                          VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec;

        ulong mapped = GetUnmappedArea(mm, addr, len, flags);
        if (mapped >= unchecked((ulong)-4095L))
            return SysResult.Fail((Errno)(int)(-(long)mapped));
        addr = mapped;
        if (addr < MmapMinAddr)
            return SysResult.Fail(Errno.EPERM); // security_mmap_addr(): no CAP_SYS_RAWIO
        if ((flags & MapFlags.FixedNoReplace) != 0 && FindVmaIntersection(mm, addr, addr + len) != 0)
            return SysResult.Fail(Errno.EEXIST);
        if ((flags & MapFlags.Locked) != 0 && !MlockFutureOk(mm, len))
            return SysResult.Fail(Errno.EAGAIN);

        var type = flags & MapFlags.Type;
        if (file != 0)
        {
            bool writable = FileWritable(file);
            switch (type)
            {
                case MapFlags.Shared:
                case MapFlags.SharedValidate:
                    if (type == MapFlags.SharedValidate && (flags & MapFlags.Sync) != 0)
                        return SysResult.Fail(Errno.EOPNOTSUPP); // no DAX
                    if ((prot & Prot.Write) != 0 && !writable)
                        return SysResult.Fail(Errno.EACCES);
                    vmFlags |= VmFlags.Shared | VmFlags.MayShare;
                    if (!writable)
                        vmFlags &= ~(VmFlags.MayWrite | VmFlags.Shared);
                    goto case MapFlags.Private;
                case MapFlags.Private:
                    if (!FileReadable(file))
                        return SysResult.Fail(Errno.EACCES);
                    if ((vmFlags & VmFlags.GrowsDown) != 0)
                        return SysResult.Fail(Errno.EINVAL);
                    break;
                default:
                    return SysResult.Fail(Errno.EINVAL);
            }
        }
        else
        {
            switch (type)
            {
                case MapFlags.Shared:
                    if ((vmFlags & VmFlags.GrowsDown) != 0)
                        return SysResult.Fail(Errno.EINVAL);
                    pgoff = 0;
                    vmFlags |= VmFlags.Shared | VmFlags.MayShare;
                    break;
                case MapFlags.Private:
                    pgoff = addr >> PageSize.Shift;
                    break;
                default:
                    return SysResult.Fail(Errno.EINVAL);
            }
        }
        if ((flags & MapFlags.NoReserve) != 0)
            vmFlags |= VmFlags.NoReserve;

        var result = MmapRegion(cpu, mm, file, addr, len, vmFlags, pgoff);
        if (result.IsOk && ((vmFlags & VmFlags.Locked) != 0 || (flags & (MapFlags.Populate | MapFlags.NonBlock)) == MapFlags.Populate))
            MmPopulate(cpu, mm, addr, len);
        return result;
    }

    /// <summary>round_hint_to_min(): a hint below mmap_min_addr is raised to it.</summary>
    private ulong RoundHintToMin(ulong hint)
    {
        hint &= ~(PageSize.Bytes - 1);
        return hint != 0 && hint < MmapMinAddr ? PageAlign(MmapMinAddr) : hint;
    }

    /// <summary>
    /// __get_unmapped_area() with the x86-64 arch_get_unmapped_area_topdown() or, on i386, the generic top-down
    /// search: MAP_FIXED as given, a hint when it fits, else the highest hole below mmap_base, else bottom-up from
    /// TASK_UNMAPPED_BASE. Returns the address or -errno as ulong.
    /// </summary>
    internal ulong GetUnmappedArea(MmState<TArch> mm, ulong addr, ulong len, MapFlags flags)
    {
        ulong taskSize = TArch.TaskSizeMax;
        if (len > taskSize)
            return unchecked((ulong)-(long)Errno.ENOMEM);
        if ((flags & MapFlags.Fixed) == 0)
            addr = FindArea(mm, addr, len, flags);
        if (addr == NoArea)
            return unchecked((ulong)-(long)Errno.ENOMEM);
        if (addr > taskSize - len)
            return unchecked((ulong)-(long)Errno.ENOMEM);
        if (OffsetInPage(addr))
            return unchecked((ulong)-(long)Errno.EINVAL);
        return addr;
    }

    private ulong FindArea(MmState<TArch> mm, ulong addr, ulong len, MapFlags flags)
    {
        ulong taskSize = TArch.TaskSizeMax;
        if (TArch.Kind == ArchKind.X86_64 && (flags & MapFlags.Map32Bit) != 0)
            return UnmappedArea(mm, len, 0x4000_0000, 0x8000_0000);
        if (addr != 0)
        {
            addr = PageAlign(addr);
            ulong vma = FindVmaPrev(mm, addr, out ulong prev);
            bool fits = taskSize - len >= addr && (vma == 0 || addr + len <= VmStartGap(vma));
            // The generic hint check also keeps off mmap_min_addr and the previous VMA; x86-64's does not.
            if (TArch.Kind == ArchKind.I386)
                fits = fits && addr >= MmapMinAddr && (prev == 0 || addr >= VmEndGap(prev));
            if (fits)
                return addr;
        }
        ulong low = Math.Max(PageSize.Bytes, MmapMinAddr);
        ulong found = UnmappedAreaTopdown(mm, len, low, GetMmLong(mm.H, MmOff<TArch>.MmapBase));
        if (found != NoArea)
            return found;
        return UnmappedArea(mm, len, GetMmLong(mm.H, MmOff<TArch>.MmapLegacyBase), taskSize);
    }

    /// <summary>accountable_mapping(): private writable memory without MAP_NORESERVE is charged to Committed_AS.</summary>
    private static bool AccountableMapping(VmFlags flags) => (flags & (VmFlags.NoReserve | VmFlags.Shared | VmFlags.Write)) == VmFlags.Write;

    /// <summary>
    /// mmap_region(): unmaps what MAP_FIXED overlaps, charges the commit, merges with a neighbour or links a new
    /// VMA (a shmem object for shared anonymous memory), accounts it and marks it soft-dirty.
    /// </summary>
    private SysResult MmapRegion(Cpu cpu, MmState<TArch> mm, ulong file, ulong addr, ulong len, VmFlags vmFlags, ulong pgoff)
    {
        ulong end = addr + len;
        long pages = (long)(len >> PageSize.Shift);
        // Checks first (6.x gathers the VMAs to unmap and only removes them once the new one can be set up).
        bool overlaps = FindVmaIntersection(mm, addr, end) != 0;
        if (overlaps && MapCount(mm) >= MaxMapCount && WouldSplitTwice(mm, addr, end))
            return SysResult.Fail(Errno.ENOMEM);
        long charged = 0;
        if (AccountableMapping(vmFlags))
        {
            charged = pages;
            if (!VmEnoughMemory(charged))
                return SysResult.Fail(Errno.ENOMEM);
            vmFlags |= VmFlags.Account;
        }
        ulong newVma = 0, shmemFile = 0;
        if (file == 0 && (vmFlags & VmFlags.Shared) != 0)
        {
            shmemFile = ShmemZeroSetup(cpu, len);
            if (shmemFile == 0)
            {
                VmAcctMemory(-charged);
                return SysResult.Fail(Errno.ENOMEM);
            }
        }
        if (overlaps)
        {
            var err = DoMunmapRange(cpu, mm, addr, end);
            if (err != Errno.None)
            {
                VmAcctMemory(-charged);
                if (shmemFile != 0)
                    Fput(cpu, shmemFile);
                return SysResult.Fail(err);
            }
        }
        FindVmaPrev(mm, addr, out ulong prev);
        ulong vma = shmemFile == 0 ? VmaMerge(cpu, mm, prev, addr, end, vmFlags, 0, file, pgoff) : 0;
        if (vma == 0)
        {
            newVma = VmAreaAlloc(cpu, mm);
            if (newVma == 0)
            {
                VmAcctMemory(-charged);
                if (shmemFile != 0)
                    Fput(cpu, shmemFile);
                return SysResult.Fail(Errno.ENOMEM);
            }
            vma = newVma;
            SetVmStart(vma, addr);
            SetVmEnd(vma, end);
            SetVmPgoff(vma, pgoff);
            if (shmemFile != 0)
            {
                TArch.StoreLong(VmaH(vma) + MmOff<TArch>.VmFile, shmemFile);
            }
            else if (file != 0)
            {
                GetFile(file);
                TArch.StoreLong(VmaH(vma) + MmOff<TArch>.VmFile, file);
            }
            SetVmFlags(vma, vmFlags);
            VmaLinkAll(mm, vma, prev);
        }
        VmStatAccount(mm, vmFlags, pages);
        if ((vmFlags & VmFlags.Locked) != 0)
            AddMmLong(mm.H, MmOff<TArch>.LockedVm, pages);
        SetVmFlags(vma, VmFlagsOf(vma) | VmSoftDirty);
        return SysResult.Ok(addr);
    }

    private bool WouldSplitTwice(MmState<TArch> mm, ulong start, ulong end)
    {
        ulong first = FindVma(mm, start);
        return first != 0 && VmStart(first) < start && VmEnd(first) > end;
    }

    /// <summary>
    /// __mm_populate() for [addr, addr+len): each page faulted in as get_user_pages() would (a write fault for a
    /// private writable VMA, a read fault otherwise; inaccessible VMAs skipped).
    /// </summary>
    internal void MmPopulate(Cpu cpu, MmState<TArch> mm, ulong addr, ulong len)
    {
        ulong end = addr + len;
        for (ulong va = addr; va < end;)
        {
            ulong vma = FindVma(mm, va);
            if (vma == 0 || VmStart(vma) >= end)
                return;
            if (VmStart(vma) > va)
                va = VmStart(vma);
            VmFlags f = VmFlagsOf(vma);
            ulong vend = Math.Min(end, VmEnd(vma));
            if ((f & VmFlags.AccessFlags) != 0)
            {
                bool write = (f & (VmFlags.Write | VmFlags.Shared)) == VmFlags.Write;
                for (; va < vend; va += PageSize.Bytes)
                {
                    byte* pte = mm.As.PteOffset(va);
                    ulong e = pte == null ? 0 : TArch.LoadPte(pte);
                    if ((e & PteP) != 0 && (!write || (e & PteRw) != 0))
                        continue; // follow_page() finds it
                    if ((HandleMmFault(cpu, mm, vma, va, write) & VmFaultError) != 0)
                        return;
                }
            }
            va = vend;
        }
    }

    // ---- munmap -----------------------------------------------------------------------------------

    /// <summary>do_vmi_munmap(): the checks, then the unmap of [start, start + PAGE_ALIGN(len)).</summary>
    internal SysResult DoMunmap(Cpu cpu, MmState<TArch> mm, ulong start, ulong len)
    {
        ulong taskSize = TArch.TaskSizeMax;
        if (OffsetInPage(start) || start > taskSize || len > taskSize - start)
            return SysResult.Fail(Errno.EINVAL);
        ulong end = start + PageAlign(len);
        if (end == start)
            return SysResult.Fail(Errno.EINVAL);
        var err = DoMunmapRange(cpu, mm, start, end);
        return err == Errno.None ? SysResult.Ok(0) : SysResult.Fail(err);
    }

    /// <summary>
    /// do_vmi_align_munmap(): splits the VMAs straddling the ends, detaches the VMAs inside, zaps their PTEs,
    /// frees the page tables no VMA needs any more, unaccounts and frees the VMAs.
    /// </summary>
    internal Errno DoMunmapRange(Cpu cpu, MmState<TArch> mm, ulong start, ulong end)
    {
        ulong vma = FindVma(mm, start);
        if (vma == 0 || VmStart(vma) >= end)
            return Errno.None;
        if (start > VmStart(vma))
        {
            // Let map_count go just above the limit temporarily only when the split does not add a VMA for good.
            if (end < VmEnd(vma) && MapCount(mm) >= MaxMapCount)
                return Errno.ENOMEM;
            if (SplitVma(cpu, mm, vma, start, newBelow: false) == 0)
                return Errno.ENOMEM;
            vma = VmNext(vma);
        }
        ulong last = FindVma(mm, end);
        if (last != 0 && end > VmStart(last))
        {
            if (SplitVma(cpu, mm, last, end, newBelow: true) == 0)
                return Errno.ENOMEM;
            if (last == vma)
                vma = VmPrev(last);
        }
        // Detach [vma .. the last VMA below end).
        var doomed = new List<ulong>();
        for (ulong v = vma; v != 0 && VmStart(v) < end; v = VmNext(v))
            doomed.Add(v);
        UpdateHiwaterVm(mm);
        UpdateHiwaterRss(mm);
        long unaccount = 0;
        foreach (ulong v in doomed)
        {
            ZapVmaRange(cpu, mm, v, VmStart(v), VmEnd(v));
            VmFlags f = VmFlagsOf(v);
            long pages = (long)VmaPages(v);
            VmStatAccount(mm, f, -pages);
            if ((f & VmFlags.Account) != 0)
                unaccount += pages;
            if ((f & VmFlags.Locked) != 0)
                AddMmLong(mm.H, MmOff<TArch>.LockedVm, -pages);
            VmaUnlink(mm, v);
        }
        _m.Mmu.FlushRange(mm.As, start, end, cpu);
        FreePgtables(cpu, mm, start, end);
        foreach (ulong v in doomed)
            RemoveVma(cpu, v);
        VmAcctMemory(-unaccount);
        return Errno.None;
    }

    /// <summary>
    /// zap_pte_range() over [start, end) of one VMA: every entry cleared; the pages lose a mapping, the RSS counter
    /// and a reference (a dirty PTE dirties a file page, a young one marks it accessed). The caller flushes the TLB.
    /// </summary>
    internal void ZapVmaRange(Cpu cpu, MmState<TArch> mm, ulong vma, ulong start, ulong end)
    {
        bool shmem = VmFile(vma) != 0 && FileIsShmem(VmFile(vma));
        ulong span = 1UL << (12 + TArch.IndexBits);
        long anon = 0, file = 0, swapents = 0;
        for (ulong va = start; va < end;)
        {
            byte* pte = mm.As.PteOffset(va);
            ulong tableEnd = Math.Min(end, (va & ~(span - 1)) + span);
            if (pte == null)
            {
                va = tableEnd;
                continue;
            }
            for (; va < tableEnd; va += PageSize.Bytes, pte += 1 << TArch.PteShift)
            {
                ulong e = TArch.LoadPte(pte);
                if (e == 0)
                    continue;
                TArch.StorePte(pte, 0);
                if ((e & (PteP | PteProtNone)) == 0)
                {
                    // zap_nonpresent_ptes(): a swap entry: free_swap_and_cache().
                    ZapSwapPte(cpu, e);
                    swapents++;
                    continue;
                }
                if ((e & PteSpecial) != 0)
                    continue; // special entries have no page
                ulong pfn = (e & TArch.PtePfnMask) >> PageSize.Shift;
                if (pfn == ZeroPfn)
                    continue;
                bool isAnon = PageAnon(pfn);
                if (isAnon)
                {
                    anon++;
                }
                else
                {
                    file++;
                    if ((e & PteD) != 0)
                        SetPageDirty(pfn);
                    if ((e & PteA) != 0 && (VmFlagsOf(vma) & VmFlags.SeqRead) == 0)
                        Lru?.MarkAccessed(cpu, pfn);
                }
                PageRemoveRmap(pfn, isAnon);
                // free_pages_and_swap_cache() → free_swap_cache(): a swap-cache page nobody maps any more loses
                // its swap-cache copy (and the slot, once no swap PTE names it) instead of lingering until reclaim.
                if (isAnon && Swap is { } swap && Mapcount(pfn) <= 0 && MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.OwnerPriv1))
                    swap.TryFreeSwap(cpu, pfn);
                PutPageRef(cpu, pfn);
            }
        }
        if (anon != 0)
            AddMmCounter(mm, MmCounter.AnonPages, -anon);
        if (file != 0)
            AddMmCounter(mm, shmem ? MmCounter.ShmemPages : MmCounter.FilePages, -file);
        if (swapents != 0)
            AddMmCounter(mm, MmCounter.SwapEnts, -swapents);
    }

    /// <summary>
    /// free_pgtables() for [start, end): each PTE table of the range whose whole span no VMA intersects any more
    /// is freed, with the upper tables that become empty.
    /// </summary>
    internal void FreePgtables(Cpu cpu, MmState<TArch> mm, ulong start, ulong end)
    {
        ulong span = 1UL << (12 + TArch.IndexBits);
        for (ulong s = start & ~(span - 1); s < end; s += span)
        {
            if (FindVmaIntersection(mm, s, s + span) == 0 && mm.As.PteOffset(s) != null)
                mm.As.FreeEmptyTables(cpu, s);
            if (s + span < s)
                break;
        }
        SyncPgtablesBytes(mm);
    }
}
