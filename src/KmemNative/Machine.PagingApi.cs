using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative;

// The paging subsystem's API (issue #4): address spaces, the MMU and its TLBs, the kernel's virtual mappings,
// address classification and the diagnostics. Implemented by Machine<TArch> (Machine.Paging.cs).
public abstract partial class Machine
{
    // ---- address spaces and CPU state ------------------------------------------------------------------

    /// <summary>init_mm: the kernel's page tables (swapper_pg_dir).</summary>
    public abstract AddressSpace InitMm { get; }

    /// <summary>pgd_alloc(): a new address space sharing the kernel half of swapper_pg_dir.</summary>
    /// <exception cref="KmemException">No memory for the page directory.</exception>
    public abstract AddressSpace CreateAddressSpace(Cpu cpu);

    /// <summary>pgd_alloc() on the calling thread's CPU.</summary>
    public AddressSpace CreateAddressSpace() => CreateAddressSpace(ThisCpu);

    /// <summary>switch_mm(): load <paramref name="mm"/>'s page directory into CR3 (non-global TLB entries go).</summary>
    public abstract void SwitchMm(Cpu cpu, AddressSpace mm);

    /// <summary>MOV to CR3 with a raw value; the CPU's address space becomes the one owning that directory, if any.</summary>
    /// <exception cref="PhysicalAddressException">The directory is not in RAM.</exception>
    public abstract void WriteCr3(Cpu cpu, ulong cr3);

    /// <summary>Sets CR0.WP, CR4.PGE, CR4.PSE and EFER.NXE (<see cref="PagingControl"/> bits) on a CPU; flushes its TLB.</summary>
    /// <exception cref="ArgumentException">Unknown bits, or NXE on 2-level paging.</exception>
    public abstract void SetPagingControl(Cpu cpu, uint bits);

    /// <summary>TLB debug mode: every TLB hit is checked against a fresh walk (a stale entry raises <see cref="TlbCoherenceException"/>).</summary>
    public abstract bool TlbDebug { get; set; }

    /// <summary>
    /// TLB statistics mode: hits are counted exactly (off by default: the hit path carries no counter; misses, walks,
    /// faults and flushes are always counted). Costs the hit path its speed while on.
    /// </summary>
    public abstract bool TlbStatistics { get; set; }

    // ---- the MMU ---------------------------------------------------------------------------------------

    /// <summary>Translates through <paramref name="cpu"/>'s TLB and page tables (with its fault handler); returns the physical address.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    public abstract ulong Translate(Cpu cpu, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>Non-throwing <see cref="Translate(Cpu, ulong, MemoryAccess, PrivilegeMode)"/>.</summary>
    public abstract bool TryTranslate(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode, out ulong phys, out PageFault fault);

