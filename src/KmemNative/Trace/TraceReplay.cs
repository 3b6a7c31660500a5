using System.Buffers.Text;
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

        var ev = default(FtraceEvent);
        long events = 0;
        long nextProgress = options.ProgressInterval;
        try
        {
            while (haveLine || reader.TryReadLine(out line))
            {
                haveLine = false;
                long number = reader.LineNumber;
                switch (parser.Parse(line, ref ev))
                {
                    case FtraceLineKind.Event:
                        replayer.Replay(ref ev, number);
                        if (++events >= options.MaxEvents)
                        {
                            result.StoppedAtLimit = true;
                            goto done;
                        }
                        break;
                    case FtraceLineKind.Comment:
                        if (TraceAnnotation.IsAnnotation(line))
                            Annotation(replayer, result, options, line, number);
                        break;
                    case FtraceLineKind.LostEvents:
                        result.LostMarkers++;
                        result.LostEvents += parser.LostCount;
                        replayer.Lost();
                        break;
                    case FtraceLineKind.OtherEvent:
                        result.OtherEvents[parser.OtherEventName!] = result.OtherEvents.GetValueOrDefault(parser.OtherEventName!) + 1;
                        break;
                    default:
                        Malformed(result, options, number, parser.Error ?? "not a trace line");
                        break;
                }
                if (number >= nextProgress && options.Progress is { } progress)
                {
                    nextProgress = number + options.ProgressInterval;
                    progress(new TraceReplayProgress(number, reader.SourcePosition, reader.SourceLength, Done: false));
                }
            }
        done:;
        }
        finally
        {
            replayer.Finish();
            result.Lines = reader.LineNumber;
            result.TextBytes = reader.BytesRead;
        }
        options.Progress?.Invoke(new TraceReplayProgress(reader.LineNumber, reader.SourcePosition, reader.SourceLength, Done: true));
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
        if (p > 0 && Utf8Parser.TryParse(t[(p + 3)..], out int n, out _) && n > 0)
            cpus = n;
        int e = t.IndexOf("entries-in-buffer/entries-written: "u8);
        if (e >= 0 && Utf8Parser.TryParse(t[(e + "entries-in-buffer/entries-written: ".Length)..], out long count, out _))
            entries = count;
    }

    private static void Annotation(ITraceReplayer replayer, TraceReplayResult result, TraceReplayOptions options, ReadOnlySpan<byte> line, long number)
    {
        var a = TraceAnnotation.Parse(line, out string? error);
        if (a is null)
        {
            if (error is not null)
                Malformed(result, options, number, error);
            return;
        }
        if (a.Kind is TraceAnnotationKind.KmemCacheCreate or TraceAnnotationKind.KmemCacheDestroy)
            replayer.Annotate(a, number);
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
