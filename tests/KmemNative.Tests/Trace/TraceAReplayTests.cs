using System.Text;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;
using KmemNative.Trace;

namespace KmemNative.Tests.Trace;

/// <summary>The shipped real trace (src/KmemNative.Cli/Traces/kmem-trace-a.txt.gz), replayed end to end.</summary>
public sealed class TraceAReplayTests
{
    internal static string TraceA => Machines.DataFile("kmem-trace-a.txt.gz");

    private static Machine BootFor(TraceHeader h) => Machines.X64(1024, h.Cpus ?? 2);

    [Fact]
    public void Trace_a_replays_with_the_readme_counts_no_size_class_mismatch_and_pages_conserved()
    {
        Machine? m = null;
        long allocatedBefore = 0, slabBefore = 0;
        var r = TraceReplay.RunFile(TraceA, h =>
        {
            m = BootFor(h);
            _ = m.KmemCaches;                                        // slab up, so the baseline includes its boot caches
            allocatedBefore = m.CheckConsistency().Total.Allocated;
            slabBefore = m.NodeState(NodeStat.NrSlabReclaimable) + m.NodeState(NodeStat.NrSlabUnreclaimable);
            return m;
        });
        using (m)
        {
            // The README's table, and its line count: 12 header lines + 670,993 events.
            Assert.Equal(671_005, r.Lines);
            Assert.Equal(242_614, r.Events(FtraceEventKind.KmemCacheAlloc));
            Assert.Equal(144_488, r.Events(FtraceEventKind.KmemCacheFree));
            Assert.Equal(100_696, r.Events(FtraceEventKind.MmPageAlloc));
            Assert.Equal(77_316, r.Events(FtraceEventKind.Kfree));
            Assert.Equal(53_392, r.Events(FtraceEventKind.MmPageFree));
            Assert.Equal(52_487, r.Events(FtraceEventKind.Kmalloc));
            Assert.Equal(27_846, r.KfreeNull);
            Assert.Equal((0L, 0L, 0L), (r.Malformed, r.LostEvents, r.TotalFailed));
            Assert.Equal(2, r.Cpus);                                  // #P:2

            // Fidelity: every kmalloc lands in the traced size class; every cache's stride is the traced bytes_alloc.
            Assert.Equal(52_487, r.KmallocCompared);
            Assert.Equal(0, r.KmallocSizeClassMismatches);
            Assert.Equal(39, r.CacheStrides.Count);
            Assert.All(r.CacheStrides, c => Assert.True(c.Matches, $"{c.Name}: traced {c.TracedStride}, emulator {c.EmulatorStride}"));

            // Slab pages: all 3,723 first-attempt allocations recognised, and the 384 of them the trace frees.
            Assert.Equal(4_107, r.Skipped(ReplaySkip.SlabPage));
            Assert.Equal(1_245, r.Skipped(ReplaySkip.UnknownPage));
            Assert.Equal(1_491, r.ImplicitFrees);                     // maple_node objects freed in bulk, untraced
            Assert.Equal(r.TotalEvents, r.TotalReplayed + r.TotalSkipped);

            // Conservation: what the machine allocated since the baseline is exactly the replay's pages and slabs.
            var report = m!.CheckConsistency();
            long slabAfter = m.NodeState(NodeStat.NrSlabReclaimable) + m.NodeState(NodeStat.NrSlabUnreclaimable);
            Assert.Equal(slabAfter, r.SlabPages);
            Assert.Equal(allocatedBefore + r.PagesHeld + (slabAfter - slabBefore), report.Total.Allocated);
            Assert.True(r.PeakPagesInUse >= r.PagesHeld + r.SlabPages);
        }
    }

    [Fact]
    public void Replay_written_trace_rebuilds_the_same_buddyinfo_and_slabinfo()
    {
        const long events = 150_000;
        var text = new StringWriter { NewLine = "\n" };
        Machine? first = null;
        var r1 = TraceReplay.RunFile(TraceA, h => first = BootFor(h), new TraceReplayOptions
        {
            MaxEvents = events,
            Output = m =>
            {
                var w = new FtraceWriter(text, m);
                w.WriteHeader();
                return w;
            },
        });
        string written = text.ToString();
        Machine? second = null;
        using var reader = new FtraceReader(new MemoryStream(Encoding.ASCII.GetBytes(written)));
        var r2 = TraceReplay.Run(reader, h => second = Machines.Boot(h.Machine!.Arch, h.Machine.MemBytes >> 20, h.Machine.Cpus));
        using (first)
        using (second)
        {
            Assert.Null(first!.Tracer);                                // detached at the end
            Assert.Equal(first.Proc.Buddyinfo(), second!.Proc.Buddyinfo());
            Assert.Equal(first.Proc.Read("slabinfo"), second.Proc.Read("slabinfo"));
            Assert.Equal(0, r2.Malformed);
            Assert.Equal(0, r2.KmallocSizeClassMismatches);
            Assert.Equal(r1.CachesCreated, r2.Annotations);           // every first-sight creation was annotated
            Assert.Equal(0, r2.Skipped(ReplaySkip.UnknownObject) + r2.Skipped(ReplaySkip.UnknownPage));
            // The written trace keeps the recording's timeline and the traced tasks.
            Assert.Contains("            bash-2129    [001] .....   154.212956: kmem_cache_alloc: call_site=copy_process+0x1a5/0x1d80 ptr=", written);
            second.CheckConsistency();
        }
    }

    [Fact]
    public void Pipelined_and_single_threaded_replays_agree()
    {
        string Run(bool pipelined)
        {
            Machine? m = null;
            var r = TraceReplay.RunFile(TraceA, h => m = BootFor(h), new TraceReplayOptions { Pipelined = pipelined, MaxEvents = 120_000 });
            using (m)
            {
                // text_bytes counts what was read, and a reader thread reads ahead of a --limit.
                var json = string.Join('\n', TraceReplayReport.Json(r, timing: false).Split('\n').Where(l => !l.Contains("\"text_bytes\"")));
                return m!.Proc.Buddyinfo() + m.Proc.Read("slabinfo") + json;
            }
        }
        Assert.Equal(Run(false), Run(true));
    }

    [Fact]
    public void Free_at_end_returns_every_page_of_the_replay()
    {
        Machine? m = null;
        long allocatedBefore = 0;
        var r = TraceReplay.RunFile(TraceA, h =>
        {
            m = BootFor(h);
            _ = m.KmemCaches;
            allocatedBefore = m.CheckConsistency().Total.Allocated;
            return m;
        }, new TraceReplayOptions { MaxEvents = 100_000, FreeAtEnd = true });
        using (m)
        {
            Assert.Equal((0L, 0L), (r.PagesHeld, r.ObjectsHeld));
            // Empty the caches: shrink frees every empty slab, destroy releases the caches the replay made.
            var cpu = m!.GetCpu(0);
            foreach (var s in m.KmemCaches.ToList())
                m.KmemCacheShrink(cpu, s);
            foreach (var c in r.CacheStrides.Where(c => c.How != "existing"))
                m.KmemCacheDestroy(cpu, m.FindKmemCache(c.Name)!);
            foreach (var s in m.KmemCaches.ToList())
                m.KmemCacheShrink(cpu, s);
            m.DrainAllPages();
            Assert.Equal(allocatedBefore, m.CheckConsistency().Total.Allocated);
        }
    }
}
