using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

/// <summary>
/// Memory reclaim (issue #6): the node's LRU lists, vmscan (kswapd and direct reclaim), shrinkers, the flusher and
/// swap, the OOM killer and the allocation-failure report. One instance per machine, generic over the profile,
/// attached to the page allocator's slow path (<see cref="IAllocReclaim"/>) and to the process subsystem's LRU and
/// swap hooks.
/// </summary>
/// <remarks>See Reclaim/README.md for the design and the deviations from the kernel.</remarks>
internal sealed unsafe partial class ReclaimSubsystem<TArch> : IAllocReclaim, IPageLruHooks, ISwapOps where TArch : struct, IArch
{
    private readonly Machine<TArch> _m;
    private readonly MemMap<TArch> _mm;
    private readonly byte* _node;
    private readonly ulong _nodeVa;
    private readonly byte* _nodeVmStat;
    private readonly ulong _lruVa;            // &pgdat->__lruvec.lists[0]
    private readonly int _kswapdOrderOff, _kswapdHighestOff, _kswapdFailuresOff, _anonCostOff, _fileCostOff, _ageOff, _refaultsOff, _pgdatFlagsOff;

    public ReclaimSubsystem(Machine<TArch> machine)
    {
        _m = machine;
        _mm = machine.MemMap;
        var l = machine.Layouts.Node;
        _node = machine.Memory.Base + machine.NodeDataPhys;
        _nodeVa = TArch.PageOffset + machine.NodeDataPhys;
        _nodeVmStat = _node + l.Offset("vm_stat");
        _lruVa = _nodeVa + (ulong)l.Offset("__lruvec.lists");
        _kswapdOrderOff = l.Offset("kswapd_order");
        _kswapdHighestOff = l.Offset("kswapd_highest_zoneidx");
        _kswapdFailuresOff = l.Offset("kswapd_failures");
        _anonCostOff = l.Offset("__lruvec.anon_cost");
        _fileCostOff = l.Offset("__lruvec.file_cost");
        _ageOff = l.Offset("__lruvec.nonresident_age");
        _refaultsOff = l.Offset("__lruvec.refaults");
        _pgdatFlagsOff = l.Offset("flags");
        for (int lru = 0; lru < NrLruLists; lru++)
            _mm.InitListHead(LruHead(lru));
        *(int*)(_node + _kswapdHighestOff) = MaxNrZones;
        _shrinkers = [];
        InitLruBatches();
        InitShrinkers();
    }

    internal Machine<TArch> Machine => _m;

    /// <summary>MAX_NR_ZONES: "no zone" in kswapd_highest_zoneidx.</summary>
    private static int MaxNrZones => TArch.ZoneTypes.Length;

    /// <summary>Attaches the hooks: the allocator's slow path, the process subsystem's LRU and swap calls.</summary>
    public void Attach()
    {
        _m.PageAllocator.Reclaim = this;
    }

    /// <summary>Called when the process subsystem is created: pages it makes from now on go on the LRU lists.</summary>
    public void AttachMm(MmSubsystem<TArch> mm)
    {
        mm.Lru = this;
        mm.Swap = this;
        _mmSub = mm;
    }

    private MmSubsystem<TArch>? _mmSub;

    /// <summary>The process subsystem once it exists (pages on the LRU lists all come from it).</summary>
    internal MmSubsystem<TArch>? MmSub => _mmSub;

    // ---- node counters ----------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void NodeStatAdd(NodeStat item, long delta)
    {
        byte* p = _nodeVmStat + (int)item * TArch.PointerSize;
        if (TArch.PointerSize == 8)
            Interlocked.Add(ref *(long*)p, delta);
        else
            Interlocked.Add(ref *(int*)p, (int)delta);
    }

    internal long NodeStatRead(NodeStat item)
    {
        byte* p = _nodeVmStat + (int)item * TArch.PointerSize;
        return TArch.PointerSize == 8 ? *(long*)p : *(int*)p;
    }

    private long NodeLong(int off) => (long)TArch.LoadLong(_node + off);

    private void SetNodeLong(int off, long v) => TArch.StoreLong(_node + off, (ulong)v);

    /// <summary>pgdat-&gt;kswapd_failures.</summary>
    internal int KswapdFailures
    {
        get => Volatile.Read(ref *(int*)(_node + _kswapdFailuresOff));
        private set => Volatile.Write(ref *(int*)(_node + _kswapdFailuresOff), value);
    }

