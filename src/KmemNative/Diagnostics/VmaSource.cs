using KmemNative.Mm;

namespace KmemNative.Diagnostics;

/// <summary>One virtual memory area of a process, as /proc/PID/maps lists it.</summary>
/// <param name="Start">vm_start.</param>
/// <param name="End">vm_end (exclusive).</param>
/// <param name="Perms">"r-xp" and the like.</param>
/// <param name="Name">The mapped file, [heap], [stack], or "" for anonymous memory.</param>
/// <param name="Flags">vm_flags (VM_GROWSDOWN, VM_ACCOUNT, VM_LOCKED...), when the source knows them.</param>
public sealed record VmaView(ulong Start, ulong End, string Perms, string Name, VmFlags Flags = VmFlags.None);

/// <summary>
/// Where the virtual-memory picture gets a process's VMAs: by default the process subsystem
/// (<see cref="VmaSources.Processes"/>); tests and tools may draw other address spaces by passing their own.
/// </summary>
public interface IVmaSource
{
    /// <summary>The VMAs of process <paramref name="pid"/> on <paramref name="machine"/>, in address order; null when there is no such process.</summary>
    IReadOnlyList<VmaView>? Vmas(Machine machine, int pid);
}

/// <summary>The <see cref="IVmaSource"/>s the library provides.</summary>
public static class VmaSources
{
    /// <summary>
    /// The live processes of the machine (<see cref="Machine.FindProcess"/>): each VMA of the mm's list with its
    /// range, flags and the name /proc/PID/maps gives it (the program file, [heap], [stack], or none).
    /// </summary>
    public static IVmaSource Processes { get; } = new ProcessVmaSource();
}
