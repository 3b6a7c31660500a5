using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

[assembly: DisableRuntimeMarshalling]

namespace KmemNative.Interop;

/// <summary>
/// The exports of kmem.h. Every export catches every exception (none may cross into C: NativeAOT would abort the
/// process) and turns it into a negative errno plus the thread's last-error message. Handles are looked up in
/// <see cref="Handles"/>: an array read and one compare each.
/// </summary>
internal static unsafe partial class Exports
{
    /// <summary>KMEM_ABI_VERSION of the header this library implements (major &lt;&lt; 16 | minor).</summary>
    public const uint AbiVersion = 1u << 16 | 0;

    private static readonly Lock s_initLock = new();
    private static bool s_initialized;

    // ---- runtime, errors -----------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_init")]
    public static int Init(uint abiVersion)
    {
        try
        {
            if (abiVersion >> 16 != AbiVersion >> 16)
                return LastError.Set(Errno.EPROTO, $"kmem_init: the program was built against ABI {abiVersion >> 16}.{abiVersion & 0xffff}, the library is {AbiVersion >> 16}.{AbiVersion & 0xffff}");
            lock (s_initLock)
            {
                if (!s_initialized)
                {
                    Warm(ArchKind.X86_64);
                    Warm(ArchKind.I386);
                    s_initialized = true;
                }
            }
            return (int)AbiVersion;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_init");
        }
    }

