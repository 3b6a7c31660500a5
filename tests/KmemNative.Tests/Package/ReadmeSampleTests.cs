using KmemNative.Arch;
using KmemNative.PageAlloc;

namespace KmemNative.Tests.Package;

/// <summary>The package README's "perf experiment in a dozen lines", run as written (fewer iterations).</summary>
public sealed class ReadmeSampleTests
{
    [Fact]
    public void The_dozen_line_experiment_runs()
    {
        var output = new StringWriter();
        using var m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30, Cpus = 2 });
        var cpu = m.GetCpu(0);
        var cache = m.KmemCacheCreate(cpu, "experiment", 64)!;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 100_000; i++)
            m.KmemCacheFree(cpu, cache, m.KmemCacheAlloc(cpu, cache, Gfp.Kernel));
        output.WriteLine($"{sw.Elapsed.TotalNanoseconds / 1e5:F2} ns per kmem_cache_alloc + kmem_cache_free");
        output.WriteLine(m.Proc.Read("slabinfo").Split('\n').First(l => l.StartsWith("experiment", StringComparison.Ordinal)));
        m.KmemCacheDestroy(cpu, cache);
        m.CheckConsistency();

        string text = output.ToString();
        Assert.Contains("ns per kmem_cache_alloc + kmem_cache_free", text, StringComparison.Ordinal);
        // slabinfo's line for the cache: name, then active_objs and num_objs (one slab of 64 objects of 64 bytes).
        Assert.Matches(@"experiment\s+\d+\s+64\s+64\s+64\s+1 :", text);
    }
}
