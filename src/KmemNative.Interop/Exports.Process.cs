using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Mm;
using KmemNative.Paging;

namespace KmemNative.Interop;

// Processes: kmem.h's PROCESSES section on the Mm API (Machine.Spawn, Process.Fork/Exit/SwitchTo/Mmap/Munmap).
// A process handle lives in the fourth table of Handles; kmem_process_exit and kmem_machine_destroy retire it.
// System-call failures come back as the kernel's -errno; a bad user access (SIGSEGV, SIGBUS) as -EFAULT with the
// fault in kmem_last_fault().
internal static unsafe partial class Exports
{
    /// <summary>
    /// The process of a call that runs on <paramref name="c"/>: live, of the CPU's machine. Null after recording
    /// -EBADF (bad handle), -EINVAL (another machine's process) or -ESRCH (it has exited some other way).
    /// </summary>
    private static ProcessEntry? ProcessOf(CpuEntry c, ProcessHandle h, string function)
    {
        var p = Handles.Process(h);
        if (p is not null && ReferenceEquals(p.M, c.M) && p.Process.IsAlive)
            return p;
        ProcessFailure(c, p, function);
        return null;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ProcessFailure(CpuEntry c, ProcessEntry? p, string function)
    {
        if (p is null)
            LastError.BadHandle(function, "process");
        else if (!ReferenceEquals(p.M, c.M))
            LastError.Set(Errno.EINVAL, $"{function}: process {p.Process.Pid} belongs to another machine than the CPU");
        else
        {
            Handles.RemoveProcess(p);
            LastError.Set(Errno.ESRCH, $"{function}: process {p.Process.Pid} ({p.Process.Comm}) has exited");
        }
    }

    /// <summary>A system call's failure: <c>-errno</c> with the call and strerror() in the message.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int SyscallFailure(string function, string call, SysResult r) =>
        LastError.Set((int)r.Error, $"{function}: {call} = {r}");

    /// <summary>Hands a new process to C; exits it again when no handle slot is left (nothing leaks).</summary>
    private static int PublishProcess(CpuEntry c, Process process, ProcessHandle* result, string function)
    {
        if (Handles.AddProcess(c.M, process) is { } e)
        {
            *result = new ProcessHandle(e.Handle);
            return 0;
        }
        process.Exit(c.Cpu);
        return Handles.Machine(new MachineHandle(c.M.Handle)) is null
            ? LastError.BadHandle(function, "machine")
            : LastError.Set(Errno.ENOSPC, $"{function}: {Handles.MaxProcesses} process handles are in use");
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_create")]
    public static int ProcessCreate(CpuHandle cpu, byte* comm, ProcessHandle* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_process_create: out is NULL");
            *result = default;
            if (RunOn(cpu, "kmem_process_create") is not { } c)
                return LastError.Code;
            if (Utf8(comm) is not { Length: > 0 } name)
                return LastError.Set(Errno.EINVAL, "kmem_process_create: comm is NULL or empty");
            return PublishProcess(c, c.M.Machine.Spawn(c.Cpu, name), result, "kmem_process_create");
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
            if (child == null)
                return LastError.Set(Errno.EINVAL, "kmem_process_fork: out is NULL");
            *child = default;
            if (RunOn(cpu, "kmem_process_fork") is not { } c || ProcessOf(c, parent, "kmem_process_fork") is not { } p)
                return LastError.Code;
            var r = p.Process.Fork(c.Cpu);
            if (!r.IsOk)
                return SyscallFailure("kmem_process_fork", $"fork() in process {p.Process.Pid}", r);
            var forked = c.M.Machine.FindProcess((int)r.Value)
                ?? throw new KmemException($"fork() returned pid {r.Value}, which is not a live process");
            return PublishProcess(c, forked, child, "kmem_process_fork");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_fork");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_exit")]
    public static int ProcessExit(CpuHandle cpu, ProcessHandle h)
    {
        try
        {
            if (RunOn(cpu, "kmem_process_exit") is not { } c || ProcessOf(c, h, "kmem_process_exit") is not { } p)
                return LastError.Code;
            // Exit first: when it refuses (the process runs on a CPU another thread holds) the handle stays valid.
            p.Process.Exit(c.Cpu);
            Handles.RemoveProcess(p);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_exit");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_pid")]
    public static int ProcessPid(ProcessHandle h)
    {
        try
        {
            return Handles.Process(h) is { } p ? p.Process.Pid : LastError.BadHandle("kmem_process_pid", "process");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_pid");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_switch")]
    public static int ProcessSwitch(CpuHandle cpu, ProcessHandle h)
    {
        try
        {
            if (RunOn(cpu, "kmem_process_switch") is not { } c || ProcessOf(c, h, "kmem_process_switch") is not { } p)
                return LastError.Code;
            p.Process.SwitchTo(c.Cpu);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_switch");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_mmap")]
    public static int Mmap(CpuHandle cpu, ProcessHandle h, ulong addr, ulong len, uint prot, uint flags, ulong* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_mmap: out is NULL");
            *result = 0;
            if (RunOn(cpu, "kmem_mmap") is not { } c || ProcessOf(c, h, "kmem_mmap") is not { } p)
                return LastError.Code;
            var r = p.Process.Mmap(c.Cpu, addr, len, (Prot)prot, (MapFlags)flags);
            if (!r.IsOk)
                return SyscallFailure("kmem_mmap", $"mmap(0x{addr:x}, {len}, {MmFlagsText.Format((Prot)prot)}, {MmFlagsText.Format((MapFlags)flags)}, -1, 0)", r);
            *result = r.Value;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_mmap");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_munmap")]
    public static int Munmap(CpuHandle cpu, ProcessHandle h, ulong addr, ulong len)
    {
        try
        {
            if (RunOn(cpu, "kmem_munmap") is not { } c || ProcessOf(c, h, "kmem_munmap") is not { } p)
                return LastError.Code;
            var r = p.Process.Munmap(c.Cpu, addr, len);
            return r.IsOk ? 0 : SyscallFailure("kmem_munmap", $"munmap(0x{addr:x}, {len})", r);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_munmap");
        }
    }

