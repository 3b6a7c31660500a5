namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #8: the meter costs the hot paths nothing: the same method with and without a listener that collects
    // once a second (observable instruments read existing counters on the listener's thread).
    private static readonly Goal[] MetricsGoals =
    [
        new("MetricsBench", "CachePair(Listening=True)", "CachePair(Listening=False)", 1.1, "#8 kmem_cache pair while a listener collects"),
        new("MetricsBench", "TlbHit(Listening=True)", "TlbHit(Listening=False)", 1.1, "#8 TLB hit while a listener collects"),
        new("MetricsCollectBench", "CollectAll", "CachePair", double.NaN, "#8 one collection of every instrument (recorded)"),
    ];
}
