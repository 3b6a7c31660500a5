using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KmemNative.Trace;

/// <summary>Prints a <see cref="TraceReplayResult"/>: the human summary of <c>kmem replay</c> and its <c>--json</c> object.</summary>
public static class TraceReplayReport
{
    /// <summary>The tracepoints in the order the summary lists them.</summary>
    public static IReadOnlyList<FtraceEventKind> Kinds { get; } =
    [
        FtraceEventKind.KmemCacheAlloc, FtraceEventKind.KmemCacheFree, FtraceEventKind.Kmalloc, FtraceEventKind.Kfree,
        FtraceEventKind.MmPageAlloc, FtraceEventKind.MmPageFree, FtraceEventKind.MmPageFreeBatched,
    ];

    /// <summary>The JSON/short name of a skip reason.</summary>
    public static string Key(ReplaySkip why) => why switch
    {
        ReplaySkip.UnknownObject => "unknown_object",
        ReplaySkip.UnknownPage => "unknown_page",
        ReplaySkip.AllocationFailedHere => "allocation_failed_here",
        ReplaySkip.SlabPage => "slab_page",
        ReplaySkip.LargeKmallocPage => "large_kmalloc_page",
        ReplaySkip.CpuUnavailable => "cpu_unavailable",
        _ => "cache_unavailable",
    };

