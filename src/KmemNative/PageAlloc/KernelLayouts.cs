using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>
/// Offsets of the page allocator's kernel structs as laid out in the arena for one profile: <c>struct zone</c>
/// (fields of include/linux/mmzone.h in kernel order; hot and cold groups each start on a cache line, as the
/// kernel's CACHELINE_PADDING does), <c>struct free_area</c>, <c>struct per_cpu_pages</c> and the node.
/// </summary>
internal sealed class KernelLayouts
{
    /// <summary>The layouts of a profile.</summary>
    public static KernelLayouts For<TArch>() where TArch : struct, Arch.IArch =>
        new(TArch.PointerSize, TArch.ZoneTypes.Length, numa: TArch.Kind == Arch.ArchKind.X86_64,
            nrPcpLists: TArch.Kind == Arch.ArchKind.X86_64 ? 14 : 12);

    public KernelLayouts(int ptr, int nrZones, bool numa, int nrPcpLists)
    {
        PointerSize = ptr;
        NrZones = nrZones;
        NrPcpLists = nrPcpLists;
        int listHead = 2 * ptr;

        FreeArea = new KStructLayout("free_area")
            .Add("free_list", MigrateTypes.Count * listHead, ptr)
            .Add("nr_free", ptr);

        var z = new KStructLayout("zone")
            .Add("_watermark", 4 * ptr, ptr)
            .Add("watermark_boost", ptr)
            .Add("nr_reserved_highatomic", ptr)
            .Add("nr_free_highatomic", ptr)
            .Add("lowmem_reserve", nrZones * ptr, ptr);
        if (numa)
            z.Add("node", 4);
        z.Add("zone_pgdat", ptr)
            .Add("per_cpu_pageset", ptr)
            .Add("per_cpu_zonestats", ptr)
            .Add("pageset_high_min", 4)
            .Add("pageset_high_max", 4)
            .Add("pageset_batch", 4)
            .Add("pageblock_flags", ptr)
            .Add("zone_start_pfn", ptr)
            .Add("managed_pages", ptr)
            .Add("spanned_pages", ptr)
            .Add("present_pages", ptr)
            .Add("name", ptr)
            .Add("nr_isolate_pageblock", ptr)
            .Add("initialized", 4)
            .AlignTo(64)
            .Add("free_area", PageSize.NrOrders * FreeArea.Size, ptr)
            .Add("flags", ptr)
            .Add("lock", 4)
            .AlignTo(64)
            .Add("vm_stat", VmStatNames.Zone.Length * ptr, ptr);
        if (numa)
            z.Add("vm_numa_event", VmStatNames.Numa.Length * ptr, ptr);
        Zone = z.AlignTo(64);

        // struct per_cpu_pages { spinlock_t lock; int count, high, high_min, high_max, batch; u8 flags,
        // alloc_factor[, expire]; short free_count; struct list_head lists[NR_PCP_LISTS]; } ____cacheline_aligned
        var p = new KStructLayout("per_cpu_pages")
            .Add("lock", 4)
            .Add("count", 4)
            .Add("high", 4)
            .Add("high_min", 4)
            .Add("high_max", 4)
            .Add("batch", 4)
            .Add("flags", 1)
            .Add("alloc_factor", 1);
        if (numa)
            p.Add("expire", 1);
        Pcp = p.Add("free_count", 2)
            .Add("lists", nrPcpLists * listHead, ptr)
            .AlignTo(64);

        // pglist_data, trimmed to what the emulator keeps: the zones first (node_zones[]), then the node's span
        // and counters.
        Node = new KStructLayout("pglist_data")
            .Add("node_zones", nrZones * Zone.Size, 64)
            .Add("nr_zones", 4)
            .Add("node_start_pfn", ptr)
            .Add("node_present_pages", ptr)
            .Add("node_spanned_pages", ptr)
            .Add("node_id", 4)
            .Add("totalreserve_pages", ptr)
            // kswapd's state (issue #6): what the last wakeup asked for, and how often balancing failed.
            .Add("kswapd_order", 4)
            .Add("kswapd_highest_zoneidx", 4)
            .Add("kswapd_failures", 4)
            .AlignTo(64)
            // struct lruvec __lruvec: the LRU lists (real list_heads through struct page lru), lru_lock, the
            // anon/file reclaim costs, the workingset clock and refault snapshots, lruvec flags.
            .Add("__lruvec.lists", 5 * listHead, ptr)
            .Add("__lruvec.lru_lock", 4)
            .Add("__lruvec.anon_cost", ptr)
            .Add("__lruvec.file_cost", ptr)
            .Add("__lruvec.nonresident_age", ptr)
            .Add("__lruvec.refaults", 2 * ptr, ptr)
            .Add("__lruvec.flags", ptr)
            .Add("flags", ptr)
            .AlignTo(64)
            .Add("vm_stat", VmStatNames.Node.Length * ptr, ptr)
            .AlignTo(64);

        WatermarkOff = Zone.Offset("_watermark");
        BoostOff = Zone.Offset("watermark_boost");
        LowmemReserveOff = Zone.Offset("lowmem_reserve");
        FreeAreaOff = Zone.Offset("free_area");
        VmStatOff = Zone.Offset("vm_stat");
        NrFreeHighatomicOff = Zone.Offset("nr_free_highatomic");
        FreeListOff = FreeArea.Offset("free_list");
        NrFreeOff = FreeArea.Offset("nr_free");
        PcpCountOff = Pcp.Offset("count");
        PcpHighOff = Pcp.Offset("high");
        PcpHighMinOff = Pcp.Offset("high_min");
        PcpHighMaxOff = Pcp.Offset("high_max");
        PcpBatchOff = Pcp.Offset("batch");
        PcpFlagsOff = Pcp.Offset("flags");
        PcpAllocFactorOff = Pcp.Offset("alloc_factor");
        PcpFreeCountOff = Pcp.Offset("free_count");
        PcpListsOff = Pcp.Offset("lists");
    }

