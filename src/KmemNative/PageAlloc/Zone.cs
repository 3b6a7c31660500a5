using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>
/// One memory zone (<c>struct zone</c>): a PFN span, its watermarks and lowmem reserves, and the buddy
/// <c>free_area[]</c>. The struct itself lives in the arena (inside the node's <c>pglist_data</c>); this object
/// is the typed handle to it.
/// </summary>
/// <remarks>
/// The buddy lists and counters are protected by <see cref="Lock"/> (the kernel's <c>zone-&gt;lock</c>).
/// Readers of counters without the lock see a value that was true a moment ago, as in the kernel.
/// </remarks>
public sealed unsafe class Zone
{
    private readonly bool _long64;

    internal Zone(int index, ZoneType type, byte* host, ulong va, KernelLayouts layouts, ulong startPfn, ulong endPfn)
    {
        Index = index;
        Type = type;
        Host = host;
        Va = va;
        Layouts = layouts;
        StartPfn = startPfn;
        EndPfn = endPfn;
        _long64 = layouts.PointerSize == 8;
    }

    /// <summary>zone_idx(): position in the profile's zone list.</summary>
    public int Index { get; }

    /// <summary>The zone's type.</summary>
    public ZoneType Type { get; }

    /// <summary>The kernel's name for the zone ("DMA", "DMA32", "Normal", "HighMem", "Movable", "Device").</summary>
    public string Name => ZoneNames.Of(Type);

    /// <summary>zone_start_pfn.</summary>
    public ulong StartPfn { get; }

    /// <summary>zone_end_pfn(): first pfn after the span.</summary>
    public ulong EndPfn { get; }

    /// <summary>spanned_pages: EndPfn - StartPfn, holes included.</summary>
    public ulong Spanned => EndPfn - StartPfn;

    /// <summary>present_pages: spanned minus holes.</summary>
    public ulong Present { get; internal set; }

    /// <summary>managed_pages: present minus pages reserved at boot; what the buddy allocator manages.</summary>
    public ulong Managed => (ulong)ReadLong(Layouts.Zone.Offset("managed_pages"));

    /// <summary>populated_zone(): the zone has present pages.</summary>
    public bool IsPopulated => Present != 0;

    /// <summary>True when the zone is HIGHMEM (pages without a permanent kernel mapping).</summary>
    public bool IsHighMem => Type == ZoneType.HighMem;

    /// <summary>True when <paramref name="pfn"/> is inside the zone's span.</summary>
    public bool Spans(ulong pfn) => pfn >= StartPfn && pfn < EndPfn;

    /// <summary>NR_FREE_PAGES: free pages in the buddy lists (pages on per-CPU lists are not counted, as in the kernel).</summary>
    public long FreePages => Stat(ZoneStat.NrFreePages);

    /// <summary>The WMARK_MIN watermark in pages (without boost).</summary>
    public long WatermarkMin => ReadLong(Layouts.WatermarkOff);

    /// <summary>WMARK_LOW.</summary>
    public long WatermarkLow => ReadLong(Layouts.WatermarkOff + Layouts.PointerSize);

    /// <summary>WMARK_HIGH.</summary>
    public long WatermarkHigh => ReadLong(Layouts.WatermarkOff + 2 * Layouts.PointerSize);

    /// <summary>WMARK_PROMO.</summary>
    public long WatermarkPromo => ReadLong(Layouts.WatermarkOff + 3 * Layouts.PointerSize);

    /// <summary>watermark_boost.</summary>
    public long WatermarkBoost => ReadLong(Layouts.BoostOff);

    /// <summary>lowmem_reserve[<paramref name="zoneIdx"/>]: pages kept back from allocations that could have used zone <paramref name="zoneIdx"/>.</summary>
    public long LowmemReserve(int zoneIdx) => ReadLong(Layouts.LowmemReserveOff + zoneIdx * Layouts.PointerSize);

    /// <summary>free_area[order].nr_free: free blocks of that order (all migratetypes).</summary>
    public long NrFree(int order) => ReadLong(Layouts.NrFreeOffset(order));

    /// <summary>nr_reserved_highatomic: pages reserved for high-order atomic allocations.</summary>
    public long ReservedHighatomic => ReadLong(Layouts.Zone.Offset("nr_reserved_highatomic"));

    /// <summary>nr_free_highatomic: free pages in MIGRATE_HIGHATOMIC blocks.</summary>
    public long FreeHighatomic => ReadLong(Layouts.NrFreeHighatomicOff);

    /// <summary>A zone counter (<c>zone_page_state</c>).</summary>
    public long Stat(ZoneStat item) => ReadLong(Layouts.VmStatOff + (int)item * Layouts.PointerSize);

    /// <summary>Kernel virtual address of the struct zone.</summary>
    public ulong Address => Va;

    /// <summary>pageset_batch: per-CPU list batch size.</summary>
    public int PcpBatch => *(int*)(Host + Layouts.Zone.Offset("pageset_batch"));

    /// <summary>pageset_high_min.</summary>
    public int PcpHighMin => *(int*)(Host + Layouts.Zone.Offset("pageset_high_min"));

    /// <summary>pageset_high_max.</summary>
    public int PcpHighMax => *(int*)(Host + Layouts.Zone.Offset("pageset_high_max"));

    /// <inheritdoc/>
    public override string ToString() => $"zone {Name} [pfn {StartPfn:x}-{EndPfn:x})";

    // ---- internals for the allocator ------------------------------------------------------------------

    internal byte* Host { get; }
    internal ulong Va { get; }
    internal KernelLayouts Layouts { get; }
    internal Lock Lock { get; } = new();

    /// <summary>Offset of this zone's <c>struct per_cpu_pages</c> inside every CPU's per-CPU unit.</summary>
    internal int PcpOffset { get; set; }

    /// <summary>ZONE_BELOW_HIGH (zone-&gt;flags): set when an allocation found the zone below its high watermark.</summary>
    internal bool BelowHigh;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal long ReadLong(int offset) => _long64 ? *(long*)(Host + offset) : *(int*)(Host + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteLong(int offset, long value)
    {
        if (_long64)
            *(long*)(Host + offset) = value;
        else
            *(int*)(Host + offset) = (int)value;
    }

    /// <summary>mod_zone_page_state(): atomic add to a zone counter (for subsystems outside zone-&gt;lock).</summary>
    internal void ModStat(ZoneStat item, long delta)
    {
        byte* p = Host + Layouts.VmStatOff + (int)item * Layouts.PointerSize;
        if (_long64)
            Interlocked.Add(ref *(long*)p, delta);
        else
            Interlocked.Add(ref *(int*)p, (int)delta);
    }

    internal void SetStat(ZoneStat item, long value) => WriteLong(Layouts.VmStatOff + (int)item * Layouts.PointerSize, value);

    internal void SetManaged(ulong pages) => WriteLong(Layouts.Zone.Offset("managed_pages"), (long)pages);
}
