namespace KmemNative.Bench;

internal static partial class Targets
{
    private static readonly Goal[] PagingGoals =
    [
        new("MmuBench", "TlbHit", "DictionaryLookup", 0.3, "#4 TLB hit <= 0.3x Dictionary"),
        new("MmuBench", "TlbHit", "DictionaryLookup", double.NaN, "#4 TLB hit <= 1 ns", MaxNs: 1.0),
        new("MmuBench", "Walk4Level", "DictionaryLookup", double.NaN, "#4 4-level walk <= 10 ns", MaxNs: 10.0),
        new("MmuBench", "Walk2Level", "DictionaryLookup", double.NaN, "#4 2-level walk (recorded)"),
        new("MmuBench", "TlbMiss4Level", "DictionaryLookup", double.NaN, "#4 TLB miss: walk + fill (recorded)"),
        new("MmuBench", "Read8", "DictionaryLookup", double.NaN, "#4 8-byte read through the MMU (recorded)"),
        new("MmuBench", "Write8", "DictionaryLookup", double.NaN, "#4 8-byte write through the MMU (recorded)"),
        new("MmuCopyBench", "MmuCopy1MiB", "SpanCopy1MiB", 2.0, "#4 1 MiB copy through the MMU <= 2x Span copy"),
    ];
}
