namespace KmemNative.Paging;

/// <summary>The x86 paging modes the profiles implement.</summary>
public enum PagingMode
{
    /// <summary>32-bit 2-level paging (i386 without PAE): 1024-entry tables of 4-byte entries, 4 MiB PSE pages.</summary>
    TwoLevel,

    /// <summary>IA-32e 4-level paging (x86-64): 512-entry tables of 8-byte entries, 2 MiB and 1 GiB pages, NX.</summary>
    FourLevel,
}

/// <summary>
/// The paging geometry and entry semantics of a profile, as static abstract members the JIT folds to constants in
/// code generic over the profile (<see cref="Arch.IArch"/> extends this interface).
/// </summary>
/// <remarks>
/// <para>Levels are numbered the way the hardware walks them, from the leaf up: 1 = PTE, 2 = PDE (pmd), 3 = PDPTE
/// (pud), 4 = PML4E, 5 = PML5E. The walker, the table builders, ptdump and vtop loop from
/// <see cref="PagingLevels"/> down to 1 using only these members, so another mode is another profile: PAE would be
/// 3 levels of 8-byte entries with <see cref="TopLevelIndexBits"/> 2 and 2 MiB leaves at level 2; LA57 5 levels of 9
/// index bits with <see cref="VirtualAddressBits"/> 57. Nothing that calls the walker changes.</para>
/// <para>Linux folds the levels a mode lacks (<c>p4d</c> on 4-level, <c>pud</c>/<c>pmd</c> on 2-level):
/// <see cref="LinuxLevel"/> maps a Linux level name to the hardware level that holds it.</para>
/// </remarks>
public unsafe interface IPagingProfile
{
    /// <summary>The paging mode.</summary>
    static abstract PagingMode Mode { get; }

    /// <summary>Number of hardware levels walked: 2 or 4.</summary>
    static abstract int PagingLevels { get; }

    /// <summary>log2(sizeof(pte_t)): 2 (4-byte entries) or 3 (8-byte entries).</summary>
    static abstract int PteShift { get; }

    /// <summary>Index bits per table: 10 (1024 entries) or 9 (512 entries).</summary>
    static abstract int IndexBits { get; }

    /// <summary>Index bits of the top-level table (PTRS_PER_PGD = 2^this): equal to <see cref="IndexBits"/> except on PAE.</summary>
    static abstract int TopLevelIndexBits { get; }

    /// <summary>Linear-address width: 32, or 48 (bits 63:47 must equal bit 47: canonical).</summary>
    static abstract int VirtualAddressBits { get; }

    /// <summary>MAXPHYADDR of the emulated CPU: 40 on i386 (PSE-36 reaches 2^40), 46 on x86-64.</summary>
    static abstract int PhysAddrBits { get; }

    /// <summary>PTE_PFN_MASK: the address bits of a 4 KiB PTE or a table pointer.</summary>
    static abstract ulong PtePfnMask { get; }

    /// <summary>__supported_pte_mask: the bits an entry may carry (no NX on 2-level).</summary>
    static abstract ulong SupportedPteMask { get; }

    /// <summary>Bit n set when a PS entry at hardware level n is a leaf (i386: 2; x86-64: 2 and 3).</summary>
    static abstract int LargeLeafLevels { get; }

    /// <summary>True when a PS leaf is honoured only with CR4.PSE (2-level); IA-32e always honours PS.</summary>
    static abstract bool PseNeedsCr4 { get; }

    /// <summary>KERNEL_PGD_BOUNDARY: the first top-level index of the kernel half (pgd_index(PAGE_OFFSET) on i386, 256 on x86-64).</summary>
    static abstract int KernelPgdBoundary { get; }

    /// <summary>TASK_SIZE_MAX: the end of user space.</summary>
    static abstract ulong TaskSizeMax { get; }

    /// <summary>READ_ONCE() of an entry.</summary>
    static abstract ulong LoadPte(byte* p);

    /// <summary>WRITE_ONCE() of an entry (set_pte and friends).</summary>
    static abstract void StorePte(byte* p, ulong value);

    /// <summary>Atomic compare-and-exchange of an entry, as the CPU updates Accessed/Dirty; true when it swapped.</summary>
    static abstract bool CmpXchgPte(byte* p, ulong expected, ulong value);

    /// <summary>Physical address of the page a PS leaf at <paramref name="level"/> maps (PSE-36 on 2-level).</summary>
    static abstract ulong LargePageFrame(ulong entry, int level);

    /// <summary>
    /// The bits that must be 0 in a present entry at <paramref name="level"/> (SDM "reserved"), for a large leaf or
    /// not, with EFER.NXE on or off; a set bit raises #PF with RSVD.
    /// </summary>
    static abstract ulong ReservedBits(int level, bool largeLeaf, bool nxe);

    /// <summary>True when <paramref name="va"/> is a canonical linear address of this mode.</summary>
    static abstract bool IsCanonical(ulong va);

    /// <summary>
    /// The level index the kernel's generic page walker (mm/ptdump.c, pagewalk) reports entries of hardware level
    /// <paramref name="level"/> at: 0 pgd, 1 p4d, 2 pud, 3 pmd, 4 pte. Folded levels report at the lowest Linux
    /// level they stand for (a 2-level PDE is a "pmd"; a 4-level PML4E is a "p4d" since pgd_none() is always false
    /// when 5-level support is compiled in but off).
    /// </summary>
    static abstract int PtdumpLevel(int level);

    /// <summary>The hardware level holding Linux level <paramref name="linuxLevel"/> (0 pgd .. 4 pte).</summary>
    static abstract int LinuxLevel(int linuxLevel);
}
