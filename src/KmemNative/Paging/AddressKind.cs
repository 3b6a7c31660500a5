namespace KmemNative.Paging;

/// <summary>What a virtual address is, in the kernel's vocabulary (Documentation/arch/x86/x86_64/mm.rst, the i386 layout).</summary>
public enum AddressKind
{
    /// <summary>User space: below TASK_SIZE (PAGE_OFFSET on i386, 128 TiB on x86-64).</summary>
    User,
    /// <summary>Not a canonical address (x86-64 bits 63:47 differ) or beyond 32 bits (i386): #GP on access.</summary>
    NonCanonical,
    /// <summary>A logical address: the linear (direct) map, PAGE_OFFSET + physical; __pa()/virt_to_page() work.</summary>
    Logical,
    /// <summary>The vmalloc area: virtually contiguous, physically scattered pages (vmalloc, vmap, ioremap).</summary>
    Vmalloc,
    /// <summary>The persistent kmap window (i386 HIGHMEM): kmap().</summary>
    Pkmap,
    /// <summary>The fixmap: compile-time slots, among them kmap_local/kmap_atomic (i386).</summary>
    Fixmap,
    /// <summary>The kernel text mapping at __START_KERNEL_map (x86-64).</summary>
    KernelText,
    /// <summary>The module area (x86-64).</summary>
    Modules,
    /// <summary>The vmemmap: the struct page array (x86-64).</summary>
    Vmemmap,
    /// <summary>The cpu_entry_area.</summary>
    CpuEntryArea,
    /// <summary>The LDT remap.</summary>
    LdtRemap,
    /// <summary>The ESPfix stacks (x86-64).</summary>
    Espfix,
    /// <summary>EFI runtime services (x86-64).</summary>
    Efi,
    /// <summary>The hypervisor guard hole at the start of the x86-64 kernel half.</summary>
    GuardHole,
    /// <summary>A kernel address in no area: a gap (the 8 MiB after lowmem, unused holes).</summary>
    Unused,
}

/// <summary>One ptdump marker: where an area starts and its name (arch/x86/mm/dump_pagetables.c address_markers[]).</summary>
/// <param name="Start">First address of the area.</param>
/// <param name="Name">The name printed as <c>---[ Name ]---</c>.</param>
/// <param name="MaxLines">Lines printed before "... N entries skipped ..." (0 = no limit).</param>
public readonly record struct AddressMarker(ulong Start, string Name, int MaxLines = 0);

/// <summary>One area of the kernel's virtual address map.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Start">First address.</param>
/// <param name="End">One past the last address (0 when it runs to the top of the address space).</param>
public readonly record struct KernelArea(AddressKind Kind, ulong Start, ulong End)
{
    /// <summary>True when <paramref name="va"/> lies inside.</summary>
    public bool Contains(ulong va) => va >= Start && (End == 0 || va < End);
}
