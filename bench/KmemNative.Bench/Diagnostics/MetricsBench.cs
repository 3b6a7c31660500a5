using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Bench.Diagnostics;

/// <summary>A machine with a cache and a warm TLB entry, and optionally a listener on the "KmemNative" meter.</summary>
public abstract class MetricsBenchBase
{
    private protected Machine<X86_64> M = null!;
    private protected Cpu Cpu = null!;
    private protected KmemCache Cache = null!;
    private protected ulong Va;
    private protected MeterListener? Listener;
    private Thread? _collector;
    private volatile bool _stop;
    private long _measurements;

    private protected void Boot()
    {
        M = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30, Cpus = 2 });
        Cpu = M.GetCpu(0);
        Cache = M.KmemCacheCreate(Cpu, "bench_metrics_64", 64)!;
        M.KmemCacheFree(Cpu, Cache, M.KmemCacheAlloc(Cpu, Cache, Gfp.Kernel));
        Va = M.PageOffset + (64UL << 20);
        M.Mmu.Translate(Cpu, Va);
    }

    /// <summary>A listener with every KmemNative instrument enabled; with <paramref name="everySecond"/>, a thread collects once a second.</summary>
    private protected void Listen(bool everySecond)
    {
        Listener = new MeterListener
        {
            InstrumentPublished = (inst, l) =>
            {
                if (inst.Meter.Name == KmemMetrics.MeterName)
                    l.EnableMeasurementEvents(inst);
            },
        };
        Listener.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref _measurements));
        Listener.Start();
        if (!everySecond)
            return;
        _collector = new Thread(() =>
        {
            while (!_stop)
            {
                Thread.Sleep(1000);
                Listener.RecordObservableInstruments();
            }
        }) { IsBackground = true, Name = "metrics collector" };
        _collector.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _collector?.Join();
        Listener?.Dispose();
        M.Dispose();
    }
}

/// <summary>
/// What the "KmemNative" meter costs the hot paths: the kmem_cache alloc+free pair and a TLB-hit translation, with
/// nobody listening (Listening=False) and with a MeterListener enabled on every instrument and collecting once a
/// second from its own thread, as dotnet-counters does by default (Listening=True). The instruments are
/// observable, so the hot paths carry no metrics code at all: the ratios should be 1 within noise. The same method
/// runs in both cases so that code placement cannot differ.
/// </summary>
/// <remarks>
/// A first version collected from a thread-pool timer every 100 ms and measured 1.2-1.4x in quick runs: after each
/// callback the pool's worker threads spin looking for work and take the second core of this 2-vCPU guest from the
/// benchmark. That is the listener's own CPU time, not a cost on the hot path; a thread that sleeps between
/// collections (what the runtime's EventPipe-based counters do) has none.
/// </remarks>
[MemoryDiagnoser]
[ProcessCount(3)] // three processes per case: a process's memory layout moves this pair by up to 2x (see RESULTS.md)
public class MetricsBench : MetricsBenchBase
{
    /// <summary>Whether a listener is attached and collecting.</summary>
    [Params(false, true)]
    public bool Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        Boot();
        if (Listening)
            Listen(everySecond: true);
    }

    /// <summary>kmem_cache_alloc + kmem_cache_free (explicit CPU).</summary>
    [Benchmark(Baseline = true)]
    public void CachePair() => M.KmemCacheFree(Cpu, Cache, M.KmemCacheAlloc(Cpu, Cache, Gfp.Kernel));

    /// <summary>A TLB-hit translation (4 per call, to be above the timer resolution's noise).</summary>
    [Benchmark(OperationsPerInvoke = 4)]
    public ulong TlbHit() => M.Mmu.Translate(Cpu, Va) + M.Mmu.Translate(Cpu, Va + 8) + M.Mmu.Translate(Cpu, Va + 16) + M.Mmu.Translate(Cpu, Va + 24);
}

/// <summary>One collection of every instrument (1 GiB x86_64 machine, 2 CPUs, the boot caches): what a listener pays per snapshot.</summary>
[MemoryDiagnoser]
public class MetricsCollectBench : MetricsBenchBase
{
    [GlobalSetup]
    public void Setup()
    {
        Boot();
        Listen(everySecond: false);
    }

    /// <summary>Baseline for scale: the kmem_cache pair.</summary>
    [Benchmark(Baseline = true)]
    public void CachePair() => M.KmemCacheFree(Cpu, Cache, M.KmemCacheAlloc(Cpu, Cache, Gfp.Kernel));

    /// <summary>listener.RecordObservableInstruments(): every instrument's callback once.</summary>
    [Benchmark]
    public void CollectAll() => Listener!.RecordObservableInstruments();
}
