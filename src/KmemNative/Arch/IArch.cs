namespace KmemNative.Arch;

/// <summary>The emulated architecture of a machine.</summary>
public enum ArchKind
{
    /// <summary>32-bit x86, non-PAE: 2-level paging, 3G/1G split, HIGHMEM, 32-byte <c>struct page</c>.</summary>
    I386,

    /// <summary>x86-64: 4-level paging, direct map of all RAM, vmemmap, 64-byte <c>struct page</c>.</summary>
    X86_64,
}

/// <summary>
/// A machine profile: every width, layout and constant in which i386 and x86-64 differ.
/// </summary>
/// <remarks>
/// Profiles are empty structs implementing this interface with static abstract members. Hot code is generic
/// over <c>TArch : struct, IArch</c>, so the JIT compiles one specialised copy per profile in which every
/// member below is a constant: one copy of each algorithm, no runtime switch and no virtual call per page or
/// per entry. Values cite the kernel header they come from.
/// </remarks>
public unsafe interface IArch : Paging.IPagingProfile
{
    /// <summary>Which architecture this is.</summary>
    static abstract ArchKind Kind { get; }

    /// <summary>The name <c>uname -m</c> would print (i386, x86_64).</summary>
    static abstract string Name { get; }

    /// <summary><c>sizeof(long)</c> = <c>sizeof(void *)</c>: 4 or 8.</summary>
    static abstract int PointerSize { get; }

    /// <summary><c>BITS_PER_LONG</c>: 32 or 64; the width of <c>page-&gt;flags</c>.</summary>
    static abstract int BitsPerLong { get; }

    // ---- struct page (include/linux/mm_types.h) -------------------------------------------------------

    /// <summary><c>sizeof(struct page)</c>: 32 on i386 (no memcg), 64 on x86-64.</summary>
    static abstract int StructPageSize { get; }

    /// <summary>Offset of the <c>lru</c>/<c>buddy_list</c>/<c>pcp_list</c> union; <c>compound_head</c> aliases its first word.</summary>
    static abstract int PageLruOffset { get; }

    /// <summary>Offset of <c>mapping</c>.</summary>
    static abstract int PageMappingOffset { get; }

    /// <summary>Offset of <c>index</c>.</summary>
    static abstract int PageIndexOffset { get; }

    /// <summary>Offset of <c>private</c> (the buddy order of a free block).</summary>
    static abstract int PagePrivateOffset { get; }

    /// <summary>Offset of the <c>page_type</c>/<c>_mapcount</c> union (32 bits).</summary>
    static abstract int PageTypeOffset { get; }

    /// <summary>Offset of <c>_refcount</c> (32 bits).</summary>
    static abstract int PageRefcountOffset { get; }

    /// <summary>Offset of <c>memcg_data</c>, or -1 where the profile has no memcg (i386).</summary>
    static abstract int PageMemcgOffset { get; }

    // ---- page->flags packing (include/linux/page-flags-layout.h) --------------------------------------

    /// <summary><c>ZONES_WIDTH</c>: bits holding the zone number in <c>page-&gt;flags</c>.</summary>
    static abstract int ZonesWidth { get; }

    /// <summary><c>ZONES_PGOFF</c>: the lowest bit of the zone field.</summary>
    static abstract int ZonesPgOff { get; }

    /// <summary><c>NODES_WIDTH</c> (0 when the node number is not kept in the flags).</summary>
    static abstract int NodesWidth { get; }

    /// <summary><c>NODES_PGOFF</c>.</summary>
    static abstract int NodesPgOff { get; }

    // ---- zones (include/linux/mmzone.h enum zone_type) ------------------------------------------------

    /// <summary>The zone types in <c>enum zone_type</c> order; the position is the zone index.</summary>
    static abstract ReadOnlySpan<ZoneType> ZoneTypes { get; }

    /// <summary><c>GFP_ZONE_TABLE</c>: gfp_zone() for the four zone-modifier bits, packed 2 bits per entry.</summary>
    static abstract uint GfpZoneTable { get; }

    /// <summary><c>pageblock_order</c>: 9 on x86-64 (2 MiB huge pages), 10 on non-PAE i386 (4 MiB huge pages).</summary>
    static abstract int PageblockOrder { get; }

    // ---- address space (arch/x86/include/asm/page_*_types.h) ------------------------------------------

    /// <summary><c>PAGE_OFFSET</c>: where the linear (direct) map of physical memory starts.</summary>
    static abstract ulong PageOffset { get; }

    /// <summary><c>VMEMMAP_START</c> on x86-64; 0 on i386, whose flat <c>mem_map</c> is reached through lowmem.</summary>
    static abstract ulong VmemmapBase { get; }

    /// <summary>Largest physical address + 1 the profile can address (4 GiB non-PAE, 2^46 on x86-64 here).</summary>
    static abstract ulong MaxPhysAddr { get; }

    /// <summary>Reads a kernel pointer (<c>unsigned long</c>) of this profile's width.</summary>
    static abstract ulong LoadLong(byte* p);

    /// <summary>Writes a kernel pointer (<c>unsigned long</c>) of this profile's width.</summary>
    static abstract void StoreLong(byte* p, ulong value);
}