    /// <summary>What a skip reason means, for the summary.</summary>
    public static string Describe(ReplaySkip why) => why switch
    {
        ReplaySkip.UnknownObject => "frees of objects allocated before recording began",
        ReplaySkip.UnknownPage => "frees of pages allocated before recording began",
        ReplaySkip.AllocationFailedHere => "frees of allocations that failed in the emulator",
        ReplaySkip.SlabPage => "slab pages (the emulator's slab allocator makes its own)",
        ReplaySkip.LargeKmallocPage => "large kmalloc pages (replayed by their kmalloc/kfree)",
        ReplaySkip.CpuUnavailable => "events of CPUs the machine does not have",
        _ => "events of caches the emulator could not create",
    };

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>The summary as text. <paramref name="timing"/> adds the wall-clock line (left out where output must be reproducible).</summary>
    public static string Text(TraceReplayResult r, bool timing = true)
    {
        var sb = new StringBuilder();
        string what = r.Gzip ? "gzip" : "text";
        sb.Append(F($"Replayed {r.Source}: {N(r.Lines)} lines ({what}, {r.TextBytes / 1e6:F1} MB of text), {N(r.TotalEvents)} events"));
        if (r.StoppedAtLimit)
            sb.Append(" (stopped at --limit)");
        sb.Append('\n');
        if (timing)
        {
            double secs = r.Elapsed.TotalSeconds;
            sb.Append(F($"Time: {secs:F3} s ({(secs > 0 ? r.TotalEvents / secs / 1e6 : 0):F2} M events/s)\n"));
        }
        string header = r.Header.Cpus is { } p ? F($" (trace header #P:{p})") : "";
        sb.Append(F($"Machine: {MachineConfig.ArchName(r.Arch)}, {r.MemBytes >> 20} MiB, {r.Cpus} CPUs{header}\n\n"));

        sb.Append(F($"{"event",-22}{"in trace",12}{"replayed",12}{"skipped",12}{"failed",12}\n"));
        foreach (var k in Kinds)
        {
            if (k == FtraceEventKind.MmPageFreeBatched && r.Events(k) == 0)
                continue;
            sb.Append(F($"{FtraceEvent.Name(k),-22}{N(r.Events(k)),12}{N(r.Replayed(k)),12}{N(r.Skipped(k)),12}{N(r.Failed(k)),12}\n"));
        }
        sb.Append(F($"{"total",-22}{N(r.TotalEvents),12}{N(r.TotalReplayed),12}{N(r.TotalSkipped),12}{N(r.TotalFailed),12}\n\n"));

        sb.Append("Skipped, by reason:\n");
        bool any = false;
        foreach (var why in Enum.GetValues<ReplaySkip>())
        {
            if (r.Skipped(why) == 0)
                continue;
            any = true;
            sb.Append(F($"  {Describe(why),-58}{N(r.Skipped(why)),10}\n"));
        }
        if (!any)
            sb.Append("  nothing\n");
        sb.Append(F($"kfree(NULL): {N(r.KfreeNull)} (a no-op in the kernel, replayed as one)\n"));
        sb.Append(F($"Allocation failures in the emulator: {N(r.TotalFailed)}"));
        if (r.TotalFailed > 0)
            sb.Append(F($" (peak use {N(r.PeakPagesInUse)} pages: try a larger --mem)"));
        sb.Append('\n');
        foreach (var m in r.RefusedMessages)
            sb.Append("  ").Append(m).Append('\n');
        sb.Append(F($"Allocations that failed in the traced kernel: {N(r.TracedFailures)} (retried; {N(r.TracedFailuresSucceeded)} succeeded here and were freed at once)\n"));
        if (r.ImplicitFrees > 0)
            sb.Append(F($"Addresses reused without a traced free (freed implicitly): {N(r.ImplicitFrees)}\n"));
        if (r.SplitPages > 0)
            sb.Append(F($"Blocks split by split_page() (freed page by page): {N(r.SplitPages)}\n"));
        if (r.Annotations > 0)
            sb.Append(F($"kmemnative annotations (kmem_cache_create/destroy): {N(r.Annotations)}\n"));
        sb.Append(F($"Malformed lines: {N(r.Malformed)}\n"));
        foreach (var m in r.MalformedLines)
            sb.Append(F($"  line {m.Line}: {m.Reason}\n"));
        if (r.Malformed > r.MalformedLines.Count)
            sb.Append(F($"  ... and {N(r.Malformed - r.MalformedLines.Count)} more\n"));
        sb.Append(F($"Lost events: {N(r.LostEvents)} ({N(r.LostMarkers)} CPU:N [LOST N EVENTS] markers)\n"));
        if (r.OtherEvents.Count > 0)
            sb.Append("Other tracepoints (not replayed): ").AppendJoin(", ", r.OtherEvents.Select(kv => F($"{kv.Key} {N(kv.Value)}"))).Append('\n');

        sb.Append("\nFidelity:\n");
        sb.Append(F($"  kmalloc size classes: {N(r.KmallocCompared)} compared with the traced bytes_alloc, {N(r.KmallocSizeClassMismatches)} mismatches\n"));
        foreach (var m in r.KmallocMismatchSamples)
            sb.Append(F($"    line {m.Line}: kmalloc({m.BytesReq}, {m.Gfp}): traced {m.TracedBytesAlloc}, emulator {m.EmulatorBytesAlloc}\n"));
        int matching = r.CacheStrides.Count(c => c.Matches);
        sb.Append(F($"  kmem_cache strides: {r.CacheStrides.Count} caches, {matching} equal to the traced bytes_alloc ({N(r.CachesCreated)} caches created)\n"));
        if (r.CacheStrides.Count > 0)
        {
            sb.Append(F($"    {"cache",-26}{"object",8}{"traced",8}{"here",8}  {"allocs",10}  geometry\n"));
            foreach (var c in r.CacheStrides.OrderBy(c => c.Name, StringComparer.Ordinal))
                sb.Append(F($"    {c.Name,-26}{c.ObjectSize,8}{c.TracedStride,8}{c.EmulatorStride,8}{(c.Matches ? "  " : " ≠")}{N(c.Allocations),10}  {c.How}\n"));
        }

        sb.Append(F($"\nPeak pages in use: {N(r.PeakPagesInUse)} ({r.PeakPagesInUse * 4096.0 / (1 << 20):F1} MiB: page allocations + slab pages)\n"));
        sb.Append(F($"At the end: {N(r.PagesHeld)} pages held by page allocations, {N(r.SlabPages)} slab pages, {N(r.ObjectsHeld)} objects\n"));
        sb.Append("\nFinal /proc/buddyinfo:\n").Append(r.Buddyinfo);
        sb.Append("\nTop slab caches by memory:\n");
        sb.Append(F($"  {"cache",-24}{"active",10}{"objs",10}{"objsize",8}{"slabs",8}{"pages",6}{"KiB",10}\n"));
        foreach (var c in r.CachesByMemory.Take(10))
        {
            var i = c.Info;
            sb.Append(F($"  {i.Name,-24}{N(i.ActiveObjs),10}{N(i.NumObjs),10}{i.ObjSize,8}{N(i.NumSlabs),8}{i.PagesPerSlab,6}{N(c.Bytes / 1024),10}\n"));
        }
        return sb.ToString();
    }

    /// <summary>The summary as one JSON object (<c>kmem replay --json</c>).</summary>
    public static string Json(TraceReplayResult r, bool timing = true)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("source", r.Source);
            w.WriteBoolean("gzip", r.Gzip);
            w.WriteNumber("lines", r.Lines);
            w.WriteNumber("text_bytes", r.TextBytes);
            if (timing)
                w.WriteNumber("elapsed_ms", Math.Round(r.Elapsed.TotalMilliseconds, 1));
            w.WriteStartObject("machine");
            w.WriteString("arch", MachineConfig.ArchName(r.Arch));
            w.WriteNumber("mem_mib", r.MemBytes >> 20);
            w.WriteNumber("cpus", r.Cpus);
            w.WriteEndObject();
            if (r.Header.Cpus is { } hc)
                w.WriteNumber("header_cpus", hc);

