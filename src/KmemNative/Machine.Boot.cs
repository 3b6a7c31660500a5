using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative;

// Boot, in the kernel's order: the firmware map (e820) becomes memblock.memory; early reservations (the first
// MiB, the kernel image); memblock allocations for the mem_map, page_ext, pageblock flags, node data and per-CPU
// areas; every struct page initialised reserved; zones sized; watermarks computed; then memblock_free_all() hands
// every unreserved page to the buddy allocator in the largest aligned blocks.
public sealed unsafe partial class Machine<TArch>
{
    /// <summary>Per-CPU unit size: room for the page allocator's pcp structs and later subsystems' per-CPU data.</summary>
    public const int PercpuUnitSize = 128 * 1024;

    private ulong _percpuPhys;
    private int _percpuUsed;
    private readonly Lock _percpuLock = new();
    private ulong _nodePhys;

    /// <summary>Physical address of the node's pglist_data (which embeds the zones).</summary>
    public ulong NodeDataPhys => _nodePhys;

    /// <summary>Physical address of CPU 0's per-CPU unit; CPU n's follows at n × <see cref="PercpuUnitSize"/>.</summary>
    public ulong PercpuPhys => _percpuPhys;

    /// <summary>
    /// The per-CPU allocator (a bump allocator over the first chunk): reserves <paramref name="size"/> bytes at the
    /// same offset in every CPU's unit and returns that offset.
    /// </summary>
    /// <exception cref="KmemException">The per-CPU area is exhausted.</exception>
    internal int PercpuAlloc(int size, int align)
    {
        lock (_percpuLock)
        {
            int off = (_percpuUsed + align - 1) / align * align;
            if (off + size > PercpuUnitSize)
                throw new KmemException($"per-CPU area exhausted ({PercpuUnitSize} bytes per CPU)");
            _percpuUsed = off + size;
            return off;
        }
    }

    /// <summary>Bytes of the per-CPU unit in use.</summary>
    public int PercpuUsed => _percpuUsed;

