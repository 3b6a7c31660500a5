using KmemNative.PageAlloc;

namespace KmemNative.Trace;

/// <summary>
/// Receives the kmem tracepoints as the emulated kernel hits them (include/trace/events/kmem.h). Attach one with
/// <see cref="Machine.Tracer"/>; with none attached each tracepoint costs one null check, like a disabled static key.
/// </summary>
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
}
