using System.Globalization;

namespace KmemNative.Paging;

/// <summary>What an access does: read data, write data, or fetch an instruction.</summary>
public enum MemoryAccess
{
    /// <summary>A data read.</summary>
    Read = 0,
    /// <summary>A data write.</summary>
    Write = 1,
    /// <summary>An instruction fetch.</summary>
    Execute = 2,
}

/// <summary>The privilege of an access: CPL 0 (the kernel) or CPL 3 (user space).</summary>
public enum PrivilegeMode
{
    /// <summary>CPL 0-2.</summary>
    Supervisor = 0,
    /// <summary>CPL 3.</summary>
    User = 1,
}

/// <summary>The exception an access raised.</summary>
public enum FaultKind
{
    /// <summary>#PF: a not-present entry, a protection violation or a reserved bit; CR2 holds the address.</summary>
    PageFault,
    /// <summary>#GP: a non-canonical address (x86-64) or one beyond 32 bits (i386); no CR2.</summary>
    GeneralProtection,
    /// <summary>
    /// #MC: a paging-structure entry led outside installed RAM. A real machine would take a machine check or read
    /// garbage from the bus; the emulator never touches host memory outside the arena and raises this instead.
    /// </summary>
    MachineCheck,
}

/// <summary>One fault, as the CPU reports it (the error code, CR2) plus where the walk stopped.</summary>
/// <param name="Kind">#PF, #GP or #MC.</param>
/// <param name="Address">The faulting linear address (CR2 for a #PF).</param>
/// <param name="ErrorCode">The #PF error code (0 for #GP and #MC).</param>
/// <param name="Access">The access that faulted.</param>
/// <param name="Mode">Its privilege.</param>
/// <param name="Level">The hardware level whose entry stopped the walk (1 = PTE ... 4 = PML4E; 0 when none).</param>
/// <param name="Entry">The value of that entry (0 when none).</param>
/// <param name="Physical">For #MC: the physical address outside RAM.</param>
public readonly record struct PageFault(
    FaultKind Kind, ulong Address, PfErrorCode ErrorCode, MemoryAccess Access, PrivilegeMode Mode, int Level, ulong Entry, ulong Physical)
{
    /// <summary>CR2: the faulting address for a #PF.</summary>
    public ulong Cr2 => Kind == FaultKind.PageFault ? Address : 0;

    /// <summary>True for a not-present fault (X86_PF_PROT clear): what demand paging resolves.</summary>
    public bool NotPresent => Kind == FaultKind.PageFault && (ErrorCode & PfErrorCode.Prot) == 0;

    /// <summary>The kernel's oops lines for this fault (arch/x86/mm/fault.c show_fault_oops()).</summary>
    public string Report()
    {
        var ci = CultureInfo.InvariantCulture;
        switch (Kind)
        {
            case FaultKind.GeneralProtection:
                return string.Create(ci, $"general protection fault, probably for non-canonical address 0x{Address:x}: 0000");
            case FaultKind.MachineCheck:
                return string.Create(ci, $"machine check: physical address 0x{Physical:x} is not RAM (reached through the level-{Level} entry 0x{Entry:x} for address 0x{Address:x})");
        }
        string who = Mode == PrivilegeMode.User ? "user" : "supervisor";
        string what = (ErrorCode & PfErrorCode.Instr) != 0 ? "instruction fetch"
            : (ErrorCode & PfErrorCode.Write) != 0 ? "write access" : "read access";
        string why = (ErrorCode & PfErrorCode.Prot) == 0 ? "not-present page"
            : (ErrorCode & PfErrorCode.Rsvd) != 0 ? "reserved bit violation"
            : (ErrorCode & PfErrorCode.Pk) != 0 ? "protection keys violation"
            : "permissions violation";
        return string.Create(ci,
            $"BUG: unable to handle page fault for address: 0x{Address:x}\n#PF: {who} {what} in {(Mode == PrivilegeMode.User ? "user" : "kernel")} mode\n#PF: error_code(0x{(uint)ErrorCode:x4}) - {why}");
    }

    /// <summary>The report on one line.</summary>
    public override string ToString() => Report().Replace("\n", "; ", StringComparison.Ordinal);
}

/// <summary>An access through the MMU faulted and no handler resolved it (the kernel would oops or send SIGSEGV).</summary>
public sealed class PageFaultException(PageFault fault) : KmemException(fault.ToString())
{
    /// <summary>The fault.</summary>
    public PageFault Fault { get; } = fault;

    /// <summary>CR2 / the faulting address.</summary>
    public ulong Address => Fault.Address;
}

/// <summary>What a page-fault handler did.</summary>
public enum FaultResolution
{
    /// <summary>Nothing: the fault stands (the access fails with <see cref="PageFaultException"/>).</summary>
    Unhandled,
    /// <summary>The handler fixed the page tables: the MMU walks again and retries the access.</summary>
    Retry,
}

/// <summary>
/// The #PF handler of an address space (the kernel's handle_mm_fault() entry point, exc_page_fault()): the MMU
/// calls it with the CPU and the fault, and walks again when it returns <see cref="FaultResolution.Retry"/>.
/// Demand paging and copy-on-write hook in here.
/// </summary>
/// <param name="cpu">The CPU that faulted (its <see cref="Cpu.ActiveMm"/> is the address space).</param>
/// <param name="fault">The fault with its error code and CR2.</param>
public delegate FaultResolution PageFaultHandler(Cpu cpu, in PageFault fault);

/// <summary>A mapping request the page tables cannot take: misaligned, overlapping, outside the area, or no memory for a table.</summary>
public sealed class MappingException(string message, ulong address) : KmemException(message)
{
    /// <summary>The virtual address concerned.</summary>
    public ulong Address { get; } = address;
}

/// <summary>The TLB returned a translation that no longer matches the page tables (debug mode's cross-check).</summary>
public sealed class TlbCoherenceException(string message, ulong address) : KmemException(message)
{
    /// <summary>The virtual address whose cached translation is stale.</summary>
    public ulong Address { get; } = address;
}
