using System.IO.Compression;
using System.Text;
using KmemNative.PageAlloc;
using KmemNative.Trace;

namespace KmemNative.Tests.Trace;

public class FtraceParserTests
{
    private static (FtraceLineKind Kind, FtraceEvent Ev, FtraceParser P) Parse(string line)
    {
        var p = new FtraceParser();
        var ev = default(FtraceEvent);
        var kind = p.Parse(Encoding.ASCII.GetBytes(line), ref ev);
        return (kind, ev, p);
    }

    [Fact]
    public void Kmalloc_line_parses_every_field()
    {
        var (kind, ev, p) = Parse("            bash-2129    [001] .....   154.212962: kmalloc: call_site=lsm_blob_alloc+0x3b/0x60 ptr=ffff888100863800 bytes_req=11 bytes_alloc=16 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO node=-1 accounted=true");
        Assert.Equal(FtraceLineKind.Event, kind);
        Assert.Equal(FtraceEventKind.Kmalloc, ev.Kind);
        Assert.Equal("bash", p.Strings[ev.CommId]);
        Assert.Equal(2129, ev.Pid);
        Assert.Equal(1, ev.Cpu);
        Assert.Equal(".....", p.Strings[ev.FlagsId]);
        Assert.Equal(154_212_962L, ev.TimestampUs);
        Assert.Equal("lsm_blob_alloc+0x3b/0x60", p.Strings[ev.CallSiteId]);
        Assert.Equal(0xffff888100863800UL, ev.Ptr);
        Assert.Equal((11, 16), (ev.BytesReq, ev.BytesAlloc));
        Assert.Equal(Gfp.KernelAccount | Gfp.Zero, ev.Gfp);
        Assert.Equal("GFP_KERNEL_ACCOUNT|__GFP_ZERO", p.Strings[ev.GfpId]);
        Assert.Equal(-1, ev.Node);
        Assert.True(ev.Accounted);
    }

    [Fact]
    public void Kmem_cache_alloc_and_free_lines_parse()
    {
        var (kind, ev, p) = Parse("            bash-2129    [001] .....   154.212956: kmem_cache_alloc: call_site=copy_process+0x1a5/0x1d80 ptr=ffff888106522180 name=task_struct bytes_req=4248 bytes_alloc=4288 gfp_flags=GFP_KERNEL node=-1 accounted=true");
        Assert.Equal((FtraceLineKind.Event, FtraceEventKind.KmemCacheAlloc), (kind, ev.Kind));
        Assert.Equal("task_struct", p.Strings[ev.NameId]);
        Assert.Equal((4248, 4288), (ev.BytesReq, ev.BytesAlloc));
        (kind, ev, p) = Parse("            bash-2129    [001] .....   154.212930: kmem_cache_free: call_site=__fput+0x141/0x2a0 ptr=ffff888108293780 name=lsm_file_cache");
        Assert.Equal((FtraceLineKind.Event, FtraceEventKind.KmemCacheFree), (kind, ev.Kind));
        Assert.Equal("lsm_file_cache", p.Strings[ev.NameId]);
        Assert.Equal(0xffff888108293780UL, ev.Ptr);
    }

    [Fact]
    public void Page_events_and_kfree_of_null_parse()
    {
        var (kind, ev, _) = Parse("            bash-2129    [001] .....   154.212990: mm_page_alloc: page=ffffea0004523c00 pfn=0x1148f0 order=0 migratetype=0 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO|__GFP_COMP");
        Assert.Equal(FtraceEventKind.MmPageAlloc, ev.Kind);
        Assert.Equal(0xffffea0004523c00UL, ev.Page);
        Assert.Equal(0x1148f0UL, ev.Pfn);
        Assert.Equal(0xffffea0000000000UL + ev.Pfn * 64, ev.Page);   // page= is the vmemmap address of pfn
        (kind, ev, _) = Parse("   kworker/u8:2-events_unbound-87  [000] d..1.   160.000001: mm_page_free: page=ffffea0004523c00 pfn=0x1148f0 order=2");
        Assert.Equal(FtraceLineKind.Event, kind);
        Assert.Equal(FtraceEventKind.MmPageFree, ev.Kind);
        Assert.Equal(87, ev.Pid);
        Assert.Equal(2, ev.Order);
        (kind, ev, _) = Parse("            bash-2129    [001] .....   154.212992: kfree: call_site=ida_alloc_range+0x39b/0x400 ptr=0000000000000000");
        Assert.Equal(FtraceEventKind.Kfree, ev.Kind);
        Assert.Equal(0UL, ev.Ptr);
        (kind, ev, _) = Parse("            bash-2129    [001] .....   154.212990: mm_page_alloc: page=0000000000000000 pfn=0x0 order=3 migratetype=1 gfp_flags=GFP_NOWAIT");
        Assert.Equal(0UL, ev.Page);                                   // a failed allocation
    }

