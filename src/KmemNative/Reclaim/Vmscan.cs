using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

/// <summary>struct scan_control: one reclaim invocation's parameters and results (mm/vmscan.c).</summary>
internal sealed class ScanControl
{
    /// <summary>How many pages this invocation tries to free.</summary>
    public long NrToReclaim;

    /// <summary>The allocation's flags after current_gfp_context(): what reclaim may do (__GFP_IO, __GFP_FS).</summary>
    public Gfp GfpMask;

    /// <summary>The highest zone whose pages are worth reclaiming (gfp_zone() of the request).</summary>
    public int ReclaimIdx;

    /// <summary>The allocation order (kswapd: the order it balances for).</summary>
    public int Order;

    /// <summary>Scan 1/2^priority of each list; DEF_PRIORITY 12 down to 0.</summary>
    public int Priority = Vmscan.DefPriority;

    /// <summary>may_writepage, may_unmap, may_swap.</summary>
    public bool MayWritepage = true, MayUnmap = true, MaySwap = true;

    /// <summary>True for kswapd (current_is_kswapd()).</summary>
    public bool Kswapd;

    /// <summary>DEACTIVATE_ANON / DEACTIVATE_FILE.</summary>
    public int MayDeactivate;

    /// <summary>Set when an active list was not aged because may_deactivate forbade it.</summary>
    public bool SkippedDeactivate;

    /// <summary>cache_trim_mode, file_is_tiny.</summary>
    public bool CacheTrimMode, FileIsTiny;

    /// <summary>Snapshot of the lruvec's anon_cost and file_cost.</summary>
    public long AnonCost, FileCost;

    /// <summary>Pages scanned and reclaimed so far.</summary>
    public long NrScanned, NrReclaimed;

    /// <summary>sc-&gt;nr: what the lists held (dirty, congested, writeback, immediate, taken, file_taken, unqueued_dirty).</summary>
    public long Dirty, UnqueuedDirty, Congested, Writeback, Immediate, Taken, FileTaken;

    /// <summary>Pages the slab shrinkers freed during this invocation (reclaim_state).</summary>
    public long SlabReclaimed;
}

/// <summary>vmscan constants.</summary>
internal static class Vmscan
{
    /// <summary>DEF_PRIORITY.</summary>
    public const int DefPriority = 12;

    /// <summary>SWAP_CLUSTER_MAX.</summary>
    public const int SwapClusterMax = 32;

    /// <summary>vm.swappiness default.</summary>
    public const int Swappiness = 60;

    /// <summary>MAX_SWAPPINESS.</summary>
    public const int MaxSwappiness = 200;

    public const int DeactivateAnon = 1, DeactivateFile = 2;
}