    private void BootKernel()
    {
        var (map, lost) = E820.Build(TArch.Kind, Config.MemBytes);
        E820Map = map;
        var ram = E820.UsableRam(map);
        ulong maxPhys = ram.Max(r => r.End);
        Memory = new PhysicalMemory(maxPhys, ram);
        Memblock = new Memblock(ram);
        MaxPfn = maxPhys >> PageSize.Shift;
        MaxLowPfn = TArch.Kind == ArchKind.I386 ? Math.Min(MaxPfn, I386Layout.MaxMemPfn) : MaxPfn;

        LogE820(map, lost);

        // x86 keeps the whole first MiB away from the allocator (BIOS data, real-mode trampoline).
        Memblock.Reserve(0, E820.LegacyHoleEnd, "first 1 MiB (BIOS, real mode)");
        Image = PlaceKernelImage();
        Memblock.Reserve(Image.Start, Image.Size, "kernel image");

        int nrZones = TArch.ZoneTypes.Length;
        bool numa = TArch.Kind == ArchKind.X86_64;
        _layouts = new KernelLayouts(TArch.PointerSize, nrZones, numa, TArch.Kind == ArchKind.X86_64 ? 14 : 12);

        // Early allocations, top-down from the highest memory the kernel can reach directly.
        ulong limit = MaxLowPfn << PageSize.Shift;
        ulong memmapBytes = MaxPfn * (ulong)TArch.StructPageSize;
        ulong memmapAlign = TArch.Kind == ArchKind.X86_64 ? 2UL << 20 : PageSize.Bytes;
        ulong memmapPhys = Memblock.Alloc(memmapBytes, memmapAlign, limit, "mem_map");
        ulong pageExtPhys = Memblock.Alloc(MaxPfn, PageSize.Bytes, limit, "page_ext");
        ulong pageblocks = (MaxPfn >> TArch.PageblockOrder) + 1;
        ulong pageblockPhys = Memblock.Alloc(pageblocks, PageSize.Bytes, limit, "pageblock_flags");
        _nodePhys = Memblock.Alloc((ulong)_layouts.Node.Size, PageSize.Bytes, limit, "node_data");
        _percpuPhys = Memblock.Alloc((ulong)(PercpuUnitSize * Config.Cpus), PageSize.Bytes, limit, "percpu");

        _memMap = new MemMap<TArch>(Memory, memmapPhys, MaxPfn, pageExtPhys);
        PagingInit(memmapPhys, limit);

        var spans = ZoneSpans();
        LogZoneRanges(spans, ram);

        // memmap_init(): every descriptor starts reserved with its zone; memblock_free_all() un-reserves the
        // pages it hands to the buddy allocator.
        for (int z = 0; z < nrZones; z++)
        {
            for (ulong pfn = spans[z].Start; pfn < spans[z].End; pfn++)
                _memMap.InitSinglePage(pfn, z, reserved: true);
        }
        for (ulong pfn = 0; pfn < spans[0].Start; pfn++)
            _memMap.InitSinglePage(pfn, 0, reserved: true);
        new Span<byte>(Memory.Base + pageExtPhys, checked((int)MaxPfn)).Clear();
        // Every pageblock starts MIGRATE_MOVABLE (memmap_init_range()).
        new Span<byte>(Memory.Base + pageblockPhys, checked((int)pageblocks)).Fill((byte)MigrateType.Movable);

        var freeRanges = Memblock.FreeRanges().Where(r => r.End > r.Start).ToArray();
        _zones = CreateZones(spans, freeRanges);

        ulong totalManaged = (ulong)_zones.Sum(z => (long)z.Managed);
        bool mobilityOff = totalManaged < (1UL << TArch.PageblockOrder) * MigrateTypes.Count;

        var cpus = new Cpu[Config.Cpus];
        for (int i = 0; i < cpus.Length; i++)
        {
            ulong unit = _percpuPhys + (ulong)(i * PercpuUnitSize);
            cpus[i] = new Cpu(this, i, Memory.Base + unit, TArch.PageOffset + unit);
        }
        SetCpus(cpus);
        for (int z = 0; z < nrZones; z++)
        {
            _zones[z].PcpOffset = PercpuAlloc(_layouts.Pcp.Size, 64);
            TArch.StoreLong(_zones[z].Host + _layouts.Zone.Offset("per_cpu_pageset"), (ulong)_zones[z].PcpOffset);
        }

        int eventsOff = PercpuAlloc(Cpu.EventCount * sizeof(long), 64);
        int numaOff = PercpuAlloc(nrZones * sizeof(long), 64);
        foreach (var cpu in cpus)
            cpu.SetCounters(eventsOff, numaOff);

        _pages = new PageAllocator<TArch>(this, _memMap, _layouts, _zones, Memory.Base + pageblockPhys, mobilityOff);
        foreach (var zone in _zones)
            foreach (var cpu in cpus)
                _pages.InitPcp(cpu, zone);

        LogInitmem(spans);
        Log.Info($"Built 1 zonelists, mobility grouping {(mobilityOff ? "off" : "on")}.  Total pages: {PresentPages}");

        MemblockFreeAll(freeRanges);
        _pages.CalculateMinFreeKbytes(Config.MinFreeKbytes);
        LogMemoryLine();
        if (TArch.Kind == ArchKind.I386)
            LogI386Layout();
        PagingInitCpus();
        InitSlab();
        InitReclaim();
    }

    private KernelImage PlaceKernelImage()
    {
        // Section sizes of the emulated vmlinux (documented in the README); CONFIG_PHYSICAL_START is 16 MiB, or
        // 1 MiB on machines too small to leave room above it.
        (ulong text, ulong ro, ulong data, ulong init, ulong bss) = TArch.Kind == ArchKind.X86_64
            ? (4096UL << 10, 1024UL << 10, 512UL << 10, 512UL << 10, 1024UL << 10)
            : (2048UL << 10, 512UL << 10, 256UL << 10, 256UL << 10, 512UL << 10);
        ulong start = Config.MemBytes >= 64UL << 20 ? 16UL << 20 : E820.LegacyHoleEnd;
        ulong vbase = TArch.Kind == ArchKind.X86_64 ? 0xffff_ffff_8000_0000UL + start : TArch.PageOffset + start;
        return new KernelImage(start, text, ro, data, init, bss, vbase);
    }

