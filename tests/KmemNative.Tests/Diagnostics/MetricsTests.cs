using System.Diagnostics.Metrics;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Diagnostics;

/// <summary>The "KmemNative" meter: what a MeterListener (dotnet-counters, OpenTelemetry) sees of a live machine.</summary>
public sealed class MetricsTests
{
    /// <summary>One collection: (instrument, tags) -> value, for the given machine only (tests run in parallel).</summary>
    private static Dictionary<string, long> Collect(Machine m)
    {
        var values = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) =>
        {
            if (inst.Meter.Name == KmemMetrics.MeterName)
                l.EnableMeasurementEvents(inst);
        };
        listener.SetMeasurementEventCallback<long>((inst, value, tags, _) =>
        {
            string key = inst.Name;
            bool mine = false;
            foreach (var t in tags)
            {
                if (t.Key == "machine")
                    mine = t.Value is int id && id == m.MetricsId;
                else
                    key += $",{t.Key}={t.Value}";
            }
            if (mine)
                values[key] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Zone_free_blocks_and_pages_are_buddyinfo(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var v = Collect(m);
        foreach (var z in m.Zones.Where(z => z.IsPopulated))
        {
            Assert.Equal(z.FreePages, v[$"kmem.zone.free_pages,zone={z.Name}"]);
            for (int o = 0; o < 11; o++)
                Assert.Equal(z.NrFree(o), v[$"kmem.zone.free_blocks,zone={z.Name},order={o}"]);
        }
        // An order-3 allocation changes exactly what buddyinfo shows, and the counters follow.
        var cpu = m.GetCpu(0);
        var page = m.AllocPages(cpu, Gfp.Kernel, 3)!.Value;
        var zone = m.Zones[m.ReadPage(page.Pfn).ZoneIndex];
        var after = Collect(m);
        Assert.Equal(zone.FreePages, after[$"kmem.zone.free_pages,zone={zone.Name}"]);
        Assert.True(after[$"kmem.zone.free_pages,zone={zone.Name}"] < v[$"kmem.zone.free_pages,zone={zone.Name}"]);
        Assert.True(after[$"kmem.page_alloc.allocations,zone={zone.Name}"] >= v[$"kmem.page_alloc.allocations,zone={zone.Name}"] + 8);
        m.FreePages(cpu, page, 3);
        Assert.True(Collect(m)["kmem.page_alloc.frees"] >= 8);
    }

    [Fact]
    public void Slab_objects_per_cache_follow_allocations()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "metrics_test", 100)!;
        var objs = Enumerable.Range(0, 50).Select(_ => m.KmemCacheAlloc(cpu, s, Gfp.Kernel)).ToArray();
        var v = Collect(m);
        Assert.Equal(m.Slabinfo(s).ActiveObjs, v["kmem.slab.active_objects,cache=metrics_test"]);
        Assert.Equal(m.Slabinfo(s).NumObjs, v["kmem.slab.objects,cache=metrics_test"]);
        Assert.True(v["kmem.slab.active_objects,cache=metrics_test"] >= 50);
        Assert.True(v.ContainsKey("kmem.slab.active_objects,cache=kmalloc-64"));
        foreach (ulong o in objs)
            m.KmemCacheFree(cpu, s, o);
        m.KmemCacheShrink(cpu, s);
        Assert.Equal(m.Slabinfo(s).ActiveObjs, Collect(m)["kmem.slab.active_objects,cache=metrics_test"]);
        m.KmemCacheDestroy(cpu, s);
        Assert.False(Collect(m).ContainsKey("kmem.slab.active_objects,cache=metrics_test"));
    }

    [Fact]
    public void Tlb_and_fault_counters_are_per_cpu()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 64UL << 20, Cpus = 2, TlbStatistics = true });
        var cpu = m.GetCpu(1);
        var before = Collect(m);
        for (int i = 0; i < 10; i++)
            m.Translate(cpu, m.PageOffset + (16UL << 20) + ((ulong)i << 12));   // ten TLB slots
        m.Translate(cpu, m.PageOffset + (16UL << 20));
        Assert.False(m.TryTranslate(cpu, m.VmallocStart + (1UL << 30), default, default, out _, out _));
        m.FlushTlbAll();
        var after = Collect(m);
        Assert.Equal(cpu.TlbStatistics.Misses, after["kmem.tlb.misses,cpu=1"]);
        Assert.True(after["kmem.tlb.misses,cpu=1"] >= before["kmem.tlb.misses,cpu=1"] + 10);
        Assert.True(after["kmem.tlb.hits,cpu=1"] > before["kmem.tlb.hits,cpu=1"]);
        Assert.Equal(before["kmem.tlb.misses,cpu=0"], after["kmem.tlb.misses,cpu=0"]);
        Assert.Equal(before["kmem.mmu.faults,cpu=1"] + 1, after["kmem.mmu.faults,cpu=1"]);
        // flush_tlb_all() reaches both CPUs (as a local flush or a shootdown): each counts it under some kind.
        foreach (string c in new[] { "cpu=0", "cpu=1" })
        {
            long Flushes(Dictionary<string, long> d) =>
                new[] { "full", "page", "range", "shootdown" }.Sum(k => d[$"kmem.tlb.flushes,{c},kind={k}"]);
            Assert.True(Flushes(after) > Flushes(before), c);
        }
        // Reclaim and the OOM killer come with later subsystems; their counters are published already (vmstat).
        Assert.Equal(m.Event(VmEvent.PgscanKswapd), after["kmem.reclaim.scanned,mode=kswapd"]);
        Assert.Equal(m.Event(VmEvent.PgstealDirect), after["kmem.reclaim.reclaimed,mode=direct"]);
        Assert.Equal(m.Event(VmEvent.OomKill), after["kmem.oom.kills"]);
        Assert.Equal(m.Event(VmEvent.Pgfault), after["kmem.page_faults"]);
        Assert.Equal(m.Event(VmEvent.Pgmajfault), after["kmem.page_faults.major"]);
    }

    [Fact]
    public void A_disposed_machine_leaves_the_instruments()
    {
        var m = Machines.X64(32);
        int id = m.MetricsId;
        Assert.True(id >= 0);
        Assert.NotEmpty(Collect(m));
        m.Dispose();
        Assert.Empty(Collect(m));
        using var next = Machines.X64(32);
        Assert.True(next.MetricsId > id);
    }
}
