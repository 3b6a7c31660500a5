using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using KmemNative.Bench;

// kmem benchmarks: `dotnet run -c Release -- [--quick] [BenchmarkDotNet args]`.
// --quick runs every benchmark with a short job (a few iterations) so the whole kit finishes in minutes; without
// it BenchmarkDotNet's default job runs. Either way a table of ratios against the project's targets follows.
bool quick = args.Contains("--quick");
var rest = args.Where(a => a != "--quick").ToArray();
if (!rest.Any(a => a.StartsWith("--filter", StringComparison.Ordinal) || a == "-f"))
    rest = [.. rest, "--filter", "*"];

var job = quick
    ? Job.ShortRun.WithWarmupCount(2).WithIterationCount(3).WithLaunchCount(1)
    : Job.Default;
var config = DefaultConfig.Instance
    .AddJob(job.AsDefault())
    .WithOptions(ConfigOptions.JoinSummary | ConfigOptions.DisableLogFile);

var summaries = BenchmarkSwitcher.FromAssembly(typeof(Targets).Assembly).Run(rest, config);
Targets.Print(summaries, Console.Out);
return summaries.Any(s => s.HasCriticalValidationErrors) ? 1 : 0;
