namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #3: ratios to the 64-byte NativeMemory.Alloc/Free pair measured in the same run.
    private static readonly Goal[] SlabGoals =
    [
        new("SlabBench", "CachePairExplicitCpu", "NativePair", 0.15, "#3 kmem_cache pair, explicit CPU"),
        new("SlabBench", "CachePairThisCpu", "NativePair", 0.4, "#3 kmem_cache pair, ThisCpu"),
        new("SlabBench", "Kmalloc64", "NativePair", 0.2, "#3 kmalloc(64)+kfree, explicit CPU"),
        new("SlabBench", "Batch1000", "NativePair", 0.5, "#3 batch 1000 (per pair)"),
        new("SlabBench", "Batch1000Sheaves128", "NativePair", 0.5, "#3 batch 1000, cache with sheaves of 128"),
        new("SlabBench", "Batch1000Sheaves32", "NativePair", double.NaN, "#3 batch 1000, sheaves of 32 (recorded)"),
        new("SlabBench", "SheafPairExplicitCpu", "NativePair", double.NaN, "#3 pair through sheaves of 32 (recorded)"),
        new("SlabBench", "Kmalloc8", "NativePair", double.NaN, "#3 kmalloc(8) (recorded)"),
        new("SlabBench", "Kmalloc256", "NativePair", double.NaN, "#3 kmalloc(256) (recorded)"),
        new("SlabBench", "Kmalloc1024", "NativePair", double.NaN, "#3 kmalloc(1024) (recorded)"),
        new("SlabBench", "Kmalloc4096", "NativePair", double.NaN, "#3 kmalloc(4096) (recorded)"),
        new("SlabBench", "Bulk16", "NativePair", double.NaN, "#3 bulk 16 (per pair, recorded)"),
        new("SlabBench", "DebugCachePair", "NativePair", double.NaN, "#3 slab_debug=FZPU pair (recorded)"),
        new("SlabBench", "ArrayPoolPair", "NativePair", double.NaN, "#3 baseline ArrayPool (recorded)"),
        new("SlabBench", "ObjectPoolPair", "NativePair", double.NaN, "#3 baseline ObjectPool (recorded)"),
        // Throughput of two threads over one: one-thread time per pair / two-thread time per pair.
        new("SlabThreadsBench", "PairOneThread", "PairTwoThreads", 1.8, "#3 2 threads >= 1.8x one", AtLeast: true),
    ];
}