    [Fact]
    public void Task_names_with_dashes_and_spaces_keep_the_last_dash_for_the_pid()
    {
        var (kind, ev, p) = Parse(" Web Content-a-b-4242 [000] ..... 1.5: kfree: call_site=x+0x1/0x2 ptr=ffff888100000000");
        Assert.Equal(FtraceLineKind.Event, kind);
        Assert.Equal("Web Content-a-b", p.Strings[ev.CommId]);
        Assert.Equal(4242, ev.Pid);
        Assert.Equal(1_500_000L, ev.TimestampUs);
    }

    [Theory]
    [InlineData("# tracer: nop", FtraceLineKind.Comment)]
    [InlineData("#", FtraceLineKind.Comment)]
    [InlineData("", FtraceLineKind.Comment)]
    [InlineData("   ", FtraceLineKind.Comment)]
    [InlineData("CPU:1 [LOST 42 EVENTS]", FtraceLineKind.LostEvents)]
    [InlineData("  bash-1 [000] ..... 1.000001: sched_switch: prev_comm=bash", FtraceLineKind.OtherEvent)]
    public void Non_event_lines_are_classified(string line, FtraceLineKind expected) => Assert.Equal(expected, Parse(line).Kind);

    [Fact]
    public void Lost_event_count_is_reported()
    {
        var (_, _, p) = Parse("CPU:3 [LOST 1234 EVENTS]");
        Assert.Equal(1234, p.LostCount);
    }

    [Theory]
    [InlineData("garbage", "no ' [CPU]' column")]
    [InlineData("  bash-1 [x] ..... 1.0: kfree: call_site=a ptr=0", "bad CPU column")]
    [InlineData("  bash [000] ..... 1.0: kfree: call_site=a ptr=0", "no TASK-PID before the CPU column")]
    [InlineData("  bash-1 [000] ..... 1.0 kfree: call_site=a ptr=0", "bad timestamp")]
    [InlineData("  bash-1 [000] ..... 1.0: kfree: call_site=a ptr=zz", "bad hex value for ptr=")]
    [InlineData("  bash-1 [000] ..... 1.0: kfree: ptr=0", "expected field call_site=")]
    [InlineData("  bash-1 [000] ..... 1.0: kmalloc: call_site=a ptr=0 bytes_req=x bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=true", "bad number for bytes_req=")]
    [InlineData("  bash-1 [000] ..... 1.0: kmalloc: call_site=a ptr=0 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_BOGUS node=-1 accounted=true", "unknown GFP flag 'GFP_BOGUS'")]
    [InlineData("  bash-1 [000] ..... 1.0: mm_page_free: page=0 pfn=0x1 order=11", "order= outside 0..10")]
    [InlineData("  bash-1 [000] ..... 1.0: kmalloc: call_site=a ptr=0 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL node=-1 accounted=maybe", "bad boolean for accounted=")]
    public void Malformed_lines_say_why(string line, string why)
    {
        var (kind, _, p) = Parse(line);
        Assert.Equal(FtraceLineKind.Malformed, kind);
        Assert.StartsWith(why, p.Error);
    }

    private static List<string> ReadAll(byte[] data)
    {
        using var r = new FtraceReader(new MemoryStream(data));
        var lines = new List<string>();
        while (r.TryReadLine(out var line))
            lines.Add(Encoding.ASCII.GetString(line));
        return lines;
    }

