namespace KmemNative.Diagnostics;

/// <summary>One virtual memory area of a process, as /proc/PID/maps lists it.</summary>
/// <param name="Start">vm_start.</param>
/// <param name="End">vm_end (exclusive).</param>
/// <param name="Perms">"r-xp" and the like.</param>
/// <param name="Name">The mapped file, [heap], [stack], or "" for anonymous memory.</param>
public sealed record VmaView(ulong Start, ulong End, string Perms, string Name);

/// <summary>
/// Where the virtual-memory picture gets a process's VMAs. The process subsystem (Mm/) plugs in here; until it
/// does, <see cref="VmaSources.Current"/> knows no process and the picture shows user space empty.
/// </summary>
public interface IVmaSource
{
    /// <summary>The VMAs of process <paramref name="pid"/> on <paramref name="machine"/>, in address order; null when there is no such process.</summary>
    IReadOnlyList<VmaView>? Vmas(Machine machine, int pid);
}

/// <summary>The registered <see cref="IVmaSource"/>.</summary>
public static class VmaSources
{
    private sealed class None : IVmaSource
    {
        public IReadOnlyList<VmaView>? Vmas(Machine machine, int pid) => null;
    }

    /// <summary>A source that knows no process (the default).</summary>
    public static IVmaSource Empty { get; } = new None();

    /// <summary>The source <c>kmem map --virt --pid N</c> asks; set it once processes exist.</summary>
    public static IVmaSource Current { get; set; } = Empty;
}
