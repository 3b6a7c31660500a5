using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Paging;

namespace KmemNative.Bench.Mm;

/// <summary>The host kernel's anonymous memory, through libc: mmap(), a store per page, munmap().</summary>
internal static partial class HostMemory
{
    private const int ProtReadWrite = 0x3;
    private const int MapPrivateAnonymous = 0x22;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint addr, nuint length);

    /// <summary>A fresh private anonymous mapping (nothing faulted in yet).</summary>
    public static nint Map(ulong length)
    {
        nint p = Mmap(0, (nuint)length, ProtReadWrite, MapPrivateAnonymous, -1, 0);
        if (p == -1)
            throw new InvalidOperationException($"mmap({length}) failed: errno {Marshal.GetLastPInvokeError()}");
        return p;
    }

    public static void Unmap(nint p, ulong length) => Munmap(p, (nuint)length);

    /// <summary>One byte stored in every page: one host page fault per page.</summary>
    public static unsafe void TouchEveryPage(nint p, ulong length)
    {
        byte* b = (byte*)p;
        for (ulong off = 0; off < length; off += 4096)
            b[off] = 1;
    }
}

/// <summary>
/// Demand-fault throughput: one byte written to every page of a fresh 256 MiB anonymous mapping (65,536 write
/// faults: the MMU's #PF, the VMA lookup, a zeroed GFP_HIGHUSER_MOVABLE page, the PTE, the retried walk and TLB
/// fill), against the host kernel doing the same to a fresh mmap()ed region in the same run.
/// </summary>
[MemoryDiagnoser]
public class MmFaultBench
{
    private const ulong Length = 256UL << 20;
    private const int Pages = (int)(Length >> 12);

    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;
    private Process _p = null!;
    private ulong _addr;
    private nint _host;

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 768UL << 20 });
        _cpu = _m.GetCpu(0);
        _p = _m.Spawn(_cpu, "faultbench");
    }

    [GlobalCleanup]
    public void Cleanup() => _m.Dispose();

    [IterationSetup(Target = nameof(EmulatedFault))]
    public void MapEmulated()
    {
        _addr = _p.Mmap(_cpu, 0, Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous).Unwrap();
        _p.SwitchTo(_cpu);
    }

    [IterationCleanup(Target = nameof(EmulatedFault))]
    public void UnmapEmulated() => _p.Munmap(_cpu, _addr, Length).Unwrap();

    /// <summary>A write to each page of the emulated mapping, as the process in user mode: one fault each.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void EmulatedFault()
    {
        var mmu = _m.Mmu;
        var cpu = _cpu;
        ulong end = _addr + Length;
        for (ulong va = _addr; va < end; va += 4096)
            mmu.WriteU8(cpu, va, 1, PrivilegeMode.User);
    }

    [IterationSetup(Target = nameof(HostFault))]
    public void MapHost() => _host = HostMemory.Map(Length);

    [IterationCleanup(Target = nameof(HostFault))]
    public void UnmapHost() => HostMemory.Unmap(_host, Length);

    /// <summary>Baseline: the host kernel's anonymous fault, a byte stored in each page of a fresh mmap().</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public void HostFault() => HostMemory.TouchEveryPage(_host, Length);
}

/// <summary>
/// fork() of a process with 64 MiB of touched anonymous memory (VMAs, anon_vma chains and 16,384 PTEs copied
/// write-protected), the copy-on-write faults when the child then writes every page, and munmap() of 64 MiB of
/// touched memory (zap + page-table teardown). The host's anonymous fault on 64 MiB is measured in the same run (per
/// page, like CowFault; Fork64M and Munmap64M are per call).
/// </summary>
[MemoryDiagnoser]
public class MmForkBench
{
    private const ulong Length = 64UL << 20;
    private const int Pages = (int)(Length >> 12);

    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;
    private Process _parent = null!;
    private Process? _child;
    private ulong _addr, _scratch;
    private nint _host;

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 512UL << 20 });
        _cpu = _m.GetCpu(0);
        _parent = _m.Spawn(_cpu, "forkbench");
        _addr = _parent.Mmap(_cpu, 0, Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous).Unwrap();
        if (!_parent.Touch(_cpu, _addr, Length, MemoryAccess.Write).IsOk)
            throw new InvalidOperationException("touch failed");
    }

    [GlobalCleanup]
    public void Cleanup() => _m.Dispose();

    [IterationCleanup(Targets = [nameof(Fork64M), nameof(CowFault)])]
    public void ExitChild()
    {
        _child?.Exit(_cpu);
        _child = null;
    }

    /// <summary>fork() of the 64 MiB process (the child exits in the cleanup).</summary>
    [Benchmark]
    public int Fork64M()
    {
        _child = _m.FindProcess((int)_parent.Fork(_cpu).Unwrap());
        return _child!.Pid;
    }

    [IterationSetup(Target = nameof(CowFault))]
    public void ForkForCow()
    {
        _child = _m.FindProcess((int)_parent.Fork(_cpu).Unwrap());
        _child!.SwitchTo(_cpu);
    }

    /// <summary>The child writes every page: one copy-on-write fault (a copied page) each.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void CowFault()
    {
        var mmu = _m.Mmu;
        var cpu = _cpu;
        ulong end = _addr + Length;
        for (ulong va = _addr; va < end; va += 4096)
            mmu.WriteU8(cpu, va, 2, PrivilegeMode.User);
    }

    [IterationSetup(Target = nameof(Munmap64M))]
    public void MapAndTouch()
    {
        _scratch = _parent.Mmap(_cpu, 0, Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous).Unwrap();
        _parent.Touch(_cpu, _scratch, Length, MemoryAccess.Write);
    }

    /// <summary>munmap() of 64 MiB of touched memory: 16,384 pages freed, their page tables with them.</summary>
    [Benchmark]
    public void Munmap64M() => _parent.Munmap(_cpu, _scratch, Length).Unwrap();

    [IterationSetup(Target = nameof(HostFault64M))]
    public void MapHost() => _host = HostMemory.Map(Length);

    [IterationCleanup(Target = nameof(HostFault64M))]
    public void UnmapHost() => HostMemory.Unmap(_host, Length);

    /// <summary>Baseline: the host kernel faulting in 64 MiB page by page (per page).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public void HostFault64M() => HostMemory.TouchEveryPage(_host, Length);
}
