using System.Runtime.CompilerServices;

namespace KmemNative.Arch;

/// <summary>The i386 (non-PAE) profile: 2-level paging, 32-byte <c>struct page</c>, zones DMA/Normal/HighMem/Movable.</summary>
public readonly unsafe partial struct I386 : IArch
{
    /// <inheritdoc/>
    public static ArchKind Kind => ArchKind.I386;
    /// <inheritdoc/>
    public static string Name => "i386";
    /// <inheritdoc/>
    public static int PointerSize => 4;
    /// <inheritdoc/>
    public static int BitsPerLong => 32;

    // mm_types.h on 32-bit without memcg: flags@0, lru@4, mapping@12, index@16, private@20,
    // page_type/_mapcount@24, _refcount@28 = 32 bytes.
    /// <inheritdoc/>
    public static int StructPageSize => 32;
    /// <inheritdoc/>
    public static int PageLruOffset => 4;
    /// <inheritdoc/>
    public static int PageMappingOffset => 12;
    /// <inheritdoc/>
    public static int PageIndexOffset => 16;
    /// <inheritdoc/>
    public static int PagePrivateOffset => 20;
    /// <inheritdoc/>
    public static int PageTypeOffset => 24;
    /// <inheritdoc/>
    public static int PageRefcountOffset => 28;
    /// <inheritdoc/>
    public static int PageMemcgOffset => -1;

    // FLATMEM, !NUMA: no section or node bits; 4 zones -> ZONES_SHIFT 2 at the top: ZONES_PGOFF = 32 - 2.
    /// <inheritdoc/>
    public static int ZonesWidth => 2;
    /// <inheritdoc/>
    public static int ZonesPgOff => 30;
    /// <inheritdoc/>
    public static int NodesWidth => 0;
    /// <inheritdoc/>
    public static int NodesPgOff => 30;

    /// <inheritdoc/>
    public static ReadOnlySpan<ZoneType> ZoneTypes => [ZoneType.Dma, ZoneType.Normal, ZoneType.HighMem, ZoneType.Movable];

    // GFP_ZONE_TABLE with DMA 0, NORMAL 1, HIGHMEM 2, MOVABLE 3 (DMA32 -> NORMAL).
    /// <inheritdoc/>
    public static uint GfpZoneTable => 0x1310121;

    /// <inheritdoc/>
    public static int PageblockOrder => 10; // HUGETLB_PAGE_ORDER: 4 MiB PSE pages = MAX_PAGE_ORDER

    /// <inheritdoc/>
    public static ulong PageOffset => 0xC000_0000; // CONFIG_PAGE_OFFSET, VMSPLIT_3G
    /// <inheritdoc/>
    public static ulong VmemmapBase => 0; // FLATMEM: mem_map is an ordinary lowmem array
    /// <inheritdoc/>
    public static ulong MaxPhysAddr => 1UL << 32; // non-PAE: 32-bit physical addresses

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LoadLong(byte* p) => *(uint*)p;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreLong(byte* p, ulong value) => *(uint*)p = (uint)value;
}
