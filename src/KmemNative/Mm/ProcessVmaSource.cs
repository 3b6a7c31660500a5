using KmemNative.Diagnostics;

namespace KmemNative.Mm;

/// <summary>
/// The pictures' view of a process's address space: the VMA list of its mm (read under mmap_lock by
/// <see cref="Process.Vmas"/>) as /proc/PID/maps would show it.
/// </summary>
internal sealed class ProcessVmaSource : IVmaSource
{
    public IReadOnlyList<VmaView>? Vmas(Machine machine, int pid)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (machine.FindProcess(pid) is not { IsAlive: true } process)
            return null;
        IReadOnlyList<VmaInfo> vmas;
        try
        {
            vmas = process.Vmas;
        }
        catch (KmemException) when (!process.IsAlive)
        {
            return null;   // it exited between the lookup and the read
        }
        return vmas.Select(v => new VmaView(v.Start, v.End, v.Perms, v.Name, v.Flags)).ToList();
    }
}
