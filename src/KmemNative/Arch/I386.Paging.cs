using System.Runtime.CompilerServices;
using KmemNative.Paging;

namespace KmemNative.Arch;

// 32-bit 2-level paging (arch/x86/include/asm/pgtable-2level*.h; Intel SDM Vol. 3A section 4.3).
public readonly unsafe partial struct I386
{
    /// <inheritdoc/>
    public static PagingMode Mode => PagingMode.TwoLevel;
    /// <inheritdoc/>
    public static int PagingLevels => 2;
    /// <inheritdoc/>
    public static int PteShift => 2;
    /// <inheritdoc/>
    public static int IndexBits => 10;
    /// <inheritdoc/>
    public static int TopLevelIndexBits => 10;
    /// <inheritdoc/>
    public static int VirtualAddressBits => 32;
    /// <inheritdoc/>
    public static int PhysAddrBits => 40;
    /// <inheritdoc/>
    public static ulong PtePfnMask => 0xffff_f000;
    /// <inheritdoc/>
    public static ulong SupportedPteMask => 0xffff_ffff; // _PAGE_NX is 0 without PAE
    /// <inheritdoc/>
    public static int LargeLeafLevels => 1 << 2;
    /// <inheritdoc/>
    public static bool PseNeedsCr4 => true;
    /// <inheritdoc/>
    public static int KernelPgdBoundary => 768; // pgd_index(PAGE_OFFSET) = 0xC0000000 >> 22
    /// <inheritdoc/>
    public static ulong TaskSizeMax => 0xC000_0000; // TASK_SIZE = PAGE_OFFSET

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LoadPte(byte* p) => *(uint*)p;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePte(byte* p, ulong value) => Volatile.Write(ref *(uint*)p, (uint)value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CmpXchgPte(byte* p, ulong expected, ulong value) =>
        Interlocked.CompareExchange(ref *(uint*)p, (uint)value, (uint)expected) == (uint)expected;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LargePageFrame(ulong entry, int level) =>
        (entry & Pte32.LargeFrameMask) | (((entry & Pte32.Pse36Mask) >> 13) << 32);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReservedBits(int level, bool largeLeaf, bool nxe) =>
        largeLeaf ? Pte32.LargeReservedMask : 0; // 32-bit paging has no reserved bits elsewhere

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCanonical(ulong va) => va <= uint.MaxValue;

    /// <inheritdoc/>
    public static int PtdumpLevel(int level) => level == 1 ? 4 : 3;

    /// <inheritdoc/>
    public static int LinuxLevel(int linuxLevel) => linuxLevel == 4 ? 1 : 2;
}
