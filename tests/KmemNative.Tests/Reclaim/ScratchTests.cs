using KmemNative.Arch;
using KmemNative.PageAlloc;
using Xunit.Abstractions;

namespace KmemNative.Tests.Reclaim;

public class ScratchTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ArchKind.X86_64, Gfp.Kernel)]
    [InlineData(ArchKind.X86_64, Gfp.NoFs)]
    [InlineData(ArchKind.X86_64, Gfp.NoIo)]
    [InlineData(ArchKind.X86_64, Gfp.NoWait)]
    [InlineData(ArchKind.X86_64, Gfp.Atomic)]
    [InlineData(ArchKind.X86_64, Gfp.Kernel | Gfp.Dma)]
    [InlineData(ArchKind.X86_64, Gfp.Kernel | Gfp.NoFail)]
    [InlineData(ArchKind.I386, Gfp.Kernel)]
    [InlineData(ArchKind.I386, Gfp.HighUser)]
    [InlineData(ArchKind.I386, Gfp.NoFs)]
    [InlineData(ArchKind.I386, Gfp.NoIo)]
    public void Explore(ArchKind arch, Gfp gfp)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var cpu = s.Cpu;
        output.WriteLine($"pinned {s.Pinned.Count} free {string.Join(",", m.Zones.Select(z => $"{z.Name}:{z.FreePages}/{z.WatermarkMin}"))} dirty {m.NodeState(NodeStat.NrDirty)} dcache {m.DcacheUnused} pool {m.DriverPoolCount}");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        ulong pfn = ulong.MaxValue;
        Exception? ex = null;
        try { pfn = m.AllocPages(cpu, gfp, 0)?.Pfn ?? ulong.MaxValue; } catch (Exception e) { ex = e; }
        output.WriteLine($"{gfp}: pfn {pfn:x} ex {ex?.GetType().Name} {ex?.Message} in {sw.ElapsedMilliseconds} ms");
        output.WriteLine($"dirty {m.NodeState(NodeStat.NrDirty)} wb {m.NodeState(NodeStat.NrWriteback)} dcache {m.DcacheUnused} pool {m.DriverPoolCount} pswpout {cpu.Event(VmEvent.Pswpout)} steal {cpu.Event(VmEvent.PgstealDirect)} scan {cpu.Event(VmEvent.PgscanDirect)} oom {cpu.Event(VmEvent.OomKill)} alive {m.Processes.Count}");
        foreach (var l in s.NewLog.Take(40))
            output.WriteLine(l);
        m.CheckConsistency();
    }
}
