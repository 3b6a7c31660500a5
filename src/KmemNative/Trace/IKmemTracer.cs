using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Trace;

/// <summary>
/// Receives the kmem tracepoints as the emulated kernel hits them (include/trace/events/kmem.h). Attach one with
/// <see cref="Machine.Tracer"/>; with none attached each tracepoint costs one null check, like a disabled static key.
/// </summary>
/// <remarks>
/// The page allocator calls <see cref="MmPageAlloc"/> / <see cref="MmPageFree"/> for every block; the slab API
/// (<see cref="Machine.Kmalloc(Cpu, ulong, Gfp)"/>, <see cref="Machine.Kfree(Cpu, ulong)"/>,
/// <see cref="Machine.KmemCacheAlloc(Cpu, KmemCache, Gfp)"/>, <see cref="Machine.KmemCacheFree(Cpu, KmemCache, ulong)"/>
/// and the kmalloc family built on them) calls the slab events where the kernel's functions do. Two emulator
/// annotations, <see cref="KmemCacheCreate"/> and <see cref="KmemCacheDestroy"/>, have no kernel tracepoint: a trace
/// writer puts them in comment lines, so a replay can create and destroy caches at the same points.
/// </remarks>
public interface IKmemTracer
{
    /// <summary>trace_kmalloc.</summary>
    void Kmalloc(Cpu cpu, ulong ptr, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted);

    /// <summary>trace_kfree.</summary>
    void Kfree(Cpu cpu, ulong ptr);

    /// <summary>trace_kmem_cache_alloc.</summary>
    void KmemCacheAlloc(Cpu cpu, ulong ptr, string cache, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted);

    /// <summary>trace_kmem_cache_free.</summary>
    void KmemCacheFree(Cpu cpu, ulong ptr, string cache);

    /// <summary>trace_mm_page_alloc; <paramref name="pfn"/> is null for a failed allocation.</summary>
    void MmPageAlloc(Cpu cpu, ulong? pfn, int order, int migratetype, Gfp gfp);

    /// <summary>trace_mm_page_free.</summary>
    void MmPageFree(Cpu cpu, ulong pfn, int order);

    /// <summary>Emulator annotation: kmem_cache_create() made <paramref name="cache"/> (no kernel tracepoint).</summary>
    void KmemCacheCreate(Cpu cpu, KmemCache cache) { }

    /// <summary>Emulator annotation: kmem_cache_destroy() released <paramref name="cache"/> (no kernel tracepoint).</summary>
    void KmemCacheDestroy(Cpu cpu, KmemCache cache) { }
}
