using System.Globalization;
using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

// The page-fault path: the MMU's #PF on a CPU running a process lands in HandleFault (exc_page_fault ->
// do_user_addr_fault), which finds the VMA (growing the stack below a VM_GROWSDOWN VMA), checks the access against
// it (access_error) and calls handle_mm_fault: page tables allocated on demand, then do_anonymous_page (zero page
// for reads, a zeroed GFP_HIGHUSER_MOVABLE page for writes), do_fault (read / COW / shared fault of a file page),
// or do_wp_page (copy-on-write, or reuse of an exclusively owned page). Accesses outside any VMA or against its
// permissions become SIGSEGV with the fault address and error code.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    // vm_fault_t bits (include/linux/mm_types.h).
    internal const int VmFaultOom = 0x1;
    internal const int VmFaultSigbus = 0x2;
    internal const int VmFaultMajor = 0x4;
    internal const int VmFaultError = VmFaultOom | VmFaultSigbus;

    /// <summary>The #PF handler installed on every process address space (exc_page_fault()).</summary>
    internal FaultResolution HandleFault(MmState<TArch> mm, Cpu cpu, in PageFault f)
    {
        if (f.Kind != FaultKind.PageFault)
            return FaultResolution.Unhandled;
        ulong addr = f.Address;
        uint err = (uint)f.ErrorCode;
        bool user = (err & (uint)PfErrorCode.User) != 0;
        // fault_in_kernel_space(): not ours; X86_PF_RSVD: pgtable_bad().
        if (addr >= TArch.TaskSizeMax || (err & (uint)PfErrorCode.Rsvd) != 0)
        {
            if (user)
                BadArea(mm, cpu, addr, err, SiCode.SEGV_MAPERR);
            return FaultResolution.Unhandled;
        }
        using (mm.Lock.Enter())
        {
            if (mm.Dead)
                return FaultResolution.Unhandled;
            ulong vma = FindVma(mm, addr);
            if (vma == 0)
                return BadArea(mm, cpu, addr, err, SiCode.SEGV_MAPERR, user);
            if (VmStart(vma) > addr)
            {
                // lock_mm_and_find_vma() -> expand_stack(): only below a VM_GROWSDOWN VMA.
                if ((VmFlagsOf(vma) & VmFlags.GrowsDown) == 0 || ExpandDownwards(mm, vma, addr) != Errno.None)
                    return BadArea(mm, cpu, addr, err, SiCode.SEGV_MAPERR, user);
            }
            if (AccessError(err, VmFlagsOf(vma)))
                return BadArea(mm, cpu, addr, err, SiCode.SEGV_ACCERR, user);
            int ret;
            mm.FaultAddress = addr & ~(PageSize.Bytes - 1);
            mm.FaultThread = Thread.CurrentThread;
            try
            {
                ret = HandleMmFault(cpu, mm, vma, addr, (err & (uint)PfErrorCode.Write) != 0);
            }
            finally
            {
                mm.FaultThread = null;
            }
            if ((ret & VmFaultError) != 0)
            {
                var sig = (ret & VmFaultOom) != 0
                    ? new SigInfo(Signal.SIGKILL, SiCode.None, addr, err)
                    : new SigInfo(Signal.SIGBUS, SiCode.BUS_ADRERR, addr, err);
                mm.LastSignal = sig;
                // pagefault_out_of_memory(): quiet when the task is already being killed.
                if ((ret & VmFaultOom) != 0 && !mm.OomVictim)
                    _m.Log.Warn("Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF");
                return FaultResolution.Unhandled;
            }
            return FaultResolution.Retry;
        }
    }

    /// <summary>access_error() (arch/x86/mm/fault.c), without protection keys, SGX and shadow stacks.</summary>
    private static bool AccessError(uint err, VmFlags flags)
    {
        if ((err & (uint)PfErrorCode.Pk) != 0)
            return true;
        if ((err & (uint)PfErrorCode.Write) != 0)
            return (flags & VmFlags.Write) == 0;
        if ((err & (uint)PfErrorCode.Prot) != 0)
            return true;
        return (flags & VmFlags.AccessFlags) == 0;
    }

    private FaultResolution BadArea(MmState<TArch> mm, Cpu cpu, ulong addr, uint err, SiCode code, bool user = true)
    {
        if (user)
        {
            mm.LastSignal = new SigInfo(Signal.SIGSEGV, code, addr, err);
            ShowSignalMsg(mm, cpu, addr, err);
        }
        return FaultResolution.Unhandled;
    }

    /// <summary>show_signal_msg(): the "segfault at" line of a user fault nobody handles.</summary>
    private void ShowSignalMsg(MmState<TArch> mm, Cpu cpu, ulong addr, uint err)
    {
        var t = mm.Owner;
        string comm = t?.Comm ?? cpu.Comm;
        int pid = t?.Pid ?? cpu.Pid;
        string zero = new('0', 2 * TArch.PointerSize);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{comm}[{pid}]: segfault at {addr:x} ip {zero} sp {zero} error {err:x} likely on CPU {cpu.Id} (core {cpu.Id}, socket 0)");
        _m.Log.Info(line);
    }

    /// <summary>
    /// handle_mm_fault(): __handle_mm_fault() + mm_account_fault(). Returns the vm_fault_t bits.
    /// </summary>
    internal int HandleMmFault(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool write)
    {
        int ret = HandlePteFault(cpu, mm, vma, addr & ~(PageSize.Bytes - 1), write);
        // mm_account_fault(): pgfault for every completed fault, min/maj_flt for the successful ones.
        cpu.Events[(int)VmEvent.Pgfault]++;
        if ((ret & VmFaultError) == 0 && mm.Owner is { } task)
            task.CountFault((ret & VmFaultMajor) != 0);
        return ret;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int HandlePteFault(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool write)
    {
        byte* pte = mm.As.PteOffset(addr);
        if (pte == null)
        {
            pte = mm.As.PteAlloc(cpu, addr);
            if (pte == null)
                return VmFaultOom;
            SyncPgtablesBytes(mm);
        }
        ulong entry = TArch.LoadPte(pte);
        if (entry == 0)
            return VmaIsAnonymous(vma) ? DoAnonymousPage(cpu, mm, vma, addr, write, pte) : DoFault(cpu, mm, vma, addr, write, pte);
        if ((entry & PteP) == 0)
        {
            if ((entry & PteProtNone) != 0)
            {
                // A PROT_NONE entry under an accessible VMA (do_numa_page()): give it the VMA's protection back.
                TArch.StorePte(pte, PteModify(entry, VmPageProt(vma)));
                FlushPage(mm, cpu, addr);
                return 0;
            }
            return DoSwapPage(cpu, mm, vma, addr, write, pte, entry);
        }
        if (write && (entry & PteRw) == 0)
            return DoWpPage(cpu, mm, vma, addr, pte, entry);
        // A spurious fault (another CPU fixed the entry): just mark it young (and dirty).
        ulong want = entry | PteA | (write ? PteD | PteSoftDirty : 0);
        if (want != entry)
            TArch.StorePte(pte, want);
        return 0;
    }

    /// <summary>mm->pgtables_bytes: the user page tables (the pgd itself is not counted, as in the kernel).</summary>
    internal static void SyncPgtablesBytes(MmState<TArch> mm) =>
        SetMmLong(mm.H, MmOff<TArch>.PgtablesBytes, (ulong)Math.Max(0, mm.As.PageTablePages - 1) << PageSize.Shift);

    /// <summary>do_anonymous_page().</summary>
    private int DoAnonymousPage(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool write, byte* pte)
    {
        ulong prot = VmPageProt(vma);
        if (!write)
        {
            // The shared zero page, read-only and special (no refcount, no mapcount, no RSS).
            TArch.StorePte(pte, (ZeroPfn << PageSize.Shift) | prot | PteSpecial);
            return 0;
        }
        if (!AnonVmaPrepare(cpu, vma))
            return VmFaultOom;
        ulong pfn = AllocUserPage(cpu);
        if (pfn == PageAllocator<TArch>.NoPage)
            return VmFaultOom;
        ClearUserHighpage(cpu, pfn);
        PageAddNewAnonRmap(pfn, vma, addr);
        ulong entry = (pfn << PageSize.Shift) | prot;
        if ((VmFlagsOf(vma) & VmFlags.Write) != 0)
            entry |= PteRw | PteD | PteSoftDirty;
        TArch.StorePte(pte, entry);
        AddMmCounter(mm, MmCounter.AnonPages, 1);
        Lru?.LruAdd(cpu, pfn, file: false);
        return 0;
    }

    /// <summary>vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0): HIGHMEM first on i386, movable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AllocUserPage(Cpu cpu) => _m.AllocPagesPfn(cpu, Gfp.HighUserMovable, 0);

    /// <summary>do_fault(): do_read_fault / do_cow_fault / do_shared_fault on a file (or shmem) VMA.</summary>
    private int DoFault(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool write, byte* pte)
    {
        ulong file = VmFile(vma);
        ulong pfn = FileGetPage(cpu, file, LinearPageIndex(vma, addr), out bool major, out bool sigbus);
        if (sigbus)
            return VmFaultSigbus;
        if (pfn == PageAllocator<TArch>.NoPage)
            return VmFaultOom;
        int ret = 0;
        if (major)
        {
            ret |= VmFaultMajor;
            cpu.Events[(int)VmEvent.Pgmajfault]++;
        }
        VmFlags flags = VmFlagsOf(vma);
        ulong prot = VmPageProt(vma);
        bool shmem = FileIsShmem(file);
        if (write && (flags & VmFlags.Shared) == 0)
        {
            // do_cow_fault(): a private copy of the file page, mapped as a new anonymous page; the lookup's
            // reference on the page-cache page goes once it is copied.
            ulong copy = AnonVmaPrepare(cpu, vma) ? AllocUserPage(cpu) : PageAllocator<TArch>.NoPage;
            if (copy == PageAllocator<TArch>.NoPage)
            {
                PutPageRef(cpu, pfn);
                return ret | VmFaultOom;
            }
            CopyUserHighpage(cpu, copy, pfn);
            PutPageRef(cpu, pfn);
            PageAddNewAnonRmap(copy, vma, addr);
            TArch.StorePte(pte, (copy << PageSize.Shift) | prot | PteRw | PteD | PteSoftDirty);
            AddMmCounter(mm, MmCounter.AnonPages, 1);
            Lru?.LruAdd(cpu, copy, file: false);
            return ret;
        }
        // The lookup's reference becomes the mapping's.
        PageAddFileRmap(pfn);
        AddMmCounter(mm, shmem ? MmCounter.ShmemPages : MmCounter.FilePages, 1);
        ulong entry = (pfn << PageSize.Shift) | prot;
        if (write)
        {
            // do_shared_fault(): ->page_mkwrite, the page dirty, the PTE writable and dirty.
            SetPageDirty(pfn);
            entry |= PteRw | PteD | PteSoftDirty;
        }
        TArch.StorePte(pte, entry);
        return ret;
    }

    /// <summary>do_wp_page(): a write to a present read-only PTE of a writable VMA.</summary>
    private int DoWpPage(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, byte* pte, ulong entry)
    {
        ulong oldPfn = (entry & TArch.PtePfnMask) >> PageSize.Shift;
        bool special = (entry & PteSpecial) != 0 || oldPfn == ZeroPfn; // vm_normal_page() == NULL
        VmFlags flags = VmFlagsOf(vma);
        ulong writable = (flags & VmFlags.Write) != 0 ? PteRw : 0;
        if ((flags & (VmFlags.Shared | VmFlags.MayShare)) != 0)
        {
            // wp_page_shared(): never copy; the page-cache page becomes dirty and the PTE writable.
            if (!special)
                SetPageDirty(oldPfn);
            TArch.StorePte(pte, entry | PteA | PteD | PteSoftDirty | writable);
            FlushPage(mm, cpu, addr);
            return 0;
        }
        if (!special && PageAnon(oldPfn))
        {
            byte* d = Desc(oldPfn);
            bool exclusive = MemMap<TArch>.TestFlag(d, PageFlag.Owner2);
            // wp_can_reuse_anon_folio(): the reuse decision is the refcount (only our mapping holds the page).
            if (exclusive || Refcount(oldPfn) == 1)
            {
                if (!exclusive)
                {
                    MemMap<TArch>.SetFlag(d, PageFlag.Owner2);
                    // folio_move_anon_rmap(): the page now belongs to this VMA's anon_vma.
                    MemMap<TArch>.SetMapping(d, VmAnonVma(vma) | PageMappingAnon);
                }
                TArch.StorePte(pte, entry | PteA | PteD | PteSoftDirty | writable);
                FlushPage(mm, cpu, addr);
                cpu.Events[(int)VmEvent.Pgreuse]++;
                return 0;
            }
        }
        // wp_page_copy().
        if (!AnonVmaPrepare(cpu, vma))
            return VmFaultOom;
        ulong pfn = AllocUserPage(cpu);
        if (pfn == PageAllocator<TArch>.NoPage)
            return VmFaultOom;
        if (special)
            ClearUserHighpage(cpu, pfn);
        else
            CopyUserHighpage(cpu, pfn, oldPfn);
        bool oldAnon = !special && PageAnon(oldPfn);
        if (special)
        {
            AddMmCounter(mm, MmCounter.AnonPages, 1);
        }
        else if (!oldAnon)
        {
            AddMmCounter(mm, FileIsShmem(VmFile(vma)) ? MmCounter.ShmemPages : MmCounter.FilePages, -1);
            AddMmCounter(mm, MmCounter.AnonPages, 1);
        }
        PageAddNewAnonRmap(pfn, vma, addr);
        // ptep_clear_flush() + set_pte_at(): no CPU may keep the old translation.
        TArch.StorePte(pte, (pfn << PageSize.Shift) | VmPageProt(vma) | PteA | PteD | PteSoftDirty | writable);
        FlushPage(mm, cpu, addr);
        Lru?.LruAdd(cpu, pfn, file: false);
        if (!special)
        {
            PageRemoveRmap(oldPfn, oldAnon);
            PutPageRef(cpu, oldPfn);
        }
        return 0;
    }

    /// <summary>flush_tlb_page() on every CPU running the mm.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FlushPage(MmState<TArch> mm, Cpu cpu, ulong addr) =>
        _m.Mmu.FlushRange(mm.As, addr & ~(PageSize.Bytes - 1), (addr & ~(PageSize.Bytes - 1)) + PageSize.Bytes, cpu);

    /// <summary>pte_modify(): keep the pfn and _PAGE_CHG_MASK bits, take the protection from <paramref name="prot"/>.</summary>
    internal static ulong PteModify(ulong pte, ulong prot)
    {
        ulong chg = TArch.PtePfnMask | (ulong)(PteFlags.Pcd | PteFlags.Pwt) | PteSpecial | PteA | PteD | PteSoftDirty;
        return (pte & chg) | (prot & ~chg);
    }

    /// <summary>
    /// expand_downwards() (6.x): grows a VM_GROWSDOWN VMA down to <paramref name="address"/> within RLIMIT_STACK,
    /// mmap_min_addr and the guard gap to the previous VMA.
    /// </summary>
    internal Errno ExpandDownwards(MmState<TArch> mm, ulong vma, ulong address)
    {
        var cpu = _m.ThisCpu;
        VmFlags flags = VmFlagsOf(vma);
        if ((flags & VmFlags.GrowsDown) == 0)
            return Errno.EFAULT;
        address &= ~(PageSize.Bytes - 1);
        if (address < MmapMinAddr)
            return Errno.EPERM;
        ulong prev = VmPrev(vma);
        if (prev != 0 && (VmFlagsOf(prev) & VmFlags.GrowsDown) == 0 && (VmFlagsOf(prev) & VmFlags.AccessFlags) != 0 &&
            address - VmEnd(prev) < StackGuardGap)
            return Errno.ENOMEM;
        if (prev != 0 && address < VmEnd(prev))
            return Errno.ENOMEM;
        if (!AnonVmaPrepare(cpu, vma))
            return Errno.ENOMEM;
        ulong start = VmStart(vma);
        if (address >= start)
            return Errno.None;
        ulong size = VmEnd(vma) - address;
        ulong grow = (start - address) >> PageSize.Shift;
        if (grow > VmPgoff(vma))
            return Errno.ENOMEM;
        // acct_stack_growth().
        if (size > RlimitStack)
            return Errno.ENOMEM;
        if ((flags & VmFlags.Locked) != 0 && !MlockFutureOk(mm, grow << PageSize.Shift))
            return Errno.ENOMEM;
        if ((flags & VmFlags.Account) != 0 && !VmEnoughMemory((long)grow))
            return Errno.ENOMEM;
        if ((flags & VmFlags.Locked) != 0)
            AddMmLong(mm.H, MmOff<TArch>.LockedVm, (long)grow);
        VmStatAccount(mm, flags, (long)grow);
        VmaSetRange(mm, vma, address, VmEnd(vma), VmPgoff(vma) - grow);
        return Errno.None;
    }

    /// <summary>RLIMIT_MEMLOCK (8 MiB, the 6.x default MLOCK_LIMIT).</summary>
    public const ulong RlimitMemlock = 8UL << 20;

    /// <summary>mlock_future_ok(): an unprivileged process may lock up to RLIMIT_MEMLOCK.</summary>
    private static bool MlockFutureOk(MmState<TArch> mm, ulong bytes) =>
        (GetMmLong(mm.H, MmOff<TArch>.LockedVm) << PageSize.Shift) + bytes <= RlimitMemlock;
}
