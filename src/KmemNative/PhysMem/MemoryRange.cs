namespace KmemNative.PhysMem;

/// <summary>A physical address range [Start, End), as memblock and e820 keep them.</summary>
/// <param name="Start">First byte.</param>
/// <param name="End">First byte after the range.</param>
public readonly record struct MemoryRange(ulong Start, ulong End)
{
    /// <summary>Length in bytes.</summary>
    public ulong Size => End - Start;

    /// <summary>First page frame (Start rounded up).</summary>
    public ulong StartPfn => (Start + PageSize.Bytes - 1) >> PageSize.Shift;

    /// <summary>First page frame after the range (End rounded down).</summary>
    public ulong EndPfn => End >> PageSize.Shift;

    /// <summary>True when <paramref name="phys"/> lies inside.</summary>
    public bool Contains(ulong phys) => phys >= Start && phys < End;

    /// <inheritdoc/>
    public override string ToString() => $"[mem {Start:x}-{End - 1:x}]";
}

/// <summary>PAGE_SIZE and friends (arch/x86/include/asm/page_types.h): 4 KiB pages on both profiles.</summary>
public static class PageSize
{
    /// <summary>PAGE_SHIFT.</summary>
    public const int Shift = 12;

    /// <summary>PAGE_SIZE.</summary>
    public const ulong Bytes = 1UL << Shift;

    /// <summary>PAGE_SIZE as an int, for spans.</summary>
    public const int Int = 1 << Shift;

    /// <summary>MAX_PAGE_ORDER: largest buddy order (blocks of 1024 pages = 4 MiB).</summary>
    public const int MaxOrder = 10;

    /// <summary>NR_PAGE_ORDERS.</summary>
    public const int NrOrders = MaxOrder + 1;

    /// <summary>PAGE_ALLOC_COSTLY_ORDER: orders above this are "costly".</summary>
    public const int CostlyOrder = 3;

    /// <summary>get_order(): the smallest order whose block holds <paramref name="size"/> bytes (size &gt; 0).</summary>
    public static int GetOrder(ulong size)
    {
        if (size <= Bytes)
            return 0;
        ulong pages = (size + Bytes - 1) >> Shift;
        return 64 - System.Numerics.BitOperations.LeadingZeroCount(pages - 1);
    }
}
