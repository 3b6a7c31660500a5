namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #6: allocation when every request meets the min watermark and clean page cache must be reclaimed, against
    // the same loop with free memory; kswapd's reclaim rate (per page: 1e9 / ns = pages/s). Recorded, no target.
    private static readonly Goal[] ReclaimGoals =
    [
        new("ReclaimBench", "AllocUnderPressure", "AllocWithFreeMemory", double.NaN, "#6 GFP_KERNEL alloc needing direct reclaim vs free memory (recorded)"),
        new("ReclaimBench", "KswapdCycle", "AllocWithFreeMemory", double.NaN, "#6 kswapd reclaim, per page (recorded)"),
    ];
}