    /// <summary>zone_sizes_init() + free_area_init(): each zone starts where the previous one ends.</summary>
    private (ulong Start, ulong End)[] ZoneSpans()
    {
        ulong first = Memblock.Memory[0].Start >> PageSize.Shift;
        var types = TArch.ZoneTypes;
        var spans = new (ulong, ulong)[types.Length];
        ulong start = first;
        for (int i = 0; i < types.Length; i++)
        {
            ulong maxZonePfn = types[i] switch
            {
                ZoneType.Dma => Math.Min(0x1000UL, MaxLowPfn),
                ZoneType.Dma32 => Math.Min(0x100000UL, MaxLowPfn),
                ZoneType.Normal => MaxLowPfn,
                ZoneType.HighMem => MaxPfn,
                _ => start, // ZONE_MOVABLE and ZONE_DEVICE are configured but empty
            };
            ulong end = Math.Max(maxZonePfn, start);
            spans[i] = (start, end);
            start = end;
        }
        return spans;
    }

    private Zone[] CreateZones((ulong Start, ulong End)[] spans, MemoryRange[] freeRanges)
    {
        var types = TArch.ZoneTypes;
        byte* node = Memory.Base + _nodePhys;
        new Span<byte>(node, _layouts.Node.Size).Clear();
        ulong nodeVa = TArch.PageOffset + _nodePhys;
        var zones = new Zone[types.Length];
        for (int i = 0; i < types.Length; i++)
        {
            int off = _layouts.Node.Offset("node_zones") + i * _layouts.Zone.Size;
            var zone = new Zone(i, types[i], node + off, nodeVa + (ulong)off, _layouts, spans[i].Start, spans[i].End);
            ulong present = 0, managed = 0;
            foreach (var r in Memblock.Memory)
                present += Overlap(r.StartPfn, r.EndPfn, zone.StartPfn, zone.EndPfn);
            foreach (var r in freeRanges)
                managed += Overlap(r.StartPfn, r.EndPfn, zone.StartPfn, zone.EndPfn);
            zone.Present = present;
            zone.SetManaged(managed);
            InitZoneStruct(zone, nodeVa);
            zones[i] = zone;
        }
        var L = _layouts.Node;
        TArch.StoreLong(node + L.Offset("node_start_pfn"), spans[0].Start);
        TArch.StoreLong(node + L.Offset("node_present_pages"), (ulong)zones.Sum(z => (long)z.Present));
        TArch.StoreLong(node + L.Offset("node_spanned_pages"), spans[^1].End - spans[0].Start);
        *(int*)(node + L.Offset("nr_zones")) = zones.Count(z => z.IsPopulated);
        return zones;
    }

    private static ulong Overlap(ulong a0, ulong a1, ulong b0, ulong b1)
    {
        ulong s = Math.Max(a0, b0), e = Math.Min(a1, b1);
        return e > s ? e - s : 0;
    }

    private void InitZoneStruct(Zone zone, ulong nodeVa)
    {
        var L = _layouts.Zone;
        byte* z = zone.Host;
        TArch.StoreLong(z + L.Offset("zone_pgdat"), nodeVa);
        TArch.StoreLong(z + L.Offset("pageblock_flags"), 0);
        TArch.StoreLong(z + L.Offset("zone_start_pfn"), zone.StartPfn);
        TArch.StoreLong(z + L.Offset("spanned_pages"), zone.Spanned);
        TArch.StoreLong(z + L.Offset("present_pages"), zone.Present);
        *(int*)(z + L.Offset("initialized")) = zone.IsPopulated ? 1 : 0;
        for (int order = 0; order < PageSize.NrOrders; order++)
            for (int mt = 0; mt < MigrateTypes.Count; mt++)
                _memMap.InitListHead(zone.Va + (ulong)_layouts.FreeListOffset(order, mt));
    }

