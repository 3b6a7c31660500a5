using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Views: /proc/slabinfo numbers, /sys/kernel/slab attributes, crash's kmem -S state, kmem_obj_info() and
// mem_dump_obj(), host spans over objects, and applying slab_debug= to existing caches.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>get_slabinfo(): totals from the node counters; free objects counted on partial slabs only.</summary>
    public SlabInfo GetSlabinfo(KmemCache s)
    {
        byte* n = s.NodeHost;
        long nrSlabs = (long)Ld(n + NodeOff.NrSlabs);
        long nrObjs = (long)Ld(n + NodeOff.TotalObjects);
        if (TArch.PointerSize == 4)
        {
            nrSlabs = *(int*)(n + NodeOff.NrSlabs);
            nrObjs = *(int*)(n + NodeOff.TotalObjects);
        }
        long free = CountPartialFree(s);
        return new SlabInfo(s.Name, nrObjs - free, nrObjs, s.Size, s.ObjectsPerSlab, 1 << s.Order, nrSlabs, nrSlabs);
    }

    /// <summary>The files of /sys/kernel/slab/NAME/ in slab_attrs[] order, with what reading each shows.</summary>
    public List<(string Name, string Value)> SysfsAttributes(KmemCache s)
    {
        var info = GetSlabinfo(s);
        long partialInuse = 0, nrPartial;
        SpinLock(s.NodeHost);
        try
        {
            var partial = ListSlabs(s.NodeVa + (ulong)NodeOff.Partial);
            nrPartial = partial.Count;
            foreach (ulong slab in partial)
                partialInuse += SlabCounters.Inuse(Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters));
        }
        finally
        {
            SpinUnlock(s.NodeHost);
        }
        int cpuSlabs = _m.Cpus.Count(c => Ld(c.Percpu + s.CpuSlabOffset + HotSlab<TArch>.CpuSlab) != 0);
        bool numa = TArch.Kind == ArchKind.X86_64;
        string Objects(long total) => numa && total != 0 ? $"{total} N0={total}" : total.ToString(CultureInfo.InvariantCulture);
        string Bit(SlabFlags f) => (s.Flags & f) != 0 ? "1" : "0";
        var attrs = new List<(string, string)>
        {
            ("slab_size", s.Size.ToString(CultureInfo.InvariantCulture)),
            ("object_size", s.ObjectSize.ToString(CultureInfo.InvariantCulture)),
            ("objs_per_slab", s.ObjectsPerSlab.ToString(CultureInfo.InvariantCulture)),
            ("order", s.Order.ToString(CultureInfo.InvariantCulture)),
            ("sheaf_capacity", s.SheafCapacity.ToString(CultureInfo.InvariantCulture)),
            ("min_partial", s.MinPartial.ToString(CultureInfo.InvariantCulture)),
            ("cpu_partial", "0"),
            ("objects_partial", Objects(partialInuse)),
            ("partial", Objects(nrPartial)),
            ("cpu_slabs", Objects(cpuSlabs)),
            ("ctor", s.Ctor is null ? "" : CallSiteText(CallSiteAddress("ctor:" + s.Name))),
            ("aliases", "0"),
            ("align", s.Align.ToString(CultureInfo.InvariantCulture)),
            ("hwcache_align", Bit(SlabFlags.HwcacheAlign)),
            ("reclaim_account", Bit(SlabFlags.ReclaimAccount)),
            ("destroy_by_rcu", Bit(SlabFlags.TypesafeByRcu)),
            ("shrink", ""),
            ("slabs_cpu_partial", "0(0)"),
            ("total_objects", Objects(info.NumObjs)),
            ("objects", Objects(info.ActiveObjs)),
            ("slabs", Objects(info.NumSlabs)),
            ("sanity_checks", Bit(SlabFlags.ConsistencyChecks)),
            ("trace", Bit(SlabFlags.Trace)),
            ("red_zone", Bit(SlabFlags.RedZone)),
            ("poison", Bit(SlabFlags.Poison)),
            ("store_user", Bit(SlabFlags.StoreUser)),
            ("validate", ""),
            ("cache_dma", Bit(SlabFlags.CacheDma)),
        };
        if (numa)
            attrs.Add(("remote_node_defrag_ratio", "100"));
        attrs.Add(("usersize", (s.IsKmalloc ? s.ObjectSize : 0).ToString(CultureInfo.InvariantCulture)));
        return attrs;
    }

    // ---- kmem -S --------------------------------------------------------------------------------------

    /// <summary>Everything crash's <c>kmem -S</c> shows for a cache (read without locks but the node's).</summary>
    public CacheState GetCacheState(KmemCache s)
    {
        var cpuCached = new Dictionary<ulong, int>();
        var cpuSlabVas = new List<(int Cpu, ulong C, ulong Slab)>();
        foreach (var cpu in _m.Cpus)
        {
            byte* c = cpu.Percpu + s.CpuSlabOffset;
            ulong slabVa = Ld(c + HotSlab<TArch>.CpuSlab);
            cpuSlabVas.Add((cpu.Id, cpu.PercpuVa + (ulong)s.CpuSlabOffset, slabVa));
            if (slabVa == 0)
                continue;
            byte* slab = SlabHost(slabVa);
            uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
            int guard = 0;
            for (ulong fp = Ld(c); fp != 0 && guard++ <= objects && IsObjectOf(s, slab, fp); fp = GetFreePointer(s, fp))
                cpuCached.TryAdd(fp, cpu.Id);
        }
        var sheafCached = new Dictionary<ulong, (int? Cpu, string Where)>();
        foreach (var (obj, cpu, where) in SheafObjects(s))
            sheafCached.TryAdd(obj, (cpu, where));
        var cpuSlabs = cpuSlabVas.Select(x => (x.Cpu, x.C, x.Slab == 0 ? null : SlabStateOf(s, x.Slab, cpuCached, sheafCached))).ToList();
        List<ulong> partial, full;
        long nrPartial;
        bool tracked = (s.Flags & SlabFlags.StoreUser) != 0 && s.IsDebug;
        SpinLock(s.NodeHost);
        try
        {
            partial = ListSlabs(s.NodeVa + (ulong)NodeOff.Partial);
            nrPartial = (long)Ld(s.NodeHost + NodeOff.NrPartial);
            full = tracked ? ListSlabs(s.NodeVa + (ulong)NodeOff.Full) : [];
        }
        finally
        {
            SpinUnlock(s.NodeHost);
        }
        if (!tracked)
        {
            var listed = new HashSet<ulong>(partial.Concat(cpuSlabVas.Select(x => x.Slab)));
            full = [.. AllSlabsOf(s).Where(x => !listed.Contains(x))];
        }
        long nrSlabs = TArch.PointerSize == 8 ? (long)Ld(s.NodeHost + NodeOff.NrSlabs) : *(int*)(s.NodeHost + NodeOff.NrSlabs);
        if (TArch.PointerSize == 4)
            nrPartial = *(int*)(s.NodeHost + NodeOff.NrPartial);
        List<CpuSheavesState>? sheaves = null;
        BarnState? barn = null;
        if (s.SheafCapacity != 0 && s.PcsSlot >= 0)
        {
            sheaves = [];
            foreach (var cpu in _m.Cpus)
            {
                var (main, mainSize, spare, spareSize) = CpuSheaves(cpu, s);
                sheaves.Add(new CpuSheavesState(cpu.Id, cpu.PercpuVa + (ulong)s.PcsOffset, main, (int)mainSize, spare, (int)spareSize));
            }
            barn = new BarnState(s.BarnVa, BarnSheaves(s, full: true), BarnSheaves(s, full: false));
        }
        return new CacheState(s, cpuSlabs, s.NodeVa, nrSlabs, nrPartial,
            [.. partial.Select(x => SlabStateOf(s, x, cpuCached, sheafCached))], [.. full.Select(x => SlabStateOf(s, x, cpuCached, sheafCached))], tracked,
            sheaves, barn);
    }

    private SlabState SlabStateOf(KmemCache s, ulong slabVa, Dictionary<ulong, int> cpuCached, Dictionary<ulong, (int? Cpu, string Where)> sheafCached)
    {
        byte* slab = SlabHost(slabVa);
        ulong c = Ld(slab + HotSlab<TArch>.SlabCounters);
        uint objects = SlabCounters.Objects(c);
        var free = FreeObjectsOf(s, slabVa);
        ulong mem = PageAddress(PfnOfSlab(slabVa));
        var list = new List<SlabObjectState>((int)objects);
        int allocated = 0;
        ulong p = mem + (ulong)s.RedLeftPad;
        for (uint i = 0; i < objects; i++, p += (ulong)s.Size)
        {
            int? cpu = cpuCached.TryGetValue(p, out int id) ? id : null;
            string? sheaf = null;
            if (cpu is null && sheafCached.TryGetValue(p, out var sc))
                (cpu, sheaf) = sc;
            bool isAllocated = cpu is null && sheaf is null && !free.Contains(p);
            if (isAllocated)
                allocated++;
            list.Add(new SlabObjectState(p, isAllocated, cpu, sheaf));
        }
        return new SlabState(slabVa, mem, (int)objects, allocated, (int)objects - allocated, SlabCounters.Frozen(c), SlabOrder(slab), list);
    }

    // ---- what is this address? -----------------------------------------------------------------------------

    /// <summary>kmem_obj_info() plus the object's state: null when the address is not in a slab.</summary>
    public SlabObjectInfo? ObjInfo(ulong va)
    {
        if (!TryResolve(va, out var s, out ulong slabVa, out ulong start, out _) || s is null)
            return null;
        var state = GetCacheState(s).AllSlabs.First(x => x.Slab == slabVa);
        var obj = state.Objects.First(o => o.Address == start);
        SlabTrack? Track(TrackItem item)
        {
            if ((s.Flags & SlabFlags.StoreUser) == 0)
                return null;
            var t = ReadTrack(s, start, item);
            return t.Addr == 0 ? null : new SlabTrack(CallSiteText(t.Addr), t.Cpu, t.Pid, t.When);
        }
        int index = (int)((start - state.Memory) / (ulong)s.Size);
        return new SlabObjectInfo(s, va, start, (long)(va - start), obj.Allocated, obj.CpuCache, slabVa, state.Memory, index,
            Track(TrackItem.Alloc), Track(TrackItem.Free), obj.Sheaf);
    }

    /// <summary>mem_dump_obj(): kmem_dump_obj()'s line for a slab address, else what kind of memory it is.</summary>
    public string DumpObj(ulong va)
    {
        var info = ObjInfo(va);
        if (info is null)
        {
            if (va == 0)
                return "NULL pointer";
            if (va == SlubConst.ZeroSizePtr)
                return "zero-size pointer";
            return _m.VirtAddrValid(va) ? "non-slab/vmalloc memory" : "non-paged memory";
        }
        var s = info.Cache;
        var sb = new StringBuilder();
        sb.Append("slab ").Append(s.Name);
        ulong stride = info.ObjectStart - (ulong)s.RedLeftPad;
        sb.Append(" start ").Append(P(stride));
        if (s.RedLeftPad != 0 && va >= info.ObjectStart)
            sb.Append(" data offset ").Append(s.RedLeftPad);
        ulong dataOffset = va >= info.ObjectStart ? (ulong)s.RedLeftPad : 0;
        sb.Append(" pointer offset ").Append(va - stride - dataOffset);
        sb.Append(" size ").Append(s.ObjectSize);
        if (info.AllocTrack is { } t)
            sb.Append(" allocated at ").Append(t.CallSite);
        return sb.ToString();
    }

    /// <summary>The bytes from <paramref name="va"/> to the end of its object (or large kmalloc allocation).</summary>
    public Span<byte> ObjectBytes(ulong va)
    {
        if (TryResolve(va, out var s, out _, out ulong start, out ulong large))
        {
            if (s is null)
            {
                ulong end = PageAddress(large) + (PageSize.Bytes << SlabOrder(_mm.Desc(large)));
                return new Span<byte>(HostOfLinear(va), (int)(end - va));
            }
            if (va >= start && va < start + (ulong)s.ObjectSize)
                return new Span<byte>(HostOfLinear(va), (int)(start + (ulong)s.ObjectSize - va));
            throw new VirtualAddressException($"0x{va:x} is in the metadata of {s.Name} object 0x{start:x}, not in the object", va);
        }
        throw new VirtualAddressException($"0x{va:x} is not inside a slab object or a large kmalloc allocation", va);
    }

    /// <summary>virt_to_slab(): the struct slab address of a slab object, else 0.</summary>
    public ulong VirtToSlab(ulong va) => TryResolve(va, out var s, out ulong slab, out _, out _) && s is not null ? slab : 0;

    // ---- slab_debug= at run time --------------------------------------------------------------------------

    /// <summary>
    /// Sets slab_debug= for caches created from now on, and re-lays out existing caches whose debug flags change
    /// if they can be emptied of slabs (shrunk), as the old sysfs debug files did (-EBUSY otherwise).
    /// Returns the caches changed and the ones left as they were because they hold objects.
    /// </summary>
    public (List<KmemCache> Changed, List<KmemCache> Busy) SetDebug(Cpu cpu, string options)
    {
        CheckCpu(cpu);
        var parsed = SlabDebugOptions.Parse(options);
        var changed = new List<KmemCache>();
        var busy = new List<KmemCache>();
        lock (_mutex)
        {
            _debug = parsed;
            foreach (var s in _cacheSnapshot)
            {
                SlabFlags want = parsed.FlagsFor(s.CreateFlags, s.Name) & SlabFlagsText.DebugFlags;
                if ((s.Flags & SlabFlagsText.DebugFlags) == want)
                    continue;
                Shrink(cpu, s);
                if (Ld(s.NodeHost + NodeOff.NrSlabs) != 0 || Ld(s.NodeHost + NodeOff.NrPartial) != 0 ||
                    _m.Cpus.Any(c => Ld(c.Percpu + s.CpuSlabOffset + HotSlab<TArch>.CpuSlab) != 0))
                {
                    busy.Add(s);
                    continue;
                }
                s.Flags = parsed.FlagsFor(s.CreateFlags, s.Name);
                bool hadSheaves = s.PcsSlot >= 0;
                bool wantSheaves = s.RequestedSheafCapacity != 0 && !s.IsDebug;
                if (hadSheaves && !wantSheaves)
                    ReleaseSheaves(cpu, s);
                s.SheafCapacity = wantSheaves ? s.RequestedSheafCapacity : 0;
                if (!CalculateSizes(s))
                    throw new SlabCacheException($"slab_debug: {s.Name} cannot hold an object with the new metadata");
                if (wantSheaves && !hadSheaves && !InitSheaves(cpu, s))
                    throw new SlabCacheException($"slab_debug: out of memory for the sheaves of {s.Name}");
                if ((s.Flags & SlabFlagsText.NoCmpxchg) == 0)
                    s.Flags |= SlabFlags.CmpxchgDouble;
                int ilog = 31 - System.Numerics.BitOperations.LeadingZeroCount((uint)s.Size);
                s.MinPartial = Math.Max(SlubConst.MinPartial, Math.Min(SlubConst.MaxPartial, ilog / 2));
                WriteKmemCache(s);
                changed.Add(s);
            }
        }
        return (changed, busy);
    }
}
