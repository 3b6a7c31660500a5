using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Bench.Diagnostics;

/// <summary>
/// What the "KmemNative" meter costs the hot paths: the kmem_cache alloc+free pair and a TLB-hit translation with
/// nobody listening (the baselines) and with a MeterListener enabled on every instrument and collecting every
/// 100 ms from another thread, as dotnet-counters does (once a second) or an OpenTelemetry exporter. The
/// instruments are observable, so the hot paths carry no metrics code: the ratios should be 1 within noise.
/// Also recorded: the cost of one collection of every instrument.
/// </summary>
[MemoryDiagnoser]
public class MetricsBench
{
    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;
    private KmemCache _cache = null!;
    private ulong _va;
    private MeterListener? _listener;
    private Timer? _timer;
    private long _measurements;

    private void Boot()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30, Cpus = 2 });
        _cpu = _m.GetCpu(0);
        _cache = _m.KmemCacheCreate(_cpu, "bench_metrics_64", 64)!;
        _m.KmemCacheFree(_cpu, _cache, _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel));
        _va = _m.PageOffset + (64UL << 20);
        _m.Mmu.Translate(_cpu, _va);
    }

    private void Listen(bool collectPeriodically)
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (inst, l) =>
            {
                if (inst.Meter.Name == KmemMetrics.MeterName)
                    l.EnableMeasurementEvents(inst);
            },
        };
        _listener.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref _measurements));
        _listener.Start();
        if (collectPeriodically)
            _timer = new Timer(_ => _listener.RecordObservableInstruments(), null, 100, 100);
    }

    [GlobalSetup(Targets = [nameof(CachePairNoListener), nameof(TlbHitNoListener)])]
    public void SetupQuiet() => Boot();

    [GlobalSetup(Targets = [nameof(CachePairListening), nameof(TlbHitListening)])]
    public void SetupListening()
    {
        Boot();
        Listen(collectPeriodically: true);
    }

    [GlobalSetup(Target = nameof(CollectAll))]
    public void SetupCollect()
    {
        Boot();
        Listen(collectPeriodically: false);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _timer?.Dispose();
        _listener?.Dispose();
        _m.Dispose();
    }

    /// <summary>Baseline: kmem_cache_alloc + kmem_cache_free (explicit CPU), no listener.</summary>
    [Benchmark(Baseline = true)]
    public void CachePairNoListener() => _m.KmemCacheFree(_cpu, _cache, _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel));

    /// <summary>The same pair while a listener collects every instrument every 100 ms.</summary>
    [Benchmark]
    public void CachePairListening() => _m.KmemCacheFree(_cpu, _cache, _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel));

    /// <summary>A TLB-hit translation, no listener (4 per call, to be above the timer resolution's noise).</summary>
    [Benchmark(OperationsPerInvoke = 4)]
    public ulong TlbHitNoListener() => _m.Mmu.Translate(_cpu, _va) + _m.Mmu.Translate(_cpu, _va + 8) + _m.Mmu.Translate(_cpu, _va + 16) + _m.Mmu.Translate(_cpu, _va + 24);

    /// <summary>The same while a listener collects every 100 ms.</summary>
    [Benchmark(OperationsPerInvoke = 4)]
    public ulong TlbHitListening() => _m.Mmu.Translate(_cpu, _va) + _m.Mmu.Translate(_cpu, _va + 8) + _m.Mmu.Translate(_cpu, _va + 16) + _m.Mmu.Translate(_cpu, _va + 24);

    /// <summary>One collection of every instrument (1 GiB x86_64 machine, 2 CPUs, the boot caches): what a listener pays per snapshot.</summary>
    [Benchmark]
    public void CollectAll() => _listener!.RecordObservableInstruments();
}
