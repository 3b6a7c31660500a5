using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class PcpTests
{
    [Fact]
    public void Order0_pages_come_from_and_return_to_the_cpus_list()
    {
        using var m = Machines.X64(256);
        var cpu = m.GetCpu(0);
        var zone = m.Zones[1];
        long free0 = zone.FreePages;
        var page = m.AllocPages(cpu, Gfp.Kernel, 0)!.Value;
        int count = m.PcpCount(cpu, zone);
        // The refill moved a whole batch from the buddy lists (counted as allocated by the zone).
        Assert.True(count > 0);
        Assert.Equal(free0 - count - 1, zone.FreePages);
        m.FreePages(cpu, page, 0);
        Assert.Equal(count + 1, m.PcpCount(cpu, zone));           // freed to the list, not to buddy
        Assert.Equal(free0 - count - 1, zone.FreePages);
        var again = m.AllocPages(cpu, Gfp.Kernel, 0)!.Value;
        Assert.Equal(page.Pfn, again.Pfn);                          // LIFO: the hot page comes back
        m.FreePages(cpu, again, 0);
        var report = m.CheckConsistency();
        Assert.Equal(count + 1, report.Zones[1].PerCpu);
    }

    [Fact]
    public void Drain_returns_every_pcp_page_to_the_buddy_lists()
    {
        using var m = Machines.X64(64);
        var before = Machines.FreeAreas(m);
        var cpu0 = m.GetCpu(0);
        var pages = new List<Page>();
        for (int i = 0; i < 500; i++)
            pages.Add(m.AllocPages(cpu0, Gfp.Kernel, i % 4)!.Value);
        for (int i = 0; i < pages.Count; i++)
            m.FreePages(cpu0, pages[i], i % 4);
        Assert.True(m.CheckConsistency().Total.PerCpu > 0);
        long drained = m.DrainAllPages();
        Assert.True(drained > 0);
        Assert.Equal(0, m.CheckConsistency().Total.PerCpu);
        Assert.Equal(before, Machines.FreeAreas(m));
    }

    [Fact]
    public void List_over_its_high_mark_returns_a_batch_to_buddy()
    {
        using var m = Machines.X64(256);
        var cpu = m.GetCpu(0);
        var zone = m.Zones[1];
        var pages = new List<Page>();
        for (int i = 0; i < 5000; i++)
            pages.Add(m.AllocPages(cpu, Gfp.Kernel, 0)!.Value);
        foreach (var p in pages)
            m.FreePages(cpu, p, 0);
        int high = m.PcpField(cpu, zone, "high");
        Assert.InRange(high, zone.PcpHighMin, zone.PcpHighMax);
        Assert.True(m.PcpCount(cpu, zone) <= Math.Max(high, zone.PcpBatch), $"count {m.PcpCount(cpu, zone)} high {high}");
        m.CheckConsistency();
    }

    [Fact]
    public void Pages_freed_on_another_cpu_go_to_that_cpus_list()
    {
        using var m = Machines.I386(64);
        var cpu0 = m.GetCpu(0);
        var cpu1 = m.GetCpu(1);
        var zone = m.Zones[1];
        var page = m.AllocPages(cpu0, Gfp.Kernel, 0)!.Value;
        int c1 = m.PcpCount(cpu1, zone);
        m.FreePages(cpu1, page, 0);
        Assert.Equal(c1 + 1, m.PcpCount(cpu1, zone));
        m.CheckConsistency();
    }
}
