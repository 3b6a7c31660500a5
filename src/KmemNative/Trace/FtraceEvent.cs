using KmemNative.PageAlloc;

namespace KmemNative.Trace;

/// <summary>The kmem tracepoints the replayer understands (include/trace/events/kmem.h).</summary>
public enum FtraceEventKind
{
    /// <summary>Not an event (comment, blank, lost-events marker, malformed).</summary>
    None,
    /// <summary>kmem:kmalloc.</summary>
    Kmalloc,
    /// <summary>kmem:kfree.</summary>
    Kfree,
    /// <summary>kmem:kmem_cache_alloc.</summary>
    KmemCacheAlloc,
    /// <summary>kmem:kmem_cache_free.</summary>
    KmemCacheFree,
    /// <summary>kmem:mm_page_alloc.</summary>
    MmPageAlloc,
    /// <summary>kmem:mm_page_free.</summary>
    MmPageFree,
    /// <summary>kmem:mm_page_free_batched (order-0 pages freed by free_unref_folios(): <c>page=%p pfn=0x%lx order=0</c>).</summary>
    MmPageFreeBatched,
}

/// <summary>
/// One parsed trace line. A mutable struct the parser fills in place (no allocation per line); strings (task
/// names, call sites, cache names, GFP and irq-flag strings) are interned in the parser's <see cref="StringTable"/>
/// and referred to by id.
/// </summary>
public struct FtraceEvent
{
    /// <summary>Which tracepoint.</summary>
    public FtraceEventKind Kind;
    /// <summary>The CPU column.</summary>
    public int Cpu;
    /// <summary>The task's pid.</summary>
    public int Pid;
    /// <summary>Timestamp in microseconds.</summary>
    public long TimestampUs;
    /// <summary>Interned task comm.</summary>
    public int CommId;
    /// <summary>Interned irq/preempt flags column (".....").</summary>
    public int FlagsId;
    /// <summary>Interned call_site (kmalloc, kfree, kmem_cache_*).</summary>
    public int CallSiteId;
    /// <summary>Interned cache name (kmem_cache_*).</summary>
    public int NameId;
    /// <summary>ptr= (kmalloc, kfree, kmem_cache_*).</summary>
    public ulong Ptr;
    /// <summary>bytes_req=.</summary>
    public int BytesReq;
    /// <summary>bytes_alloc=.</summary>
    public int BytesAlloc;
    /// <summary>gfp_flags= as a value.</summary>
    public Gfp Gfp;
    /// <summary>Interned gfp_flags= text.</summary>
    public int GfpId;
    /// <summary>node=.</summary>
    public int Node;
    /// <summary>accounted=.</summary>
    public bool Accounted;
    /// <summary>page= (struct page address; 0 for a failed allocation).</summary>
    public ulong Page;
    /// <summary>pfn=.</summary>
    public ulong Pfn;
    /// <summary>order=.</summary>
    public int Order;
    /// <summary>migratetype=.</summary>
    public int Migratetype;

    /// <summary>The tracepoint name as ftrace prints it.</summary>
    public static string Name(FtraceEventKind kind) => kind switch
    {
        FtraceEventKind.Kmalloc => "kmalloc",
        FtraceEventKind.Kfree => "kfree",
        FtraceEventKind.KmemCacheAlloc => "kmem_cache_alloc",
        FtraceEventKind.KmemCacheFree => "kmem_cache_free",
        FtraceEventKind.MmPageAlloc => "mm_page_alloc",
        FtraceEventKind.MmPageFree => "mm_page_free",
        FtraceEventKind.MmPageFreeBatched => "mm_page_free_batched",
        _ => "none",
    };
}

/// <summary>What a line turned out to be.</summary>
public enum FtraceLineKind
{
    /// <summary>A kmem event (in the <see cref="FtraceEvent"/>).</summary>
    Event,
    /// <summary>A comment or header line (starts with '#') or a blank line.</summary>
    Comment,
    /// <summary><c>CPU:N [LOST N EVENTS]</c>.</summary>
    LostEvents,
    /// <summary>A well-formed event of a tracepoint the replayer does not handle.</summary>
    OtherEvent,
    /// <summary>Not a trace line; the parser's <see cref="FtraceParser.Error"/> says why.</summary>
    Malformed,
}
