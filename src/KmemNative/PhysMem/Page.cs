using KmemNative.PageAlloc;

namespace KmemNative.PhysMem;

/// <summary>
/// A typed handle to one page frame's <c>struct page</c> (the kernel's <c>struct page *</c>): which machine, which
/// PFN. Reading it goes through the machine, which checks the machine is alive and the PFN in range.
/// </summary>
public readonly struct Page : IEquatable<Page>
{
    internal Page(Machine machine, ulong pfn)
    {
        Machine = machine;
        Pfn = pfn;
    }

    /// <summary>The machine the page belongs to.</summary>
    public Machine Machine { get; }

    /// <summary>page_to_pfn().</summary>
    public ulong Pfn { get; }

    /// <summary>page_to_phys().</summary>
    public ulong PhysAddr => Pfn << PageSize.Shift;

    /// <summary>A snapshot of the descriptor's fields.</summary>
    public PageDescriptor Descriptor => Machine.ReadPage(Pfn);

    /// <summary>page_ref_count().</summary>
    public int Refcount => Descriptor.Refcount;

    /// <summary>Kernel virtual address of the descriptor (vmemmap on x86-64, lowmem mem_map on i386).</summary>
    public ulong DescriptorAddress => Machine.PageDescriptorAddress(Pfn);

    /// <inheritdoc/>
    public bool Equals(Page other) => ReferenceEquals(Machine, other.Machine) && Pfn == other.Pfn;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Page p && Equals(p);

    /// <inheritdoc/>
    public override int GetHashCode() => Pfn.GetHashCode();

    /// <summary>Equality.</summary>
    public static bool operator ==(Page a, Page b) => a.Equals(b);

    /// <summary>Inequality.</summary>
    public static bool operator !=(Page a, Page b) => !a.Equals(b);

    /// <inheritdoc/>
    public override string ToString() => $"page 0x{DescriptorAddress:x} (pfn 0x{Pfn:x})";
}

/// <summary>A snapshot of one <c>struct page</c>, with the kernel's interpretations of its fields.</summary>
/// <param name="Pfn">The page frame.</param>
/// <param name="Address">Kernel virtual address of the descriptor.</param>
/// <param name="Flags">page->flags (zone/node bits included).</param>
/// <param name="LruNext">First word of the lru union (compound_head on a tail page).</param>
/// <param name="LruPrev">Second word of the lru union.</param>
/// <param name="Mapping">page->mapping.</param>
/// <param name="Index">page->index.</param>
/// <param name="Private">page->private (buddy order of a free block).</param>
/// <param name="PageTypeRaw">page_type/_mapcount word.</param>
/// <param name="Refcount">page->_refcount.</param>
/// <param name="MemcgData">page->memcg_data (0 on i386).</param>
/// <param name="ZoneIndex">page_zonenum().</param>
/// <param name="FlagsText">The flags as %pGp prints them.</param>
public readonly record struct PageDescriptor(
    ulong Pfn, ulong Address, ulong Flags, ulong LruNext, ulong LruPrev, ulong Mapping, ulong Index, ulong Private,
    uint PageTypeRaw, int Refcount, ulong MemcgData, int ZoneIndex, string FlagsText)
{
    /// <summary>True when the flag is set.</summary>
    public bool Test(PageFlag flag) => (Flags & (1UL << (int)flag)) != 0;

    /// <summary>PageReserved().</summary>
    public bool IsReserved => Test(PageFlag.Reserved);

    /// <summary>PageHead().</summary>
    public bool IsHead => Test(PageFlag.Head);

    /// <summary>PageTail(): compound_head has bit 0 set.</summary>
    public bool IsTail => (LruNext & 1) != 0;

    /// <summary>The page type byte (0xf0 buddy, 0xf5 slab...), or null when the word is a mapcount.</summary>
    public byte? PageType => PageTypeRaw >> 24 is >= 0xf0 and <= 0xfe ? (byte)(PageTypeRaw >> 24) : null;

    /// <summary>PageBuddy(): head of a free block in the buddy allocator.</summary>
    public bool IsBuddy => PageType == PageBits.PgtyBuddy;

    /// <summary>PageSlab().</summary>
    public bool IsSlab => PageType == PageBits.PgtySlab;

    /// <summary>PageTable(): a page-table page.</summary>
    public bool IsPageTable => PageType == PageBits.PgtyTable;

    /// <summary>page_mapcount() for untyped pages: _mapcount + 1.</summary>
    public int Mapcount => PageType is null ? (int)PageTypeRaw + 1 : 0;

    /// <summary>buddy_order() of a free block, or -1.</summary>
    public int BuddyOrder => IsBuddy ? (int)Private : -1;
}
