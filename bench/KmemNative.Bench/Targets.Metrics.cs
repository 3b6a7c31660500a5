namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #8: the meter costs the hot paths nothing measurable when nobody listens, and nothing while a
    // listener collects (observable instruments read existing counters on the listener's thread).
    private static readonly Goal[] MetricsGoals =
    [
        new("MetricsBench", "CachePairListening", "CachePairNoListener", 1.1, "#8 kmem_cache pair while a listener collects"),
        new("MetricsBench", "TlbHitListening", "TlbHitNoListener", 1.1, "#8 TLB hit while a listener collects"),
        new("MetricsBench", "CollectAll", "CachePairNoListener", double.NaN, "#8 one collection of every instrument (recorded)"),
    ];
}
