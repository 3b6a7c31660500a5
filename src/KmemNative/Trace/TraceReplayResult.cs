using KmemNative.Arch;
using KmemNative.Slab;

namespace KmemNative.Trace;

/// <summary>Why a traced event was not replayed.</summary>
public enum ReplaySkip
{
    /// <summary>A free of an object the trace never allocated: allocated before recording began (or in lost events).</summary>
    UnknownObject,
    /// <summary>A page free of a block the trace never allocated: allocated before recording began.</summary>
    UnknownPage,
    /// <summary>A free of an object or block whose replayed allocation failed in the emulator.</summary>
    AllocationFailedHere,
    /// <summary>An mm_page_alloc/free of the traced slab allocator's own pages (see <see cref="SlabPageHeuristic"/>).</summary>
    SlabPage,
    /// <summary>An mm_page_alloc/free of a large kmalloc's pages: the kmalloc/kfree event replays them.</summary>
    LargeKmallocPage,
    /// <summary>The traced CPU does not exist on the emulated machine (or another thread holds it).</summary>
    CpuUnavailable,
    /// <summary>An event of a cache the emulator could not create.</summary>
    CacheUnavailable,
}

/// <summary>One line the replay could not read.</summary>
/// <param name="Line">1-based line number.</param>
/// <param name="Reason">What is wrong with it.</param>
public sealed record MalformedLine(long Line, string Reason);

/// <summary>A kmalloc whose size class in the emulator differs from the traced one.</summary>
/// <param name="Line">Line of the event.</param>
/// <param name="BytesReq">Requested size.</param>
/// <param name="TracedBytesAlloc">bytes_alloc in the trace.</param>
/// <param name="EmulatorBytesAlloc">What the emulator's kmalloc hands out for the same request.</param>
/// <param name="Gfp">The GFP flags (they pick the kmalloc type).</param>
public sealed record KmallocMismatch(long Line, long BytesReq, long TracedBytesAlloc, long EmulatorBytesAlloc, string Gfp);

/// <summary>How a cache the replay created compares with the traced one.</summary>
/// <param name="Name">Cache name.</param>
/// <param name="ObjectSize">The traced bytes_req (object_size) the cache was created with.</param>
/// <param name="TracedStride">The traced bytes_alloc (s-&gt;size).</param>
/// <param name="EmulatorStride">The emulator cache's object stride (s-&gt;size).</param>
/// <param name="How">How the replay chose the geometry: "existing", "annotation", "aligned N", "free pointer after the object, aligned N", "default".</param>
/// <param name="Allocations">kmem_cache_alloc events replayed on it.</param>
public sealed record CacheStride(string Name, long ObjectSize, long TracedStride, long EmulatorStride, string How, long Allocations)
{
    /// <summary>True when the emulator's stride equals the traced bytes_alloc.</summary>
    public bool Matches => TracedStride == EmulatorStride;
}

/// <summary>A slab cache's footprint at the end of a replay.</summary>
/// <param name="Info">Its /proc/slabinfo numbers.</param>
/// <param name="Bytes">Memory of its slabs (num_slabs × pagesperslab × PAGE_SIZE).</param>
public sealed record CacheFootprint(SlabInfo Info, long Bytes);

/// <summary>Everything a replay counted; <see cref="TraceReplayReport"/> prints it as text or JSON.</summary>
public sealed class TraceReplayResult
{
    internal readonly long[] EventCounts = new long[KindCount];
    internal readonly long[] ReplayedCounts = new long[KindCount];
    internal readonly long[] FailedCounts = new long[KindCount];
    internal readonly long[] RefusedCounts = new long[KindCount];
    internal readonly long[] SkippedCounts = new long[KindCount];
    internal readonly long[] SkipCounts = new long[Enum.GetValues<ReplaySkip>().Length];
    internal const int KindCount = (int)FtraceEventKind.MmPageFreeBatched + 1;

    /// <summary>The file replayed ("-" for standard input).</summary>
    public string Source { get; internal set; } = "";

    /// <summary>True when the input was gzip-compressed.</summary>
    public bool Gzip { get; internal set; }

    /// <summary>Lines read.</summary>
    public long Lines { get; internal set; }

    /// <summary>Bytes of text read.</summary>
    public long TextBytes { get; internal set; }

    /// <summary>Wall time of the replay (reading, decompressing, parsing and replaying; not booting).</summary>
    public TimeSpan Elapsed { get; internal set; }

    /// <summary>The machine's profile.</summary>
    public ArchKind Arch { get; internal set; }

    /// <summary>The machine's RAM.</summary>
    public ulong MemBytes { get; internal set; }

    /// <summary>The machine's CPUs.</summary>
    public int Cpus { get; internal set; }

    /// <summary>What the header said.</summary>
    public TraceHeader Header { get; internal set; } = new(null, null, null);

