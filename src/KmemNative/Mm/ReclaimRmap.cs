using KmemNative.PhysMem;
using KmemNative.Reclaim;

namespace KmemNative.Mm;

// What reclaim does to the page tables through the reverse map (mm/rmap.c): folio_referenced() tests and clears
// the Accessed bits of every PTE mapping a page, try_to_unmap() removes them (a swap entry in place of an anonymous
// page). Reclaim may run inside a fault or a system call that holds an mmap_lock and the rmap lock, so both are
// only try-locked here: a busy mm keeps its mapping (the kernel's rwc->try_lock and its PTE lock trylock).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>rmap_walk() with try_lock: false when the rmap lock is held by another thread (the page is left alone).</summary>
    private bool RmapWalkTry(ulong pfn, RmapVisitor visit)
    {
        if (!Monitor.TryEnter(_rmapLock))
            return false;
        try
        {
            RmapWalk(pfn, visit);
            return true;
        }
        finally
        {
            Monitor.Exit(_rmapLock);
        }
    }

    /// <summary>
    /// Reclaim's access to an mm found through the reverse map: its mmap_lock if free (<paramref name="taken"/>);
    /// or, without it, the mm whose page fault this very thread is handling (the fault allocates, the allocation
    /// reclaims): in the kernel rmap needs no mmap_lock, so the faulting task's other pages are reclaimable too. The
    /// PTE being faulted is left alone (the kernel's fault re-checks it with pte_same() and retries).
    /// </summary>
    private static bool TryLockForReclaim(MmState<TArch> mm, ulong address, out bool taken)
    {
        taken = mm.Lock.TryEnter();
        if (taken)
            return true;
        return ReferenceEquals(mm.FaultThread, Thread.CurrentThread) && (address & ~(PageSize.Bytes - 1)) != mm.FaultAddress;
    }

    /// <summary>
    /// folio_referenced(): the number of PTEs mapping the page that had Accessed set (test-and-cleared with a TLB
    /// flush), the union of those VMAs' flags (VM_LOCKED wherever a VM_LOCKED VMA maps it), or -1 when the walk
    /// could not take a lock it needed (the caller keeps the page, as for rmap contention).
    /// </summary>
    internal int FolioReferenced(ulong pfn, out VmFlags vmFlags)
    {
        vmFlags = 0;
        if (Mapcount(pfn) <= 0 || MemMap<TArch>.Mapping(Desc(pfn)) == 0)
            return 0;
        return FolioReferencedWalk(pfn, out vmFlags);
    }

    // The walk's closure lives in its own method, so that the common unmapped page costs no allocation.
    private int FolioReferencedWalk(ulong pfn, out VmFlags vmFlags)
    {
        int referenced = 0;
        bool contended = false;
        VmFlags flags = 0;
        bool walked = RmapWalkTry(pfn, (mm, vma, address, pte) =>
        {
            if (!TryLockForReclaim(mm, address, out bool taken))
            {
                contended = true;
                return true;
            }
            try
            {
                VmFlags vf = VmFlagsOf(vma);
                if ((vf & VmFlags.Locked) != 0)
                {
                    // An mlocked VMA maps it: stop here, reclaim activates the page.
                    flags |= VmFlags.Locked;
                    return false;
                }
                ulong e = TArch.LoadPte(pte);
                if ((e & PteA) != 0)
                {
                    TArch.StorePte(pte, e & ~PteA);
                    _m.Mmu.FlushRange(mm.As, address, address + PageSize.Bytes);
                    referenced++;
                    flags |= vf & ~VmFlags.Locked;
                }
                return true;
            }
            finally
            {
                if (taken)
                    mm.Lock.Exit();
            }
        });
        vmFlags = flags;
        if (!walked || contended)
            return -1;
        return referenced;
    }

    /// <summary>
    /// try_to_unmap(): every PTE mapping the page is cleared (the TLBs flushed, a dirty PTE dirtying the page, the
    /// mapping's reference and rmap dropped). An anonymous page's PTEs become swap entries of
    /// <paramref name="swapEntry"/> (swap_duplicate(), MM_ANONPAGES → MM_SWAPENTS, the exclusive bit carried into the
    /// swap PTE). A PTE in an mm whose lock is busy, or in a VM_LOCKED VMA, stays. Returns true when no mapping is left.
    /// </summary>
    internal bool TryToUnmap(Cpu cpu, ulong pfn, ulong swapEntry) => Mapcount(pfn) <= 0 || TryToUnmapWalk(cpu, pfn, swapEntry);

    private bool TryToUnmapWalk(Cpu cpu, ulong pfn, ulong swapEntry)
    {
        bool anon = PageAnon(pfn);
        var swap = Swap;
        RmapWalkTry(pfn, (mm, vma, address, pte) =>
        {
            if (!TryLockForReclaim(mm, address, out bool taken))
                return true;
            try
            {
                VmFlags vf = VmFlagsOf(vma);
                if ((vf & VmFlags.Locked) != 0)
                    return false;
                // "Update high watermark before we lower rss."
                UpdateHiwaterRss(mm);
                ulong e = TArch.LoadPte(pte);
                if (anon)
                {
                    if (swap is null || !swap.SwapDuplicate(swapEntry))
                        return false;
                    byte* d = Desc(pfn);
                    ulong swp = SwapPte<TArch>.FromEntry(swapEntry);
                    // folio_try_share_anon_rmap_pte(): the exclusive marker moves into the swap PTE.
                    if (MemMap<TArch>.TestFlag(d, PageFlag.Owner2))
                    {
                        swp |= SwapPte<TArch>.Exclusive;
                        MemMap<TArch>.ClearFlag(d, PageFlag.Owner2);
                    }
                    if ((e & PteSoftDirty) != 0 && PteSoftDirty != 0)
                        swp |= SwapPte<TArch>.SoftDirty;
                    TArch.StorePte(pte, swp);
                    AddMmCounter(mm, MmCounter.AnonPages, -1);
                    AddMmCounter(mm, MmCounter.SwapEnts, 1);
                }
                else
                {
                    TArch.StorePte(pte, 0);
                    bool shmem = VmFile(vma) != 0 && FileIsShmem(VmFile(vma));
                    AddMmCounter(mm, shmem ? MmCounter.ShmemPages : MmCounter.FilePages, -1);
                }
                _m.Mmu.FlushRange(mm.As, address, address + PageSize.Bytes);
                if ((e & PteD) != 0)
                    SetPageDirty(pfn);
                PageRemoveRmap(pfn, anon);
                PutPageRef(cpu, pfn);
                return true;
            }
            finally
            {
                if (taken)
                    mm.Lock.Exit();
            }
        });
        return Mapcount(pfn) <= 0;
    }
}
