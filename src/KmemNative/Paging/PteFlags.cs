namespace KmemNative.Paging;

/// <summary>
/// The bits of an x86 page-table entry (<c>_PAGE_*</c> in arch/x86/include/asm/pgtable_types.h), as 64-bit masks.
/// A 2-level (i386) entry is the low 32 bits of the same layout: it has no NX, software bits 57-58 or protection keys.
/// </summary>
/// <remarks>
/// Bit 7 means PSE (a large leaf) in a PDE/PDPTE and PAT in a 4 KiB PTE; a large leaf keeps its PAT bit in bit 12
/// (<see cref="PatLarge"/>), which is an address bit everywhere else.
/// </remarks>
[Flags]
public enum PteFlags : ulong
{
    /// <summary>No bit.</summary>
    None = 0,
    /// <summary>_PAGE_PRESENT (bit 0): the entry is valid.</summary>
    Present = 1UL << 0,
    /// <summary>_PAGE_RW (bit 1): writable.</summary>
    Rw = 1UL << 1,
    /// <summary>_PAGE_USER (bit 2): user-accessible (U/S).</summary>
    User = 1UL << 2,
    /// <summary>_PAGE_PWT (bit 3): write-through.</summary>
    Pwt = 1UL << 3,
    /// <summary>_PAGE_PCD (bit 4): cache disable.</summary>
    Pcd = 1UL << 4,
    /// <summary>_PAGE_ACCESSED (bit 5): set by the CPU when the entry is used.</summary>
    Accessed = 1UL << 5,
    /// <summary>_PAGE_DIRTY (bit 6): set by the CPU on a write through a leaf.</summary>
    Dirty = 1UL << 6,
    /// <summary>_PAGE_PSE (bit 7) in a PDE/PDPTE: the entry is a large leaf (4 MiB, 2 MiB or 1 GiB).</summary>
    Pse = 1UL << 7,
    /// <summary>_PAGE_PAT (bit 7) in a 4 KiB PTE: the PAT index bit.</summary>
    Pat = 1UL << 7,
    /// <summary>_PAGE_GLOBAL (bit 8): survives CR3 writes when CR4.PGE is set; _PAGE_PROTNONE when not present.</summary>
    Global = 1UL << 8,
    /// <summary>_PAGE_SOFTW1 (bit 9): software (Linux: _PAGE_SPECIAL).</summary>
    Softw1 = 1UL << 9,
    /// <summary>_PAGE_SOFTW2 (bit 10): software (Linux: _PAGE_UFFD_WP on x86-64).</summary>
    Softw2 = 1UL << 10,
    /// <summary>_PAGE_SOFTW3 (bit 11): software (Linux: _PAGE_SOFT_DIRTY).</summary>
    Softw3 = 1UL << 11,
    /// <summary>_PAGE_PAT_LARGE (bit 12): the PAT index bit of a large leaf.</summary>
    PatLarge = 1UL << 12,
    /// <summary>_PAGE_SOFTW4 (bit 57, x86-64): software (formerly _PAGE_DEVMAP).</summary>
    Softw4 = 1UL << 57,
    /// <summary>_PAGE_SOFTW5 (bit 58, x86-64): software (_PAGE_SAVED_DIRTY).</summary>
    Softw5 = 1UL << 58,
    /// <summary>_PAGE_PKEY_BIT0 (bit 59).</summary>
    Pkey0 = 1UL << 59,
    /// <summary>_PAGE_PKEY_BIT1 (bit 60).</summary>
    Pkey1 = 1UL << 60,
    /// <summary>_PAGE_PKEY_BIT2 (bit 61).</summary>
    Pkey2 = 1UL << 61,
    /// <summary>_PAGE_PKEY_BIT3 (bit 62).</summary>
    Pkey3 = 1UL << 62,
    /// <summary>_PAGE_NX (bit 63, PAE and 64-bit only): execute disable (needs EFER.NXE).</summary>
    Nx = 1UL << 63,
}

/// <summary>
/// The kernel's composite protections (<c>pgprot_t</c> values, pgtable_types.h), as 64-bit values. The kernel masks
/// them with <c>__supported_pte_mask</c> before use (massage_pgprot()), which on a 2-level i386 removes NX; the
/// mapping functions here do the same.
/// </summary>
public static class PageProt
{
    /// <summary>_PAGE_TABLE: a non-leaf entry pointing to a table (P|RW|USER|A|D): 0x067.</summary>
    public const ulong PageTable = (ulong)(PteFlags.Present | PteFlags.Rw | PteFlags.User | PteFlags.Accessed | PteFlags.Dirty);

