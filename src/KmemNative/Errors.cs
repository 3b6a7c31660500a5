using System.Diagnostics.CodeAnalysis;

namespace KmemNative;

/// <summary>Base of every error the emulator reports: bad input never crashes the host, it raises one of these.</summary>
public class KmemException : Exception
{
    /// <summary>Creates the exception.</summary>
    public KmemException(string message) : base(message) { }

    /// <summary>Creates the exception with an inner cause.</summary>
    public KmemException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A machine configuration the emulator cannot boot (memory size, CPU count, architecture).</summary>
public sealed class MachineConfigException(string message) : KmemException(message);

/// <summary>A physical address outside installed RAM or outside the arena.</summary>
public sealed class PhysicalAddressException(string message, ulong address) : KmemException(message)
{
    /// <summary>The offending physical address.</summary>
    public ulong Address { get; } = address;
}

/// <summary>A kernel virtual address that does not name what the call needs (not linear-mapped, not a page...).</summary>
public sealed class VirtualAddressException(string message, ulong address) : KmemException(message)
{
    /// <summary>The offending virtual address.</summary>
    public ulong Address { get; } = address;
}

/// <summary>A request the allocator rejects before touching any state: unknown GFP bits, bad zone modifiers, order &gt; MAX_PAGE_ORDER.</summary>
public sealed class InvalidAllocationException(string message) : KmemException(message);

/// <summary>A GFP string or number that does not parse.</summary>
public sealed class GfpFormatException(string message) : KmemException(message);

/// <summary>No emulated CPU is free for the calling thread.</summary>
public sealed class CpuUnavailableException(string message) : KmemException(message);

/// <summary>
/// The allocator found a page in a state it must not be in (the kernel's <c>bad_page()</c>): freeing a free page,
/// a reserved page, a tail page, with the wrong order, or a PFN outside RAM. The allocator's state is unchanged.
/// </summary>
public sealed class BadPageException : KmemException
{
    /// <summary>Creates the exception from a full kernel-style report.</summary>
    public BadPageException(ulong pfn, string reason, string report) : base(report)
    {
        Pfn = pfn;
        Reason = reason;
        Report = report;
    }

    /// <summary>The page frame number the report is about.</summary>
    public ulong Pfn { get; }

    /// <summary>The short reason (<c>page dumped because:</c> line).</summary>
    public string Reason { get; }

    /// <summary>The full multi-line report, as <c>bad_page()</c> prints it.</summary>
    public string Report { get; }
}

/// <summary>The consistency checker found the allocator's structures disagreeing with each other.</summary>
public sealed class ConsistencyException(string message) : KmemException(message);

/// <summary>Cold throw sites kept out of hot paths (the dotnet/runtime ThrowHelper pattern).</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowPhysicalAddress(ulong phys, ulong length, ulong size) =>
        throw new PhysicalAddressException(
            $"physical range 0x{phys:x}+0x{length:x} is outside the machine's memory (0x0-0x{size - 1:x})", phys);

    [DoesNotReturn]
    public static void ThrowNotRam(ulong phys, ulong length) =>
        throw new PhysicalAddressException($"physical range 0x{phys:x}+0x{length:x} is not RAM", phys);

    [DoesNotReturn]
    public static void ThrowDisposed() => throw new ObjectDisposedException("Machine", "the machine has been shut down");

    [DoesNotReturn]
    public static void ThrowInvalidOrder(int order) =>
        throw new InvalidAllocationException($"order {order} is outside 0..{PhysMem.PageSize.MaxOrder} (MAX_PAGE_ORDER)");

    [DoesNotReturn]
    public static void ThrowForeignPage() =>
        throw new KmemException("the page handle belongs to another machine");
}

/// <summary>
/// A __GFP_NOFAIL allocation that can never be satisfied: nothing is reclaimable and the OOM killer has no victim.
/// The kernel would loop forever; the emulator, which has nobody else to free memory, stops with this instead.
/// </summary>
public sealed class AllocationDeadlockException(string message) : KmemException(message);

/// <summary>
/// A blocking allocation (__GFP_DIRECT_RECLAIM) in atomic context on a machine with
/// <see cref="Machine.StrictMightSleep"/>: the kernel's "BUG: sleeping function called from invalid context" report
/// is in the log, and the allocation is refused with this exception instead of proceeding.
/// </summary>
public sealed class SleepInAtomicException(string message) : KmemException(message);

/// <summary>An unbalanced or impossible context switch on a CPU (irq_exit() outside a handler, spin_unlock() of a lock not held...).</summary>
public sealed class ContextException(string message) : KmemException(message);
