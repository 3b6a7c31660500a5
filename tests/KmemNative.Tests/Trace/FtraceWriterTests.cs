using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;
using KmemNative.Trace;

namespace KmemNative.Tests.Trace;

public class FtraceWriterTests
{
    [Fact]
    public void Page_events_are_written_in_ftrace_format_and_parse_back()
    {
        using var m = Machines.X64(64);
        var sw = new StringWriter();
        var writer = new FtraceWriter(sw, m);
        writer.WriteHeader();
        m.Tracer = writer;
        var cpu = m.GetCpu(1);
        cpu.Comm = "bash";
        cpu.Pid = 2129;
        var a = m.AllocPages(cpu, Gfp.Kernel | Gfp.Zero | Gfp.Comp, 2)!.Value;
        var b = m.AllocPages(cpu, Gfp.HighUserMovable, 0)!.Value;
        m.FreePages(cpu, a, 2);
        m.FreePages(cpu, b, 0);
        // ZONE_DMA holds three order-10 blocks: the fourth request fails and is traced as page=0 pfn=0x0.
        for (int i = 0; i < 3; i++)
            Assert.NotNull(m.AllocPages(cpu, Gfp.Dma, 10));
        Assert.Null(m.AllocPages(cpu, Gfp.Dma | Gfp.NoWarn, 10));
        m.Tracer = null;

        var text = sw.ToString();
        Assert.StartsWith("# tracer: nop\n", text);
        var lines = text.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Matches(@"^            bash-2129    \[001\] \.\.\.\.\. +\d+\.\d{6}: mm_page_alloc: page=[0-9a-f]{16} pfn=0x[0-9a-f]+ order=2 migratetype=0 gfp_flags=GFP_KERNEL\|__GFP_ZERO\|__GFP_COMP$", lines[0]);
        var parser = new FtraceParser();
        var events = new List<FtraceEvent>();
        foreach (var line in lines)
        {
            var ev = default(FtraceEvent);
            Assert.Equal(FtraceLineKind.Event, parser.Parse(Encoding.ASCII.GetBytes(line), ref ev));
            events.Add(ev);
        }
        Assert.Equal([FtraceEventKind.MmPageAlloc, FtraceEventKind.MmPageAlloc, FtraceEventKind.MmPageFree, FtraceEventKind.MmPageFree],
                     events.Take(4).Select(e => e.Kind));
        Assert.Equal(a.Pfn, events[0].Pfn);
        Assert.Equal(0xffffea0000000000UL + a.Pfn * 64, events[0].Page);
        Assert.Equal(1, events[1].Migratetype);                    // GFP_HIGHUSER_MOVABLE -> MIGRATE_MOVABLE
        Assert.Equal((a.Pfn, 2), (events[2].Pfn, events[2].Order));
        var failed = events[^1];
        Assert.Equal((FtraceEventKind.MmPageAlloc, 0UL, 0UL), (failed.Kind, failed.Page, failed.Pfn)); // page=0000000000000000 pfn=0x0
        Assert.All(events, e => Assert.Equal(2129, e.Pid));
    }
}
