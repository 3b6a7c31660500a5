using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.PageAlloc;

namespace KmemNative.Bench.PageAlloc;

/// <summary>
/// Page allocator hot paths: an order-0 alloc+free pair that hits the per-CPU list, and an order-3 pair, against
/// NativeMemory.AlignedAlloc/AlignedFree of the same size measured in the same run.
/// </summary>
[MemoryDiagnoser]
public unsafe class PageAllocBench
{
    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30 });
        _cpu = _m.GetCpu(0);
    }

    [GlobalCleanup]
    public void Cleanup() => _m.Dispose();

    /// <summary>Baseline: a 4 KiB page-aligned allocation from the host allocator.</summary>
    [Benchmark(Baseline = true)]
    public void AlignedAlloc4K()
    {
        void* p = NativeMemory.AlignedAlloc(4096, 4096);
        NativeMemory.AlignedFree(p);
    }

    /// <summary>alloc_pages(GFP_KERNEL, 0) + __free_pages() on a CPU the caller holds: the per-CPU list fast path.</summary>
    [Benchmark]
    public void Order0Pair()
    {
        ulong pfn = _m.AllocPagesPfn(_cpu, Gfp.Kernel, 0);
        _m.FreePagesPfn(_cpu, pfn, 0);
    }

    /// <summary>The same through the profile-independent API with the thread's CPU looked up each call.</summary>
    [Benchmark]
    public void Order0PairThisCpu()
    {
        Machine m = _m;
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        m.FreePages(page, 0);
    }

    /// <summary>Baseline for order 3: a 32 KiB page-aligned host allocation.</summary>
    [Benchmark]
    public void AlignedAlloc32K()
    {
        void* p = NativeMemory.AlignedAlloc(32768, 4096);
        NativeMemory.AlignedFree(p);
    }

    /// <summary>alloc_pages(GFP_KERNEL, 3) + __free_pages(): order 3 is the largest order the per-CPU lists cache.</summary>
    [Benchmark]
    public void Order3Pair()
    {
        ulong pfn = _m.AllocPagesPfn(_cpu, Gfp.Kernel, 3);
        _m.FreePagesPfn(_cpu, pfn, 3);
    }

    /// <summary>alloc_pages(GFP_KERNEL, 4) + __free_pages(): straight to the buddy lists under the zone lock.</summary>
    [Benchmark]
    public void Order4PairBuddy()
    {
        ulong pfn = _m.AllocPagesPfn(_cpu, Gfp.Kernel, 4);
        _m.FreePagesPfn(_cpu, pfn, 4);
    }
}