    private static byte[] Gzip(string text)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
            gz.Write(Encoding.ASCII.GetBytes(text));
        return ms.ToArray();
    }

    [Fact]
    public void Reader_streams_plain_and_gzip_text_the_same()
    {
        string text = "# hdr\nline one\r\nline two\nlast without newline";
        var plain = ReadAll(Encoding.ASCII.GetBytes(text));
        Assert.Equal(["# hdr", "line one\r", "line two", "last without newline"], plain);
        Assert.Equal(plain, ReadAll(Gzip(text)));
        Assert.Empty(ReadAll([]));
        Assert.Equal(["x"], ReadAll("x"u8.ToArray()));
    }

    [Fact]
    public void Truncated_gzip_is_a_typed_error_with_a_line_number()
    {
        var sb = new StringBuilder();
        for (int i = 0; i < 20000; i++)
            sb.Append("            bash-2129    [001] .....   154.212992: kfree: call_site=ida_alloc_range+0x39b/0x400 ptr=").Append(i.ToString("x16")).Append('\n');
        var gz = Gzip(sb.ToString());
        var cut = gz[..(gz.Length / 2)];
        var e = Assert.Throws<TraceFormatException>(() => ReadAll(cut));
        Assert.Contains("truncated or corrupt", e.Message);
        Assert.True(e.Line > 0);
    }

    [Fact]
    public void Binary_input_yields_bounded_malformed_lines_not_a_crash()
    {
        var rng = new Random(7);
        var junk = new byte[300_000];
        rng.NextBytes(junk);
        Array.Fill(junk, (byte)'A', 1000, 100_000);                    // a huge "line" without newline
        var p = new FtraceParser();
        var ev = default(FtraceEvent);
        int events = 0;
        using var r = new FtraceReader(new MemoryStream(junk));
        while (r.TryReadLine(out var line))
        {
            Assert.True(line.Length <= FtraceReader.MaxLine);
            if (p.Parse(line, ref ev) == FtraceLineKind.Event)
                events++;
        }
        Assert.Equal(0, events);
    }
}

public class FtraceParserShapeTests
{
    private static (FtraceLineKind Kind, FtraceEvent Ev, FtraceParser P) Parse(string line)
    {
        var p = new FtraceParser();
        var ev = default(FtraceEvent);
        return (p.Parse(System.Text.Encoding.ASCII.GetBytes(line), ref ev), ev, p);
    }

    [Fact]
    public void Mm_page_free_batched_and_node_numbers_parse()
    {
        var (kind, ev, _) = Parse("          <idle>-0       [001] d.s2.  1.000001: mm_page_free_batched: page=ffffea0004523c00 pfn=0x1148f0 order=0");
        Assert.Equal((FtraceLineKind.Event, FtraceEventKind.MmPageFreeBatched, 0x1148f0UL, 0), (kind, ev.Kind, ev.Pfn, ev.Pid));
        (kind, ev, _) = Parse("  kworker/0:1-12 [000] ..... 2.5: kmalloc: call_site=a+0x1/0x2 ptr=ffff888100000000 bytes_req=8 bytes_alloc=8 gfp_flags=none node=0 accounted=false");
        Assert.Equal((FtraceLineKind.Event, 0, Gfp.None), (kind, ev.Node, ev.Gfp));
    }

    [Fact]
    public void Nanosecond_timestamps_and_extra_trailing_fields_are_accepted()
    {
        var (kind, ev, _) = Parse("  bash-1 [000] ..... 12.123456789: kfree: call_site=x+0x1/0x2 ptr=ffff888100000000 extra=1");
        Assert.Equal(FtraceLineKind.Event, kind);
        Assert.Equal(12_123_456L, ev.TimestampUs);
    }

    [Fact]
    public void Interned_strings_are_shared_and_grow_the_table()
    {
        var p = new FtraceParser();
        var ev = default(FtraceEvent);
        for (int i = 0; i < 2000; i++)
            p.Parse(System.Text.Encoding.ASCII.GetBytes($"  task{i % 700}-1 [000] ..... 1.0: kfree: call_site=site{i}+0x1/0x2 ptr=0"), ref ev);
        Assert.Equal("task599", p.Strings[ev.CommId]);
        Assert.Equal("site1999+0x1/0x2", p.Strings[ev.CallSiteId]);
        Assert.Equal(p.Strings.Intern("task5"), p.Strings.Intern(System.Text.Encoding.ASCII.GetBytes("task5")));
    }
}
