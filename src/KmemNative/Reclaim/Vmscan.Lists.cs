using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// Scanning the lists (mm/vmscan.c): isolate_lru_folios() takes pages from a list's tail with a reference, clearing
// PG_lru; shrink_inactive_list() runs shrink_folio_list() over them and puts back what stays; shrink_active_list()
// deactivates (only referenced executable file pages get another round).
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>SWAP_CLUSTER_MAX_SKIPPED: at most this many ineligible pages are skipped per isolation.</summary>
    private const int SwapClusterMaxSkipped = Vmscan.SwapClusterMax << 10;

    /// <summary>
    /// isolate_lru_folios() (lru_lock held): from the tail, pages of zones above reclaim_idx are skipped (pgskip_*)
    /// and spliced back at the head; eligible ones are counted as scanned and taken if on the LRU, allowed (mapped
    /// pages need may_unmap) and still referenced by someone (folio_try_get()).
    /// </summary>
    private List<ulong> IsolateLruFolios(Cpu cpu, long nrToScan, ScanControl sc, int lru, out long nrScanned)
    {
        var taken = new List<ulong>((int)Math.Min(nrToScan, Vmscan.SwapClusterMax));
        List<ulong>? skipped = null;
        ulong head = LruHead(lru);
        long scan = 0, totalScan = 0, maxSkipped = 0;
        while (scan < nrToScan && !_mm.ListEmpty(head))
        {
            ulong lruVa = MemMap<TArch>.Prev(_mm.ListHost(head));
            ulong pfn = _mm.PfnOfLru(lruVa);
            byte* d = Desc(pfn);
            int zone = MemMap<TArch>.ZoneIdx(d);
            totalScan++;
            _mm.ListDel(lruVa);
            if (maxSkipped < SwapClusterMaxSkipped && zone > sc.ReclaimIdx)
            {
                cpu.Events[(int)VmEvent.PgskipDma + (int)TArch.ZoneTypes[zone]]++;
                (skipped ??= []).Add(pfn);
                maxSkipped++;
                continue;
            }
            scan++;
            ref int refcount = ref MemMap<TArch>.Refcount(d);
            bool take = MemMap<TArch>.TestFlag(d, PageFlag.Lru) && (sc.MayUnmap || MemMap<TArch>.PageType(d) == PageBits.NoType);
            if (take)
            {
                // folio_try_get(): never resurrect a page whose last reference is being dropped.
                int r = Volatile.Read(ref refcount);
                while (r > 0 && Interlocked.CompareExchange(ref refcount, r + 1, r) != r)
                    r = Volatile.Read(ref refcount);
                take = r > 0;
            }
            if (!take)
            {
                _mm.ListAdd(lruVa, head);
                continue;
            }
            MemMap<TArch>.ClearFlag(d, PageFlag.Lru);
            UpdateLruSize(d, lru, -1);
            taken.Add(pfn);
        }
        // Skipped pages go back at the head, in their order.
        for (int i = (skipped?.Count ?? 0) - 1; i >= 0; i--)
            _mm.ListAdd(LruField(_mm.DescVa(skipped![i])), head);
        nrScanned = totalScan;
        return taken;
    }

    /// <summary>move_folios_to_lru() (lru_lock held): PG_lru and the head of the list their flags name; the isolation reference is dropped after.</summary>
    private void PutBackLocked(List<ulong> pages)
    {
        foreach (ulong pfn in pages)
        {
            byte* d = Desc(pfn);
            MemMap<TArch>.SetFlag(d, PageFlag.Lru);
            AddToLru(pfn, d);
            if (MemMap<TArch>.TestFlag(d, PageFlag.Active))
                WorkingsetAgeNonresident(1);
        }
    }

    /// <summary>folio_put() of the isolation references (outside lru_lock: the last one frees the page, off the LRU).</summary>
    private void DropIsolationRefs(Cpu cpu, List<ulong> pages)
    {
        var mm = _mmSub;
        foreach (ulong pfn in pages)
        {
            if (mm is not null)
                mm.PutPageRef(cpu, pfn);
            else
                Interlocked.Decrement(ref MemMap<TArch>.Refcount(Desc(pfn)));
        }
    }

    /// <summary>too_many_isolated(): direct reclaimers back off when more pages are isolated than inactive.</summary>
    private bool TooManyIsolated(bool file, ScanControl sc)
    {
        if (sc.Kswapd)
            return false;
        long inactive = NodeStatRead(file ? NodeStat.NrInactiveFile : NodeStat.NrInactiveAnon);
        long isolated = NodeStatRead(file ? NodeStat.NrIsolatedFile : NodeStat.NrIsolatedAnon);
        if ((sc.GfpMask & (Gfp.Io | Gfp.Fs)) == (Gfp.Io | Gfp.Fs))
            inactive >>= 3;
        return isolated > inactive;
    }

    /// <summary>
    /// shrink_inactive_list(): isolate, count pgscan_kswapd/direct and pgscan_anon/file, shrink_folio_list(), put
    /// back, count pgsteal_*, note the costs, and wake the flusher when every page taken was dirty and not yet queued.
    /// </summary>
    private long ShrinkInactiveList(Cpu cpu, long nrToScan, ScanControl sc, int lru)
    {
        bool file = lru == InactiveFile;
        if (TooManyIsolated(file, sc))
            return 0;
        List<ulong> taken;
        long nrScanned;
        lock (_lruLock)
        {
            taken = IsolateLruFolios(cpu, nrToScan, sc, lru, out nrScanned);
            NodeStatAdd(file ? NodeStat.NrIsolatedFile : NodeStat.NrIsolatedAnon, taken.Count);
        }
        cpu.Events[(int)(sc.Kswapd ? VmEvent.PgscanKswapd : VmEvent.PgscanDirect)] += nrScanned;
        cpu.Events[(int)(file ? VmEvent.PgscanFile : VmEvent.PgscanAnon)] += nrScanned;
        if (taken.Count == 0)
            return 0;
        var stat = new ReclaimStat();
        var kept = ShrinkFolioList(cpu, taken, sc, ref stat);
        lock (_lruLock)
        {
            PutBackLocked(kept);
            NodeStatAdd(file ? NodeStat.NrIsolatedFile : NodeStat.NrIsolatedAnon, -taken.Count);
        }
        DropIsolationRefs(cpu, kept);
        long reclaimed = stat.NrReclaimed;
        cpu.Events[(int)(sc.Kswapd ? VmEvent.PgstealKswapd : VmEvent.PgstealDirect)] += reclaimed;
        cpu.Events[(int)(file ? VmEvent.PgstealFile : VmEvent.PgstealAnon)] += reclaimed;
        LruNoteCost(file, stat.NrPageout, nrScanned - reclaimed);
        if (stat.NrUnqueuedDirty == taken.Count)
            WakeupFlusherThreads();
        sc.Dirty += stat.NrDirty;
        sc.Congested += stat.NrCongested;
        sc.UnqueuedDirty += stat.NrUnqueuedDirty;
        sc.Writeback += stat.NrWriteback;
        sc.Immediate += stat.NrImmediate;
        sc.Taken += taken.Count;
        if (file)
            sc.FileTaken += taken.Count;
        return reclaimed;
    }

    /// <summary>
    /// shrink_active_list(): isolate (pgrefill), keep referenced executable file pages active (rotated), move the
    /// rest to the inactive list with PG_workingset (pgdeactivate).
    /// </summary>
    private void ShrinkActiveList(Cpu cpu, long nrToScan, ScanControl sc, int lru)
    {
        bool file = lru == ActiveFile;
        List<ulong> taken;
        long nrScanned;
        lock (_lruLock)
        {
            taken = IsolateLruFolios(cpu, nrToScan, sc, lru, out nrScanned);
            NodeStatAdd(file ? NodeStat.NrIsolatedFile : NodeStat.NrIsolatedAnon, taken.Count);
        }
        cpu.Events[(int)VmEvent.Pgrefill] += nrScanned;
        var mm = _mmSub;
        long rotated = 0, deactivated = 0;
        var back = new List<ulong>(taken.Count);
        foreach (ulong pfn in taken)
        {
            byte* d = Desc(pfn);
            if (MemMap<TArch>.TestFlag(d, PageFlag.Unevictable))
            {
                back.Add(pfn);
                continue;
            }
            if (mm is not null && mm.FolioReferenced(pfn, out var vmFlags) != 0 && (vmFlags & Mm.VmFlags.Exec) != 0 && IsFileLru(d))
            {
                rotated++;
                back.Add(pfn);
                continue;
            }
            MemMap<TArch>.ClearFlag(d, PageFlag.Active);
            MemMap<TArch>.SetFlag(d, PageFlag.Workingset);
            deactivated++;
            back.Add(pfn);
        }
        lock (_lruLock)
        {
            PutBackLocked(back);
            NodeStatAdd(file ? NodeStat.NrIsolatedFile : NodeStat.NrIsolatedAnon, -taken.Count);
        }
        DropIsolationRefs(cpu, back);
        cpu.Events[(int)VmEvent.Pgdeactivate] += deactivated;
        LruNoteCost(file, 0, rotated);
    }

    /// <summary>struct reclaim_stat.</summary>
    private struct ReclaimStat
    {
        public long NrDirty, NrUnqueuedDirty, NrCongested, NrWriteback, NrImmediate, NrPageout, NrActivate, NrRefKeep, NrUnmapFail, NrReclaimed;
    }

    private enum FolioRef
    {
        Reclaim,
        ReclaimClean,
        Keep,
        Activate,
    }

    /// <summary>
    /// folio_check_references(): mapped in a VM_LOCKED VMA → activate; rmap contention → keep; referenced through
    /// a PTE → activate if also PG_referenced, mapped more than once or executable file, else keep with
    /// PG_referenced set; only PG_referenced (file) → reclaim if clean; else reclaim.
    /// </summary>
    private FolioRef CheckReferences(ulong pfn, byte* d)
    {
        var mm = _mmSub;
        int referencedPtes = 0;
        Mm.VmFlags vmFlags = 0;
        if (mm is not null)
            referencedPtes = mm.FolioReferenced(pfn, out vmFlags);
        if ((vmFlags & Mm.VmFlags.Locked) != 0)
            return FolioRef.Activate;
        if (referencedPtes == -1)
            return FolioRef.Keep;
        bool referencedFolio = MemMap<TArch>.TestFlag(d, PageFlag.Referenced);
        MemMap<TArch>.ClearFlag(d, PageFlag.Referenced);
        if (referencedPtes != 0)
        {
            MemMap<TArch>.SetFlag(d, PageFlag.Referenced);
            if (referencedFolio || referencedPtes > 1)
                return FolioRef.Activate;
            if ((vmFlags & Mm.VmFlags.Exec) != 0 && IsFileLru(d))
                return FolioRef.Activate;
            return FolioRef.Keep;
        }
        if (referencedFolio && IsFileLru(d))
            return FolioRef.ReclaimClean;
        return FolioRef.Reclaim;
    }

    /// <summary>may_enter_fs(): __GFP_FS, or a swap-cache page with __GFP_IO (the swap device is a block device, not SWP_FS_OPS).</summary>
    private static bool MayEnterFs(byte* d, Gfp gfp) =>
        (gfp & Gfp.Fs) != 0 || (MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1) && MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked) && (gfp & Gfp.Io) != 0);

    /// <summary>
    /// shrink_folio_list(): for each isolated page, in the kernel's order — unevictable → activate; under writeback →
    /// mark PG_reclaim and activate (kswapd: immediate); the references decide activate/keep; an anonymous page
    /// gets a swap slot (needs __GFP_IO and free swap) and joins the swap cache; mapped pages are unmapped
    /// (try_to_unmap: swap entries in the PTEs); a dirty file page is marked PG_reclaim and activated (the flusher
    /// writes file pages, never reclaim); a dirty swap-cache page is written out (pageout(): needs may_enter_fs and
    /// may_writepage); a clean one leaves the page or swap cache (__remove_mapping()) and is freed. Returns the
    /// pages that stay (to be put back); the count freed is in <paramref name="stat"/>.
    /// </summary>
    private List<ulong> ShrinkFolioList(Cpu cpu, List<ulong> pages, ScanControl sc, ref ReclaimStat stat)
    {
        var kept = new List<ulong>(pages.Count);
        var mm = _mmSub;
        foreach (ulong pfn in pages)
        {
            byte* d = Desc(pfn);
            sc.NrScanned++;
            var outcome = ShrinkFolio(cpu, pfn, d, sc, mm, ref stat);
            if (outcome == FolioOutcome.Freed)
            {
                stat.NrReclaimed++;
                continue;
            }
            if (outcome == FolioOutcome.Activate)
            {
                // activate_locked: a swap-cache copy is not worth keeping when swap is full.
                if (MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1) && SwapFull)
                    TryFreeSwapLocked(cpu, pfn, d);
                MemMap<TArch>.SetFlag(d, PageFlag.Active);
                stat.NrActivate++;
            }
            kept.Add(pfn);
        }
        cpu.Events[(int)VmEvent.Pgactivate] += stat.NrActivate;
        return kept;
    }

    private enum FolioOutcome
    {
        Keep,
        Activate,
        Freed,
    }

    private FolioOutcome ShrinkFolio(Cpu cpu, ulong pfn, byte* d, ScanControl sc, MmSubsystem<TArch>? mm, ref ReclaimStat stat)
    {
        if (MemMap<TArch>.TestFlag(d, PageFlag.Unevictable))
            return FolioOutcome.Activate;
        bool mapped = MemMap<TArch>.PageType(d) != PageBits.NoType;
        if (!sc.MayUnmap && mapped)
            return FolioOutcome.Keep;
        bool fileLru = IsFileLru(d);
        bool dirty = fileLru && MemMap<TArch>.TestFlag(d, PageFlag.Dirty);
        bool writeback = fileLru && MemMap<TArch>.TestFlag(d, PageFlag.Writeback);
        if (dirty || writeback)
            stat.NrDirty++;
        if (dirty && !writeback)
            stat.NrUnqueuedDirty++;
        if (writeback && MemMap<TArch>.TestFlag(d, PageFlag.Reclaim))
            stat.NrCongested++;

        if (MemMap<TArch>.TestFlag(d, PageFlag.Writeback))
        {
            // Case 1: kswapd finds the node congested with writeback: immediate. Case 2: mark for immediate
            // reclaim when the I/O completes (folio_rotate_reclaimable()) and keep scanning.
            if (sc.Kswapd && MemMap<TArch>.TestFlag(d, PageFlag.Reclaim) && TestPgdat(PgdatWriteback))
                stat.NrImmediate++;
            else
            {
                MemMap<TArch>.SetFlag(d, PageFlag.Reclaim);
                stat.NrWriteback++;
            }
            return FolioOutcome.Activate;
        }

        var references = CheckReferences(pfn, d);
        switch (references)
        {
            case FolioRef.Activate:
                return FolioOutcome.Activate;
            case FolioRef.Keep:
                stat.NrRefKeep++;
                return FolioOutcome.Keep;
        }

        bool anon = (MemMap<TArch>.Mapping(d) & 1) != 0;
        if (anon && MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked) && !MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1))
        {
            if ((sc.GfpMask & Gfp.Io) == 0)
                return FolioOutcome.Keep;
            if (!AddToSwap(cpu, pfn, d))
                return FolioOutcome.Activate;
        }

        if (MemMap<TArch>.PageType(d) != PageBits.NoType)
        {
            ulong entry = anon ? MemMap<TArch>.Private(d) : 0;
            if (mm is null || !mm.TryToUnmap(cpu, pfn, entry))
            {
                stat.NrUnmapFail++;
                return FolioOutcome.Activate;
            }
        }

        if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty))
        {
            if (fileLru && (!sc.Kswapd || !MemMap<TArch>.TestFlag(d, PageFlag.Reclaim) || !TestPgdat(PgdatDirty)))
            {
                // Direct reclaim (and kswapd short of PGDAT_DIRTY) leaves file pages to the flusher.
                NodeStatAdd(NodeStat.NrVmscanImmediateReclaim, 1);
                MemMap<TArch>.SetFlag(d, PageFlag.Reclaim);
                return FolioOutcome.Activate;
            }
            if (references == FolioRef.ReclaimClean || !MayEnterFs(d, sc.GfpMask) || !sc.MayWritepage)
                return FolioOutcome.Keep;
            switch (Pageout(cpu, pfn, d))
            {
                case PageoutResult.Keep:
                    return FolioOutcome.Keep;
                case PageoutResult.Activate:
                    return FolioOutcome.Activate;
                case PageoutResult.Success:
                    stat.NrPageout++;
                    if (MemMap<TArch>.TestFlag(d, PageFlag.Writeback) || MemMap<TArch>.TestFlag(d, PageFlag.Dirty))
                        return FolioOutcome.Keep;
                    break;
            }
        }

        if (anon)
        {
            // An anonymous page nobody maps any more and no swap cache holds: only our reference is left.
            if (!MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1))
                return MemMap<TArch>.Refcount(d) == 1 && mm is not null && FreeOrphan(cpu, pfn, mm) ? FolioOutcome.Freed : FolioOutcome.Keep;
            return RemoveFromSwapCache(cpu, pfn, d, reclaimed: true) ? FolioOutcome.Freed : FolioOutcome.Keep;
        }
        if (mm is null || !mm.RemoveMapping(cpu, pfn, _workingsetEviction ??= WorkingsetEviction))
            return FolioOutcome.Keep;
        return FolioOutcome.Freed;
    }

    /// <summary>The last reference to an unmapped anonymous page that is in no cache: free it.</summary>
    private static bool FreeOrphan(Cpu cpu, ulong pfn, MmSubsystem<TArch> mm)
    {
        mm.PutPageRef(cpu, pfn);
        return true;
    }

    private enum PageoutResult
    {
        Keep,
        Activate,
        Success,
    }

    /// <summary>
    /// pageout(): file pages are not written by reclaim (PAGE_ACTIVATE: "that's taken care of in page-writeback");
    /// a swap-cache page is written to its slot (swap_writeout(): PG_reclaim, PG_writeback until the emulated I/O
    /// completes, pswpout, nr_vmscan_write).
    /// </summary>
    private PageoutResult Pageout(Cpu cpu, ulong pfn, byte* d)
    {
        if (!MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1) || !MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked))
            return PageoutResult.Activate;
        if (!StartSwapWriteback(cpu, pfn, d))
            return PageoutResult.Keep;
        NodeStatAdd(NodeStat.NrVmscanWrite, 1);
        return PageoutResult.Success;
    }
}
