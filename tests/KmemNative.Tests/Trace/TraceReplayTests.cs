using System.Globalization;
using System.IO.Compression;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;
using KmemNative.Trace;

namespace KmemNative.Tests.Trace;

/// <summary>kmem replay on synthetic traces: every event shape and every odd thing a real trace contains.</summary>
public sealed class TraceReplayTests
{
    internal const string Header = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 10/10   #P:2\n#\n";

    internal static string L(int cpu, string evt, string fields, string comm = "bash", int pid = 2129, int us = 1) =>
        string.Create(CultureInfo.InvariantCulture, $"            {comm}-{pid}    [{cpu:000}] .....   154.{us:000000}: {evt}: {fields}\n");

    internal static string Km(int cpu, ulong ptr, int req, int alloc, string gfp = "GFP_KERNEL") =>
        L(cpu, "kmalloc", $"call_site=f+0x1/0x2 ptr={ptr:x16} bytes_req={req} bytes_alloc={alloc} gfp_flags={gfp} node=-1 accounted=false");

    internal static string Kf(int cpu, ulong ptr) => L(cpu, "kfree", $"call_site=g+0x1/0x2 ptr={ptr:x16}");

    internal static string Ca(int cpu, ulong ptr, string name, int req, int alloc, string gfp = "GFP_KERNEL") =>
        L(cpu, "kmem_cache_alloc", $"call_site=h+0x1/0x2 ptr={ptr:x16} name={name} bytes_req={req} bytes_alloc={alloc} gfp_flags={gfp} node=-1 accounted=false");

    internal static string Cf(int cpu, ulong ptr, string name) => L(cpu, "kmem_cache_free", $"call_site=h+0x1/0x2 ptr={ptr:x16} name={name}");

    internal static string Pa(int cpu, ulong pfn, int order, string gfp) =>
        L(cpu, "mm_page_alloc", $"page={(pfn == 0 ? 0 : 0xffffea0000000000UL + pfn * 64):x16} pfn=0x{pfn:x} order={order} migratetype=0 gfp_flags={gfp}");

    internal static string Pf(int cpu, ulong pfn, int order) =>
        L(cpu, "mm_page_free", $"page={0xffffea0000000000UL + pfn * 64:x16} pfn=0x{pfn:x} order={order}");

    internal const ulong Obj = 0xffff888100000000UL;