    /// <summary>translate(cr3, va, access, mode): a walk of the tables at <paramref name="cr3"/>, no TLB (sets Accessed/Dirty).</summary>
    /// <exception cref="PageFaultException">The walk faulted.</exception>
    public abstract Translation TranslatePgd(ulong cr3, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>Reads bytes at a virtual address through the MMU (spans pages).</summary>
    /// <exception cref="PageFaultException">A page faulted.</exception>
    public abstract void ReadVirtual(Cpu cpu, ulong va, Span<byte> destination, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>Writes bytes at a virtual address through the MMU (spans pages).</summary>
    /// <exception cref="PageFaultException">A page faulted.</exception>
    public abstract void WriteVirtual(Cpu cpu, ulong va, ReadOnlySpan<byte> source, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>A 1/2/4/8-byte little-endian load at a virtual address.</summary>
    /// <exception cref="ArgumentException">A size other than 1, 2, 4 or 8.</exception>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    public abstract ulong ReadVirtualUInt(Cpu cpu, ulong va, int size, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>A 1/2/4/8-byte little-endian store at a virtual address.</summary>
    /// <exception cref="ArgumentException">A size other than 1, 2, 4 or 8.</exception>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    public abstract void WriteVirtualUInt(Cpu cpu, ulong va, int size, ulong value, PrivilegeMode mode = PrivilegeMode.Supervisor);

    /// <summary>copy_from_user(): returns the bytes not copied; <paramref name="faultAddress"/> is where it stopped.</summary>
    public abstract ulong CopyFromUser(Cpu cpu, Span<byte> to, ulong from, out ulong faultAddress);

    /// <summary>copy_to_user(): returns the bytes not copied; <paramref name="faultAddress"/> is where it stopped.</summary>
    public abstract ulong CopyToUser(Cpu cpu, ulong to, ReadOnlySpan<byte> from, out ulong faultAddress);

    /// <summary>invlpg on one CPU.</summary>
    public abstract void Invlpg(Cpu cpu, ulong va);

    /// <summary>flush_tlb_all(): every CPU, global entries included.</summary>
    public abstract void FlushTlbAll();

    /// <summary>flush_tlb_kernel_range(): [start, end) on every CPU.</summary>
    public abstract void FlushTlbKernelRange(ulong start, ulong end);

    // ---- kernel virtual mappings -----------------------------------------------------------------------

    /// <summary>vmalloc(): virtually contiguous kernel memory from scattered pages; 0 on failure.</summary>
    public abstract ulong Vmalloc(Cpu cpu, ulong size);

    /// <summary>vmalloc() on the calling thread's CPU.</summary>
    public ulong Vmalloc(ulong size) => Vmalloc(ThisCpu, size);

    /// <summary>vfree(): unmap a vmalloc area, flush TLBs, free its pages (0 is ignored).</summary>
    /// <exception cref="VirtualAddressException">Not the start of a vmalloc/vmap area.</exception>
    public abstract void Vfree(Cpu cpu, ulong addr);

    /// <summary>vfree() on the calling thread's CPU.</summary>
    public void Vfree(ulong addr) => Vfree(ThisCpu, addr);

    /// <summary>vmap(): map <paramref name="pages"/> contiguously in the vmalloc area with <paramref name="prot"/>; 0 when there is no room.</summary>
    /// <exception cref="MappingException">No pages, or a page not in RAM.</exception>
    public abstract ulong Vmap(Cpu cpu, IReadOnlyList<Page> pages, ulong prot);

    /// <summary>vunmap(): unmap a vmap area (pages stay allocated).</summary>
    /// <exception cref="VirtualAddressException">Not the start of a vmap area.</exception>
    public abstract void Vunmap(Cpu cpu, ulong addr);

    /// <summary>vmalloc_to_page(): the page behind a vmalloc-area address, or null.</summary>
    public abstract Page? VmallocToPage(ulong addr);

    /// <summary>The vmalloc/vmap areas in address order (/proc/vmallocinfo's content).</summary>
    public abstract IReadOnlyList<VmArea> VmallocAreas { get; }

    /// <summary>kmap(): a kernel address for any page (a pkmap slot for HIGHMEM).</summary>
    /// <exception cref="KmemException">Every pkmap slot is in use.</exception>
    public abstract ulong Kmap(Cpu cpu, Page page);

    /// <summary>kunmap().</summary>
    /// <exception cref="KmemException">The page is not kmap()ed.</exception>
    public abstract void Kunmap(Cpu cpu, Page page);

    /// <summary>kmap_flush_unused(): unmap the pkmap slots nobody uses any more.</summary>
    public abstract void KmapFlushUnused(Cpu cpu);

    /// <summary>kmap_local_page(): a CPU-local mapping through a fixmap slot (HIGHMEM) or page_address() (lowmem).</summary>
    /// <exception cref="KmemException">The CPU's slots are all in use.</exception>
    public abstract ulong KmapLocalPage(Cpu cpu, Page page);

    /// <summary>kunmap_local(): undo the innermost kmap_local_page() of the CPU.</summary>
    /// <exception cref="KmemException">Not the innermost mapping.</exception>
    public abstract void KunmapLocal(Cpu cpu, ulong addr);

    /// <summary>kmap_atomic(): kmap_local_page() with page faults and preemption disabled.</summary>
    public ulong KmapAtomic(Cpu cpu, Page page) => KmapLocalPage(cpu, page);

    /// <summary>kunmap_atomic().</summary>
    public void KunmapAtomic(Cpu cpu, ulong addr) => KunmapLocal(cpu, addr);

    // ---- the kernel's virtual address map --------------------------------------------------------------

    /// <summary>high_memory: the end of the linear map (lowmem).</summary>
    public abstract ulong HighMemory { get; }

    /// <summary>VMALLOC_START.</summary>
    public abstract ulong VmallocStart { get; }

    /// <summary>VMALLOC_END (exclusive).</summary>
    public abstract ulong VmallocEnd { get; }

    /// <summary>
    /// TASK_SIZE: the end of user space (exclusive). 0xc0000000 = PAGE_OFFSET on i386; 2^47 - 4096 on x86-64, whose
    /// last page below the non-canonical hole is never mapped (the SYSRET guard).
    /// </summary>
    public abstract ulong TaskSize { get; }

    /// <summary>The areas of the kernel's virtual address map.</summary>
    public abstract IReadOnlyList<KernelArea> KernelAreas { get; }

    /// <summary>ptdump's markers.</summary>
    public abstract IReadOnlyList<AddressMarker> PtdumpMarkers { get; }

    /// <summary>What a virtual address is (user, logical, vmalloc, pkmap, fixmap...).</summary>
    public abstract AddressKind ClassifyAddress(ulong va);

    /// <summary>True below TASK_SIZE.</summary>
    public bool IsUserAddress(ulong va) => ClassifyAddress(va) == AddressKind.User;

    /// <summary>True for a canonical address in the kernel half.</summary>
    public bool IsKernelAddress(ulong va) => ClassifyAddress(va) is not (AddressKind.User or AddressKind.NonCanonical);

    /// <summary>A logical address: linear-mapped RAM (virt_addr_valid()).</summary>
    public bool IsLogicalAddress(ulong va) => VirtAddrValid(va);

    /// <summary>A kernel virtual (not logical) address: vmalloc, pkmap or fixmap (is_vmalloc_addr() and the kmap windows).</summary>
    public bool IsVirtualAddress(ulong va) => ClassifyAddress(va) is AddressKind.Vmalloc or AddressKind.Pkmap or AddressKind.Fixmap;

    // ---- diagnostics -----------------------------------------------------------------------------------

    /// <summary>Walks <paramref name="va"/> in <paramref name="mm"/> (init_mm by default) level by level, changing nothing.</summary>
    public abstract PageWalk WalkPageTables(ulong va, AddressSpace? mm = null);

    /// <summary>crash's <c>vtop</c> output for <paramref name="va"/>.</summary>
    public abstract string Vtop(ulong va, AddressSpace? mm = null);

    /// <summary>
    /// The kernel's ptdump of <paramref name="mm"/>'s page tables (init_mm by default) and, when NX exists, the W+X
    /// check's count of writable and executable pages.
    /// </summary>
    public abstract (string Text, long WxPages) Ptdump(AddressSpace? mm = null);

    /// <summary>The W+X check's summary line as the kernel logs it, or null when the check cannot run (no NX on 2-level paging).</summary>
    public string? CheckWxLine(long wxPages) =>
        Arch == global::KmemNative.Arch.ArchKind.I386 ? null
        : wxPages == 0 ? "x86/mm: Checked W+X mappings: passed, no W+X pages found."
        : $"x86/mm: Checked W+X mappings: FAILED, {wxPages} W+X pages found.";
}
