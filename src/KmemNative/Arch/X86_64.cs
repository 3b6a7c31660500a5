using System.Runtime.CompilerServices;

namespace KmemNative.Arch;

/// <summary>The x86-64 profile: 4-level paging, 64-byte <c>struct page</c>, zones DMA/DMA32/Normal/Movable/Device.</summary>
public readonly unsafe partial struct X86_64 : IArch
{
    /// <inheritdoc/>
    public static ArchKind Kind => ArchKind.X86_64;
    /// <inheritdoc/>
    public static string Name => "x86_64";
    /// <inheritdoc/>
    public static int PointerSize => 8;
    /// <inheritdoc/>
    public static int BitsPerLong => 64;

    // Recent mm_types.h with CONFIG_MEMCG: flags@0, lru@8, mapping@24, index@32, private@40,
    // page_type/_mapcount@48, _refcount@52, memcg_data@56 = 64 bytes.
    /// <inheritdoc/>
    public static int StructPageSize => 64;
    /// <inheritdoc/>
    public static int PageLruOffset => 8;
    /// <inheritdoc/>
    public static int PageMappingOffset => 24;
    /// <inheritdoc/>
    public static int PageIndexOffset => 32;
    /// <inheritdoc/>
    public static int PagePrivateOffset => 40;
    /// <inheritdoc/>
    public static int PageTypeOffset => 48;
    /// <inheritdoc/>
    public static int PageRefcountOffset => 52;
    /// <inheritdoc/>
    public static int PageMemcgOffset => 56;

    // SPARSEMEM_VMEMMAP: SECTIONS_WIDTH 0; NODES_SHIFT 6 (x86-64 default); 5 zones -> ZONES_SHIFT 3.
    // NODES_PGOFF = 64 - 6 = 58, ZONES_PGOFF = 58 - 3 = 55.
    /// <inheritdoc/>
    public static int ZonesWidth => 3;
    /// <inheritdoc/>
    public static int ZonesPgOff => 55;
    /// <inheritdoc/>
    public static int NodesWidth => 6;
    /// <inheritdoc/>
    public static int NodesPgOff => 58;

    /// <inheritdoc/>
    public static ReadOnlySpan<ZoneType> ZoneTypes => [ZoneType.Dma, ZoneType.Dma32, ZoneType.Normal, ZoneType.Movable, ZoneType.Device];

    // include/linux/gfp.h GFP_ZONE_TABLE with DMA 0, DMA32 1, NORMAL 2, MOVABLE 3 (HIGHMEM -> NORMAL).
    /// <inheritdoc/>
    public static uint GfpZoneTable => 0x1320122;

    /// <inheritdoc/>
    public static int PageblockOrder => 9; // HUGETLB_PAGE_ORDER: 2 MiB PMD pages

    /// <inheritdoc/>
    public static ulong PageOffset => 0xffff_8880_0000_0000; // __PAGE_OFFSET_BASE_L4
    /// <inheritdoc/>
    public static ulong VmemmapBase => 0xffff_ea00_0000_0000; // __VMEMMAP_BASE_L4
    /// <inheritdoc/>
    public static ulong MaxPhysAddr => 1UL << 46; // MAX_PHYSMEM_BITS with 4-level paging

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LoadLong(byte* p) => *(ulong*)p;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreLong(byte* p, ulong value) => *(ulong*)p = value;
}