    internal static TraceReplayResult Replay(string text, out Machine machine, TraceReplayOptions? options = null, ArchKind arch = ArchKind.X86_64, ulong mib = 64)
    {
        Machine? m = null;
        using var reader = new FtraceReader(new MemoryStream(Encoding.ASCII.GetBytes(text)));
        try
        {
            var r = TraceReplay.Run(reader, h => m = Machines.Boot(arch, mib, h.Cpus ?? 2), options, "test");
            machine = m!;
            return r;
        }
        catch
        {
            m?.Dispose();
            throw;
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Objects_and_caches_map_traced_pointers_to_the_emulators(bool pipelined)
    {
        string t = Header + Km(0, Obj, 100, 128) + Ca(1, Obj + 0x1000, "foo_cache", 100, 104) + Ca(1, Obj + 0x1068, "foo_cache", 100, 104)
                   + Kf(0, Obj) + Cf(1, Obj + 0x1000, "foo_cache");
        var r = Replay(t, out var m, new TraceReplayOptions { Pipelined = pipelined });
        using (m)
        {
            Assert.Equal(5, r.TotalEvents);
            Assert.Equal(5, r.TotalReplayed);
            Assert.Equal(0, r.TotalSkipped);
            Assert.Equal(1, r.CachesCreated);
            var foo = m.FindKmemCache("foo_cache")!;
            Assert.Equal((100, 104), (foo.ObjectSize, foo.Size));
            Assert.Equal(1, m.KmemCacheState(foo).Allocated);       // one of the two still allocated
            Assert.Equal(1, r.ObjectsHeld);
            var stride = Assert.Single(r.CacheStrides);
            Assert.True(stride.Matches);
            Assert.Equal(2, stride.Allocations);
            Assert.Equal((1, 0), (r.KmallocCompared, r.KmallocSizeClassMismatches));
            m.CheckConsistency();
        }
    }

    [Fact]
    public void Kmalloc_size_class_mismatch_is_counted_with_its_line()
    {
        var r = Replay(Header + Km(0, Obj, 100, 96), out var m);
        using (m)
        {
            Assert.Equal(1, r.KmallocSizeClassMismatches);
            var s = Assert.Single(r.KmallocMismatchSamples);
            Assert.Equal((5L, 100L, 96L, 128L), (s.Line, s.BytesReq, s.TracedBytesAlloc, s.EmulatorBytesAlloc));
        }
    }

    [Fact]
    public void Frees_of_unknown_objects_and_kfree_null_are_counted_not_failed()
    {
        var r = Replay(Header + Kf(0, 0) + Kf(0, 0x10) + Kf(1, Obj) + Cf(0, Obj + 64, "dentry") + Pf(1, 0x123, 0), out var m);
        using (m)
        {
            Assert.Equal(2, r.KfreeNull);
            Assert.Equal(2, r.Replayed(FtraceEventKind.Kfree));
            Assert.Equal(2, r.Skipped(ReplaySkip.UnknownObject));
            Assert.Equal(1, r.Skipped(ReplaySkip.UnknownPage));
            Assert.Equal(0, r.TotalFailed);
            Assert.Null(m.FindKmemCache("dentry"));                 // a free never creates a cache
        }
    }

    [Fact]
    public void Slab_pages_are_left_to_the_emulators_slab_allocator_unless_asked()
    {
        string t = Header + Pa(0, 0x1000, 0, "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP") + Pa(0, 0x2000, 0, "GFP_KERNEL")
                   + Pa(1, 0x3000, 0, "GFP_NOFS|__GFP_HIGHMEM|__GFP_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_HARDWALL")
                   + Pf(0, 0x1000, 0);
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal(2, r.Skipped(ReplaySkip.SlabPage));         // the slab page and its free
            Assert.Equal(2, r.Replayed(FtraceEventKind.MmPageAlloc)); // GFP_KERNEL and page cache (movable) pages
            Assert.Equal(2, r.PagesHeld);
        }
        r = Replay(t, out m, new TraceReplayOptions { SkipSlabPages = false });
        using (m)
        {
            Assert.Equal(0, r.Skipped(ReplaySkip.SlabPage));
            Assert.Equal(3, r.Replayed(FtraceEventKind.MmPageAlloc));
            Assert.Equal(2, r.PagesHeld);                            // 3 allocated, the "slab" one freed
        }
    }

    [Fact]
    public void Slab_fallback_after_a_failed_first_attempt_is_a_slab_page()
    {
        // allocate_slab(): order 3 with NOWARN|NORETRY|NOMEMALLOC and reclaim removed fails, then order 0 with the plain flags.
        string t = Header + Pa(0, 0, 3, "__GFP_IO|__GFP_FS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC")
                   + Pa(0, 0x4000, 0, "GFP_KERNEL") + Pa(0, 0x5000, 0, "GFP_KERNEL");
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal(2, r.Skipped(ReplaySkip.SlabPage));         // the failed attempt and the retry
            Assert.Equal(1, r.Replayed(FtraceEventKind.MmPageAlloc)); // the next GFP_KERNEL page is a page of its own
        }
    }

