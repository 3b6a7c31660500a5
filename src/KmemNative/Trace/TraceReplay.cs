using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Diagnostics;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Trace;

/// <summary>
/// <c>kmem replay</c>: reads a kmem ftrace (plain or gzip) and replays its events onto an emulated machine — the
/// traced CPU's emulated CPU runs each event, traced addresses and pfns map to the emulator's own objects — and
/// counts what it did (<see cref="TraceReplayResult"/>).
/// </summary>
/// <remarks>
/// <para>What each event does: <c>kmem_cache_alloc</c> allocates from the cache of that name (created on first sight
/// with the traced object size, aligned so its stride matches the traced bytes_alloc when it can);
/// <c>kmalloc</c> goes through the kmalloc caches with the traced size and GFP flags (its size class is compared
/// with the traced bytes_alloc); <c>kfree</c> and <c>kmem_cache_free</c> free the object the traced pointer maps
/// to; <c>mm_page_alloc</c>/<c>mm_page_free</c> allocate and free blocks of the traced order and GFP flags, except
/// the slab allocator's own pages and those of large kmallocs, which the emulator's slab allocator makes itself
/// (<see cref="SlabPageHeuristic"/>).</para>
/// <para>What real traces contain is handled: frees of objects allocated before recording began (skipped and
/// counted), kfree(NULL) (a no-op), interleaved CPUs, allocations that failed in the traced kernel (retried; given
/// back at once if the emulator succeeds), allocations failing in the emulator (counted; their frees skipped),
/// comment and header lines, <c>CPU:N [LOST N EVENTS]</c> markers, other tracepoints, malformed lines (reported
/// with their line numbers; fatal with <see cref="TraceReplayOptions.Strict"/>).</para>
/// </remarks>
public static class TraceReplay
{
    /// <summary>
    /// Replays <paramref name="reader"/>. The header (comment lines up to the first event) is read first and handed
    /// to <paramref name="boot"/>, which returns the machine to replay on (booting one, typically with the header's
    /// <c>#P:N</c> CPUs, or an existing one).
    /// </summary>
    /// <param name="reader">The trace.</param>
    /// <param name="boot">Gives the machine once the header is known.</param>
    /// <param name="options">How to replay.</param>
    /// <param name="source">The trace's name for reports.</param>
    /// <exception cref="TraceFormatException">Truncated or corrupt compressed data; a malformed line with
    /// <see cref="TraceReplayOptions.Strict"/>. The machine is consistent: the events before it were replayed.</exception>
    public static TraceReplayResult Run(FtraceReader reader, Func<TraceHeader, Machine> boot, TraceReplayOptions? options = null, string source = "-")
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(boot);
        options ??= new TraceReplayOptions();
        var result = new TraceReplayResult { Source = source, Gzip = reader.IsGzip };
        var parser = new FtraceParser();
        var clock = Stopwatch.StartNew();

        // The header: comment lines up to the first event (or the first annotation other than the machine line).
        int? cpus = null;
        long? entries = null;
        TraceAnnotationInfo? machineLine = null;
        bool haveLine = false;
        ReadOnlySpan<byte> line = default;
        while (reader.TryReadLine(out line))
        {
            var t = line.TrimStart((byte)' ');
            if (t.IsEmpty || (t.Length == 1 && t[0] == (byte)'\r'))
                continue;
            if (t[0] != (byte)'#')
            {
                haveLine = true;
                break;
            }
            if (TraceAnnotation.IsAnnotation(t))
            {
                if (TraceAnnotation.Parse(t, out _) is { Kind: TraceAnnotationKind.Machine } m)
                {
                    machineLine = m;
                    continue;
                }
                haveLine = true;
                break;
            }
            ReadHeaderComment(t, ref cpus, ref entries);
        }

        var header = new TraceHeader(cpus, entries, machineLine);
        result.Header = header;
        var machine = boot(header);
        result.Arch = machine.Arch;
        result.MemBytes = machine.Config.MemBytes;
        result.Cpus = machine.Cpus.Count;
        ITraceReplayer replayer = machine switch
        {
            Machine<X86_64> x => new TraceReplayer<X86_64>(x, parser, result, options),
            Machine<I386> i => new TraceReplayer<I386>(i, parser, result, options),
            _ => throw new InvalidOperationException($"no replayer for {machine.GetType().Name}"),
        };

