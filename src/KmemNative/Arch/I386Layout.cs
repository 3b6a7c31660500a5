namespace KmemNative.Arch;

/// <summary>
/// The i386 kernel virtual address map, computed the way arch/x86/include/asm/pgtable_32_areas.h and
/// fixmap.h compute it for a non-PAE HIGHMEM kernel, from top down: fixmap, CPU entry area, LDT remap,
/// pkmap, vmalloc; and from it MAXMEM, the lowmem limit.
/// </summary>
/// <remarks>
/// Kernel configuration assumed (documented so the numbers can be re-derived): NR_CPUS 8, X86_LOCAL_APIC,
/// X86_IO_APIC with MAX_IO_APICS 64, KM_MAX_IDX 16 kmap_local slots per CPU, PCI_MMCONFIG, CPU_SUP_INTEL
/// (40 pages of cpu_entry_area per CPU), __FIXADDR_TOP 0xfffff000, __VMALLOC_RESERVE 128 MiB.
/// With these, lowmem ends at physical 0x36ffe000 (879 MiB) — the "≈896 MiB" of textbooks minus the
/// fixmap/pkmap tail of a modern kernel.
/// </remarks>
public static class I386Layout
{
    /// <summary>PAGE_OFFSET (VMSPLIT_3G).</summary>
    public const uint PageOffset = 0xC000_0000;
    /// <summary>PMD_SIZE on 2-level paging: one page directory entry maps 4 MiB.</summary>
    public const uint PmdSize = 4u << 20;
    /// <summary>PMD_MASK.</summary>
    public const uint PmdMask = ~(PmdSize - 1);
    /// <summary>__FIXADDR_TOP.</summary>
    public const uint FixaddrTop = 0xffff_f000;
    /// <summary>NR_CPUS of the emulated kernel build.</summary>
    public const int NrCpus = 8;
    /// <summary>KM_MAX_IDX (asm-generic/kmap_size.h): kmap_local slots per CPU.</summary>
    public const int KmMaxIdx = 16;
    /// <summary>MAX_IO_APICS on 32-bit.</summary>
    public const int MaxIoApics = 64;
    /// <summary>LAST_PKMAP: one page table of persistent kmaps (non-PAE).</summary>
    public const int LastPkmap = 1024;
    /// <summary>VMALLOC_OFFSET: the 8 MiB gap between lowmem and vmalloc.</summary>
    public const uint VmallocOffset = 8u << 20;
    /// <summary>__VMALLOC_RESERVE default.</summary>
    public const uint VmallocReserve = 128u << 20;
    /// <summary>Pages of struct cpu_entry_area per CPU (gdt 1 + entry stack 1 + tss 5 + debug store 1 + buffers 32).</summary>
    public const int CpuEntryAreaPagesPerCpu = 40;

    /// <summary>enum fixed_addresses index of FIX_KMAP_BEGIN (after FIX_HOLE, DBGP, EARLYCON, APIC, IO_APIC×64).</summary>
    public const int FixKmapBegin = 4 + MaxIoApics;

    /// <summary>__end_of_permanent_fixed_addresses: KMAP slots then FIX_PCIE_MCFG.</summary>
    public const int EndOfPermanentFixedAddresses = FixKmapBegin + KmMaxIdx * NrCpus + 1;

    private const int PtrsPerPte = 1024;

    /// <summary>FIX_BTMAP_END: the boot-time map slots start on a fresh page table if they would straddle one.</summary>
    public static int FixBtmapEnd
    {
        get
        {
            int e = EndOfPermanentFixedAddresses;
            return ((e ^ (e + 511)) & -PtrsPerPte) != 0 ? e + 512 - (e & 511) : e;
        }
    }

    /// <summary>__end_of_fixed_addresses.</summary>
    public static int EndOfFixedAddresses => FixBtmapEnd + 511 + 1;

    /// <summary>FIXADDR_START: bottom of the permanent fixmap.</summary>
    public static uint FixaddrStart => FixaddrTop - ((uint)EndOfPermanentFixedAddresses << 12);

    /// <summary>FIXADDR_TOT_START: bottom of the whole fixmap (with the boot-time slots).</summary>
    public static uint FixaddrTotStart => FixaddrTop - ((uint)EndOfFixedAddresses << 12);

    /// <summary>__fix_to_virt(idx).</summary>
    public static uint FixToVirt(int idx) => FixaddrTop - ((uint)idx << 12);

    /// <summary>CPU_ENTRY_AREA_PAGES.</summary>
    public const int CpuEntryAreaPages = NrCpus * CpuEntryAreaPagesPerCpu;

    /// <summary>CPU_ENTRY_AREA_BASE.</summary>
    public static uint CpuEntryAreaBase => (FixaddrTotStart - 4096u * (CpuEntryAreaPages + 1)) & PmdMask;

    /// <summary>CPU_ENTRY_AREA_MAP_SIZE: the read-only IDT page plus every CPU's area.</summary>
    public const uint CpuEntryAreaMapSize = 4096u + NrCpus * CpuEntryAreaPagesPerCpu * 4096u;

    /// <summary>LDT_BASE_ADDR: one PMD for the LDT remap.</summary>
    public static uint LdtBaseAddr => (CpuEntryAreaBase - 4096u) & PmdMask;

    /// <summary>PKMAP_BASE: the persistent kmap window.</summary>
    public static uint PkmapBase => (LdtBaseAddr - 4096u) & PmdMask;

    /// <summary>VMALLOC_END: two guard pages below the pkmap window.</summary>
    public static uint VmallocEnd => PkmapBase - 2 * 4096u;

    /// <summary>MAXMEM: the most physical memory the kernel maps permanently.</summary>
    public static uint MaxMem => VmallocEnd - PageOffset - VmallocReserve;

    /// <summary>MAXMEM_PFN: the lowmem limit as a page frame number.</summary>
    public static ulong MaxMemPfn => MaxMem >> 12;
}