    [Fact]
    public void Large_kmalloc_pages_belong_to_their_kmalloc_and_kfree()
    {
        ulong pfn = 0x104000;
        ulong va = 0xffff888000000000UL + (pfn << 12);
        string t = Header + Pa(1, pfn, 2, "GFP_KERNEL|__GFP_COMP") + Km(1, va, 16384, 16384)
                   + Pa(0, 0x200000, 2, "GFP_KERNEL|__GFP_COMP") + Km(0, Obj, 64, 64)    // a compound block of its own
                   + Kf(1, va) + Pf(1, pfn, 2);
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal(2, r.Skipped(ReplaySkip.LargeKmallocPage));
            Assert.Equal(1, r.Replayed(FtraceEventKind.MmPageAlloc));
            Assert.Equal(4, r.PagesHeld);                            // the order-2 block that was not a kmalloc's
            Assert.Equal(2, r.Replayed(FtraceEventKind.Kmalloc));
            Assert.Equal(0, m.CheckSlabConsistency().LargeKmallocPages); // the large kmalloc was freed by its kfree
        }
    }

    [Fact]
    public void A_traced_failure_is_retried_and_given_back()
    {
        var r = Replay(Header + Pa(0, 0, 3, "GFP_NOWAIT") + Km(0, 0, 64, 64), out var m);
        using (m)
        {
            Assert.Equal(2, r.TracedFailures);
            Assert.Equal(2, r.TracedFailuresSucceeded);
            Assert.Equal(0, r.PagesHeld);
            Assert.Equal(0, r.ObjectsHeld);
            m.CheckConsistency();
        }
    }

    [Fact]
    public void Lost_events_and_other_tracepoints_are_counted()
    {
        string t = Header + Km(0, Obj, 8, 8) + "CPU:1 [LOST 42 EVENTS]\n" + L(0, "sched_switch", "prev_comm=bash") + L(0, "sched_switch", "x=y") + Kf(0, Obj);
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal((1L, 42L), (r.LostMarkers, r.LostEvents));
            Assert.Equal(2, r.OtherEvents["sched_switch"]);
            Assert.Equal(2, r.TotalReplayed);
        }
    }

    [Fact]
    public void Malformed_lines_are_reported_by_line_number_and_strict_makes_them_fatal()
    {
        string t = Header + Km(0, Obj, 8, 8) + "garbage here\n" + L(0, "kfree", "call_site=x ptr=zz") + Kf(0, Obj);
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal(2, r.Malformed);
            Assert.Equal([6L, 7L], r.MalformedLines.Select(l => l.Line));
            Assert.Equal("no ' [CPU]' column", r.MalformedLines[0].Reason);
            Assert.StartsWith("bad hex value for ptr=", r.MalformedLines[1].Reason);
            Assert.Equal(2, r.TotalReplayed);
        }
        Machine? strictMachine = null;
        using var reader = new FtraceReader(new MemoryStream(Encoding.ASCII.GetBytes(t)));
        var e = Assert.Throws<TraceFormatException>(() =>
            TraceReplay.Run(reader, h => strictMachine = Machines.X64(64), new TraceReplayOptions { Strict = true }));
        using (strictMachine)
        {
            Assert.Equal(6, e.Line);
            Assert.Contains("line 6: malformed trace line: no ' [CPU]' column", e.Message);
            strictMachine!.CheckConsistency();                    // the kmalloc before it was replayed, nothing half-done
            Assert.True(strictMachine.Slabinfo(strictMachine.FindKmemCache("kmalloc-8")!).ActiveObjs >= 1);
        }
    }

    [Fact]
    public void Address_reuse_without_a_traced_free_frees_the_old_object()
    {
        // maple_node objects freed in bulk (kfree_rcu, kmem_cache_free_bulk) leave no kmem_cache_free behind.
        var r = Replay(Header + Ca(0, Obj, "maple_node", 256, 256) + Ca(0, Obj, "maple_node", 256, 256) + Cf(0, Obj, "maple_node"), out var m);
        using (m)
        {
            Assert.Equal(1, r.ImplicitFrees);
            Assert.Equal(0, m.KmemCacheState(m.FindKmemCache("maple_node")!).Allocated);
            m.CheckConsistency();
        }
    }

    [Fact]
    public void Freeing_inside_a_non_compound_block_splits_it()
    {
        // alloc_pages_exact(12K): order 2 without __GFP_COMP, the fourth page freed at once, the others later.
        string t = Header + Pa(0, 0x8000, 2, "GFP_KERNEL") + Pf(0, 0x8003, 0) + Pf(0, 0x8000, 0) + Pf(0, 0x8001, 0) + Pf(0, 0x8002, 0);
        var r = Replay(t, out var m);
        using (m)
        {
            Assert.Equal(1, r.SplitPages);
            Assert.Equal(4, r.Replayed(FtraceEventKind.MmPageFree));
            Assert.Equal(0, r.PagesHeld);
            m.CheckConsistency();
        }
    }

    [Fact]
    public void Events_of_cpus_the_machine_lacks_are_skipped()
    {
        var r = Replay("#P:8\n" + Km(5, Obj, 8, 8) + Km(1, Obj + 8, 8, 8), out var m);
        using (m)
        {
            Assert.Equal(8, m.Cpus.Count);                           // the boot callback got #P:8
        }
        Machine? two = null;
        using var reader = new FtraceReader(new MemoryStream(Encoding.ASCII.GetBytes("#P:8\n" + Km(5, Obj, 8, 8) + Km(1, Obj + 8, 8, 8))));
        r = TraceReplay.Run(reader, _ => two = Machines.X64(64, cpus: 2));
        using (two)
        {
            Assert.Equal(1, r.Skipped(ReplaySkip.CpuUnavailable));
            Assert.Equal(1, r.TotalReplayed);
        }
    }

    [Fact]
    public void Allocations_failing_in_the_emulator_are_counted_and_their_frees_skipped()
    {
        var sb = new StringBuilder(Header);
        for (ulong i = 0; i < 40; i++)
            sb.Append(Pa(0, 0x100000 + i * 1024, 10, "GFP_KERNEL|__GFP_NOWARN"));   // 40 MiB on a 32 MiB machine
        for (ulong i = 0; i < 40; i++)
            sb.Append(Pf(0, 0x100000 + i * 1024, 10));
        var r = Replay(sb.ToString(), out var m, mib: 32);
        using (m)
        {
            Assert.True(r.Failed(FtraceEventKind.MmPageAlloc) > 0);
            Assert.Equal(r.Failed(FtraceEventKind.MmPageAlloc), r.Skipped(ReplaySkip.AllocationFailedHere));
            Assert.Equal(0, r.PagesHeld);
            m.CheckConsistency();
        }
    }

    [Theory]
    [InlineData(96, 104, "free pointer after the object")]              // anon_vma: constructor
    [InlineData(184, 192, "aligned 16")]                                  // filp
    [InlineData(768, 832, "free pointer after the object, aligned 64")]  // sock_inode_cache
    [InlineData(4248, 4288, "aligned 64")]                                // task_struct
    [InlineData(256, 256, "default")]
    public void Cache_geometry_reproduces_the_traced_stride(int req, int alloc, string how)
    {
        var (align, flags, text) = TraceReplayer<X86_64>.InferGeometry(req, alloc);
        Assert.Equal(how, text);
        using var m = Machines.X64(64);
        var s = m.KmemCacheCreate("probe", (uint)req, align, flags)!;
        Assert.Equal(alloc, s.Size);
    }

    [Fact]
    public void Mm_page_free_batched_frees_order_0_pages()
    {
        var r = Replay(Header + Pa(0, 0x7000, 0, "GFP_HIGHUSER_MOVABLE") + L(0, "mm_page_free_batched", "page=ffffea00001c0000 pfn=0x7000 order=0"), out var m);
        using (m)
        {
            Assert.Equal(1, r.Replayed(FtraceEventKind.MmPageFreeBatched));
            Assert.Equal(0, r.PagesHeld);
        }
    }

    [Fact]
    public void Truncated_gzip_stops_with_a_line_number_and_a_consistent_machine()
    {
        var sb = new StringBuilder(Header);
        for (int i = 0; i < 30000; i++)
            sb.Append(Km(i % 2, Obj + (ulong)i * 64, 64, 64)).Append(Kf(i % 2, Obj + (ulong)i * 64));
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true))
            gz.Write(Encoding.ASCII.GetBytes(sb.ToString()));
        var cut = ms.ToArray()[..(int)(ms.Length / 2)];
        Machine? m = null;
        using var reader = new FtraceReader(new MemoryStream(cut));
        var e = Assert.Throws<TraceFormatException>(() => TraceReplay.Run(reader, _ => m = Machines.X64(64)));
        using (m)
        {
            Assert.Contains("truncated or corrupt compressed data", e.Message);
            Assert.True(e.Line > 1000);
            m!.CheckConsistency();
        }
    }

    [Fact]
    public void Empty_and_binary_inputs_replay_nothing()
    {
        var r = Replay("", out var m);
        using (m)
            Assert.Equal((0L, 0L, 0L), (r.Lines, r.TotalEvents, r.Malformed));
        var junk = new byte[200_000];
        new Random(3).NextBytes(junk);
        Machine? b = null;
        using var reader = new FtraceReader(new MemoryStream(junk));
        r = TraceReplay.Run(reader, _ => b = Machines.X64(64));
        using (b)
        {
            Assert.Equal(0, r.TotalEvents);
            Assert.True(r.Malformed > 100);
            Assert.Equal(10, r.MalformedLines.Count);
            b!.CheckConsistency();
        }
    }

    [Fact]
    public void Limit_stops_after_n_events()
    {
        var r = Replay(Header + Km(0, Obj, 8, 8) + Km(0, Obj + 8, 8, 8) + Km(0, Obj + 16, 8, 8), out var m, new TraceReplayOptions { MaxEvents = 2 });
        using (m)
        {
            Assert.True(r.StoppedAtLimit);
            Assert.Equal(2, r.TotalEvents);
        }
    }
}
