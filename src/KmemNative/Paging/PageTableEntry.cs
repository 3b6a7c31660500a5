namespace KmemNative.Paging;

/// <summary>
/// One 32-bit entry of 2-level (non-PAE) paging: a PDE (level 2, pointing to a page table or, with CR4.PSE and
/// PS set, mapping a 4 MiB page) or a PTE (level 1, mapping a 4 KiB page). A view over the raw value, as the CPU
/// reads it; <c>pte_t</c>/<c>pmd_t</c> of an i386 kernel without PAE.
/// </summary>
/// <remarks>
/// Intel SDM Vol. 3A Tables 4-4..4-6. A 4 MiB PDE carries physical address bits 31:22 in bits 31:22 and, with
/// PSE-36, bits 39:32 in bits 20:13 (MAXPHYADDR 40 here); bit 21 is reserved; bit 12 is PAT.
/// </remarks>
/// <param name="Value">The raw entry.</param>
public readonly record struct Pte32(uint Value)
{
    /// <summary>Bits 31:12 of a 4 KiB PTE or a table PDE: the frame / table address.</summary>
    public const uint FrameMask = 0xffff_f000;

    /// <summary>Bits 31:22 of a 4 MiB PDE: physical address bits 31:22.</summary>
    public const uint LargeFrameMask = 0xffc0_0000;

    /// <summary>Bits 20:13 of a 4 MiB PDE: physical address bits 39:32 (PSE-36).</summary>
    public const uint Pse36Mask = 0x001f_e000;

    /// <summary>Bit 21 of a 4 MiB PDE: reserved (MAXPHYADDR 40).</summary>
    public const uint LargeReservedMask = 1u << 21;

    private bool Bit(int n) => (Value & (1u << n)) != 0;

    /// <summary>P (bit 0).</summary>
    public bool Present => Bit(0);
    /// <summary>R/W (bit 1).</summary>
    public bool Writable => Bit(1);
    /// <summary>U/S (bit 2).</summary>
    public bool User => Bit(2);
    /// <summary>PWT (bit 3).</summary>
    public bool WriteThrough => Bit(3);
    /// <summary>PCD (bit 4).</summary>
    public bool CacheDisable => Bit(4);
    /// <summary>A (bit 5).</summary>
    public bool Accessed => Bit(5);
    /// <summary>D (bit 6; meaningful in leaves).</summary>
    public bool Dirty => Bit(6);
    /// <summary>PS (bit 7) of a PDE: a 4 MiB page when CR4.PSE is set.</summary>
    public bool PageSize => Bit(7);
    /// <summary>G (bit 8; leaves).</summary>
    public bool Global => Bit(8);
    /// <summary>Bits 11:9, ignored by the CPU (Linux's software bits).</summary>
    public int Software => (int)((Value >> 9) & 7);

    /// <summary>The PAT bit: bit 7 in a 4 KiB PTE (level 1), bit 12 in a 4 MiB PDE (level 2).</summary>
    public bool Pat(int level) => level == 1 ? Bit(7) : Bit(12);

    /// <summary>The PAT/PCD/PWT cache-mode index (0..7) of a leaf at <paramref name="level"/>.</summary>
    public int CacheIndex(int level) => (Pat(level) ? 4 : 0) | (CacheDisable ? 2 : 0) | (WriteThrough ? 1 : 0);

    /// <summary>True when the entry maps a page at <paramref name="level"/> (1 = PTE, 2 = PDE) with <paramref name="pse"/> = CR4.PSE.</summary>
    public bool IsLeaf(int level, bool pse = true) => Present && (level == 1 || (level == 2 && pse && PageSize));

    /// <summary>The next table's physical address (a non-leaf PDE) or the 4 KiB frame (a PTE): bits 31:12.</summary>
    public ulong TableAddress => Value & FrameMask;

    /// <summary>Physical address of the page a leaf maps: bits 31:12, or for a 4 MiB page bits 31:22 plus PSE-36 bits 39:32.</summary>
    public ulong FrameAddress(int level, bool pse = true) =>
        level == 2 && pse && PageSize
            ? (Value & LargeFrameMask) | ((ulong)((Value & Pse36Mask) >> 13) << 32)
            : Value & FrameMask;

    /// <summary>The page frame number the entry points at (for a large leaf, of its first 4 KiB page).</summary>
    public ulong Pfn(int level, bool pse = true) => FrameAddress(level, pse) >> 12;

    /// <summary>The flag bits (<c>pte_flags()</c>): everything outside the 4 KiB frame mask.</summary>
    public PteFlags Flags => (PteFlags)(Value & ~FrameMask);

    /// <summary>An entry mapping <paramref name="phys"/> with <paramref name="flags"/>; a 4 MiB leaf when <paramref name="flags"/> has PSE at level 2.</summary>
    /// <exception cref="ArgumentException">The address does not fit or is misaligned for the page size.</exception>
    public static Pte32 Make(ulong phys, PteFlags flags, int level = 1)
    {
        ulong f = (ulong)flags;
        if ((f >> 32) != 0)
            throw new ArgumentException("a 2-level entry has no bits above 31 (no NX, protection keys or software bits 57-58)", nameof(flags));
        if (level == 2 && (flags & PteFlags.Pse) != 0)
        {
            if ((phys & ((4UL << 20) - 1)) != 0 || phys >= 1UL << 40)
                throw new ArgumentException($"0x{phys:x} is not a 4 MiB-aligned address below 2^40", nameof(phys));
            return new((uint)(phys & LargeFrameMask) | (uint)((phys >> 32) << 13) | (uint)f);
        }
        if ((phys & 0xfff) != 0 || phys > FrameMask)
            throw new ArgumentException($"0x{phys:x} is not a page-aligned 32-bit address", nameof(phys));
        if ((f & FrameMask) != 0)
            throw new ArgumentException("flags overlap the address bits", nameof(flags));
        return new((uint)phys | (uint)f);
    }

    /// <summary>The entry with <paramref name="flags"/> set.</summary>
    public Pte32 With(PteFlags flags) => new(Value | (uint)(ulong)flags);

    /// <summary>The entry with <paramref name="flags"/> cleared.</summary>
    public Pte32 Without(PteFlags flags) => new(Value & ~(uint)(ulong)flags);

    /// <inheritdoc/>
    public override string ToString() => $"0x{Value:x8}";
}

