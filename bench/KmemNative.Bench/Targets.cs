using System.Globalization;
using BenchmarkDotNet.Reports;

namespace KmemNative.Bench;

/// <summary>
/// Every performance goal of the project, as a ratio to a baseline measured in the same run (or, for boot, an
/// absolute bound). After a run, <see cref="Print"/> prints one table of measured ratios against these targets.
/// </summary>
internal static partial class Targets
{
    /// <summary>One goal: <paramref name="Benchmark"/> / <paramref name="Baseline"/> must be at most (or, with AtLeast, at least) <paramref name="Ratio"/>.</summary>
    internal sealed record Goal(string Class, string Benchmark, string Baseline, double Ratio, string Issue, bool AtLeast = false, double? MaxNs = null);

    /// <summary>
    /// Every goal: the <c>Goal[]</c> fields named <c>*Goals</c> of this partial class, one per subsystem file
    /// (Targets.PageAlloc.cs, Targets.Slab.cs...), so a subsystem adds its goals without editing this file.
    /// </summary>
    public static IEnumerable<Goal> Goals =>
        typeof(Targets).GetFields(System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)
            .Where(f => f.FieldType == typeof(Goal[]) && f.Name.EndsWith("Goals", StringComparison.Ordinal))
            .OrderBy(f => f.MetadataToken)
            .SelectMany(f => (Goal[])f.GetValue(null)!);

    private static readonly Goal[] PageAllocGoals =
    [
        new("PageAllocBench", "Order0Pair", "AlignedAlloc4K", 0.25, "#2 page allocator"),
        new("PageAllocBench", "Order3Pair", "AlignedAlloc32K", double.NaN, "#2 page allocator (recorded)"),
        new("BootBench", "BootX86_64_16G", "MemsetMemmap16G", double.NaN, "#2 boot 16 GiB < 1 s", MaxNs: 1e9),
        new("BootBench", "BootI386_1G", "MemsetMemmap16G", double.NaN, "#2 boot 1 GiB (recorded)"),
    ];

    /// <summary>Prints the table of ratios for every goal whose benchmarks ran.</summary>
    public static void Print(IEnumerable<Summary> summaries, TextWriter w)
    {
        var means = new Dictionary<(string, string), double>();
        foreach (var s in summaries)
            foreach (var r in s.Reports.Where(r => r.ResultStatistics is not null))
                means[(r.BenchmarkCase.Descriptor.Type.Name, Name(r.BenchmarkCase))] = r.ResultStatistics!.Median;
        w.WriteLine();
        // Medians: with the quick job's three iterations, one perturbed iteration moves a mean, not a median.
        w.WriteLine("| goal | benchmark | median | baseline | baseline median | ratio | target | met |");
        w.WriteLine("|---|---|---:|---|---:|---:|---:|---|");
        foreach (var g in Goals)
        {
            if (!means.TryGetValue((g.Class, g.Benchmark), out double mean))
                continue;
            bool hasBase = means.TryGetValue((g.Class, g.Baseline), out double baseMean);
            double ratio = hasBase ? mean / baseMean : double.NaN;
            string target = g.MaxNs is { } max ? $"< {Ns(max)}" : double.IsNaN(g.Ratio) ? "-" : (g.AtLeast ? ">= " : "<= ") + g.Ratio.ToString("0.###", CultureInfo.InvariantCulture) + "x";
            string met = g.MaxNs is { } m ? (mean < m ? "yes" : "NO")
                : double.IsNaN(g.Ratio) ? "-" : (g.AtLeast ? ratio >= g.Ratio : ratio <= g.Ratio) ? "yes" : "NO";
            w.WriteLine($"| {g.Issue} | {g.Class}.{g.Benchmark} | {Ns(mean)} | {g.Baseline} | {(hasBase ? Ns(baseMean) : "-")} | {(hasBase ? ratio.ToString("0.###", CultureInfo.InvariantCulture) + "x" : "-")} | {target} | {met} |");
        }
    }

    /// <summary>The method's name, with its parameters for a [Params] case: <c>CachePair(Listening=True)</c>.</summary>
    private static string Name(BenchmarkDotNet.Running.BenchmarkCase c) =>
        c.HasParameters ? $"{c.Descriptor.WorkloadMethod.Name}({c.Parameters.PrintInfo})" : c.Descriptor.WorkloadMethod.Name;

    private static string Ns(double ns) => ns switch
    {
        >= 1e9 => (ns / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + " s",
        >= 1e6 => (ns / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (ns / 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString("0.00", CultureInfo.InvariantCulture) + " ns",
    };
}