    public int PointerSize { get; }
    public int NrZones { get; }
    public int NrPcpLists { get; }
    public KStructLayout Zone { get; }
    public KStructLayout FreeArea { get; }
    public KStructLayout Pcp { get; }
    public KStructLayout Node { get; }

    public int WatermarkOff { get; }
    public int BoostOff { get; }
    public int LowmemReserveOff { get; }
    public int FreeAreaOff { get; }
    public int VmStatOff { get; }
    public int NrFreeHighatomicOff { get; }
    public int FreeListOff { get; }
    public int NrFreeOff { get; }
    public int PcpCountOff { get; }
    public int PcpHighOff { get; }
    public int PcpHighMinOff { get; }
    public int PcpHighMaxOff { get; }
    public int PcpBatchOff { get; }
    public int PcpFlagsOff { get; }
    public int PcpAllocFactorOff { get; }
    public int PcpFreeCountOff { get; }
    public int PcpListsOff { get; }

    /// <summary>Offset of free_area[order].free_list[mt] within struct zone.</summary>
    public int FreeListOffset(int order, int mt) => FreeAreaOff + order * FreeArea.Size + FreeListOff + mt * 2 * PointerSize;

    /// <summary>Offset of free_area[order].nr_free within struct zone.</summary>
    public int NrFreeOffset(int order) => FreeAreaOff + order * FreeArea.Size + NrFreeOff;
}

/// <summary>
/// The hot offsets of <see cref="KernelLayouts"/> for one profile as static readonly fields: once the type is
/// initialised the JIT treats them as constants in the specialised code.
/// </summary>
internal static class HotLayout<TArch> where TArch : struct, Arch.IArch
{
    public static readonly KernelLayouts L = KernelLayouts.For<TArch>();
    public static readonly int WatermarkOff = L.WatermarkOff;
    public static readonly int BoostOff = L.BoostOff;
    public static readonly int LowmemReserveOff = L.LowmemReserveOff;
    public static readonly int VmStatOff = L.VmStatOff;
    public static readonly int NrFreeHighatomicOff = L.NrFreeHighatomicOff;
    public static readonly int FreeAreaOff = L.FreeAreaOff;
    public static readonly int FreeAreaSize = L.FreeArea.Size;
    public static readonly int FreeListOff = L.FreeListOff;
    public static readonly int NrFreeOff = L.NrFreeOff;
    public static readonly int PcpCountOff = L.PcpCountOff;
    public static readonly int PcpHighOff = L.PcpHighOff;
    public static readonly int PcpHighMinOff = L.PcpHighMinOff;
    public static readonly int PcpHighMaxOff = L.PcpHighMaxOff;
    public static readonly int PcpBatchOff = L.PcpBatchOff;
    public static readonly int PcpFlagsOff = L.PcpFlagsOff;
    public static readonly int PcpAllocFactorOff = L.PcpAllocFactorOff;
    public static readonly int PcpFreeCountOff = L.PcpFreeCountOff;
    public static readonly int PcpListsOff = L.PcpListsOff;
}
