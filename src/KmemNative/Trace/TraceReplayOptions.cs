namespace KmemNative.Trace;

/// <summary>How <see cref="TraceReplay"/> replays a trace.</summary>
public sealed record TraceReplayOptions
{
    /// <summary>A malformed line ends the replay with a <see cref="TraceFormatException"/> (<c>--strict</c>).</summary>
    public bool Strict { get; init; }

    /// <summary>
    /// Recognise the traced slab allocator's own page allocations (and those of large kmalloc) and skip them, since
    /// the emulator's slab allocator allocates its own (see <see cref="SlabPageHeuristic"/>). On by default; off
    /// replays them as plain page allocations, counting slab memory twice (<c>--replay-slab-pages</c>).
    /// </summary>
    public bool SkipSlabPages { get; init; } = true;

    /// <summary>
    /// Read, decompress and parse on a second thread while this one replays (when the host has more than one
    /// core). Off: everything on the calling thread. The result is the same either way.
    /// </summary>
    public bool Pipelined { get; init; } = true;

    /// <summary>How many malformed lines are reported with their line number and reason (the rest are counted).</summary>
    public int MalformedReportLimit { get; init; } = 10;

    /// <summary>Replay at most this many events (<c>--limit</c>); the rest of the file is not read.</summary>
    public long MaxEvents { get; init; } = long.MaxValue;

    /// <summary>
    /// Makes the receiver of the machine's own tracepoints during the replay (<c>--trace FILE</c>), once the machine
    /// is booted: attached as <see cref="Machine.Tracer"/> after the slab allocator is up, detached at the end. An
    /// <see cref="FtraceWriter"/> gets each traced event's timestamp, flags and call site, so the written trace keeps
    /// the recording's timeline.
    /// </summary>
    public Func<Machine, IKmemTracer>? Output { get; init; }

    /// <summary>
    /// After the last event, free every object and page block the replay still holds (the machine then keeps only
    /// the caches it created and their empty or partial slabs): a check that the replay conserves memory.
    /// </summary>
    public bool FreeAtEnd { get; init; }

    /// <summary>Called every <see cref="ProgressInterval"/> lines and once at the end (for a progress bar).</summary>
    public Action<TraceReplayProgress>? Progress { get; init; }

    /// <summary>Lines between two <see cref="Progress"/> calls.</summary>
    public int ProgressInterval { get; init; } = 1 << 16;
}

/// <summary>Where a replay is.</summary>
/// <param name="Lines">Lines read.</param>
/// <param name="SourceBytes">Bytes of the file consumed (compressed bytes for gzip).</param>
/// <param name="SourceLength">The file's length when known (a regular file), else null.</param>
/// <param name="Done">True for the final call.</param>
public readonly record struct TraceReplayProgress(long Lines, long SourceBytes, long? SourceLength, bool Done);

/// <summary>What the trace's header said: the machine a replay should boot when the user does not say otherwise.</summary>
/// <param name="Cpus">The <c>#P:N</c> of the header: CPUs of the traced machine.</param>
/// <param name="Entries">entries-in-buffer of the header.</param>
/// <param name="Machine">The <c># kmemnative: machine</c> annotation of a trace the emulator wrote.</param>
public sealed record TraceHeader(int? Cpus, long? Entries, TraceAnnotationInfo? Machine);