    /// <summary>
    /// One user-mode access per page of [addr, addr+len), the process running on the CPU: through the TLB and
    /// page walk like any access, so not-present and write-protect faults go to the process's fault handler
    /// (demand paging, COW, stack growth). A write access translates for writing and stores nothing (the bytes stay
    /// as they are, like <c>lock add $0</c>). Returns the faults the task took (min_flt + maj_flt).
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "kmem_touch")]
    public static long Touch(CpuHandle cpu, ProcessHandle h, ulong addr, ulong len, uint access)
    {
        try
        {
            if (RunOn(cpu, "kmem_touch") is not { } c || ProcessOf(c, h, "kmem_touch") is not { } p)
                return LastError.Code;
            if (access > 2)
                return BadAccess("kmem_touch", access, 1);
            if (len != 0 && addr + len - 1 < addr)
                return LastError.Set(Errno.EINVAL, $"kmem_touch: [0x{addr:x}, +0x{len:x}) wraps around the address space");
            var process = p.Process;
            process.SwitchTo(c.Cpu);
            var (min0, maj0) = process.Faults;
            ulong last = addr + len - 1;
            for (ulong page = addr & ~0xfffUL; len != 0 && page <= last; page += 0x1000)
            {
                c.Cpu.Translate(Math.Max(page, addr), (MemoryAccess)access, PrivilegeMode.User);
                if (page + 0x1000 < page)
                    break;
            }
            var (min1, maj1) = process.Faults;
            return min1 - min0 + (maj1 - maj0);
        }
        catch (PageFaultException e)
        {
            return UserFault(cpu, e, "kmem_touch");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_touch");
        }
    }

    /// <summary>
    /// A user-mode access that faulted for good: -EFAULT with the fault for kmem_last_fault(), and the signal the
    /// process's fault handler raised (SIGSEGV, SIGBUS) in the message; -ENOMEM when it was killed for memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int UserFault(CpuHandle cpu, PageFaultException e, string function)
    {
        if (e.Fault.Mode == PrivilegeMode.User && Handles.Cpu(cpu) is { } c && c.Cpu.Pid != 0
            && c.M.Machine.FindProcess(c.Cpu.Pid) is { } process && process.LastSignal is { } sig && sig.Address == e.Address)
        {
            int errno = sig.Signal == Signal.SIGKILL ? Errno.ENOMEM : Errno.EFAULT;
            int rc = LastError.Set(errno, $"{function}: {sig} in process {process.Pid} ({process.Comm})");
            LastError.SetFault(e.Fault);
            return rc;
        }
        return LastError.Set(e, function);
    }
}
