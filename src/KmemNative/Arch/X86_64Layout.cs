namespace KmemNative.Arch;

/// <summary>
/// The x86-64 kernel virtual address map with 4-level paging and KASLR off (Documentation/arch/x86/x86_64/mm.rst,
/// arch/x86/include/asm/page_64_types.h, pgtable_64_types.h, fixmap.h).
/// </summary>
/// <remarks>
/// Kernel configuration assumed: CONFIG_RANDOMIZE_MEMORY and RANDOMIZE_BASE off (fixed bases, KERNEL_IMAGE_SIZE
/// 512 MiB), MODIFY_LDT_SYSCALL, X86_ESPFIX64, EFI, no KASAN, X86_LOCAL_APIC, X86_IO_APIC (MAX_IO_APICS 128),
/// ACPI_APEI_GHES. Areas the emulator does not populate (LDT remap, cpu_entry_area, ESPfix, EFI, modules, fixmap)
/// still have their ptdump markers.
/// </remarks>
public static class X86_64Layout
{
    /// <summary>__PAGE_OFFSET_BASE_L4: the direct map of all RAM.</summary>
    public const ulong PageOffset = 0xffff_8880_0000_0000;
    /// <summary>GUARD_HOLE_BASE_ADDR: the hypervisor hole at the start of kernel space.</summary>
    public const ulong GuardHoleBase = 0xffff_8000_0000_0000;
    /// <summary>GUARD_HOLE_END_ADDR: 16 PGD entries (8 TiB) later.</summary>
    public const ulong GuardHoleEnd = 0xffff_8800_0000_0000;
    /// <summary>LDT_BASE_ADDR: the LDT remap for PTI (PGD entry -240).</summary>
    public const ulong LdtBaseAddr = 0xffff_8800_0000_0000;
    /// <summary>VMALLOC_START (__VMALLOC_BASE_L4).</summary>
    public const ulong VmallocStart = 0xffff_c900_0000_0000;
    /// <summary>VMALLOC_SIZE_TB_L4 = 32 TiB.</summary>
    public const ulong VmallocSize = 32UL << 40;
    /// <summary>VMALLOC_END: VMALLOC_START + VMALLOC_SIZE - 1 (inclusive, as the kernel defines it).</summary>
    public const ulong VmallocEnd = VmallocStart + VmallocSize - 1;
    /// <summary>VMEMMAP_START (__VMEMMAP_BASE_L4).</summary>
    public const ulong VmemmapStart = 0xffff_ea00_0000_0000;
    /// <summary>CPU_ENTRY_AREA_BASE (PGD entry -4).</summary>
    public const ulong CpuEntryAreaBase = 0xffff_fe00_0000_0000;
    /// <summary>ESPFIX_BASE_ADDR (PGD entry -2).</summary>
    public const ulong EspfixBaseAddr = 0xffff_ff00_0000_0000;
    /// <summary>EFI_VA_END: -68 GiB.</summary>
    public const ulong EfiVaEnd = 0xffff_ffef_0000_0000;
    /// <summary>__START_KERNEL_map: the kernel text mapping, which maps physical 0.</summary>
    public const ulong StartKernelMap = 0xffff_ffff_8000_0000;
    /// <summary>KERNEL_IMAGE_SIZE without KASLR: 512 MiB.</summary>
    public const ulong KernelImageSize = 512UL << 20;
    /// <summary>MODULES_VADDR: right after the kernel image space.</summary>
    public const ulong ModulesVaddr = StartKernelMap + KernelImageSize;
    /// <summary>MODULES_END.</summary>
    public const ulong ModulesEnd = 0xffff_ffff_ff00_0000;
    /// <summary>VSYSCALL_ADDR: the legacy vsyscall page.</summary>
    public const ulong VsyscallAddr = 0xffff_ffff_ff60_0000;
    /// <summary>FIXADDR_TOP: round_up(VSYSCALL_ADDR + PAGE_SIZE, PMD_SIZE) - PAGE_SIZE.</summary>
    public const ulong FixaddrTop = 0xffff_ffff_ff7f_f000;

    /// <summary>
    /// __end_of_permanent_fixed_addresses: VSYSCALL_PAGE (511) then FIX_DBGP_BASE, FIX_EARLYCON_MEM_BASE,
    /// FIX_APIC_BASE, 128 FIX_IO_APIC_BASE slots, FIX_APEI_GHES_IRQ and FIX_APEI_GHES_NMI.
    /// </summary>
    public const int EndOfPermanentFixedAddresses = 511 + 1 + 1 + 1 + 1 + 128 + 2;

    /// <summary>FIXADDR_START = FIXADDR_TOP - FIXADDR_SIZE.</summary>
    public const ulong FixaddrStart = FixaddrTop - ((ulong)EndOfPermanentFixedAddresses << 12);
}
