using KmemNative.PhysMem;

namespace KmemNative.Mm;

// mprotect() (mm/mprotect.c), brk() (mm/mmap.c) and madvise(MADV_DONTNEED and friends) (mm/madvise.c).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>do_mprotect_pkey() without protection keys.</summary>
    internal SysResult DoMprotect(Cpu cpu, MmState<TArch> mm, ulong start, ulong len, Prot prot)
    {
        var grows = prot & (Prot.GrowsDown | Prot.GrowsUp);
        prot &= ~(Prot.GrowsDown | Prot.GrowsUp);
        if (grows == (Prot.GrowsDown | Prot.GrowsUp))
            return SysResult.Fail(Errno.EINVAL);
        if (OffsetInPage(start))
            return SysResult.Fail(Errno.EINVAL);
        if (len == 0)
            return SysResult.Ok(0);
        len = PageAlign(len);
        ulong end = start + len;
        if (end <= start)
            return SysResult.Fail(Errno.ENOMEM);
        // arch_validate_prot(): only READ/WRITE/EXEC/SEM.
        if ((prot & ~(Prot.Read | Prot.Write | Prot.Exec | Prot.Sem)) != 0)
            return SysResult.Fail(Errno.EINVAL);

        ulong vma = FindVma(mm, start);
        if (vma == 0 || VmStart(vma) >= end)
            return SysResult.Fail(Errno.ENOMEM);
        if ((grows & Prot.GrowsDown) != 0)
        {
            start = VmStart(vma);
            if ((VmFlagsOf(vma) & VmFlags.GrowsDown) == 0)
                return SysResult.Fail(Errno.EINVAL);
        }
        else
        {
            if (VmStart(vma) > start)
                return SysResult.Fail(Errno.ENOMEM);
            if ((grows & Prot.GrowsUp) != 0)
                return SysResult.Fail(Errno.EINVAL); // no VM_GROWSUP on x86
        }
        ulong prev = start > VmStart(vma) ? vma : VmPrev(vma);
        ulong tmp = VmStart(vma);
        ulong nstart = start;
        Errno error = Errno.None;
        while (vma != 0 && VmStart(vma) < end)
        {
            if (VmStart(vma) != tmp)
            {
                error = Errno.ENOMEM;
                break;
            }
            VmFlags old = VmFlagsOf(vma);
            VmFlags newflags = CalcVmProtBits(prot) | (old & ~VmFlags.AccessFlags);
            // newflags >> 4 moves VM_MAY* onto VM_*: a permission without its VM_MAY* bit is refused.
            if (((ulong)newflags & ~((ulong)newflags >> 4) & (ulong)VmFlags.AccessFlags) != 0)
            {
                error = Errno.EACCES;
                break;
            }
            tmp = Math.Min(VmEnd(vma), end);
            error = MprotectFixup(cpu, mm, vma, ref prev, nstart, tmp, newflags);
            if (error != Errno.None)
                break;
            // vma_iter_end(): a merge may have carried the VMA past tmp.
            tmp = VmEnd(prev);
            nstart = tmp;
            vma = VmNext(prev);
        }
        if (error == Errno.None && tmp < end)
            error = Errno.ENOMEM;
        return error == Errno.None ? SysResult.Ok(0) : SysResult.Fail(error);
    }

    /// <summary>
    /// mprotect_fixup(): commit charge for a private mapping turning writable, merge with a neighbour or split at
    /// the range's ends, the new flags, change_protection() on the PTEs, and vm_stat_account().
    /// </summary>
    private Errno MprotectFixup(Cpu cpu, MmState<TArch> mm, ulong vma, ref ulong prev, ulong start, ulong end, VmFlags newflags)
    {
        VmFlags old = VmFlagsOf(vma);
        if (newflags == old)
        {
            prev = vma;
            return Errno.None;
        }
        long nrpages = (long)((end - start) >> PageSize.Shift);
        long charged = 0;
        if ((newflags & VmFlags.Write) != 0)
        {
            if ((old & (VmFlags.Account | VmFlags.Write | VmFlags.Hugetlb | VmFlags.Shared | VmFlags.NoReserve)) == 0)
            {
                charged = nrpages;
                if (!VmEnoughMemory(charged))
                    return Errno.ENOMEM;
                newflags |= VmFlags.Account;
            }
        }
        else if ((old & VmFlags.Account) != 0 && VmaIsAnonymous(vma) && VmAnonVma(vma) == 0)
        {
            newflags &= ~VmFlags.Account;
        }

        ulong pgoff = VmPgoff(vma) + ((start - VmStart(vma)) >> PageSize.Shift);
        ulong merged = VmaMerge(cpu, mm, prev, start, end, newflags, VmAnonVma(vma), VmFile(vma), pgoff);
        if (merged != 0)
        {
            vma = merged;
        }
        else
        {
            if (start != VmStart(vma))
            {
                var e = SplitVmaChecked(cpu, mm, vma, start, newBelow: true);
                if (e != Errno.None)
                {
                    VmAcctMemory(-charged);
                    return e;
                }
            }
            if (end != VmEnd(vma))
            {
                var e = SplitVmaChecked(cpu, mm, vma, end, newBelow: false);
                if (e != Errno.None)
                {
                    VmAcctMemory(-charged);
                    return e;
                }
            }
        }
        prev = vma;
        // The VM_ACCOUNT charge of pages that stay accounted is not returned when they turn read-only (as in the kernel).
        SetVmFlags(vma, newflags);
        ChangeProtection(cpu, mm, vma, start, end, newflags);
        if ((old & VmFlags.Account) != 0 && (newflags & VmFlags.Account) == 0)
            VmAcctMemory(-nrpages);
        VmStatAccount(mm, old, -nrpages);
        VmStatAccount(mm, newflags, nrpages);
        if ((old & VmFlags.Locked) != 0 || (newflags & VmFlags.Locked) != 0)
        {
            // mlock state rides along unchanged: locked_vm tracks VM_LOCKED pages.
        }
        return Errno.None;
    }

    /// <summary>
    /// change_protection() / change_pte_range(): every present PTE gets the VMA's new protection (pte_modify()); for
    /// a writable VMA an exclusive anonymous page (private) or a dirty page (shared) becomes writable at once
    /// (can_change_pte_writable()). The TLBs of the CPUs running the mm are flushed.
    /// </summary>
    private void ChangeProtection(Cpu cpu, MmState<TArch> mm, ulong vma, ulong start, ulong end, VmFlags flags)
    {
        ulong prot = VmPageProt(vma);
        bool tryWritable = (flags & VmFlags.Write) != 0;
        bool shared = (flags & VmFlags.Shared) != 0;
        ulong span = 1UL << (12 + TArch.IndexBits);
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
                if ((e & (PteP | PteProtNone)) == 0)
                    continue;
                ulong n = PteModify(e, prot);
                if (tryWritable && (n & PteP) != 0 && (n & PteRw) == 0 && CanChangePteWritable(e, shared))
                    n |= PteRw;
                TArch.StorePte(pte, n);
            }
        }
        _m.Mmu.FlushRange(mm.As, start, end, cpu);
    }

    private bool CanChangePteWritable(ulong pte, bool shared)
    {
        if (TArch.Kind == Arch.ArchKind.X86_64 && (pte & PteSoftDirty) == 0)
            return false; // soft-dirty tracking wants the write fault
        if (shared)
            return (pte & PteD) != 0;
        if ((pte & PteSpecial) != 0)
            return false;
        ulong pfn = (pte & TArch.PtePfnMask) >> PageSize.Shift;
        return pfn != ZeroPfn && PageAnon(pfn) && PhysMem.MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Owner2);
    }

    // ---- brk ---------------------------------------------------------------------------------------

    /// <summary>brk(): never an error; the new break on success, the old one on any failure.</summary>
    internal ulong DoBrk(Cpu cpu, MmState<TArch> mm, ulong brk)
    {
        byte* m = mm.H;
        ulong origbrk = GetMmLong(m, MmOff<TArch>.Brk);
        ulong minBrk = GetMmLong(m, MmOff<TArch>.StartBrk);
        if (brk < minBrk)
            return origbrk;
        ulong newbrk = PageAlign(brk);
        ulong oldbrk = PageAlign(origbrk);
        if (newbrk < brk)
            return origbrk;
        if (oldbrk == newbrk)
        {
            SetMmLong(m, MmOff<TArch>.Brk, brk);
            return brk;
        }
        if (brk <= origbrk)
        {
            // Shrinking: the brk VMA in [newbrk, oldbrk) gives the range back.
            ulong shrinking = FindVma(mm, newbrk);
            if (shrinking == 0 || VmStart(shrinking) >= oldbrk)
                return origbrk;
            SetMmLong(m, MmOff<TArch>.Brk, brk);
            if (DoMunmapRange(cpu, mm, newbrk, oldbrk) != Errno.None)
            {
                SetMmLong(m, MmOff<TArch>.Brk, origbrk);
                return origbrk;
            }
            return brk;
        }
        // check_brk_limits(): get_unmapped_area(MAP_FIXED) and the mlock limit.
        ulong len = newbrk - oldbrk;
        if (len > TArch.TaskSizeMax || oldbrk > TArch.TaskSizeMax - len)
            return origbrk;
        // Keep a page and the stack guard gap from the next VMA.
        ulong next = FindVma(mm, oldbrk);
        if (next != 0 && VmStart(next) <= newbrk + PageSize.Bytes + StackGuardGap && newbrk + PageSize.Bytes > VmStartGap(next))
            return origbrk;
        // vma_prev_limit(&vmi, mm->start_brk): the brk VMA ending at oldbrk, if it lies in the heap.
        FindVmaPrev(mm, oldbrk, out ulong prev);
        ulong brkvma = prev != 0 && VmEnd(prev) > minBrk ? prev : 0;
        if (DoBrkFlags(cpu, mm, brkvma, prev, oldbrk, len) != Errno.None)
            return origbrk;
        SetMmLong(m, MmOff<TArch>.Brk, brk);
        if ((GetMmLong(m, MmOff<TArch>.DefFlags) & (ulong)VmFlags.Locked) != 0)
            MmPopulate(cpu, mm, oldbrk, len);
        return brk;
    }

    /// <summary>
    /// do_brk_flags(): an anonymous data mapping of [addr, addr+len) that extends <paramref name="brkvma"/> when it
    /// ends at addr and is compatible, else a new VMA after <paramref name="prev"/>.
    /// </summary>
    internal Errno DoBrkFlags(Cpu cpu, MmState<TArch> mm, ulong brkvma, ulong prev, ulong addr, ulong len, VmFlags extra = 0)
    {
        VmFlags flags = extra | VmFlags.DataDefault | VmFlags.Account | (VmFlags)GetMmLong(mm.H, MmOff<TArch>.DefFlags);
        long pages = (long)(len >> PageSize.Shift);
        if (MapCount(mm) > MaxMapCount)
            return Errno.ENOMEM;
        if (!VmEnoughMemory(pages))
            return Errno.ENOMEM;
        ulong vma;
        if (brkvma != 0 && VmEnd(brkvma) == addr && CanVmaMergeAfter(brkvma, flags, 0, 0, addr >> PageSize.Shift))
        {
            vma = brkvma;
            VmaSetRange(mm, vma, VmStart(vma), addr + len, VmPgoff(vma));
        }
        else
        {
            vma = VmAreaAlloc(cpu, mm);
            if (vma == 0)
            {
                VmAcctMemory(-pages);
                return Errno.ENOMEM;
            }
            SetVmStart(vma, addr);
            SetVmEnd(vma, addr + len);
            SetVmPgoff(vma, addr >> PageSize.Shift);
            SetVmFlags(vma, flags);
            VmaLinkAll(mm, vma, prev);
        }
        AddMmLong(mm.H, MmOff<TArch>.TotalVm, pages);
        AddMmLong(mm.H, MmOff<TArch>.DataVm, pages);
        if ((flags & VmFlags.Locked) != 0)
            AddMmLong(mm.H, MmOff<TArch>.LockedVm, pages);
        SetVmFlags(vma, VmFlagsOf(vma) | VmSoftDirty);
        return Errno.None;
    }

    // ---- madvise ------------------------------------------------------------------------------------

    /// <summary>
    /// do_madvise(): MADV_DONTNEED zaps the range (anonymous memory reads back as zeroes, file pages come back
    /// from the page cache); MADV_NORMAL/RANDOM/SEQUENTIAL/DONTFORK/DOFORK/WIPEONFORK/KEEPONFORK change VMA
    /// flags (splitting and merging like mprotect); MADV_WILLNEED populates. Unknown advice: -EINVAL.
    /// </summary>
    internal SysResult DoMadvise(Cpu cpu, MmState<TArch> mm, ulong start, ulong len, Madvise advice)
    {
        if (advice is not (Madvise.Normal or Madvise.Random or Madvise.Sequential or Madvise.WillNeed or Madvise.DontNeed
                           or Madvise.DontFork or Madvise.DoFork or Madvise.WipeOnFork or Madvise.KeepOnFork))
            return SysResult.Fail(Errno.EINVAL);
        if (OffsetInPage(start))
            return SysResult.Fail(Errno.EINVAL);
        ulong alignedLen = PageAlign(len);
        if (len != 0 && alignedLen == 0)
            return SysResult.Fail(Errno.EINVAL);
        ulong end = start + alignedLen;
        if (end < start)
            return SysResult.Fail(Errno.EINVAL);
        if (end == start)
            return SysResult.Ok(0);
        bool unmapped = false;
        for (ulong va = start; va < end;)
        {
            ulong vma = FindVma(mm, va);
            if (vma == 0 || VmStart(vma) >= end)
            {
                unmapped = true;
                break;
            }
            if (VmStart(vma) > va)
            {
                unmapped = true;
                va = VmStart(vma);
            }
            ulong vend = Math.Min(end, VmEnd(vma));
            switch (advice)
            {
                case Madvise.DontNeed:
                    if ((VmFlagsOf(vma) & (VmFlags.Locked | VmFlags.Hugetlb | VmFlags.PfnMap)) != 0)
                        return SysResult.Fail(Errno.EINVAL);
                    UpdateHiwaterRss(mm);
                    ZapVmaRange(cpu, mm, vma, va, vend);
                    _m.Mmu.FlushRange(mm.As, va, vend, cpu);
                    break;
                case Madvise.WillNeed:
                    MmPopulate(cpu, mm, va, vend - va);
                    break;
                default:
                    {
                        VmFlags f = VmFlagsOf(vma);
                        VmFlags nf = advice switch
                        {
                            Madvise.Normal => f & ~(VmFlags.RandRead | VmFlags.SeqRead),
                            Madvise.Random => (f & ~VmFlags.SeqRead) | VmFlags.RandRead,
                            Madvise.Sequential => (f & ~VmFlags.RandRead) | VmFlags.SeqRead,
                            Madvise.DontFork => f | VmFlags.DontCopy,
                            Madvise.DoFork => f & ~VmFlags.DontCopy,
                            Madvise.WipeOnFork => f | VmFlags.WipeOnFork,
                            _ => f & ~VmFlags.WipeOnFork,
                        };
                        if (advice == Madvise.WipeOnFork && (VmFile(vma) != 0 || (f & VmFlags.Shared) != 0))
                            return SysResult.Fail(Errno.EINVAL);
                        var err = MadviseUpdateVma(cpu, mm, vma, va, vend, nf);
                        if (err != Errno.None)
                            return SysResult.Fail(err);
                        break;
                    }
            }
            va = vend;
        }
        return unmapped ? SysResult.Fail(Errno.ENOMEM) : SysResult.Ok(0);
    }

    /// <summary>madvise_update_vma(): new flags on [start, end) of the VMA, merging or splitting.</summary>
    private Errno MadviseUpdateVma(Cpu cpu, MmState<TArch> mm, ulong vma, ulong start, ulong end, VmFlags newflags)
    {
        if (newflags == VmFlagsOf(vma))
            return Errno.None;
        ulong prev = start > VmStart(vma) ? vma : VmPrev(vma);
        ulong pgoff = VmPgoff(vma) + ((start - VmStart(vma)) >> PageSize.Shift);
        ulong merged = VmaMerge(cpu, mm, prev, start, end, newflags, VmAnonVma(vma), VmFile(vma), pgoff);
        if (merged != 0)
        {
            vma = merged;
        }
        else
        {
            if (start != VmStart(vma))
            {
                var e = SplitVmaChecked(cpu, mm, vma, start, newBelow: true);
                if (e != Errno.None)
                    return e;
            }
            if (end != VmEnd(vma))
            {
                var e = SplitVmaChecked(cpu, mm, vma, end, newBelow: false);
                if (e != Errno.None)
                    return e;
            }
        }
        SetVmFlags(vma, newflags);
        return Errno.None;
    }
}