    /// <summary>
    /// memblock_free_all(): each free range, split at zone boundaries, goes to the buddy allocator in the largest
    /// naturally aligned blocks (__free_pages_core: clear PG_reserved, refcount 0).
    /// </summary>
    private void MemblockFreeAll(MemoryRange[] freeRanges)
    {
        foreach (var range in freeRanges)
        {
            foreach (var zone in _zones)
            {
                ulong start = Math.Max(range.StartPfn, zone.StartPfn);
                ulong end = Math.Min(range.EndPfn, zone.EndPfn);
                while (start < end)
                {
                    int order = Math.Min(PageSize.MaxOrder, System.Numerics.BitOperations.TrailingZeroCount(start | (1UL << PageSize.MaxOrder)));
                    while (start + (1UL << order) > end)
                        order--;
                    for (ulong pfn = start; pfn < start + (1UL << order); pfn++)
                    {
                        byte* p = _memMap.Desc(pfn);
                        MemMap<TArch>.ClearFlag(p, PageFlag.Reserved);
                        MemMap<TArch>.Refcount(p) = 0;
                    }
                    lock (zone.Lock)
                        _pages.FreeOneBlock(zone, start, order, _pages.PageblockMigratetype(start), toTail: true);
                    start += 1UL << order;
                }
            }
        }
    }

    // ---- boot messages ----------------------------------------------------------------------------

    private void LogE820(E820.Entry[] map, ulong lost)
    {
        Log.Info($"Linux version 6.18.0-kmemnative ({TArch.Name}) #1 SMP PREEMPT_DYNAMIC");
        Log.Info("BIOS-provided physical RAM map:");
        foreach (var e in map)
            Log.Info($"BIOS-e820: [mem 0x{e.Range.Start:x16}-0x{e.Range.End - 1:x16}] {e.Type}");
        Log.Info("e820: update [mem 0x00000000-0x00000fff] usable ==> reserved");
        if (lost != 0)
            Log.Warn($"Warning: only 4GB will be used. Use a HIGHMEM64G enabled kernel! ({lost >> 20} MiB behind the PCI hole is lost)");
        if (TArch.Kind == ArchKind.I386)
        {
            ulong high = MaxPfn - MaxLowPfn;
            if (high != 0)
                Log.Notice($"{high >> 8}MB HIGHMEM available.");
            Log.Notice($"{MaxLowPfn >> 8}MB LOWMEM available.");
            Log.Info($"  mapped low ram: 0 - {MaxLowPfn << PageSize.Shift:x8}");
            Log.Info($"  low ram: 0 - {MaxLowPfn << PageSize.Shift:x8}");
        }
    }

    private void LogZoneRanges((ulong Start, ulong End)[] spans, MemoryRange[] ram)
    {
        Log.Info("Zone ranges:");
        var types = TArch.ZoneTypes;
        for (int i = 0; i < types.Length; i++)
        {
            if (types[i] == ZoneType.Movable)
                continue;
            string name = ZoneNames.Of(types[i]).PadRight(8);
            Log.Info(spans[i].Start == spans[i].End
                ? $"  {name} empty"
                : $"  {name} [mem 0x{spans[i].Start << PageSize.Shift:x16}-0x{(spans[i].End << PageSize.Shift) - 1:x16}]");
        }
        Log.Info("Movable zone start for each node");
        Log.Info("Early memory node ranges");
        foreach (var r in ram)
            Log.Info($"  node   0: [mem 0x{r.Start:x16}-0x{r.End - 1:x16}]");
        Log.Info($"Initmem setup node 0 [mem 0x{ram[0].Start:x16}-0x{ram[^1].End - 1:x16}]");
    }