    /// <summary>Events read, by tracepoint.</summary>
    public long Events(FtraceEventKind kind) => EventCounts[(int)kind];

    /// <summary>Events read, in total.</summary>
    public long TotalEvents => EventCounts.Sum();

    /// <summary>Events replayed onto the machine, by tracepoint.</summary>
    public long Replayed(FtraceEventKind kind) => ReplayedCounts[(int)kind];

    /// <summary>Events replayed in total.</summary>
    public long TotalReplayed => ReplayedCounts.Sum();

    /// <summary>Events skipped, by reason.</summary>
    public long Skipped(ReplaySkip why) => SkipCounts[(int)why];

    /// <summary>Events skipped, by tracepoint.</summary>
    public long Skipped(FtraceEventKind kind) => SkippedCounts[(int)kind];

    /// <summary>Events the emulator refused with an error (a bad page, a slab bug report), by tracepoint.</summary>
    public long Refused(FtraceEventKind kind) => RefusedCounts[(int)kind];

    /// <summary>Events skipped in total.</summary>
    public long TotalSkipped => SkipCounts.Sum();

    /// <summary>Allocations the emulator could not satisfy plus operations it refused, by tracepoint.</summary>
    public long Failed(FtraceEventKind kind) => FailedCounts[(int)kind];

    /// <summary>Failed allocations and refused operations in total.</summary>
    public long TotalFailed => FailedCounts.Sum();

    /// <summary>The first messages of operations the emulator refused with an error (a bad page, a slab bug report).</summary>
    public List<string> RefusedMessages { get; } = [];

    /// <summary>Malformed lines.</summary>
    public long Malformed { get; internal set; }

    /// <summary>The first malformed lines with their reasons.</summary>
    public List<MalformedLine> MalformedLines { get; } = [];

    /// <summary><c>CPU:N [LOST N EVENTS]</c> lines.</summary>
    public long LostMarkers { get; internal set; }

    /// <summary>Events the tracer lost, summed over the markers.</summary>
    public long LostEvents { get; internal set; }

    /// <summary>Well-formed events of other tracepoints, by name (not replayed).</summary>
    public SortedDictionary<string, long> OtherEvents { get; } = new(StringComparer.Ordinal);

    /// <summary>kfree(NULL) and kfree(ZERO_SIZE_PTR): replayed as the no-ops they are.</summary>
    public long KfreeNull { get; internal set; }

    /// <summary>Allocations that failed in the traced kernel (ptr 0, page=0): retried here.</summary>
    public long TracedFailures { get; internal set; }

    /// <summary>Traced failures that succeeded in the emulator: freed again at once.</summary>
    public long TracedFailuresSucceeded { get; internal set; }

    /// <summary>Allocations at an address (or pfn) the replay still held: the traced kernel freed it without a traced free.</summary>
    public long ImplicitFrees { get; internal set; }

    /// <summary>mm_page_free of pages inside a larger block allocated without __GFP_COMP: split_page() first.</summary>
    public long SplitPages { get; internal set; }

    /// <summary>kmem_cache_create / kmem_cache_destroy annotations honoured.</summary>
    public long Annotations { get; internal set; }

    /// <summary>kmalloc events whose size class was compared.</summary>
    public long KmallocCompared { get; internal set; }

    /// <summary>kmalloc events whose traced bytes_alloc differs from the emulator's for the same size and flags.</summary>
    public long KmallocSizeClassMismatches { get; internal set; }

    /// <summary>The first mismatches.</summary>
    public List<KmallocMismatch> KmallocMismatchSamples { get; } = [];

    /// <summary>Every cache kmem_cache_alloc events used, with its stride against the traced bytes_alloc.</summary>
    public List<CacheStride> CacheStrides { get; } = [];

    /// <summary>Caches the replay created.</summary>
    public long CachesCreated { get; internal set; }

    /// <summary>Peak pages held by the replayed workload: page allocations plus slab pages (NR_SLAB_*).</summary>
    public long PeakPagesInUse { get; internal set; }

    /// <summary>Pages of replayed page allocations still held at the end.</summary>
    public long PagesHeld { get; internal set; }

    /// <summary>Slab objects (kmalloc and kmem_cache_alloc) still held at the end.</summary>
    public long ObjectsHeld { get; internal set; }

    /// <summary>Slab pages (NR_SLAB_RECLAIMABLE + NR_SLAB_UNRECLAIMABLE) at the end.</summary>
    public long SlabPages { get; internal set; }

    /// <summary>True when <see cref="TraceReplayOptions.MaxEvents"/> stopped the replay early.</summary>
    public bool StoppedAtLimit { get; internal set; }

    /// <summary>/proc/buddyinfo at the end.</summary>
    public string Buddyinfo { get; internal set; } = "";

    /// <summary>Slab caches by memory, largest first (those holding any slab).</summary>
    public List<CacheFootprint> CachesByMemory { get; } = [];
}
