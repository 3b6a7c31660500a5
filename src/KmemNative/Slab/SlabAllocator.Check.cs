using System.Text;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// The slab-level consistency check: every slab page, every freelist, every list and counter, every object.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>
    /// Checks, on a quiescent machine, that SLUB's structures agree: every slab-typed page belongs to a live cache
    /// and has counters that fit its order; every freelist (slab and CPU) stays inside its slab, has no duplicate
    /// and holds exactly objects - inuse objects (CPU-cached objects counted as in use, as the kernel does);
    /// frozen slabs are exactly the CPU slabs; partial-list membership matches SL_partial and nr_partial;
    /// nr_slabs/total_objects match the slabs found; every object is aligned and inside its slab; and
    /// NR_SLAB_RECLAIMABLE/UNRECLAIMABLE equal the pages held by slabs and large kmalloc allocations.
    /// </summary>
    /// <exception cref="ConsistencyException">Something disagrees; the message lists what.</exception>
    public SlabConsistencyReport CheckConsistency()
    {
        var errors = new List<string>();
        var slabsOf = new Dictionary<KmemCache, List<ulong>>();
        long reclaimPages = 0, unreclaimPages = 0, largePages = 0, slabPages = 0;
        foreach (var s in _cacheSnapshot)
            slabsOf[s] = [];

        for (ulong pfn = 0; pfn < _mm.MaxPfn; pfn++)
        {
            byte* desc = _mm.Desc(pfn);
            uint type = MemMap<TArch>.PageType(desc) >> 24;
            if (type == PageBits.PgtyLargeKmalloc)
            {
                int order = SlabOrder(desc);
                largePages += 1L << order;
                if (order == 0 || MemMap<TArch>.Refcount(desc) < 1)
                    errors.Add($"large kmalloc pfn 0x{pfn:x}: order {order}, refcount {MemMap<TArch>.Refcount(desc)}");
                continue;
            }
            if (type != PageBits.PgtySlab)
                continue;
            if (pfn >= _m.MaxLowPfn)
                errors.Add($"slab pfn 0x{pfn:x} is in HIGHMEM");
            if ((Ld(desc + TArch.PageLruOffset) & 1) != 0)
            {
                errors.Add($"slab type on tail page pfn 0x{pfn:x}");
                continue;
            }
            ulong cacheVa = Ld(desc + HotSlab<TArch>.SlabCache);
            var s = CacheAt(cacheVa);
            if (s is null || !slabsOf.ContainsKey(s))
            {
                errors.Add($"slab pfn 0x{pfn:x} names cache 0x{cacheVa:x}, which is not a live cache");
                continue;
            }
            int o = SlabOrder(desc);
            slabPages += 1L << o;
            if ((s.Flags & SlabFlags.ReclaimAccount) != 0)
                reclaimPages += 1L << o;
            else
                unreclaimPages += 1L << o;
            if (o != s.Order && o != s.MinOrder)
                errors.Add($"{s.Name}: slab pfn 0x{pfn:x} has order {o}, the cache uses {s.Order} (min {s.MinOrder})");
            slabsOf[s].Add(_mm.DescVa(pfn));
        }

        long totalSlabs = 0, totalObjects = 0, totalAllocated = 0;
        foreach (var (s, slabs) in slabsOf)
        {
            var (objects, allocated) = CheckCache(s, slabs, errors);
            totalSlabs += slabs.Count;
            totalObjects += objects;
            totalAllocated += allocated;
            if (errors.Count > 40)
                break;
        }

        long nodeReclaim = _m.NodeState(NodeStat.NrSlabReclaimable), nodeUnreclaim = _m.NodeState(NodeStat.NrSlabUnreclaimable);
        if (nodeReclaim != reclaimPages)
            errors.Add($"NR_SLAB_RECLAIMABLE = {nodeReclaim} pages but reclaimable slabs hold {reclaimPages}");
        if (nodeUnreclaim != unreclaimPages + largePages)
            errors.Add($"NR_SLAB_UNRECLAIMABLE = {nodeUnreclaim} pages but slabs hold {unreclaimPages} and large kmalloc {largePages}");

        if (errors.Count > 0)
        {
            var sb = new StringBuilder($"slab allocator inconsistent ({errors.Count} problem(s)):");
            foreach (var e in errors.Take(40))
                sb.Append("\n  ").Append(e);
            throw new ConsistencyException(sb.ToString());
        }
        return new SlabConsistencyReport(slabsOf.Count, totalSlabs, totalObjects, totalAllocated, slabPages, largePages);
    }

    private (long Objects, long Allocated) CheckCache(KmemCache s, List<ulong> slabs, List<string> errors)
    {
        var set = new HashSet<ulong>(slabs);
        // CPU slabs: frozen, known to exactly one CPU, with a freelist inside the slab.
        var cpuOf = new Dictionary<ulong, int>();
        var cpuFree = new Dictionary<ulong, HashSet<ulong>>();
        foreach (var cpu in _m.Cpus)
        {
            byte* c = cpu.Percpu + s.CpuSlabOffset;
            ulong slabVa = Ld(c + HotSlab<TArch>.CpuSlab);
            if (slabVa == 0)
            {
                if (Ld(c) != 0 || Ld(c + HotSlab<TArch>.CpuSlabSpan) != 0)
                    errors.Add($"{s.Name}: cpu{cpu.Id} has no slab but a freelist or span");
                continue;
            }
            if (s.IsDebug)
                errors.Add($"{s.Name}: debug cache has a CPU slab on cpu{cpu.Id}");
            if (!set.Contains(slabVa))
            {
                errors.Add($"{s.Name}: cpu{cpu.Id} slab 0x{slabVa:x} is not a slab of the cache");
                continue;
            }
            if (!cpuOf.TryAdd(slabVa, cpu.Id))
                errors.Add($"{s.Name}: slab 0x{slabVa:x} is the CPU slab of cpu{cpuOf[slabVa]} and cpu{cpu.Id}");
            byte* slab = SlabHost(slabVa);
            ulong wantAddr = s.SheafCapacity != 0 ? 0 : PageAddress(PfnOfSlab(slabVa));
            if (Ld(c + HotSlab<TArch>.CpuSlabAddr) != wantAddr)
                errors.Add($"{s.Name}: cpu{cpu.Id} slab_addr does not match its slab");
            uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
            var free = new HashSet<ulong>();
            for (ulong fp = Ld(c); fp != 0; fp = GetFreePointer(s, fp))
            {
                if (!IsObjectOf(s, slab, fp))
                {
                    errors.Add($"{s.Name}: cpu{cpu.Id} freelist holds 0x{fp:x}, not an object of its slab");
                    break;
                }
                if (!free.Add(fp))
                {
                    errors.Add($"{s.Name}: cpu{cpu.Id} freelist holds 0x{fp:x} twice (a double free)");
                    break;
                }
            }
            cpuFree[slabVa] = free;
            _ = objects;
        }

        // Sheaves: objects cached in them count as in use by their slabs.
        var sheafPerSlab = new Dictionary<ulong, List<ulong>>();
        CheckSheaves(s, set, sheafPerSlab, errors);

        byte* n = s.NodeHost;
        var partial = ListSlabs(s.NodeVa + (ulong)NodeOff.Partial);
        var onPartial = new HashSet<ulong>(partial);
        if ((ulong)partial.Count != Ld(n + NodeOff.NrPartial))
            errors.Add($"{s.Name}: nr_partial = {Ld(n + NodeOff.NrPartial)} but {partial.Count} slabs are listed");
        var full = ListSlabs(s.NodeVa + (ulong)NodeOff.Full);
        var onFull = new HashSet<ulong>(full);
        foreach (ulong slab in partial.Concat(full))
            if (!set.Contains(slab))
                errors.Add($"{s.Name}: listed slab 0x{slab:x} is not a slab of the cache");

        long totalObjects = 0, allocated = 0;
        foreach (ulong slabVa in slabs)
        {
            byte* slab = SlabHost(slabVa);
            ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
            uint objects = SlabCounters.Objects(counters), inuse = SlabCounters.Inuse(counters);
            bool frozen = SlabCounters.Frozen(counters);
            totalObjects += objects;
            if (objects != OrderObjects(SlabOrder(slab), (uint)s.Size))
                errors.Add($"{s.Name}: slab 0x{slabVa:x} has {objects} objects, its order holds {OrderObjects(SlabOrder(slab), (uint)s.Size)}");
            if (inuse > objects)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} inuse {inuse} > objects {objects}");
            if (MemMap<TArch>.Refcount(slab) != 1)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} has refcount {MemMap<TArch>.Refcount(slab)}");

            // Every object aligned and inside the slab.
            ulong mem = PageAddress(PfnOfSlab(slabVa));
            ulong first = mem + (ulong)s.RedLeftPad;
            ulong slabBytes = PageSize.Bytes << SlabOrder(slab);
            if (first % (ulong)s.Align != 0 || (ulong)s.Size % (ulong)s.Align != 0 || (ulong)objects * (ulong)s.Size > slabBytes)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} objects are misaligned or overflow the slab");

            var free = new HashSet<ulong>();
            for (ulong fp = Ld(slab + HotSlab<TArch>.SlabFreelist); fp != 0; fp = GetFreePointer(s, fp))
            {
                if (!IsObjectOf(s, slab, fp))
                {
                    errors.Add($"{s.Name}: slab 0x{slabVa:x} freelist holds 0x{fp:x}, not one of its objects");
                    break;
                }
                if (!free.Add(fp) || free.Count > objects)
                {
                    errors.Add($"{s.Name}: slab 0x{slabVa:x} freelist holds 0x{fp:x} twice (a double free)");
                    break;
                }
            }
            if (inuse != objects - (uint)free.Count)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} inuse {inuse} but {objects - free.Count} objects are off its freelist");
            int cpuCount = 0;
            if (cpuFree.TryGetValue(slabVa, out var cf))
            {
                cpuCount = cf.Count;
                foreach (ulong o in cf)
                    if (free.Contains(o))
                        errors.Add($"{s.Name}: object 0x{o:x} is on both the CPU and the slab freelist");
            }
            int sheafCount = 0;
            if (sheafPerSlab.TryGetValue(slabVa, out var sheafObjs))
            {
                sheafCount = sheafObjs.Count;
                foreach (ulong o in sheafObjs)
                    if (free.Contains(o) || (cf is not null && cf.Contains(o)))
                        errors.Add($"{s.Name}: object 0x{o:x} is both in a sheaf and on a freelist");
            }
            allocated += objects - free.Count - cpuCount - sheafCount;

            bool isCpuSlab = cpuOf.ContainsKey(slabVa);
            if (frozen != isCpuSlab)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} frozen={frozen} but {(isCpuSlab ? "is" : "is not")} a CPU slab");
            bool partialFlag = OnNodePartial(slab);
            if (partialFlag != onPartial.Contains(slabVa))
                errors.Add($"{s.Name}: slab 0x{slabVa:x} SL_partial={partialFlag} but {(onPartial.Contains(slabVa) ? "is" : "is not")} on the partial list");
            if (!frozen && !onPartial.Contains(slabVa) && free.Count != 0 && !s.IsDebug)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} has {free.Count} free objects but is on no list");
            if (onPartial.Contains(slabVa) && (frozen || free.Count == 0))
                errors.Add($"{s.Name}: slab 0x{slabVa:x} on the partial list is {(frozen ? "frozen" : "full")}");
            if (onFull.Contains(slabVa) && free.Count != 0)
                errors.Add($"{s.Name}: slab 0x{slabVa:x} on the full list has free objects");
        }

        long nrSlabs = TArch.PointerSize == 8 ? (long)Ld(n + NodeOff.NrSlabs) : *(int*)(n + NodeOff.NrSlabs);
        long nrObjs = TArch.PointerSize == 8 ? (long)Ld(n + NodeOff.TotalObjects) : *(int*)(n + NodeOff.TotalObjects);
        if (nrSlabs != slabs.Count)
            errors.Add($"{s.Name}: nr_slabs = {nrSlabs} but {slabs.Count} slabs exist");
        if (nrObjs != totalObjects)
            errors.Add($"{s.Name}: total_objects = {nrObjs} but its slabs hold {totalObjects}");
        return (totalObjects, allocated);
    }

    /// <summary>
    /// The sheaves of a cache: every CPU has a main sheaf, every sheaf names the cache and holds at most
    /// sheaf_capacity objects, the barn's counters match its lists (full sheaves full, empty ones empty), no
    /// sheaf is in two places, and every cached object is a distinct object of one of the cache's slabs.
    /// </summary>
    private void CheckSheaves(KmemCache s, HashSet<ulong> slabs, Dictionary<ulong, List<ulong>> perSlab, List<string> errors)
    {
        byte* n = s.NodeHost;
        ulong nodeBarn = Ld(n + KmemCacheNodeBarn);
        if (s.SheafCapacity == 0)
        {
            if (s.PcsSlot >= 0 || s.BarnVa != 0 || nodeBarn != 0)
                errors.Add($"{s.Name}: no sheaf capacity but sheaves or a barn");
            return;
        }
        if (nodeBarn != s.BarnVa || s.BarnVa == 0)
            errors.Add($"{s.Name}: n->barn = 0x{nodeBarn:x}, expected 0x{s.BarnVa:x}");
        var seenSheaves = new HashSet<ulong>();
        var seenObjects = new HashSet<ulong>();
        void CheckSheaf(ulong sheaf, string where, bool? mustBeFull)
        {
            if (!seenSheaves.Add(sheaf))
            {
                errors.Add($"{s.Name}: sheaf 0x{sheaf:x} is in two places ({where})");
                return;
            }
            if (SheafCacheOf(sheaf) != s.Va)
                errors.Add($"{s.Name}: {where} sheaf 0x{sheaf:x} names cache 0x{SheafCacheOf(sheaf):x}");
            uint size = SheafSizeOf(sheaf);
            if (size > (uint)s.SheafCapacity)
            {
                errors.Add($"{s.Name}: {where} sheaf 0x{sheaf:x} holds {size} objects, capacity {s.SheafCapacity}");
                return;
            }
            if (mustBeFull == true && size != (uint)s.SheafCapacity)
                errors.Add($"{s.Name}: barn full sheaf 0x{sheaf:x} holds {size} of {s.SheafCapacity}");
            if (mustBeFull == false && size != 0)
                errors.Add($"{s.Name}: barn empty sheaf 0x{sheaf:x} holds {size} objects");
            for (uint i = 0; i < size; i++)
            {
                ulong obj = Ld(SheafSlot(sheaf, i));
                if (!TrySlabOf(s, obj, out _, out ulong slabVa) || !slabs.Contains(slabVa))
                {
                    errors.Add($"{s.Name}: {where} sheaf 0x{sheaf:x} holds 0x{obj:x}, not an object of the cache");
                    continue;
                }
                if (!seenObjects.Add(obj))
                {
                    errors.Add($"{s.Name}: object 0x{obj:x} is cached in sheaves twice (a double free)");
                    continue;
                }
                if (!perSlab.TryGetValue(slabVa, out var list))
                    perSlab[slabVa] = list = [];
                list.Add(obj);
            }
        }
        foreach (var cpu in _m.Cpus)
        {
            var (main, _, spare, _) = CpuSheaves(cpu, s);
            if (main == 0)
                errors.Add($"{s.Name}: cpu{cpu.Id} has no main sheaf");
            else
                CheckSheaf(main, $"cpu{cpu.Id} main", null);
            if (spare != 0)
                CheckSheaf(spare, $"cpu{cpu.Id} spare", null);
        }
        var (nrFull, nrEmpty) = BarnCounts(s);
        var full = BarnSheaves(s, full: true);
        var empty = BarnSheaves(s, full: false);
        if (full.Count != nrFull || empty.Count != nrEmpty)
            errors.Add($"{s.Name}: barn nr_full {nrFull} nr_empty {nrEmpty} but lists hold {full.Count} and {empty.Count}");
        foreach (ulong sheaf in full)
            CheckSheaf(sheaf, "barn full", true);
        foreach (ulong sheaf in empty)
            CheckSheaf(sheaf, "barn empty", false);
    }
}
