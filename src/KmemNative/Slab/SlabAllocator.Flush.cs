using KmemNative.PhysMem;

namespace KmemNative.Slab;

// CPU slabs leaving their CPU (deactivate_slab(), flush_all()) and caches shrinking or shutting down.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    // ---- deactivate_slab() and flushing CPU slabs --------------------------------------------------------

    /// <summary>
    /// __flush_cpu_slab(): take <paramref name="cpu"/>'s CPU slab of <paramref name="s"/> away from it and
    /// deactivate it. The caller owns the CPU, has claimed it, or (kmem_cache_destroy) knows the cache is idle.
    /// </summary>
    private void FlushCpuSlab(Cpu cpu, KmemCache s)
    {
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        ulong slabVa = Ld(c + HotSlab<TArch>.CpuSlab);
        ulong freelist = Ld(c);
        ClearCpuSlab(c);
        if (slabVa != 0)
            DeactivateSlab(cpu, s, slabVa, freelist);
    }

    /// <summary>
    /// deactivate_slab(): splice the CPU's freelist back onto the slab's freelist, unfreeze it, and put it on the
    /// partial list, or free it when it is empty and the node already keeps min_partial slabs.
    /// </summary>
    private void DeactivateSlab(Cpu cpu, KmemCache s, ulong slabVa, ulong freelist)
    {
        byte* slab = SlabHost(slabVa);
        bool tail = Ld(slab + HotSlab<TArch>.SlabFreelist) != 0;   // remote frees happened: DEACTIVATE_TO_TAIL
        // Stage one: count the CPU freelist and find its tail, cutting it at the first pointer outside the slab.
        uint freeDelta = 0;
        ulong last = 0;
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        for (ulong it = freelist; it != 0 && freeDelta <= objects;)
        {
            if (!IsObjectOf(s, slab, it))
            {
                ReportFreechain(s, slabVa, last, it, "Freechain corrupt");
                if (last == 0)
                    freelist = 0;
                else
                    SetFreePointer(s, last, 0);
                break;
            }
            last = it;
            freeDelta++;
            it = GetFreePointer(s, it);
        }
        if (freeDelta > objects)
        {
            ReportFreechain(s, slabVa, last, freelist, "Freechain corrupt");
            freelist = 0;
            last = 0;
            freeDelta = 0;
        }

        // Stage two: unfreeze while splicing the CPU freelist in front of the slab's.
        ulong newFreelist, newCounters;
        while (true)
        {
            ulong oldFreelist = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong oldCounters = Ld(slab + HotSlab<TArch>.SlabCounters);
            newCounters = SlabCounters.WithFrozen(oldCounters, false);
            if (last != 0)
            {
                newCounters = SlabCounters.WithInuse(newCounters, SlabCounters.Inuse(oldCounters) - freeDelta);
                SetFreePointer(s, last, oldFreelist);
                newFreelist = freelist;
            }
            else
            {
                newFreelist = oldFreelist;
            }
            if (UpdateFreelist(slab, oldFreelist, oldCounters, newFreelist, newCounters))
                break;
        }

        // Stage three: the lists.
        byte* n = s.NodeHost;
        if (SlabCounters.Inuse(newCounters) == 0 && Ld(n + NodeOff.NrPartial) >= (ulong)s.MinPartial)
        {
            DiscardSlab(cpu, s, slabVa);
        }
        else if (newFreelist != 0)
        {
            SpinLock(n);
            AddPartial(s, slabVa, tail);
            SpinUnlock(n);
        }
        // else: full, on no list.
    }

    /// <summary>
    /// flush_all(): every CPU slab of <paramref name="s"/> goes back to the node. CPUs the calling thread owns or
    /// can claim are flushed at once; a CPU another live thread runs is asked to flush at its next slab slow path.
    /// Returns the CPUs that could not be flushed now.
    /// </summary>
    private int FlushAll(Cpu self, KmemCache s)
    {
        int deferred = 0;
        foreach (var cpu in _m.Cpus)
        {
            if (Ld(cpu.Percpu + s.CpuSlabOffset + HotSlab<TArch>.CpuSlab) == 0 && !HasPcsUsed(cpu, s))
                continue;
            if (ReferenceEquals(cpu, self))
            {
                PcsFlushAll(cpu, s);
                FlushCpuSlab(cpu, s);
                continue;
            }
            if (_m.TryClaimCpu(cpu, out bool mine))
            {
                try
                {
                    PcsFlushAll(cpu, s);
                    FlushCpuSlab(cpu, s);
                }
                finally
                {
                    if (!mine)
                        _m.UnclaimCpu(cpu);
                }
                continue;
            }
            cpu.SlabFlushRequested = true;
            deferred++;
        }
        return deferred;
    }

    /// <summary>The owner of a CPU honours a flush request: every CPU slab of every cache goes back.</summary>
    private void HonourFlushRequest(Cpu cpu)
    {
        cpu.SlabFlushRequested = false;
        foreach (var s in _cacheSnapshot)
        {
            if (s.IsDestroyed)
                continue;
            PcsFlushAll(cpu, s);
            FlushCpuSlab(cpu, s);
        }
    }

    // ---- shutdown and shrink ----------------------------------------------------------------------------

    /// <summary>
    /// __kmem_cache_shutdown() after the flush: free_partial() frees the empty partial slabs and reports the
    /// objects still allocated; false when slabs remain.
    /// </summary>
    private bool ShutdownNode(Cpu cpu, KmemCache s)
    {
        BarnShrink(cpu, s);
        byte* n = s.NodeHost;
        var discard = new List<ulong>();
        SpinLock(n);
        try
        {
            foreach (ulong slab in ListSlabs(s.NodeVa + (ulong)NodeOff.Partial))
            {
                if (SlabCounters.Inuse(Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters)) == 0)
                {
                    RemovePartial(s, slab);
                    discard.Add(slab);
                }
            }
        }
        finally
        {
            SpinUnlock(n);
        }
        foreach (ulong slab in discard)
            DiscardSlab(cpu, s, slab);
        if (Ld(n + NodeOff.NrPartial) == 0 && Ld(n + NodeOff.NrSlabs) == 0)
            return true;
        // list_slab_objects() for every slab still holding objects (full ones are found in mem_map).
        foreach (ulong slab in AllSlabsOf(s))
            ListSlabObjects(s, slab, $"Objects remaining in {s.Name} on __kmem_cache_shutdown()");
        return false;
    }

    /// <summary>
    /// kmem_cache_shrink(): flush the CPU slabs, free every empty partial slab, and sort the rest so the fullest
    /// come first. Returns 0 when the cache has no slabs left.
    /// </summary>
    public int Shrink(Cpu cpu, KmemCache s)
    {
        CheckCpu(cpu);
        CheckCache(s);
        if (s.IsDestroyed)
            throw new SlabCacheException($"kmem_cache_shrink({s.Name}): the cache was destroyed");
        BeginOp();
        try
        {
            FlushAll(cpu, s);
            return DoShrink(cpu, s);
        }
        finally
        {
            EndOp();
        }
    }

    /// <summary>__kmem_cache_do_shrink().</summary>
    private int DoShrink(Cpu cpu, KmemCache s)
    {
        const int promoteMax = 32;   // SHRINK_PROMOTE_MAX
        BarnShrink(cpu, s);
        byte* n = s.NodeHost;
        var discard = new List<ulong>();
        SpinLock(n);
        try
        {
            var promote = new List<ulong>[promoteMax];
            for (int i = 0; i < promoteMax; i++)
                promote[i] = [];
            var rest = new List<ulong>();
            foreach (ulong slab in ListSlabs(s.NodeVa + (ulong)NodeOff.Partial))
            {
                ulong c = Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters);
                uint free = SlabCounters.Objects(c) - SlabCounters.Inuse(c);
                RemovePartial(s, slab);
                if (free == SlabCounters.Objects(c))
                    discard.Add(slab);
                else if (free <= promoteMax)
                    promote[free - 1].Add(slab);
                else
                    rest.Add(slab);
            }
            // Rebuild: the slabs with the fewest free objects first, then the others in their old order.
            foreach (var group in promote)
                foreach (ulong slab in group)
                    AddPartial(s, slab, tail: true);
            foreach (ulong slab in rest)
                AddPartial(s, slab, tail: true);
            foreach (ulong slab in discard)
                DecSlabsNode(s, SlabCounters.Objects(Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters)));
        }
        finally
        {
            SpinUnlock(n);
        }
        foreach (ulong slab in discard)
            FreeSlab(cpu, s, slab);
        return Ld(n + NodeOff.NrSlabs) != 0 ? 1 : 0;
    }

    /// <summary>
    /// Every slab of <paramref name="s"/>, found the way crash's fallback does: by scanning mem_map for slab pages
    /// whose slab_cache is the cache (full slabs of non-debug caches are on no list).
    /// </summary>
    internal List<ulong> AllSlabsOf(KmemCache s)
    {
        var slabs = new List<ulong>();
        for (ulong pfn = 0; pfn < _m.MaxLowPfn; pfn++)
        {
            byte* desc = _mm.Desc(pfn);
            if (MemMap<TArch>.PageType(desc) >> 24 != PageBits.PgtySlab || (Ld(desc + TArch.PageLruOffset) & 1) != 0)
                continue;
            if (Ld(desc + HotSlab<TArch>.SlabCache) == s.Va)
                slabs.Add(_mm.DescVa(pfn));
        }
        return slabs;
    }
}