    /// <summary>init_unavailable_range() reports: holes inside zone spans whose memory map exists.</summary>
    private void LogInitmem((ulong Start, ulong End)[] spans)
    {
        var types = TArch.ZoneTypes;
        // Holes before the first range and between ranges, attributed to the zone they fall in.
        var holes = new List<(ulong Start, ulong End)> { (0, Memblock.Memory[0].StartPfn) };
        for (int i = 1; i < Memblock.Memory.Count; i++)
            holes.Add((Memblock.Memory[i - 1].EndPfn, Memblock.Memory[i].StartPfn));
        foreach (var (hs, he) in holes)
        {
            for (int z = 0; z < types.Length; z++)
            {
                ulong s = Math.Max(hs, z == 0 ? 0 : spans[z].Start), e = Math.Min(he, spans[z].End);
                // Whole 128 MiB sections without memory have no memory map on SPARSEMEM: nothing to report.
                ulong sectionPages = 1UL << (27 - PageSize.Shift);
                if (e <= s || (TArch.Kind == ArchKind.X86_64 && e - s >= sectionPages))
                    continue;
                Log.Info($"On node 0, zone {ZoneNames.Of(types[z])}: {e - s} pages in unavailable ranges");
            }
        }
    }

    private void LogMemoryLine()
    {
        static ulong K(ulong pages) => pages << (PageSize.Shift - 10);
        ulong free = (ulong)_zones.Sum(z => z.FreePages);
        ulong phys = PresentPages;
        string line = $"Memory: {K(free)}K/{K(phys)}K available ({Image.TextBytes >> 10}K kernel code, {Image.DataBytes >> 10}K rwdata, " +
                      $"{Image.RodataBytes >> 10}K rodata, {Image.InitBytes >> 10}K init, {Image.BssBytes >> 10}K bss, " +
                      $"{K(phys - TotalRamPages)}K reserved, 0K cma-reserved";
        if (TArch.Kind == ArchKind.I386)
            line += $", {K(TotalHighPages)}K highmem";
        Log.Info(line + ")");
    }

    /// <summary>
    /// The i386 "virtual kernel memory layout" block (arch/x86/mm/init_32.c, 4.x-5.x kernels), from the page tables
    /// as built: lowmem ends where the walk of the linear map stops, vmalloc starts 8 MiB above it.
    /// </summary>
    private void LogI386Layout()
    {
        ulong highMemory = _paging.HighMemory;
        ulong vmallocStart = _paging.VmallocStart;
        // As init_32.c printed it: .text is _text.._etext, .data is _etext.._edata (rodata included).
        ulong text = Image.VirtualBase, etext = text + Image.TextBytes;
        ulong edata = etext + Image.RodataBytes + Image.DataBytes, initBegin = edata, initEnd = initBegin + Image.InitBytes;
        string Line(string name, ulong a, ulong b, string unit, int shift) =>
            $"{name} : 0x{a:x8} - 0x{b:x8}   ({(b - a) >> shift,4} {unit})";
        Log.Info("virtual kernel memory layout:\n" +
            Line("    fixmap ", I386Layout.FixaddrStart, I386Layout.FixaddrTop, "kB", 10) + "\n" +
            Line("  cpu_entry", I386Layout.CpuEntryAreaBase, I386Layout.CpuEntryAreaBase + I386Layout.CpuEntryAreaMapSize, "kB", 10) + "\n" +
            Line("    pkmap  ", I386Layout.PkmapBase, I386Layout.PkmapBase + (ulong)I386Layout.LastPkmap * PageSize.Bytes, "kB", 10) + "\n" +
            Line("    vmalloc", vmallocStart, _paging.VmallocEnd, "MB", 20) + "\n" +
            Line("    lowmem ", TArch.PageOffset, highMemory, "MB", 20) + "\n" +
            Line("      .init", initBegin, initEnd, "kB", 10) + "\n" +
            Line("      .data", etext, edata, "kB", 10) + "\n" +
            Line("      .text", text, etext, "kB", 10));
    }
}
