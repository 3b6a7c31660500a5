namespace KmemNative.Diagnostics;

// /proc/PID/{maps,smaps,smaps_rollup,status,statm,stat} of the process subsystem (fs/proc/task_mmu.c,
// fs/proc/array.c); /proc/PID/pagemap is binary: Process.ReadPagemap() and the pagemap command.
public sealed partial class ProcFs
{
    private static readonly bool s_mmPidFiles = SetPidFileReader();

    private static bool SetPidFileReader()
    {
        PidFileReader = (p, pid, file) => p.Machine.ReadPidFile(pid, file)
            ?? throw new ProcFileNotFoundException($"{pid}/{file}", Files);
        return true;
    }
}