        var state = new RunState(replayer, result, options);
        try
        {
            if (options.Pipelined && Environment.ProcessorCount > 1)
                RunPipelined(reader, parser, haveLine ? line.ToArray() : null, reader.LineNumber, state);
            else
                RunInline(reader, parser, haveLine, line, state);
        }
        finally
        {
            replayer.Finish();
            result.Lines = state.StopLine > 0 ? state.StopLine : state.Lines > 0 ? state.Lines : reader.LineNumber;
            result.TextBytes = state.TextBytes > 0 ? state.TextBytes : reader.BytesRead;
        }
        options.Progress?.Invoke(new TraceReplayProgress(result.Lines, reader.SourcePosition, reader.SourceLength, Done: true));
        result.Elapsed = clock.Elapsed;
        result.Buddyinfo = machine.Proc.Buddyinfo();
        foreach (var s in machine.KmemCaches)
        {
            var info = machine.Slabinfo(s);
            if (info.NumSlabs > 0)
                result.CachesByMemory.Add(new CacheFootprint(info, info.NumSlabs * info.PagesPerSlab * (long)PageSize.Bytes));
        }
        result.CachesByMemory.Sort((a, b) => b.Bytes != a.Bytes ? b.Bytes.CompareTo(a.Bytes) : string.CompareOrdinal(a.Info.Name, b.Info.Name));
        return result;
    }

    /// <summary>What the consuming loop keeps between lines.</summary>
    private sealed class RunState(ITraceReplayer replayer, TraceReplayResult result, TraceReplayOptions options)
    {
        public readonly ITraceReplayer Replayer = replayer;
        public readonly TraceReplayResult Result = result;
        public readonly TraceReplayOptions Options = options;
        public long Events;
        public long Lines, TextBytes, StopLine;
        public long NextProgress = options.ProgressInterval;
    }

    /// <summary>One thread: read, parse and replay each line in turn.</summary>
    private static void RunInline(FtraceReader reader, FtraceParser parser, bool haveLine, ReadOnlySpan<byte> line, RunState state)
    {
        var item = default(TraceItem);
        while (haveLine || reader.TryReadLine(out line))
        {
            haveLine = false;
            if (TracePipeline.Parse(parser, line, reader.LineNumber, ref item) && !Consume(ref item, state))
                break;
            if (reader.LineNumber >= state.NextProgress && state.Options.Progress is { } progress)
            {
                state.NextProgress = reader.LineNumber + state.Options.ProgressInterval;
                progress(new TraceReplayProgress(reader.LineNumber, reader.SourcePosition, reader.SourceLength, Done: false));
            }
        }
        state.Lines = reader.LineNumber;
        state.TextBytes = reader.BytesRead;
    }

    /// <summary>Two threads: a reader thread decompresses and parses into batches, this one replays them (<see cref="TracePipeline"/>).</summary>
    private static void RunPipelined(FtraceReader reader, FtraceParser parser, byte[]? firstLine, long firstNumber, RunState state)
    {
        var pool = TraceBatch.NewPool();
        using var queue = new BlockingCollection<TraceBatch>(TracePipeline.QueueDepth);
        var stop = new StrongBox<bool>();
        var thread = TracePipeline.StartReader(reader, parser, firstLine, firstNumber, queue, pool, stop);
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable())
            {
                bool go = true;
                for (int i = 0; i < batch.Count && go; i++)
                    go = Consume(ref batch.Items[i], state);
                state.Lines = batch.Lines;
                state.TextBytes = batch.TextBytes;
                var error = batch.Error;
                if (batch.Lines >= state.NextProgress && state.Options.Progress is { } progress)
                {
                    state.NextProgress = batch.Lines + state.Options.ProgressInterval;
                    progress(new TraceReplayProgress(batch.Lines, batch.SourcePosition, reader.SourceLength, Done: false));
                }
                pool.Return(batch);
                if (error is not null)
                    ExceptionDispatchInfo.Capture(error).Throw();
                if (!go)
                    break;
            }
        }
        finally
        {
            // Stop the reader (early end, error) and let it finish its last batch.
            Volatile.Write(ref stop.Value, true);
            while (!queue.IsCompleted)
            {
                if (queue.TryTake(out var rest, 50))
                    pool.Return(rest);
            }
            thread.Join();
        }
    }

    /// <summary>Replays or accounts one parsed line; false when the replay must stop (--limit reached).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Consume(ref TraceItem item, RunState state)
    {
        if (item.Kind == FtraceLineKind.Event)
        {
            state.Replayer.Replay(ref item.Event, item.Line);
            if (++state.Events >= state.Options.MaxEvents)
            {
                // Lines counts up to this event, whether or not a reader thread has read further.
                state.Result.StoppedAtLimit = true;
                state.StopLine = item.Line;
                return false;
            }
            return true;
        }
        ConsumeOther(ref item, state);
        return true;
    }

    private static void ConsumeOther(ref TraceItem item, RunState state)
    {
        var result = state.Result;
        switch (item.Kind)
        {
            case FtraceLineKind.Comment:
                state.Replayer.Annotate((TraceAnnotationInfo)item.Extra!, (int)item.Number, item.Line);
                break;
            case FtraceLineKind.LostEvents:
                result.LostMarkers++;
                result.LostEvents += item.Number;
                state.Replayer.Lost();
                break;
            case FtraceLineKind.OtherEvent:
                string name = (string)item.Extra!;
                result.OtherEvents[name] = result.OtherEvents.GetValueOrDefault(name) + 1;
                break;
            default:
                Malformed(result, state.Options, item.Line, (string)item.Extra!);
                break;
        }
    }

    /// <summary>Replays a trace file onto a machine booted by <paramref name="boot"/> (a convenience over <see cref="Run"/>).</summary>
    /// <exception cref="TraceFormatException">The file cannot be read, or is truncated or corrupt.</exception>
    public static TraceReplayResult RunFile(string path, Func<TraceHeader, Machine> boot, TraceReplayOptions? options = null)
    {
        using var reader = FtraceReader.Open(path);
        return Run(reader, boot, options, path);
    }

    /// <summary>"# entries-in-buffer/entries-written: 670993/670993   #P:2".</summary>
    private static void ReadHeaderComment(ReadOnlySpan<byte> t, ref int? cpus, ref long? entries)
    {
        int p = t.IndexOf("#P:"u8);
        if (p >= 0 && Utf8Parser.TryParse(t[(p + 3)..], out int n, out _) && n > 0)
            cpus = n;
        int e = t.IndexOf("entries-in-buffer/entries-written: "u8);
        if (e >= 0 && Utf8Parser.TryParse(t[(e + "entries-in-buffer/entries-written: ".Length)..], out long count, out _))
            entries = count;
    }

    private static void Malformed(TraceReplayResult result, TraceReplayOptions options, long line, string why)
    {
        result.Malformed++;
        if (options.Strict)
            throw new TraceFormatException($"line {line}: malformed trace line: {why}", line);
        if (result.MalformedLines.Count < options.MalformedReportLimit)
            result.MalformedLines.Add(new MalformedLine(line, why));
    }
}
