using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using KmemNative.Bench;

// kmem benchmarks: `dotnet run -c Release -- [--quick] [BenchmarkDotNet args]`.
// --quick runs every benchmark with a short job (a few iterations) so the whole kit finishes in minutes; without
// it BenchmarkDotNet's default job runs. Either way a table of ratios against the project's targets follows
// (`./build.sh bench` then runs the C ABI's Google Benchmark, native/bench, with its own table).
bool quick = args.Contains("--quick");
var rest = args.Where(a => a != "--quick").ToArray();
if (!rest.Any(a => a.StartsWith("--filter", StringComparison.Ordinal) || a == "-f"))
    rest = [.. rest, "--filter", "*"];

// The quick job: 3 measured iterations of 150 ms (the default is 500 ms) keep the whole kit under 5 minutes on 2
// cores; the ratio table reports medians, which a single perturbed iteration does not move.
var job = quick
    ? Job.ShortRun.WithWarmupCount(2).WithIterationCount(3).WithLaunchCount(1)
        .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(150))
    : Job.Default;
var config = DefaultConfig.Instance
    .AddJob(job.AsDefault())
    .WithOptions(ConfigOptions.JoinSummary | ConfigOptions.DisableLogFile);

var summaries = BenchmarkSwitcher.FromAssembly(typeof(Targets).Assembly).Run(rest, config);
Targets.Print(summaries, Console.Out);
return summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
