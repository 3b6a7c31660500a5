using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.PageAlloc;

namespace KmemNative.Bench.Reclaim;

/// <summary>
/// Allocation under memory pressure (issue #6). A 256 MiB x86-64 machine whose memory is 192 MiB of clean page cache
/// and, for the rest, pages pinned down to the min watermark: every GFP_KERNEL allocation then goes through the slow
/// path, and every 32nd or so runs direct reclaim (shrink_lruvec over the inactive file list, SWAP_CLUSTER_MAX pages
/// a call). The baseline is the same loop of 8,192 GFP_KERNEL allocations on a machine with free memory. A third
/// benchmark measures kswapd: GFP_NOWAIT allocations down to the min watermark (which wake kswapd), then one
/// kswapd step reclaiming back above the high watermark, repeated for 8,192 pages.
/// </summary>
/// <remarks>
/// Each iteration starts from the same state (<see cref="IterationSetupAttribute"/>): the pages the last one took
/// are freed, the file is read again so the page cache is whole, and memory is pinned down to min again.
/// </remarks>
[MemoryDiagnoser]
[InvocationCount(1)]
[WarmupCount(3)]
[IterationCount(15)] // one invocation per iteration (the setup restores the state), so more iterations than the quick job's 3
public class ReclaimBench
{
    private const int Batch = 8192;
    private const ulong MemBytes = 256UL << 20;
    private const ulong FileBytes = 192UL << 20;

    private Machine<X86_64> _pressure = null!, _free = null!;
    private Cpu _pcpu = null!, _fcpu = null!;
    private int _fd;
    private readonly ulong[] _held = new ulong[Batch * 4];
    private int _nheld;
    private readonly List<ulong> _pinned = [];
    private readonly byte[] _chunk = new byte[1 << 20];

    [GlobalSetup]
    public void Setup()
    {
        _pressure = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = MemBytes, Cpus = 1 });
        _pcpu = _pressure.GetCpu(0);
        _fd = (int)_pressure.FileCreate(_pcpu, "/data/cache", FileBytes).Unwrap();
        _free = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = MemBytes, Cpus = 1 });
        _fcpu = _free.GetCpu(0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pressure.Dispose();
        _free.Dispose();
    }

    /// <summary>Frees what the last iteration took, reads the whole file into the page cache, pins memory down to min.</summary>
    [IterationSetup(Targets = [nameof(AllocUnderPressure), nameof(KswapdCycle)])]
    public void RefillPageCache()
    {
        Release(_pressure, _pcpu);
        foreach (ulong pfn in _pinned)
            _pressure.FreePagesPfn(_pcpu, pfn, 0);
        _pinned.Clear();
        for (ulong off = 0; off < FileBytes; off += (ulong)_chunk.Length)
            _pressure.FileRead(_pcpu, _fd, off, _chunk).Unwrap();
        _pressure.LruAddDrain(_pcpu);
        // Pinned with GFP_NOWAIT: it stops at the min watermark without reclaiming anything.
        for (ulong pfn; (pfn = _pressure.AllocPagesPfn(_pcpu, Gfp.NoWait, 0)) != PageAllocator<X86_64>.NoPage;)
            _pinned.Add(pfn);
        while (_pressure.KswapdPending)
            _pressure.KswapdStep(_pcpu);
        for (ulong pfn; (pfn = _pressure.AllocPagesPfn(_pcpu, Gfp.NoWait, 0)) != PageAllocator<X86_64>.NoPage;)
            _pinned.Add(pfn);
    }

    [IterationSetup(Target = nameof(AllocWithFreeMemory))]
    public void FreeLastBatch() => Release(_free, _fcpu);

    private void Release(Machine<X86_64> m, Cpu cpu)
    {
        for (int i = 0; i < _nheld; i++)
            m.FreePagesPfn(cpu, _held[i], 0);
        _nheld = 0;
    }

    /// <summary>Baseline: 8,192 GFP_KERNEL order-0 allocations with free memory (per-CPU lists refilled from the buddy lists).</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public void AllocWithFreeMemory()
    {
        for (int i = 0; i < Batch; i++)
            _held[_nheld++] = _free.AllocPagesPfn(_fcpu, Gfp.Kernel, 0);
    }

    /// <summary>8,192 GFP_KERNEL allocations, each of which finds free memory at the min watermark: slow path and direct reclaim of clean page cache.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void AllocUnderPressure()
    {
        for (int i = 0; i < Batch; i++)
        {
            ulong pfn = _pressure.AllocPagesPfn(_pcpu, Gfp.Kernel, 0);
            if (pfn == PageAllocator<X86_64>.NoPage)
                throw new InvalidOperationException("GFP_KERNEL failed: the page cache ran out");
            _held[_nheld++] = pfn;
        }
    }

    /// <summary>
    /// kswapd's reclaim rate: GFP_NOWAIT allocations until the min watermark refuses one (waking kswapd), one kswapd
    /// step (balance_pgdat back above high), until 8,192 pages were reclaimed. Per page reclaimed (its allocation included).
    /// </summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long KswapdCycle()
    {
        long reclaimed = 0;
        while (reclaimed < Batch)
        {
            ulong pfn;
            while (_nheld < _held.Length && (pfn = _pressure.AllocPagesPfn(_pcpu, Gfp.NoWait, 0)) != PageAllocator<X86_64>.NoPage)
                _held[_nheld++] = pfn;
            long n = _pressure.KswapdStep(_pcpu);
            if (n == 0)
                throw new InvalidOperationException("kswapd reclaimed nothing: the page cache ran out");
            reclaimed += n;
        }
        return reclaimed;
    }
}
