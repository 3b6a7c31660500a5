namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #7: the whole of trace A, decompression and parsing included, against zcat decompressing it in the same run.
    private static readonly Goal[] TraceGoals =
    [
        new("ReplayBench", "ReplayTraceA", "Zcat", 1.5, "#7 replay trace A <= 1.5x zcat"),
        new("ReplayBench", "ReplayTraceASingleThread", "Zcat", double.NaN, "#7 replay trace A, one thread (recorded)"),
        new("ReplayBench", "ParseTraceA", "Zcat", double.NaN, "#7 read + gunzip + parse trace A (recorded)"),
    ];
}
