using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Bench.Slab;

/// <summary>
/// Scaling of the per-CPU fast path: the kmem_cache alloc+free pair of 64-byte objects run by one host thread (one
/// emulated CPU) and by two threads at once (two CPUs, same cache). Each worker thread holds its CPU for the whole
/// run; an invocation runs <see cref="Pairs"/> pairs per thread, and the reported time is per pair, so the
/// two-thread throughput is one-thread mean / two-thread mean.
/// </summary>
[MemoryDiagnoser]
public class SlabThreadsBench
{
    private const int Pairs = 200_000;

    private Machine<X86_64> _m = null!;
    private KmemCache _cache = null!;
    private Worker[] _workers = [];

    private sealed class Worker
    {
        public readonly SemaphoreSlim Start = new(0);
        public readonly SemaphoreSlim Done = new(0);
        public volatile bool Stop;
        public Thread Thread = null!;
    }

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30, Cpus = 3 });
        _cache = _m.KmemCacheCreate(_m.GetCpu(0), "bench_threads_64", 64)!;
        _workers = [new Worker(), new Worker()];
        for (int i = 0; i < _workers.Length; i++)
        {
            var w = _workers[i];
            int cpuId = i + 1;
            w.Thread = new Thread(() => Run(w, cpuId)) { IsBackground = true, Name = $"slab-cpu{cpuId}" };
            w.Thread.Start();
        }
    }

    private void Run(Worker w, int cpuId)
    {
        var cpu = _m.GetCpu(cpuId);
        var m = _m;
        var s = _cache;
        while (true)
        {
            w.Start.Wait();
            if (w.Stop)
                return;
            for (int i = 0; i < Pairs; i++)
            {
                ulong obj = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
                m.KmemCacheFree(cpu, s, obj);
            }
            w.Done.Release();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var w in _workers)
        {
            w.Stop = true;
            w.Start.Release();
            w.Thread.Join();
        }
        _m.Dispose();
    }

    /// <summary>One thread on one CPU: time per pair.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void PairOneThread()
    {
        _workers[0].Start.Release();
        _workers[0].Done.Wait();
    }

    /// <summary>Two threads on two CPUs at once: time per pair of the combined throughput.</summary>
    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    public void PairTwoThreads()
    {
        _workers[0].Start.Release();
        _workers[1].Start.Release();
        _workers[0].Done.Wait();
        _workers[1].Done.Wait();
    }
}