    /// <summary>_KERNPG_TABLE: a kernel-only non-leaf entry (P|RW|A|D): 0x063.</summary>
    public const ulong KernPgTable = (ulong)(PteFlags.Present | PteFlags.Rw | PteFlags.Accessed | PteFlags.Dirty);

    /// <summary>__PAGE_KERNEL_EXEC: P|RW|A|D|G = 0x163.</summary>
    public const ulong KernelExec = KernPgTable | (ulong)PteFlags.Global;

    /// <summary>PAGE_KERNEL: __PAGE_KERNEL_EXEC | NX = 0x8000000000000163.</summary>
    public const ulong Kernel = KernelExec | (ulong)PteFlags.Nx;

    /// <summary>PAGE_KERNEL_RO: P|A|D|G|NX = 0x8000000000000161.</summary>
    public const ulong KernelRo = Kernel & ~(ulong)PteFlags.Rw;

    /// <summary>PAGE_KERNEL_RX: P|A|D|G = 0x161.</summary>
    public const ulong KernelRx = KernelExec & ~(ulong)PteFlags.Rw;

    /// <summary>PAGE_KERNEL_LARGE: PAGE_KERNEL | PSE = 0x80000000000001e3.</summary>
    public const ulong KernelLarge = Kernel | (ulong)PteFlags.Pse;

    /// <summary>PAGE_KERNEL_LARGE_EXEC: __PAGE_KERNEL_EXEC | PSE = 0x1e3.</summary>
    public const ulong KernelLargeExec = KernelExec | (ulong)PteFlags.Pse;

    /// <summary>PAGE_KERNEL_VSYSCALL: RX | USER = 0x165.</summary>
    public const ulong KernelVsyscall = KernelRx | (ulong)PteFlags.User;

    /// <summary>PAGE_SHARED: P|RW|USER|A|NX = 0x8000000000000027.</summary>
    public const ulong Shared = (ulong)(PteFlags.Present | PteFlags.Rw | PteFlags.User | PteFlags.Accessed | PteFlags.Nx);

    /// <summary>PAGE_SHARED_EXEC: P|RW|USER|A = 0x027.</summary>
    public const ulong SharedExec = Shared & ~(ulong)PteFlags.Nx;

    /// <summary>PAGE_READONLY / PAGE_COPY: P|USER|A|NX = 0x8000000000000025.</summary>
    public const ulong ReadOnly = Shared & ~(ulong)PteFlags.Rw;

    /// <summary>PAGE_READONLY_EXEC: P|USER|A = 0x025.</summary>
    public const ulong ReadOnlyExec = ReadOnly & ~(ulong)PteFlags.Nx;

    /// <summary>PAGE_NONE: PROTNONE|A (not present, bit 8 set) = 0x120.</summary>
    public const ulong None = (ulong)(PteFlags.Global | PteFlags.Accessed);
}

/// <summary>The page-fault error code pushed by the CPU (<c>enum x86_pf_error_code</c>, arch/x86/include/asm/trap_pf.h).</summary>
[Flags]
public enum PfErrorCode : uint
{
    /// <summary>0: a read from a not-present page in supervisor mode.</summary>
    None = 0,
    /// <summary>X86_PF_PROT: 0 = page not present, 1 = protection violation (or reserved bit) on a present entry.</summary>
    Prot = 1 << 0,
    /// <summary>X86_PF_WRITE: the access was a write.</summary>
    Write = 1 << 1,
    /// <summary>X86_PF_USER: the access came from user mode (CPL 3).</summary>
    User = 1 << 2,
    /// <summary>X86_PF_RSVD: a reserved bit was set in a paging-structure entry.</summary>
    Rsvd = 1 << 3,
    /// <summary>X86_PF_INSTR: an instruction fetch (reported only with NX enabled).</summary>
    Instr = 1 << 4,
    /// <summary>X86_PF_PK: a protection-key violation.</summary>
    Pk = 1 << 5,
    /// <summary>X86_PF_SHSTK: a shadow-stack access.</summary>
    Shstk = 1 << 6,
}
