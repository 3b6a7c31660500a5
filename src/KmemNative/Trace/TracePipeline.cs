using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.ObjectPool;

namespace KmemNative.Trace;

/// <summary>One line of a trace as the replay consumes it: an event, or a line that matters to the replay.</summary>
internal struct TraceItem
{
    public FtraceLineKind Kind;
    public long Line;
    public FtraceEvent Event;
    /// <summary>Annotation (<see cref="TraceAnnotationInfo"/>), malformed reason or other event name.</summary>
    public object? Extra;
    /// <summary>LostEvents: how many; annotation: the interned cache name.</summary>
    public long Number;
}

/// <summary>A batch of parsed lines handed from the reading thread to the replaying thread; pooled and reused.</summary>
internal sealed class TraceBatch
{
    public const int Capacity = 2048;

    public readonly TraceItem[] Items = new TraceItem[Capacity];
    public int Count;
    public long SourcePosition;
    public long Lines;
    public long TextBytes;
    /// <summary>The reader failed after the items (truncated gzip...): rethrown on the replaying thread, in order.</summary>
    public Exception? Error;

    public void Reset()
    {
        Count = 0;
        Error = null;
    }

    private sealed class Policy : PooledObjectPolicy<TraceBatch>
    {
        public override TraceBatch Create() => new();

        public override bool Return(TraceBatch obj)
        {
            // Drop references held by the previous lines (annotations, messages).
            for (int i = 0; i < obj.Count; i++)
                obj.Items[i].Extra = null;
            obj.Reset();
            return true;
        }
    }

    /// <summary>The pool of batches of one replay: the batches in flight plus one being filled and one being replayed.</summary>
    public static ObjectPool<TraceBatch> NewPool() => new DefaultObjectPool<TraceBatch>(new Policy(), TracePipeline.QueueDepth + 2);
}

/// <summary>
/// Reading, decompressing and parsing on one thread, replaying on another: the trace's lines are parsed in place
/// into pooled <see cref="TraceBatch"/>es (no allocation per line), handed over through a bounded queue, and
/// replayed in order. On two cores the replay then costs about max(read + parse, replay) instead of their sum.
/// </summary>
internal static class TracePipeline
{
    /// <summary>Batches queued between the threads.</summary>
    public const int QueueDepth = 4;

    /// <summary>
    /// Parses one line into <paramref name="item"/>; false for lines the replay does not need (comments, blanks).
    /// Runs on the reading thread: interns strings (the parser's table is written by this thread only).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Parse(FtraceParser parser, ReadOnlySpan<byte> line, long number, ref TraceItem item)
    {
        var kind = parser.Parse(line, ref item.Event);
        item.Line = number;
        item.Kind = kind;
        switch (kind)
        {
            case FtraceLineKind.Event:
                return true;
            case FtraceLineKind.Comment:
                return ParseAnnotation(parser, line, ref item);
            case FtraceLineKind.LostEvents:
                item.Number = parser.LostCount;
                return true;
            case FtraceLineKind.OtherEvent:
                item.Extra = parser.OtherEventName;
                return true;
            default:
                item.Extra = parser.Error ?? "not a trace line";
                return true;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool ParseAnnotation(FtraceParser parser, ReadOnlySpan<byte> line, ref TraceItem item)
    {
        if (!TraceAnnotation.IsAnnotation(line))
            return false;
        var a = TraceAnnotation.Parse(line, out string? error);
        if (a is null)
        {
            if (error is null)
                return false;
            item.Kind = FtraceLineKind.Malformed;
            item.Extra = error;
            return true;
        }
        if (a.Kind is not (TraceAnnotationKind.KmemCacheCreate or TraceAnnotationKind.KmemCacheDestroy))
            return false;
        item.Extra = a;
        item.Number = parser.Strings.Intern(a.Name);
        return true;
    }

    /// <summary>
    /// Runs the reading thread: fills batches from <paramref name="reader"/> (starting with the already-read
    /// <paramref name="firstLine"/>) until the end, an error, or <paramref name="stop"/>.
    /// </summary>
    public static Thread StartReader(FtraceReader reader, FtraceParser parser, byte[]? firstLine, long firstNumber,
        BlockingCollection<TraceBatch> queue, ObjectPool<TraceBatch> pool, StrongBox<bool> stop)
    {
        var thread = new Thread(() =>
        {
            var batch = pool.Get();
            try
            {
                if (firstLine is not null && Parse(parser, firstLine, firstNumber, ref batch.Items[0]))
                    batch.Count = 1;
                while (!Volatile.Read(ref stop.Value) && reader.TryReadLine(out var line))
                {
                    if (!Parse(parser, line, reader.LineNumber, ref batch.Items[batch.Count]))
                        continue;
                    if (++batch.Count == TraceBatch.Capacity)
                    {
                        Seal(batch, reader);
                        queue.Add(batch);
                        batch = pool.Get();
                    }
                }
            }
            catch (Exception e)
            {
                batch.Error = e;
            }
            try
            {
                Seal(batch, reader);
                queue.Add(batch);
            }
            finally
            {
                queue.CompleteAdding();
            }
        })
        {
            IsBackground = true,
            Name = "kmem trace reader",
        };
        thread.Start();
        return thread;
    }

    private static void Seal(TraceBatch batch, FtraceReader reader)
    {
        batch.SourcePosition = reader.SourcePosition;
        batch.Lines = reader.LineNumber;
        batch.TextBytes = reader.BytesRead;
    }
}
