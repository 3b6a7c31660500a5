using System.Runtime.InteropServices;

namespace KmemNative.Interop;

// Processes: the ABI 1.0 calls of kmem.h's PROCESSES section. The process subsystem (mm_struct, VMAs, demand
// paging, fork with copy-on-write, exit; issue #5) is not in the library yet, so every call validates what it can
// and returns -ENOSYS; programs written against the header link and run today and start working when it lands.
internal static unsafe partial class Exports
{
    private static int NoProcesses(string function) =>
        LastError.Set(Errno.ENOSYS, $"{function}: processes are not implemented in this library yet (the process subsystem, issue #5)");

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_create")]
    public static int ProcessCreate(CpuHandle cpu, byte* comm, ProcessHandle* result)
    {
        try
        {
            if (result != null)
                *result = default;
            return RunOn(cpu, "kmem_process_create") is null ? LastError.Code : NoProcesses("kmem_process_create");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_create");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_fork")]
    public static int ProcessFork(CpuHandle cpu, ProcessHandle parent, ProcessHandle* child)
    {
        try
        {
            if (child != null)
                *child = default;
            return RunOn(cpu, "kmem_process_fork") is null ? LastError.Code : NoProcesses("kmem_process_fork");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_fork");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_exit")]
    public static int ProcessExit(CpuHandle cpu, ProcessHandle p)
    {
        try
        {
            return RunOn(cpu, "kmem_process_exit") is null ? LastError.Code : NoProcesses("kmem_process_exit");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_exit");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_pid")]
    public static int ProcessPid(ProcessHandle p)
    {
        try
        {
            return NoProcesses("kmem_process_pid");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_pid");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_switch")]
    public static int ProcessSwitch(CpuHandle cpu, ProcessHandle p)
    {
        try
        {
            return RunOn(cpu, "kmem_process_switch") is null ? LastError.Code : NoProcesses("kmem_process_switch");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_switch");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_mmap")]
    public static int Mmap(CpuHandle cpu, ProcessHandle p, ulong addr, ulong len, uint prot, uint flags, ulong* result)
    {
        try
        {
            if (result != null)
                *result = 0;
            return RunOn(cpu, "kmem_mmap") is null ? LastError.Code : NoProcesses("kmem_mmap");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_mmap");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_munmap")]
    public static int Munmap(CpuHandle cpu, ProcessHandle p, ulong addr, ulong len)
    {
        try
        {
            return RunOn(cpu, "kmem_munmap") is null ? LastError.Code : NoProcesses("kmem_munmap");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_munmap");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_touch")]
    public static long Touch(CpuHandle cpu, ProcessHandle p, ulong addr, ulong len, uint access)
    {
        try
        {
            return RunOn(cpu, "kmem_touch") is null ? LastError.Code : NoProcesses("kmem_touch");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_touch");
        }
    }
}
