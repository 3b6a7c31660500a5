using System.Runtime.CompilerServices;
using KmemNative.Arch;

namespace KmemNative.Reclaim;

/// <summary>
/// swp_entry_t, the arch-independent swap entry (include/linux/swapops.h): the device type in the top bits of an
/// xarray value (SWP_TYPE_SHIFT = BITS_PER_XA_VALUE - MAX_SWAPFILES_SHIFT) and the slot offset below. It is what
/// folio-&gt;swap (page-&gt;private of a swap-cache page) holds.
/// </summary>
internal static class SwpEntry
{
    /// <summary>MAX_SWAPFILES_SHIFT.</summary>
    public const int MaxSwapfilesShift = 5;

    /// <summary>SWP_TYPE_SHIFT for the profile: 58 with 64-bit longs, 26 with 32-bit.</summary>
    public static int TypeShift(int pointerSize) => pointerSize * 8 - 1 - MaxSwapfilesShift;

    /// <summary>swp_entry(type, offset).</summary>
    public static ulong Make<TArch>(int type, ulong offset) where TArch : struct, IArch =>
        ((ulong)type << TypeShift(TArch.PointerSize)) | (offset & ((1UL << TypeShift(TArch.PointerSize)) - 1));

    /// <summary>swp_type().</summary>
    public static int Type<TArch>(ulong entry) where TArch : struct, IArch => (int)(entry >> TypeShift(TArch.PointerSize));

    /// <summary>swp_offset().</summary>
    public static ulong Offset<TArch>(ulong entry) where TArch : struct, IArch => entry & ((1UL << TypeShift(TArch.PointerSize)) - 1);
}

/// <summary>
/// The x86 swap PTE formats (__swp_entry/__swp_type/__swp_offset and the software bits of non-present PTEs).
/// </summary>
/// <remarks>
/// x86-64 (arch/x86/include/asm/pgtable_64.h): TYPE in bits 59-63, the offset INVERTED in bits 9-58 (L1TF: a
/// non-present entry must not point at real memory), E (bit 3) = _PAGE_SWP_EXCLUSIVE, SD (bit 1) =
/// _PAGE_SWP_SOFT_DIRTY; P and bit 8 (PROT_NONE) clear. i386 2-level (pgtable-2level.h): TYPE in bits 1-5, the
/// offset in bits 9-31, E in bit 7 (_PAGE_PSE); no soft-dirty.
/// </remarks>
internal static class SwapPte<TArch> where TArch : struct, IArch
{
    private const int SwpTypeBits = 5;
    private const int SwpOffsetFirstBit = 9;                       // _PAGE_BIT_PROTNONE + 1
    private const int SwpOffsetShift64 = SwpOffsetFirstBit + SwpTypeBits;

    /// <summary>_PAGE_SWP_EXCLUSIVE: PG_anon_exclusive of the page that was unmapped.</summary>
    public static ulong Exclusive => TArch.Kind == ArchKind.X86_64 ? 1UL << 3 : 1UL << 7;

    /// <summary>_PAGE_SWP_SOFT_DIRTY (CONFIG_MEM_SOFT_DIRTY, x86-64 only).</summary>
    public static ulong SoftDirty => TArch.Kind == ArchKind.X86_64 ? 1UL << 1 : 0;

    /// <summary>is_swap_pte(): not none, not present, not a PROT_NONE entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsSwap(ulong pte) => pte != 0 && (pte & ((ulong)Paging.PteFlags.Present | (ulong)Paging.PteFlags.Global)) == 0;

    /// <summary>swp_entry_to_pte(): a generic swap entry as a PTE (without the software bits).</summary>
    public static ulong FromEntry(ulong entry)
    {
        int type = SwpEntry.Type<TArch>(entry);
        ulong offset = SwpEntry.Offset<TArch>(entry);
        if (TArch.Kind == ArchKind.X86_64)
            return ((~offset << SwpOffsetShift64) >> SwpTypeBits) | ((ulong)type << (64 - SwpTypeBits));
        return (((ulong)type & ((1UL << SwpTypeBits) - 1)) << 1) | (offset << SwpOffsetFirstBit);
    }

    /// <summary>pte_to_swp_entry(): the generic entry a swap PTE names (software bits ignored).</summary>
    public static ulong ToEntry(ulong pte)
    {
        int type;
        ulong offset;
        if (TArch.Kind == ArchKind.X86_64)
        {
            type = (int)(pte >> (64 - SwpTypeBits));
            offset = (~pte << SwpTypeBits) >> SwpOffsetShift64;
        }
        else
        {
            pte &= 0xffff_ffff;
            type = (int)((pte >> 1) & ((1UL << SwpTypeBits) - 1));
            offset = pte >> SwpOffsetFirstBit;
        }
        return SwpEntry.Make<TArch>(type, offset);
    }

    /// <summary>The largest offset the format can hold (the swap device is clamped to it, as in read_swap_header()).</summary>
    public static ulong MaxOffset => TArch.Kind == ArchKind.X86_64 ? (1UL << 50) - 1 : (1UL << 23) - 1;
}
