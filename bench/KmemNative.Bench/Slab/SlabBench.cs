using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using Microsoft.Extensions.ObjectPool;

namespace KmemNative.Bench.Slab;

/// <summary>
/// SLUB fast paths against the host's allocators, all in one run: kmem_cache alloc+free pairs (explicit CPU and
/// the thread's CPU), kmalloc+kfree of 8..4096 bytes, a batch of 1000, bulk 16, and a slab_debug cache.
/// Baseline: a NativeMemory.Alloc/Free pair of 64 bytes.
/// </summary>
[MemoryDiagnoser]
public unsafe class SlabBench
{
    private const int Batch = 1000;
    private const int BulkCount = 16;

    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;
    private KmemCache _cache = null!;
    private KmemCache _debugCache = null!;
    private KmemCache _sheaves32 = null!, _sheaves128 = null!;
    private readonly ulong[] _batch = new ulong[Batch];
    private readonly ulong[] _bulk = new ulong[BulkCount];
    private readonly DefaultObjectPool<byte[]> _pool = new(new ArrayPolicy());

    private sealed class ArrayPolicy : PooledObjectPolicy<byte[]>
    {
        public override byte[] Create() => new byte[64];

        public override bool Return(byte[] obj) => true;
    }

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30, Cpus = 2 });
        _cpu = _m.GetCpu(0);
        _cache = _m.KmemCacheCreate(_cpu, "bench_64", 64)!;
        _debugCache = _m.KmemCacheCreate(_cpu, "bench_64_debug", 64, 0, SlabFlagsText.DebugDefault)!;
        // 6.18's opt-in per-CPU sheaves: 32 is what the kernel's users (maple tree nodes, VMAs) ask for; 128 lets
        // main + spare + the barn's 10 full sheaves (12 x 128) hold the whole batch of 1000.
        _sheaves32 = _m.KmemCacheCreate(_cpu, "bench_64_sheaves32", 64, new KmemCacheArgs { SheafCapacity = 32 })!;
        _sheaves128 = _m.KmemCacheCreate(_cpu, "bench_64_sheaves128", 64, new KmemCacheArgs { SheafCapacity = 128 })!;
        _m.KmemCacheFree(_cpu, _sheaves32, _m.KmemCacheAlloc(_cpu, _sheaves32, Gfp.Kernel));
        _m.KmemCacheFree(_cpu, _sheaves128, _m.KmemCacheAlloc(_cpu, _sheaves128, Gfp.Kernel));
        // Warm every path once so the first measured call finds CPU slabs in place.
        _m.KmemCacheFree(_cpu, _cache, _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel));
        foreach (ulong size in new ulong[] { 8, 64, 256, 1024, 4096 })
            _m.Kfree(_cpu, _m.Kmalloc(_cpu, size, Gfp.Kernel));
    }

    [GlobalCleanup]
    public void Cleanup() => _m.Dispose();

    /// <summary>Baseline: a 64-byte NativeMemory.Alloc + Free.</summary>
    [Benchmark(Baseline = true)]
    public void NativePair()
    {
        void* p = NativeMemory.Alloc(64);
        NativeMemory.Free(p);
    }

    /// <summary>ArrayPool&lt;byte&gt;.Shared Rent(64) + Return.</summary>
    [Benchmark]
    public void ArrayPoolPair() => ArrayPool<byte>.Shared.Return(ArrayPool<byte>.Shared.Rent(64));

    /// <summary>Microsoft.Extensions.ObjectPool DefaultObjectPool Get + Return.</summary>
    [Benchmark]
    public void ObjectPoolPair() => _pool.Return(_pool.Get());

    /// <summary>kmem_cache_alloc + kmem_cache_free of a 64-byte object on a CPU the caller holds: the lockless fast path.</summary>
    [Benchmark]
    public void CachePairExplicitCpu()
    {
        ulong obj = _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel);
        _m.KmemCacheFree(_cpu, _cache, obj);
    }

    /// <summary>The same through the profile-independent API, the thread's CPU looked up on each call.</summary>
    [Benchmark]
    public void CachePairThisCpu()
    {
        Machine m = _m;
        ulong obj = m.KmemCacheAlloc(_cache, Gfp.Kernel);
        m.KmemCacheFree(_cache, obj);
    }

    /// <summary>A slab_debug=FZPU cache: every alloc and free checked under list_lock.</summary>
    [Benchmark]
    public void DebugCachePair()
    {
        ulong obj = _m.KmemCacheAlloc(_cpu, _debugCache, Gfp.Kernel);
        _m.KmemCacheFree(_cpu, _debugCache, obj);
    }

    /// <summary>kmalloc(8) + kfree().</summary>
    [Benchmark]
    public void Kmalloc8() => _m.Kfree(_cpu, _m.Kmalloc(_cpu, 8, Gfp.Kernel));

    /// <summary>kmalloc(64) + kfree() on an explicit CPU.</summary>
    [Benchmark]
    public void Kmalloc64() => _m.Kfree(_cpu, _m.Kmalloc(_cpu, 64, Gfp.Kernel));

    /// <summary>kmalloc(256) + kfree().</summary>
    [Benchmark]
    public void Kmalloc256() => _m.Kfree(_cpu, _m.Kmalloc(_cpu, 256, Gfp.Kernel));

    /// <summary>kmalloc(1024) + kfree() (an order-2 slab: kfree resolves the compound head).</summary>
    [Benchmark]
    public void Kmalloc1024() => _m.Kfree(_cpu, _m.Kmalloc(_cpu, 1024, Gfp.Kernel));

    /// <summary>kmalloc(4096) + kfree() (order-3 slabs of 8 objects).</summary>
    [Benchmark]
    public void Kmalloc4096() => _m.Kfree(_cpu, _m.Kmalloc(_cpu, 4096, Gfp.Kernel));

    /// <summary>Allocate 1000 objects, then free the 1000: slab refills, partial lists, page allocator; time per pair.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Batch1000()
    {
        ulong[] b = _batch;
        for (int i = 0; i < b.Length; i++)
            b[i] = _m.KmemCacheAlloc(_cpu, _cache, Gfp.Kernel);
        for (int i = 0; i < b.Length; i++)
            _m.KmemCacheFree(_cpu, _cache, b[i]);
    }

    /// <summary>The alloc+free pair through the per-CPU sheaves (capacity 32): pop and push on the main sheaf.</summary>
    [Benchmark]
    public void SheafPairExplicitCpu()
    {
        ulong obj = _m.KmemCacheAlloc(_cpu, _sheaves32, Gfp.Kernel);
        _m.KmemCacheFree(_cpu, _sheaves32, obj);
    }

    /// <summary>The batch of 1000 on a cache with sheaves of 32: 352 objects stay in sheaves, the rest are flushed and refilled in bulk.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Batch1000Sheaves32() => RunBatch(_sheaves32);

    /// <summary>The batch of 1000 on a cache with sheaves of 128: the whole batch cycles through the sheaves and the barn.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Batch1000Sheaves128() => RunBatch(_sheaves128);

    private void RunBatch(KmemCache s)
    {
        ulong[] b = _batch;
        for (int i = 0; i < b.Length; i++)
            b[i] = _m.KmemCacheAlloc(_cpu, s, Gfp.Kernel);
        for (int i = 0; i < b.Length; i++)
            _m.KmemCacheFree(_cpu, s, b[i]);
    }

    /// <summary>kmem_cache_alloc_bulk(16) + kmem_cache_free_bulk(16); time per object pair.</summary>
    [Benchmark(OperationsPerInvoke = BulkCount)]
    public void Bulk16()
    {
        _m.KmemCacheAllocBulk(_cpu, _cache, Gfp.Kernel, _bulk);
        _m.KmemCacheFreeBulk(_cpu, _cache, _bulk);
    }
}
