using System.Runtime.CompilerServices;
using KmemNative.Paging;

namespace KmemNative.Arch;

// IA-32e 4-level paging (arch/x86/include/asm/pgtable_64*.h; Intel SDM Vol. 3A section 4.5).
public readonly unsafe partial struct X86_64
{
    /// <summary>Bits 51:46: above MAXPHYADDR 46, reserved in every entry.</summary>
    private const ulong PhysReserved = 0x000f_c000_0000_0000;

    /// <inheritdoc/>
    public static PagingMode Mode => PagingMode.FourLevel;
    /// <inheritdoc/>
    public static int PagingLevels => 4;
    /// <inheritdoc/>
    public static int PteShift => 3;
    /// <inheritdoc/>
    public static int IndexBits => 9;
    /// <inheritdoc/>
    public static int TopLevelIndexBits => 9;
    /// <inheritdoc/>
    public static int VirtualAddressBits => 48;
    /// <inheritdoc/>
    public static int PhysAddrBits => 46;
    /// <inheritdoc/>
    public static ulong PtePfnMask => Pte64.FrameMask;
    /// <inheritdoc/>
    public static ulong SupportedPteMask => ulong.MaxValue;
    /// <inheritdoc/>
    public static int LargeLeafLevels => (1 << 2) | (1 << 3);
    /// <inheritdoc/>
    public static bool PseNeedsCr4 => false;
    /// <inheritdoc/>
    public static int KernelPgdBoundary => 256; // the upper half starts at PML4 index 256
    /// <inheritdoc/>
    public static ulong TaskSizeMax => (1UL << 47) - 4096;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LoadPte(byte* p) => *(ulong*)p;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StorePte(byte* p, ulong value) => Volatile.Write(ref *(ulong*)p, value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CmpXchgPte(byte* p, ulong expected, ulong value) =>
        Interlocked.CompareExchange(ref *(ulong*)p, value, expected) == expected;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong LargePageFrame(ulong entry, int level) =>
        entry & (level == 2 ? Pte64.Frame2MMask : Pte64.Frame1GMask);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReservedBits(int level, bool largeLeaf, bool nxe)
    {
        ulong r = PhysReserved | (nxe ? 0 : (ulong)PteFlags.Nx);
        if (level == 4)
            r |= (ulong)PteFlags.Pse;                 // PML4E: PS is reserved
        else if (largeLeaf)
            r |= level == 3 ? 0x3fff_e000UL : 0x1f_e000UL; // bits 29:13 (1 GiB) or 20:13 (2 MiB); bit 12 is PAT
        return r;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsCanonical(ulong va) => (ulong)((long)(va << 16) >> 16) == va;

    /// <inheritdoc/>
    public static int PtdumpLevel(int level) => 5 - level;

    /// <inheritdoc/>
    public static int LinuxLevel(int linuxLevel) => linuxLevel <= 1 ? 4 : 5 - linuxLevel;
}