    /// <summary>Runs the paths C programs use once on a throw-away machine: static constructors, lazily bound code.</summary>
    private static void Warm(ArchKind arch)
    {
        using var m = Machine.Boot(new MachineConfig { Arch = arch, MemBytes = MachineConfig.MinMemBytes, Cpus = 1 });
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "kmem_init", 64)!;
        m.KmemCacheFree(cpu, s, m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        m.Kfree(cpu, m.Kmalloc(cpu, 64, Gfp.Kernel));
        m.FreePages(cpu, m.GetFreePages(cpu, Gfp.Kernel, 0), 0);
        m.Translate(cpu, m.PageOffset + (1UL << 20));
        m.KmemCacheDestroy(cpu, s);
        var p = m.Spawn(cpu, "kmem_init");
        ulong a = p.Mmap(cpu, 0, 2 * 4096, Mm.Prot.Read | Mm.Prot.Write, Mm.MapFlags.Private | Mm.MapFlags.Anonymous).Unwrap();
        p.Touch(cpu, a, 2 * 4096, Paging.MemoryAccess.Write);
        p.Fork(cpu);
        foreach (var q in m.Processes.ToArray())
            q.Exit(cpu);
        _ = m.Proc.Read("meminfo");
        m.ReleaseCpu(cpu);
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_abi_version")]
    public static uint Version() => AbiVersion;

    [UnmanagedCallersOnly(EntryPoint = "kmem_last_error")]
    public static byte* LastErrorMessage() => LastError.Message;

    [UnmanagedCallersOnly(EntryPoint = "kmem_last_errno")]
    public static int LastErrno() => LastError.Code;

    [UnmanagedCallersOnly(EntryPoint = "kmem_gfp_name")]
    public static long GfpName(uint gfp, byte* buf, nuint size)
    {
        try
        {
            return WriteText(GfpFlags.Format((Gfp)gfp), buf, size);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_gfp_name");
        }
    }

    // ---- machines ------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_machine_create")]
    public static int MachineCreate(KmemConfig* config, MachineHandle* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_machine_create: out is NULL");
            *result = default;
            var mc = new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 256UL << 20, Cpus = 2 };
            bool checkOwner = false;
            if (config != null)
            {
                if (config->Size < KmemConfig.V1Size)
                    return LastError.Set(Errno.EINVAL, $"kmem_machine_create: config->size {config->Size} is smaller than struct kmem_config ({KmemConfig.V1Size}): start from KMEM_CONFIG_INIT");
                if (config->Arch > 1)
                    return LastError.Set(Errno.EINVAL, $"kmem_machine_create: unknown arch {config->Arch} (KMEM_ARCH_I386 0, KMEM_ARCH_X86_64 1)");
                const uint known = KmemConfig.FlagNoPse | KmemConfig.FlagTlbStatistics | KmemConfig.FlagFreelistHardened | KmemConfig.FlagCheckCpuOwner;
                if ((config->Flags & ~known) != 0)
                    return LastError.Set(Errno.EINVAL, $"kmem_machine_create: unknown flags 0x{config->Flags & ~known:x}");
                mc = new MachineConfig
                {
                    Arch = config->Arch == 0 ? ArchKind.I386 : ArchKind.X86_64,
                    MemBytes = config->MemBytes,
                    Cpus = (int)Math.Min(config->Cpus, int.MaxValue),
                    Pse = (config->Flags & KmemConfig.FlagNoPse) == 0,
                    TlbStatistics = (config->Flags & KmemConfig.FlagTlbStatistics) != 0,
                    SlabFreelistHardened = (config->Flags & KmemConfig.FlagFreelistHardened) != 0,
                    MinFreeKbytes = config->MinFreeKbytes < 0 ? -1 : config->MinFreeKbytes,
                    SlabDebug = config->SlabDebug == null ? null : Marshal.PtrToStringUTF8((nint)config->SlabDebug),
                };
                checkOwner = (config->Flags & KmemConfig.FlagCheckCpuOwner) != 0;
            }
            if (mc.Cpus > Handles.MaxCpusPerMachine)
                return LastError.Set(Errno.EINVAL, $"kmem_machine_create: {mc.Cpus} CPUs: at most {Handles.MaxCpusPerMachine}");
            var machine = Machine.Boot(mc);
            var entry = Handles.AddMachine(machine, checkOwner);
            if (entry is null)
            {
                machine.Dispose();
                return LastError.Set(Errno.ENOSPC, $"kmem_machine_create: {Handles.MaxMachines} machines are alive already");
            }
            *result = new MachineHandle(entry.Handle);
            return 0;
        }
        catch (MachineConfigException e) when (e.Message.Contains("host", StringComparison.Ordinal))
        {
            return LastError.Set(Errno.ENOMEM, "kmem_machine_create: " + e.Message);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_machine_create");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_machine_destroy")]
    public static int MachineDestroy(MachineHandle h)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_machine_destroy", "machine");
            Handles.RemoveMachine(m);
            m.Machine.Dispose();
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_machine_destroy");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_machine_info")]
    public static int MachineInfo(MachineHandle h, KmemMachineInfo* info)
    {
        try
        {
            if (Handles.Machine(h) is not { } e)
                return LastError.BadHandle("kmem_machine_info", "machine");
            if (info == null || info->Size < (uint)sizeof(KmemMachineInfo))
                return LastError.Set(Errno.EINVAL, $"kmem_machine_info: info is NULL or info->size is below {sizeof(KmemMachineInfo)}");
            var m = e.Machine;
            bool x64 = m.Arch == ArchKind.X86_64;
            *info = new KmemMachineInfo
            {
                Size = (uint)sizeof(KmemMachineInfo),
                Arch = x64 ? 1u : 0u,
                Cpus = (uint)m.Cpus.Count,
                PointerSize = x64 ? 8u : 4u,
                PageSize = (uint)PageSize.Bytes,
                StructPageSize = x64 ? 64u : 32u,
                PagingLevels = x64 ? 4u : 2u,
                ArenaBase = e.Arena,
                ArenaSize = e.ArenaSize,
                PageOffset = e.PageOffset,
                MaxPfn = m.MaxPfn,
                MaxLowPfn = m.MaxLowPfn,
                MemMap = m.PageDescriptorAddress(0),
                VmallocStart = m.VmallocStart,
                VmallocEnd = m.VmallocEnd,
                SwapperPgDir = m.InitMm.Pgd,
                TotalRamPages = m.TotalRamPages,
            };
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_machine_info");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_check")]
    public static int Check(MachineHandle h)
    {
        try
        {
            if (Handles.Machine(h) is not { } e)
                return LastError.BadHandle("kmem_check", "machine");
            e.Machine.CheckConsistency();
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_check");
        }
    }

    // ---- CPUs ----------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_cpu_get")]
    public static int CpuGet(MachineHandle h, int id, CpuHandle* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_cpu_get: out is NULL");
            *result = default;
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_cpu_get", "machine");
            if (id != -1 && (uint)id >= (uint)m.Machine.Cpus.Count)
                return LastError.Set(Errno.EINVAL, $"kmem_cpu_get: no cpu{id}: the machine has {m.Machine.Cpus.Count} CPUs");
            var cpu = id == -1 ? m.Machine.ThisCpu : m.Machine.GetCpu(id);
            *result = new CpuHandle(Handles.AddCpu(m, cpu).Handle);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cpu_get");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cpu_put")]
    public static int CpuPut(CpuHandle h)
    {
        try
        {
            if (Handles.Cpu(h) is not { } c)
                return LastError.BadHandle("kmem_cpu_put", "CPU");
            if (c.OwnerThreadId != Environment.CurrentManagedThreadId)
                return LastError.Set(Errno.EBUSY, $"kmem_cpu_put: cpu{c.Cpu.Id} is held by another thread; only its owner releases it");
            Handles.RemoveCpu(c);
            c.M.Machine.ReleaseCpu(c.Cpu);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cpu_put");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cpu_id")]
    public static int CpuId(CpuHandle h)
    {
        try
        {
            return Handles.Cpu(h) is { } c ? c.Cpu.Id : LastError.BadHandle("kmem_cpu_id", "CPU");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cpu_id");
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------

    /// <summary>
    /// Resolves a CPU handle for a call that runs on it: the entry, or null after recording -EBADF (bad handle) or
    /// -EBUSY (KMEM_CONFIG_CHECK_CPU_OWNER and the calling thread is not the owner).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CpuEntry? RunOn(CpuHandle h, string function)
    {
        var c = Handles.Cpu(h);
        if (c is null || (c.M.CheckOwner && c.OwnerThreadId != Environment.CurrentManagedThreadId))
        {
            CpuFailure(c, function);
            return null;
        }
        return c;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CpuFailure(CpuEntry? c, string function)
    {
        if (c is null)
            LastError.BadHandle(function, "CPU");
        else
            LastError.Set(Errno.EBUSY, $"{function}: cpu{c.Cpu.Id} belongs to another thread (KMEM_CONFIG_CHECK_CPU_OWNER)");
    }

    /// <summary>The text into buf, snprintf-style: returns its full UTF-8 length; NUL-terminates when size &gt; 0.</summary>
    private static long WriteText(string text, byte* buf, nuint size)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        if (size > 0)
        {
            if (buf == null)
                return LastError.Set(Errno.EFAULT, "buffer is NULL with a non-zero size");
            int n = (int)Math.Min((ulong)bytes.Length, size - 1);
            bytes.AsSpan(0, n).CopyTo(new Span<byte>(buf, n));
            buf[n] = 0;
        }
        return bytes.Length;
    }

    /// <summary>A NUL-terminated UTF-8 string from C.</summary>
    private static string? Utf8(byte* s) => s == null ? null : Marshal.PtrToStringUTF8((nint)s);
}
