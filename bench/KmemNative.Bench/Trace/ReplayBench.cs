using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.Trace;

namespace KmemNative.Bench.Trace;

/// <summary>
/// Issue #7: replaying the whole of trace A (671,005 lines, 5.2 MB of gzip, 121 MB of text) — decompression,
/// parsing and the replay onto a booted machine included — against the time <c>zcat</c> needs just to decompress
/// the same file (a process per invocation, output to /dev/null), measured in the same run.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(1)]
[IterationCount(5)]
public class ReplayBench
{
    private string _trace = "";

    /// <summary>Finds the shipped trace from the benchmark's working directory (the repository or below it).</summary>
    [GlobalSetup]
    public void Setup()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "src", "KmemNative.Cli", "Traces", "kmem-trace-a.txt.gz");
            if (File.Exists(candidate))
            {
                _trace = candidate;
                return;
            }
        }
        throw new FileNotFoundException("src/KmemNative.Cli/Traces/kmem-trace-a.txt.gz not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Baseline: <c>zcat FILE &gt; /dev/null</c>, the decompression alone by the standard tool.</summary>
    [Benchmark(Baseline = true)]
    public int Zcat()
    {
        var psi = new ProcessStartInfo("sh", ["-c", $"zcat '{_trace}' > /dev/null"]) { UseShellExecute = false };
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode;
    }

    /// <summary>
    /// kmem replay of the whole trace as the CLI runs it: boot x86_64 2 GiB with the header's 2 CPUs, read and
    /// decompress on a second thread, parse, replay, summarise (buddyinfo, slabinfo numbers).
    /// </summary>
    [Benchmark]
    public long ReplayTraceA() => Replay(pipelined: true);

    /// <summary>The same on one thread (recorded: what the pipeline buys on two cores).</summary>
    [Benchmark]
    public long ReplayTraceASingleThread() => Replay(pipelined: false);

    /// <summary>Reading and parsing alone, no replay (recorded: the parser's share).</summary>
    [Benchmark]
    public long ParseTraceA()
    {
        using var reader = FtraceReader.Open(_trace);
        var parser = new FtraceParser();
        var ev = default(FtraceEvent);
        long events = 0;
        while (reader.TryReadLine(out var line))
        {
            if (parser.Parse(line, ref ev) == FtraceLineKind.Event)
                events++;
        }
        return events;
    }

    private long Replay(bool pipelined)
    {
        Machine? m = null;
        try
        {
            var r = TraceReplay.RunFile(_trace, h => m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 2UL << 30, Cpus = h.Cpus ?? 2 }),
                new TraceReplayOptions { Pipelined = pipelined });
            return r.TotalReplayed;
        }
        finally
        {
            m?.Dispose();
        }
    }
}