// Direct reclaim and the node shrinking both reclaimers share (mm/vmscan.c, classic two-list LRU, 6.18):
// try_to_free_pages → do_try_to_free_pages → shrink_zones → shrink_node → shrink_node_memcgs → shrink_lruvec +
// shrink_slab.
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>
    /// try_to_free_pages(): nr_to_reclaim SWAP_CLUSTER_MAX, the request's context (current_gfp_context()), its
    /// zone as reclaim_idx; counts allocstall_&lt;zone&gt;; shrinks the node at falling priorities until enough is
    /// reclaimed (do_try_to_free_pages()).
    /// </summary>
    public long TryToFreePages(Cpu cpu, Gfp gfp, int order, int highestZoneIdx)
    {
        var sc = new ScanControl
        {
            NrToReclaim = Vmscan.SwapClusterMax,
            GfpMask = AllocContext.CurrentGfpContext(cpu, gfp),
            ReclaimIdx = highestZoneIdx,
            Order = order,
        };
        cpu.Events[(int)VmEvent.AllocstallDma + (int)TArch.ZoneTypes[sc.ReclaimIdx]]++;
        do
        {
            sc.NrScanned = 0;
            ShrinkNode(cpu, sc);
            if (sc.NrReclaimed >= sc.NrToReclaim)
                break;
            if (sc.Priority < Vmscan.DefPriority - 2)
                sc.MayWritepage = true;
        }
        while (--sc.Priority >= 0);
        SnapshotRefaults();
        return sc.NrReclaimed;
    }

    /// <summary>
    /// shrink_node(): pending I/O completes first (the emulator's disk interrupt between passes, and the flusher runs
    /// when it was woken and this reclaimer may wait for FS writeback), then prepare_scan_count(), shrink_lruvec()
    /// and shrink_slab() under the reclaim_state; kswapd notes dirty/writeback congestion; a pass that reclaimed
    /// resets kswapd_failures.
    /// </summary>
    private void ShrinkNode(Cpu cpu, ScanControl sc)
    {
        LruAddDrainAll(cpu);
        CompleteWriteback(cpu);
        if (_flusherWoken && (sc.GfpMask & (Gfp.Io | Gfp.Fs)) == (Gfp.Io | Gfp.Fs))
            RunFlusher(cpu);
        sc.Dirty = sc.UnqueuedDirty = sc.Congested = sc.Writeback = sc.Immediate = sc.Taken = sc.FileTaken = 0;
        long reclaimedBefore = sc.NrReclaimed;
        PrepareScanCount(sc);
        ShrinkLruvec(cpu, sc);
        bool saved = cpu.ReclaimStateActive;
        long slabBefore = cpu.ReclaimedSlabPages;
        cpu.ReclaimStateActive = true;
        try
        {
            ShrinkSlab(cpu, sc.GfpMask, sc.Priority);
        }
        finally
        {
            cpu.ReclaimStateActive = saved;
        }
        // flush_reclaim_state(): slab pages freed by the shrinkers count as reclaimed.
        long slab = cpu.ReclaimedSlabPages - slabBefore;
        cpu.ReclaimedSlabPages = slabBefore;
        sc.NrReclaimed += slab;
        sc.SlabReclaimed += slab;
        if (sc.Kswapd)
        {
            if (sc.Writeback != 0 && sc.Writeback == sc.Taken)
                SetPgdat(PgdatWriteback, true);
            if (sc.FileTaken != 0 && sc.UnqueuedDirty == sc.FileTaken)
                SetPgdat(PgdatDirty, true);
        }
        if (sc.NrReclaimed > reclaimedBefore)
            KswapdFailures = 0;
    }

    /// <summary>inactive_is_low(): inactive * sqrt(10 * GB of the type) &lt; active.</summary>
    private bool InactiveIsLow(int inactiveLru)
    {
        long inactive = NodeStatRead((NodeStat)inactiveLru);
        long active = NodeStatRead((NodeStat)(inactiveLru + 1));
        long gb = (inactive + active) >> (30 - PageSize.Shift);
        long ratio = gb != 0 ? (long)Math.Sqrt(10.0 * gb) : 1;
        return inactive * ratio < active;
    }

    /// <summary>can_reclaim_anon_pages(): there is swap space left.</summary>
    private bool CanReclaimAnon => NrSwapPages > 0;

    /// <summary>
    /// prepare_scan_count(): the cost snapshot; deactivate a type when refaults were seen or its inactive list is
    /// low; cache_trim_mode while there is plenty of inactive page cache; file_is_tiny when file + free pages fall
    /// below the high watermarks.
    /// </summary>
    private void PrepareScanCount(ScanControl sc)
    {
        lock (_lruLock)
        {
            sc.AnonCost = NodeLong(_anonCostOff);
            sc.FileCost = NodeLong(_fileCostOff);
        }
        long refaultsAnon = NodeStatRead(NodeStat.WorkingsetActivateAnon);
        if (refaultsAnon != NodeLong(_refaultsOff) || InactiveIsLow(InactiveAnon))
            sc.MayDeactivate |= Vmscan.DeactivateAnon;
        else
            sc.MayDeactivate &= ~Vmscan.DeactivateAnon;
        long refaultsFile = NodeStatRead(NodeStat.WorkingsetActivateFile);
        if (refaultsFile != NodeLong(_refaultsOff + TArch.PointerSize) || InactiveIsLow(InactiveFile))
            sc.MayDeactivate |= Vmscan.DeactivateFile;
        else
            sc.MayDeactivate &= ~Vmscan.DeactivateFile;
        long file = NodeStatRead(NodeStat.NrInactiveFile);
        sc.CacheTrimMode = (file >> sc.Priority) != 0 && (sc.MayDeactivate & Vmscan.DeactivateFile) == 0;
        long free = 0, highWmarks = 0;
        foreach (var z in _m.Zones)
        {
            free += z.FreePages;
            if (z.Managed != 0)
                highWmarks += z.WatermarkHigh + z.WatermarkBoost;
        }
        long fileAll = NodeStatRead(NodeStat.NrActiveFile) + NodeStatRead(NodeStat.NrInactiveFile);
        long anon = NodeStatRead(NodeStat.NrInactiveAnon);
        sc.FileIsTiny = fileAll + free <= highWmarks && (sc.MayDeactivate & Vmscan.DeactivateAnon) == 0 && (anon >> sc.Priority) != 0;
    }

    /// <summary>snapshot_refaults(): remember the activation counts the next prepare_scan_count() compares against.</summary>
    private void SnapshotRefaults()
    {
        SetNodeLong(_refaultsOff, NodeStatRead(NodeStat.WorkingsetActivateAnon));
        SetNodeLong(_refaultsOff + TArch.PointerSize, NodeStatRead(NodeStat.WorkingsetActivateFile));
    }

    /// <summary>lruvec_lru_size(): the pages of a list in zones up to <paramref name="zoneIdx"/>.</summary>
    private long LruvecLruSize(int lru, int zoneIdx)
    {
        long n = 0;
        for (int z = 0; z <= zoneIdx && z < _m.Zones.Count; z++)
            n += _m.Zones[z].Stat(ZoneStat.NrZoneInactiveAnon + lru);
        return n;
    }

    /// <summary>
    /// get_scan_count(): how many pages of each evictable list to scan: only file without swap, equal pressure at
    /// priority 0, anon only when file is tiny, file only in cache_trim_mode, else the swappiness/cost fraction;
    /// each list's size shifted right by the priority.
    /// </summary>
    private void GetScanCount(ScanControl sc, Span<long> nr)
    {
        const int scanEqual = 0, scanFract = 1, scanAnon = 2, scanFile = 3;
        int balance;
        ulong ap = 0, fp = 0;
        if (!sc.MaySwap || !CanReclaimAnon)
            balance = scanFile;
        else if (sc.Priority == 0)
            balance = scanEqual;
        else if (sc.FileIsTiny)
            balance = scanAnon;
        else if (sc.CacheTrimMode)
            balance = scanFile;
        else
        {
            balance = scanFract;
            ulong total = (ulong)(sc.AnonCost + sc.FileCost);
            ulong anonCost = total + (ulong)sc.AnonCost;
            ulong fileCost = total + (ulong)sc.FileCost;
            total = anonCost + fileCost;
            ap = Vmscan.Swappiness * (total + 1) / (anonCost + 1);
            fp = (Vmscan.MaxSwappiness - Vmscan.Swappiness) * (total + 1) / (fileCost + 1);
        }
        for (int lru = 0; lru < Unevictable; lru++)
        {
            bool file = lru >= InactiveFile;
            long scan = LruvecLruSize(lru, sc.ReclaimIdx) >> sc.Priority;
            switch (balance)
            {
                case scanFract:
                    scan = (long)((ulong)scan * (file ? fp : ap) / (ap + fp));
                    break;
                case scanFile:
                case scanAnon:
                    if ((balance == scanFile) != file)
                        scan = 0;
                    break;
            }
            nr[lru] = scan;
        }
    }

    /// <summary>
    /// shrink_lruvec(): scan the lists in SWAP_CLUSTER_MAX batches until their targets are done; once enough is
    /// reclaimed (kswapd, or direct reclaim below DEF_PRIORITY) the smaller type stops and the other is scaled down;
    /// then the anon active list is aged if its inactive list is low.
    /// </summary>
    private void ShrinkLruvec(Cpu cpu, ScanControl sc)
    {
        Span<long> nr = stackalloc long[NrLruLists];
        GetScanCount(sc, nr);
        Span<long> targets = stackalloc long[NrLruLists];
        nr.CopyTo(targets);
        long reclaimed = 0;
        bool proportional = !sc.Kswapd && sc.Priority == Vmscan.DefPriority;
        while (nr[InactiveAnon] != 0 || nr[ActiveFile] != 0 || nr[InactiveFile] != 0)
        {
            for (int lru = 0; lru < Unevictable; lru++)
            {
                if (nr[lru] == 0)
                    continue;
                long toScan = Math.Min(nr[lru], Vmscan.SwapClusterMax);
                nr[lru] -= toScan;
                reclaimed += ShrinkList(cpu, lru, toScan, sc);
            }
            if (reclaimed < sc.NrToReclaim || proportional)
                continue;
            long nrFile = nr[InactiveFile] + nr[ActiveFile];
            long nrAnon = nr[InactiveAnon] + nr[ActiveAnon];
            if (nrFile == 0 || nrAnon == 0)
                break;
            int stop;
            long percentage;
            if (nrFile > nrAnon)
            {
                stop = InactiveAnon;
                percentage = nrAnon * 100 / (targets[InactiveAnon] + targets[ActiveAnon] + 1);
            }
            else
            {
                stop = InactiveFile;
                percentage = nrFile * 100 / (targets[InactiveFile] + targets[ActiveFile] + 1);
            }
            nr[stop] = 0;
            nr[stop + 1] = 0;
            int other = stop == InactiveFile ? InactiveAnon : InactiveFile;
            for (int lru = other; lru <= other + 1; lru++)
            {
                long scanned = targets[lru] - nr[lru];
                nr[lru] = targets[lru] * (100 - percentage) / 100;
                nr[lru] -= Math.Min(nr[lru], scanned);
            }
        }
        sc.NrReclaimed += reclaimed;
        if (CanReclaimAnon && InactiveIsLow(InactiveAnon))
            ShrinkActiveList(cpu, Vmscan.SwapClusterMax, sc, ActiveAnon);
    }

    /// <summary>shrink_list(): active lists are aged only when may_deactivate allows; inactive ones are reclaimed.</summary>
    private long ShrinkList(Cpu cpu, int lru, long nrToScan, ScanControl sc)
    {
        if (lru == ActiveAnon || lru == ActiveFile)
        {
            int type = lru == ActiveFile ? Vmscan.DeactivateFile : Vmscan.DeactivateAnon;
            if ((sc.MayDeactivate & type) != 0)
                ShrinkActiveList(cpu, nrToScan, sc, lru);
            else
                sc.SkippedDeactivate = true;
            return 0;
        }
        return ShrinkInactiveList(cpu, nrToScan, sc, lru);
    }

    /// <summary>
    /// lru_note_cost(): IO and rotations make a list more expensive to reclaim from; the costs decay once they
    /// exceed a quarter of the LRU pages.
    /// </summary>
    private void LruNoteCost(bool file, long nrIo, long nrRotated)
    {
        long cost = nrIo * Vmscan.SwapClusterMax + nrRotated;
        lock (_lruLock)
        {
            int off = file ? _fileCostOff : _anonCostOff;
            SetNodeLong(off, NodeLong(off) + cost);
            long lruSize = NodeStatRead(NodeStat.NrInactiveAnon) + NodeStatRead(NodeStat.NrActiveAnon) +
                           NodeStatRead(NodeStat.NrInactiveFile) + NodeStatRead(NodeStat.NrActiveFile);
            if (NodeLong(_fileCostOff) + NodeLong(_anonCostOff) > lruSize / 4)
            {
                SetNodeLong(_fileCostOff, NodeLong(_fileCostOff) / 2);
                SetNodeLong(_anonCostOff, NodeLong(_anonCostOff) / 2);
            }
        }
    }

    /// <summary>zone_reclaimable_pages(): the zone's file LRU pages, plus its anonymous ones while swap space is left.</summary>
    public long ZoneReclaimablePages(Zone zone)
    {
        long nr = zone.Stat(ZoneStat.NrZoneInactiveFile) + zone.Stat(ZoneStat.NrZoneActiveFile);
        if (CanReclaimAnon)
            nr += zone.Stat(ZoneStat.NrZoneInactiveAnon) + zone.Stat(ZoneStat.NrZoneActiveAnon);
        return nr;
    }
}
