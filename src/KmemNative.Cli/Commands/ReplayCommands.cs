using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.Trace;

namespace KmemNative.Cli.Commands;

/// <summary>
/// <c>replay FILE</c>: replays a kmem ftrace onto a machine (the CLI boots one; a script uses its own) and prints
/// what happened: events by type, replayed, skipped and why, failures, fidelity, peak use, buddyinfo, top caches.
/// </summary>
/// <remarks>
/// Exit codes: 0 the trace was replayed (allocation failures and malformed lines are part of the report);
/// 1 the trace could not be read (missing, empty, truncated or corrupt gzip, not a trace at all: no event and only
/// malformed lines), or a malformed line with <c>--strict</c>; 2 a bad command line.
/// </remarks>
internal sealed class ReplayCommands : ICommandModule
{
    /// <summary>RAM of the machine a CLI replay boots when --mem is not given.</summary>
    public const string DefaultMem = "2G";

    /// <summary>How to choose --mem, for help and errors.</summary>
    public const string MemHelp =
        "Installed RAM [default: 2G, or what a kmem-written trace names]. Traced addresses are mapped, so the traced " +
        "machine's size does not matter: give at least the peak the summary reports (trace A peaks at ~400 MiB)";

    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("replay", "Replay a kmem ftrace (kmalloc/kfree, kmem_cache_alloc/free, mm_page_alloc/free; plain or gzip, '-' = stdin) and summarise it", b =>
        {
            var file = b.Argument("FILE", "The trace: ftrace text as /sys/kernel/tracing/trace prints it, plain or .gz; '-' reads standard input. Exit codes: 0 replayed, 1 unreadable, empty, truncated or not a trace (or a malformed line with --strict), 2 bad arguments");
            var json = b.Flag("--json", "Print the summary as one JSON object (events, replayed, skipped, failed, malformed, kmalloc_size_class_mismatches, ...)");
            var strict = b.Flag("--strict", "A malformed line is an error (exit 1) instead of being reported and skipped");
            var trace = b.Option("--trace", "Write the emulator's own kmem events during the replay to FILE, in ftrace format", s => s, "FILE");
            var svg = b.Option("--svg", "At the end, draw physical memory (owner of every page) to FILE as SVG", s => s, "FILE");
            var fragSvg = b.Option("--frag-svg", "At the end, draw the free lists and fragmentation per zone to FILE as SVG", s => s, "FILE");
            var limit = b.Option("--limit", "Replay only the first N events", t => (long)CliValues.ParseNumber(t, "event count"), "N");
            var slabPages = b.Flag("--replay-slab-pages", "Replay the traced slab allocator's own page allocations too (off by default: the emulator's slab allocator makes its own, so they would be counted twice)");
            var freeAtEnd = b.Flag("--free-at-end", "After the last event, free everything the replay still holds (a conservation check)");
            var machine = b.UsesMachine();
            if (!b.ForScript)
            {
                machine.Arch.Description = "Architecture profile: i386 or x86_64 [default: x86_64, or what a kmem-written trace names]";
                machine.Mem.Description = MemHelp;
                machine.Cpus.Description = "Number of emulated CPUs [default: the trace header's #P:N; traced CPU n runs on emulated CPU n]";
            }
            return ctx =>
            {
                var options = new TraceReplayOptions
                {
                    Strict = ctx.GetValue(strict),
                    SkipSlabPages = !ctx.GetValue(slabPages),
                    MaxEvents = ctx.IsGiven(limit) ? ctx.GetValue(limit) : long.MaxValue,
                    FreeAtEnd = ctx.GetValue(freeAtEnd),
                };
                Run(ctx, machine, ctx.GetValue(file), options, ctx.GetValue(json), ctx.GetValue(trace), ctx.GetValue(svg), ctx.GetValue(fragSvg));
            };
        });
    }

    private static void Run(CommandContext ctx, MachineOptions machineOptions, string path, TraceReplayOptions options, bool json,
        string? tracePath, string? svgPath, string? fragPath)
    {
        StreamWriter? traceFile = null;
        Machine? machine = null;
        if (tracePath is not null)
        {
            traceFile = OpenOutput(tracePath);
            options = options with
            {
                Output = m =>
                {
                    var w = new FtraceWriter(traceFile, m);
                    w.WriteHeader();
                    return w;
                },
            };
        }
        var progress = ctx.Io.ShowProgress && !ctx.InScript ? new ProgressBar(ctx.Io.Err) : null;
        if (progress is not null)
            options = options with { Progress = progress.Update };
        TraceReplayResult result;
        try
        {
            using var reader = OpenTrace(ctx, path);
            result = TraceReplay.Run(reader, header => machine = BootFor(ctx, machineOptions, header), options, path);
        }
        catch (TraceFormatException e)
        {
            progress?.Clear();
            throw new CommandFailedException(e.Message.StartsWith("cannot read", StringComparison.Ordinal) ? e.Message : $"{path}: {e.Message}");
        }
        finally
        {
            traceFile?.Dispose();
        }
        if (result.Lines == 0)
            throw new CommandFailedException($"{path}: empty trace (no lines)");

        var notes = json ? ctx.Io.Err : ctx.Out;
        ctx.Out.Write(json ? TraceReplayReport.Json(result, timing: !ctx.InScript) : TraceReplayReport.Text(result, timing: !ctx.InScript));
        if (tracePath is not null)
            notes.WriteLine($"wrote the emulator's trace to {tracePath}");
        if (svgPath is not null)
        {
            WriteFile(svgPath, MemoryPictures.PhysicalSvg(machine!, $"Physical memory after replaying {Path.GetFileName(path)}: {machine!.ArchName}, {machine.Config.MemBytes >> 20} MiB"));
            notes.WriteLine($"wrote the physical memory map to {svgPath}");
        }
        if (fragPath is not null)
        {
            WriteFile(fragPath, MemoryPictures.FragmentationSvg(machine!, $"Free lists after replaying {Path.GetFileName(path)}"));
            notes.WriteLine($"wrote the fragmentation chart to {fragPath}");
        }
        ctx.SetResult(result.TotalReplayed.ToString(CultureInfo.InvariantCulture));
        if (result.TotalEvents == 0 && result.Malformed > 0)
        {
            var first = result.MalformedLines.FirstOrDefault();
            throw new CommandFailedException(
                $"{path}: no kmem events, {result.Malformed} malformed lines (first: line {first?.Line}: {first?.Reason}): not an ftrace text file?");
        }
    }

    /// <summary>
    /// The machine of a replay: in a script, the script's; on the CLI one booted from the options, else from the
    /// trace (a kmem-written trace names its machine; #P:N gives the CPUs), else x86_64 with 2G.
    /// </summary>
    private static Machine BootFor(CommandContext ctx, MachineOptions options, TraceHeader header)
    {
        if (ctx.InScript)
            return ctx.Machine;
        var given = ctx.MachineConfig;
        var named = header.Machine;
        var arch = ctx.IsGiven(options.Arch) ? given.Arch : named?.Arch ?? ArchKind.X86_64;
        ulong mem = ctx.IsGiven(options.Mem) ? given.MemBytes
            : named?.MemBytes ?? (arch == ArchKind.I386 ? 1UL << 30 : MachineConfig.ParseSize(DefaultMem));
        int cpus = ctx.IsGiven(options.Cpus) ? given.Cpus : Math.Clamp(named?.Cpus ?? header.Cpus ?? 2, 1, 64);
        var config = given with { Arch = arch, MemBytes = mem, Cpus = cpus };
        try
        {
            config.Validate();
        }
        catch (MachineConfigException e)
        {
            throw new UsageException(e.Message, "replay");
        }
        return ctx.BootMachine(config);
    }

    private static FtraceReader OpenTrace(CommandContext ctx, string path)
    {
        if (path != "-")
            return FtraceReader.Open(path);
        // Standard input: the raw stream when the process has one (gzip works), else the text reader's characters.
        var stream = ctx.Io.InStream ?? new MemoryStream(Encoding.Latin1.GetBytes(ctx.Io.In.ReadToEnd()));
        return new FtraceReader(stream, leaveOpen: true);
    }

    /// <summary>An output file for writing; a path that cannot be created is a failure of the command.</summary>
    internal static StreamWriter OpenOutput(string path)
    {
        try
        {
            return new StreamWriter(path, append: false, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CommandFailedException($"cannot write {path}: {e.Message}");
        }
    }

    /// <summary>Writes a whole file; failures are failures of the command.</summary>
    internal static void WriteFile(string path, string text)
    {
        try
        {
            File.WriteAllText(path, text, new UTF8Encoding(false));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CommandFailedException($"cannot write {path}: {e.Message}");
        }
    }

    /// <summary>A one-line progress bar on standard error (terminals only), redrawn in place.</summary>
    private sealed class ProgressBar(TextWriter err)
    {
        private int _lastPercent = -1;

        public void Update(TraceReplayProgress p)
        {
            if (p.Done)
            {
                Clear();
                return;
            }
            int percent = p.SourceLength is > 0 ? (int)Math.Min(100, p.SourceBytes * 100 / p.SourceLength.Value) : -1;
            if (percent == _lastPercent && percent >= 0)
                return;
            _lastPercent = percent;
            const int width = 40;
            string bar = percent >= 0 ? new string('#', percent * width / 100).PadRight(width, '.') : new string('?', width);
            string pct = percent >= 0 ? $"{percent,3}%" : "  ?%";
            err.Write($"\rreplaying [{bar}] {pct} {p.Lines.ToString("N0", CultureInfo.InvariantCulture)} lines");
            err.Flush();
        }

        public void Clear()
        {
            err.Write("\r\u001b[K");
            err.Flush();
        }
    }
}