    /// <summary>pgdat flags (PGDAT_DIRTY, PGDAT_WRITEBACK).</summary>
    private const ulong PgdatDirty = 1, PgdatWriteback = 2;

    private bool TestPgdat(ulong bit) => (TArch.LoadLong(_node + _pgdatFlagsOff) & bit) != 0;

    private void SetPgdat(ulong bit, bool on)
    {
        ulong f = TArch.LoadLong(_node + _pgdatFlagsOff);
        TArch.StoreLong(_node + _pgdatFlagsOff, on ? f | bit : f & ~bit);
    }

    /// <summary>MAX_RECLAIM_RETRIES failures: the node's "all_unreclaimable? yes" (kswapd has given up on it).</summary>
    internal bool Hopeless => KswapdFailures >= PageAllocator<TArch>.MaxReclaimRetries;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* Desc(ulong pfn) => _mm.Desc(pfn);

    private Zone ZoneOf(byte* d) => _m.Zones[MemMap<TArch>.ZoneIdx(d)];

    // ---- CheckConsistency ----------------------------------------------------------------------------------

    /// <summary>
    /// The reclaim structures agree with the pages (a quiescent machine): every page on an LRU list has PG_lru and
    /// the list its flags name, appears once, and the node and zone LRU counters equal the lists' lengths; every
    /// PG_lru page of the machine is on one; the swap map agrees with the swap cache.
    /// </summary>
    internal void CheckConsistency()
    {
        var errors = new List<string>();
        var seen = new HashSet<ulong>();
        var zoneCounts = new long[_m.Zones.Count, NrLruLists];
        lock (_lruLock)
        {
            for (int lru = 0; lru < NrLruLists; lru++)
            {
                ulong head = LruHead(lru);
                long n = 0;
                ulong prev = head;
                for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head; e = MemMap<TArch>.Next(_mm.ListHost(e)))
                {
                    if (++n > (long)_m.MaxPfn)
                    {
                        errors.Add($"{LruNames[lru]} list does not return to its head");
                        break;
                    }
                    if (MemMap<TArch>.Prev(_mm.ListHost(e)) != prev)
                        errors.Add($"{LruNames[lru]}: entry 0x{e:x} prev does not point back");
                    prev = e;
                    ulong pfn = _mm.PfnOfLru(e);
                    byte* d = Desc(pfn);
                    if (!seen.Add(pfn))
                        errors.Add($"pfn 0x{pfn:x} is on an LRU list twice");
                    if (!MemMap<TArch>.TestFlag(d, PageFlag.Lru))
                        errors.Add($"pfn 0x{pfn:x} on {LruNames[lru]} without PG_lru");
                    if (FolioLruList(d) != lru)
                        errors.Add($"pfn 0x{pfn:x} on {LruNames[lru]} but its flags say {LruNames[FolioLruList(d)]}");
                    if (MemMap<TArch>.Refcount(d) <= 0)
                        errors.Add($"pfn 0x{pfn:x} on {LruNames[lru]} with refcount {MemMap<TArch>.Refcount(d)}");
                    zoneCounts[MemMap<TArch>.ZoneIdx(d), lru]++;
                }
                if (n != NodeStatRead((NodeStat)lru))
                    errors.Add($"{VmStatNames.Node[lru]} is {NodeStatRead((NodeStat)lru)} but the list holds {n} pages");
            }
        }
        foreach (var z in _m.Zones)
            for (int lru = 0; lru < NrLruLists; lru++)
                if (z.Stat(ZoneStat.NrZoneInactiveAnon + lru) != zoneCounts[z.Index, lru])
                    errors.Add($"{z.Name} {VmStatNames.Zone[(int)ZoneStat.NrZoneInactiveAnon + lru]} is {z.Stat(ZoneStat.NrZoneInactiveAnon + lru)} but the lists hold {zoneCounts[z.Index, lru]}");
        for (ulong pfn = 0; pfn < _m.MaxPfn; pfn++)
            if (MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Lru) && !seen.Contains(pfn) && (_mm.Ext(pfn) & PageExt.Head) != 0 &&
                MemMap<TArch>.PageType(Desc(pfn)) >> 24 is not (PageBits.PgtySlab or PageBits.PgtyBuddy or PageBits.PgtyTable))
                errors.Add($"pfn 0x{pfn:x} has PG_lru but is on no LRU list");
        CheckSwapConsistency(errors);
        if (errors.Count > 0)
            throw new ConsistencyException($"reclaim inconsistent ({errors.Count} problem(s)):\n  " + string.Join("\n  ", errors.Take(20)));
    }
}