            w.WriteStartObject("events");
            foreach (var k in Kinds)
                w.WriteNumber(FtraceEvent.Name(k), r.Events(k));
            w.WriteEndObject();
            w.WriteNumber("total_events", r.TotalEvents);
            w.WriteNumber("replayed", r.TotalReplayed);
            ByKind(w, "replayed_by_event", r.Replayed);
            w.WriteNumber("skipped", r.TotalSkipped);
            w.WriteStartObject("skipped_by_reason");
            foreach (var why in Enum.GetValues<ReplaySkip>())
                w.WriteNumber(Key(why), r.Skipped(why));
            w.WriteEndObject();
            ByKind(w, "skipped_by_event", r.Skipped);
            w.WriteNumber("failed", r.TotalFailed);
            ByKind(w, "failed_by_event", r.Failed);
            w.WriteStartArray("refused_messages");
            foreach (var m in r.RefusedMessages)
                w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteNumber("malformed", r.Malformed);
            w.WriteStartArray("malformed_lines");
            foreach (var m in r.MalformedLines)
            {
                w.WriteStartObject();
                w.WriteNumber("line", m.Line);
                w.WriteString("reason", m.Reason);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("lost_events", r.LostEvents);
            w.WriteNumber("lost_markers", r.LostMarkers);
            w.WriteStartObject("other_events");
            foreach (var (name, count) in r.OtherEvents)
                w.WriteNumber(name, count);
            w.WriteEndObject();
            w.WriteNumber("kfree_null", r.KfreeNull);
            w.WriteNumber("traced_failures", r.TracedFailures);
            w.WriteNumber("traced_failures_succeeded", r.TracedFailuresSucceeded);
            w.WriteNumber("implicit_frees", r.ImplicitFrees);
            w.WriteNumber("split_pages", r.SplitPages);
            w.WriteNumber("annotations", r.Annotations);
            w.WriteNumber("kmalloc_compared", r.KmallocCompared);
            w.WriteNumber("kmalloc_size_class_mismatches", r.KmallocSizeClassMismatches);
            w.WriteStartArray("kmalloc_mismatch_samples");
            foreach (var m in r.KmallocMismatchSamples)
            {
                w.WriteStartObject();
                w.WriteNumber("line", m.Line);
                w.WriteNumber("bytes_req", m.BytesReq);
                w.WriteNumber("traced_bytes_alloc", m.TracedBytesAlloc);
                w.WriteNumber("emulator_bytes_alloc", m.EmulatorBytesAlloc);
                w.WriteString("gfp_flags", m.Gfp);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("caches_created", r.CachesCreated);
            w.WriteStartArray("cache_strides");
            foreach (var c in r.CacheStrides.OrderBy(c => c.Name, StringComparer.Ordinal))
            {
                w.WriteStartObject();
                w.WriteString("name", c.Name);
                w.WriteNumber("object_size", c.ObjectSize);
                w.WriteNumber("traced_bytes_alloc", c.TracedStride);
                w.WriteNumber("emulator_stride", c.EmulatorStride);
                w.WriteBoolean("matches", c.Matches);
                w.WriteString("geometry", c.How);
                w.WriteNumber("allocations", c.Allocations);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("peak_pages_in_use", r.PeakPagesInUse);
            w.WriteNumber("pages_held", r.PagesHeld);
            w.WriteNumber("slab_pages", r.SlabPages);
            w.WriteNumber("objects_held", r.ObjectsHeld);
            w.WriteStartArray("buddyinfo");
            foreach (var line in r.Buddyinfo.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                // "Node 0, zone   Normal      1      2 ..."
                var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                w.WriteStartObject();
                w.WriteString("zone", words[3]);
                w.WriteStartArray("free");
                foreach (var n in words.Skip(4))
                    w.WriteNumberValue(long.Parse(n, CultureInfo.InvariantCulture));
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("top_slab_caches");
            foreach (var c in r.CachesByMemory.Take(10))
            {
                w.WriteStartObject();
                w.WriteString("name", c.Info.Name);
                w.WriteNumber("active_objs", c.Info.ActiveObjs);
                w.WriteNumber("num_objs", c.Info.NumObjs);
                w.WriteNumber("objsize", c.Info.ObjSize);
                w.WriteNumber("num_slabs", c.Info.NumSlabs);
                w.WriteNumber("pages_per_slab", c.Info.PagesPerSlab);
                w.WriteNumber("bytes", c.Bytes);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void ByKind(Utf8JsonWriter w, string name, Func<FtraceEventKind, long> count)
    {
        w.WriteStartObject(name);
        foreach (var k in Kinds)
            w.WriteNumber(FtraceEvent.Name(k), count(k));
        w.WriteEndObject();
    }
}