/// <summary>
/// One 64-bit entry of 4-level (IA-32e) paging at any level: PML4E (pgd), PDPTE (pud, a 1 GiB leaf with PS),
/// PDE (pmd, a 2 MiB leaf with PS) or PTE. A view over the raw value; <c>pgd_t</c>..<c>pte_t</c> of x86-64.
/// </summary>
/// <remarks>
/// Intel SDM Vol. 3A Tables 4-14..4-20: address bits 51:12 (MAXPHYADDR 46 here: bits 51:46 reserved), bits 62:52
/// ignored by the CPU (Linux keeps software bits 57-58 and the protection key 62:59 there), bit 63 XD (NX).
/// </remarks>
/// <param name="Value">The raw entry.</param>
public readonly record struct Pte64(ulong Value)
{
    /// <summary>PTE_PFN_MASK: bits 51:12.</summary>
    public const ulong FrameMask = 0x000f_ffff_ffff_f000;

    /// <summary>Address mask of a 2 MiB leaf: bits 51:21.</summary>
    public const ulong Frame2MMask = 0x000f_ffff_ffe0_0000;

    /// <summary>Address mask of a 1 GiB leaf: bits 51:30.</summary>
    public const ulong Frame1GMask = 0x000f_ffff_c000_0000;

    private bool Bit(int n) => (Value & (1UL << n)) != 0;

    /// <summary>P (bit 0).</summary>
    public bool Present => Bit(0);
    /// <summary>R/W (bit 1).</summary>
    public bool Writable => Bit(1);
    /// <summary>U/S (bit 2).</summary>
    public bool User => Bit(2);
    /// <summary>PWT (bit 3).</summary>
    public bool WriteThrough => Bit(3);
    /// <summary>PCD (bit 4).</summary>
    public bool CacheDisable => Bit(4);
    /// <summary>A (bit 5).</summary>
    public bool Accessed => Bit(5);
    /// <summary>D (bit 6; meaningful in leaves).</summary>
    public bool Dirty => Bit(6);
    /// <summary>PS (bit 7) of a PDPTE or PDE: a 1 GiB or 2 MiB leaf (reserved in a PML4E).</summary>
    public bool PageSize => Bit(7);
    /// <summary>G (bit 8; leaves). Linux's _PAGE_PROTNONE when the entry is not present.</summary>
    public bool Global => Bit(8);
    /// <summary>Bits 11:9, ignored by the CPU (Linux: SPECIAL, UFFD_WP, SOFT_DIRTY).</summary>
    public int SoftwareLow => (int)((Value >> 9) & 7);
    /// <summary>Bits 58:57 (Linux: _PAGE_SOFTW4, _PAGE_SOFTW5 / SAVED_DIRTY).</summary>
    public int SoftwareHigh => (int)((Value >> 57) & 3);
    /// <summary>Bits 62:59: the protection key (used when CR4.PKE is set).</summary>
    public int ProtectionKey => (int)((Value >> 59) & 0xf);
    /// <summary>XD (bit 63): execute disable, when EFER.NXE is set.</summary>
    public bool NoExecute => Bit(63);

    /// <summary>The PAT bit: bit 7 in a 4 KiB PTE (level 1), bit 12 in a 2 MiB/1 GiB leaf.</summary>
    public bool Pat(int level) => level == 1 ? Bit(7) : Bit(12);

    /// <summary>The PAT/PCD/PWT cache-mode index (0..7) of a leaf at <paramref name="level"/>.</summary>
    public int CacheIndex(int level) => (Pat(level) ? 4 : 0) | (CacheDisable ? 2 : 0) | (WriteThrough ? 1 : 0);

    /// <summary>True when the entry maps a page at <paramref name="level"/> (1 PTE, 2 PDE with PS, 3 PDPTE with PS).</summary>
    public bool IsLeaf(int level) => Present && (level == 1 || ((level == 2 || level == 3) && PageSize));

    /// <summary>The next table's physical address (or the 4 KiB frame): bits 51:12.</summary>
    public ulong TableAddress => Value & FrameMask;

    /// <summary>Physical address of the page a leaf at <paramref name="level"/> maps (bit 12 is PAT in a large leaf, not an address bit).</summary>
    public ulong FrameAddress(int level) =>
        !PageSize || level == 1 ? Value & FrameMask : level == 2 ? Value & Frame2MMask : Value & Frame1GMask;

    /// <summary>The page frame number (for a large leaf, of its first 4 KiB page).</summary>
    public ulong Pfn(int level) => FrameAddress(level) >> 12;

    /// <summary>The flag bits (<c>pte_flags()</c>): bits 11:0 and 63:52.</summary>
    public PteFlags Flags => (PteFlags)(Value & ~FrameMask);

    /// <summary>An entry mapping <paramref name="phys"/> with <paramref name="flags"/> (a large leaf when PSE is among them at level 2 or 3).</summary>
    /// <exception cref="ArgumentException">The address is misaligned for the page size or beyond 52 bits.</exception>
    public static Pte64 Make(ulong phys, PteFlags flags, int level = 1)
    {
        ulong f = (ulong)flags;
        bool large = level is 2 or 3 && (flags & PteFlags.Pse) != 0;
        ulong mask = !large ? FrameMask : level == 2 ? Frame2MMask : Frame1GMask;
        if ((phys & ~mask) != 0)
            throw new ArgumentException($"0x{phys:x} is not a {(large ? level == 2 ? "2 MiB" : "1 GiB" : "4 KiB")}-aligned address below 2^52", nameof(phys));
        ulong flagMask = large ? ~mask : ~FrameMask;
        if ((f & ~flagMask) != 0)
            throw new ArgumentException("flags overlap the address bits", nameof(flags));
        return new(phys | f);
    }

    /// <summary>The entry with <paramref name="flags"/> set.</summary>
    public Pte64 With(PteFlags flags) => new(Value | (ulong)flags);

    /// <summary>The entry with <paramref name="flags"/> cleared.</summary>
    public Pte64 Without(PteFlags flags) => new(Value & ~(ulong)flags);

    /// <summary>The entry with protection key <paramref name="key"/> (0..15).</summary>
    public Pte64 WithProtectionKey(int key) =>
        (uint)key <= 15 ? new((Value & ~(0xfUL << 59)) | ((ulong)key << 59)) : throw new ArgumentOutOfRangeException(nameof(key));

    /// <inheritdoc/>
    public override string ToString() => $"0x{Value:x16}";
}
