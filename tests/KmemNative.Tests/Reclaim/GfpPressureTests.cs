using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>
/// The seed's GFP flags side by side under the same memory pressure (<see cref="PressureState"/>: free memory just
/// below the min watermark; left to reclaim: 1024 dirty page-cache pages, unused dentries/inodes behind the
/// file-system shrinker, the driver pool behind a non-FS shrinker that needs __GFP_IO, and 1024 anonymous pages with
/// swap). Each flag gets a fresh machine in that state and shows its documented outcome.
/// </summary>
public class GfpPressureTests
{
    private static long Events(Machine m, VmEvent e) => m.Cpus.Sum(c => c.Event(e));

    private static (int Dentries, int Inodes) Dcache(PressureState s) => s.M.DcacheUnused;

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_kernel_succeeds_by_reclaim_with_writeback(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.Kernel, 0);
        Assert.NotNull(page);
        // Direct reclaim ran (allocstall), woke the flusher for the dirty pages it found, and freed the written ones.
        Assert.True(Events(m, VmEvent.AllocstallNormal) > 0);
        Assert.True(Events(m, VmEvent.PgstealDirect) > 0);
        Assert.True(Events(m, VmEvent.PgstealFile) > 0);
        Assert.Equal(0, m.NodeState(NodeStat.NrDirty));
        Assert.True(m.NodeState(NodeStat.NrWritten) >= 1024);
        Assert.Null(m.LastAllocFailureReport);
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_user_and_highuser_succeed_like_gfp_kernel(ArchKind arch)
    {
        foreach (var gfp in new[] { Gfp.User, Gfp.HighUser })
        {
            using var s = PressureState.Build(arch);
            var page = s.M.AllocPages(s.Cpu, gfp, 0);
            Assert.NotNull(page);
            Assert.True(Events(s.M, VmEvent.PgstealDirect) > 0);
            // The stall is counted for the request's highest zone: HIGHMEM on i386 for GFP_HIGHUSER.
            var stall = gfp == Gfp.HighUser && arch == ArchKind.I386 ? VmEvent.AllocstallHigh : VmEvent.AllocstallNormal;
            Assert.True(Events(s.M, stall) > 0, $"{gfp}: {stall}");
            s.M.CheckConsistency();
        }
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_nofs_succeeds_without_fs_shrinkers_or_fs_writeback(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.NoFs, 0);
        Assert.NotNull(page);
        // The file system was left alone: its dentries and inodes, and its dirty pages (no flusher for a NOFS reclaimer).
        Assert.Equal((PressureState.Dentries, 0), Dcache(s));
        Assert.Equal(1024, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(0, m.NodeState(NodeStat.NrWritten));
        // What it reclaimed came from outside the file system: the driver pool's shrinker.
        Assert.True(m.DriverPoolCount < PressureState.PoolObjects);
        Assert.True(m.Shrinkers.Single(x => x.Name == "driver-pool").Freed > 0);
        Assert.Equal(0, m.Shrinkers.Single(x => x.Name == "sb-ext4").Freed);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_nofs_without_the_driver_pool_succeeds_by_swapping_out(ArchKind arch)
    {
        using var s = PressureState.Build(arch, withPool: false);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.NoFs, 0);
        Assert.NotNull(page);
        // Writeback that is not the file system's: anonymous pages written to swap (block I/O, __GFP_IO allowed).
        Assert.True(Events(m, VmEvent.Pswpout) > 0);
        Assert.True(Events(m, VmEvent.PgstealAnon) > 0);
        Assert.Equal(0, Events(m, VmEvent.PgstealFile));
        Assert.True(s.Hog.Mm.SwapEnts > 0);
        Assert.Equal(1024, m.NodeState(NodeStat.NrDirty));
        Assert.Equal((PressureState.Dentries, 0), Dcache(s));
        s.Hog.Validate();
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_noio_cannot_reclaim_dirty_pages_and_fails_without_oom(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.NoIo, 0);
        Assert.Null(page);
        Assert.True(Events(m, VmEvent.PgscanDirect) > 0);      // it tried
        Assert.Equal(0, Events(m, VmEvent.PgstealDirect));      // nothing it may touch: no writeback, no swap-out
        Assert.Equal(1024, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(0, Events(m, VmEvent.Pswpout));
        Assert.Equal((PressureState.Dentries, 0), Dcache(s));
        Assert.Equal(PressureState.PoolObjects, m.DriverPoolCount);
        // "The OOM killer does not compensate for IO-less reclaim": nobody was killed.
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        Assert.Single(m.Processes);
        var report = m.LastAllocFailureReport;
        Assert.NotNull(report);
        Assert.StartsWith($"hog: page allocation failure: order:0, mode:0xc00(GFP_NOIO), nodemask=(null)\nMem-Info:\n", report);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_nowait_fails_fast_where_gfp_atomic_succeeds_from_the_reserve(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        long free0 = m.Zones.Sum(z => z.FreePages);
        Assert.Null(m.AllocPages(s.Cpu, Gfp.NoWait, 0));
        // No reclaim, no report (GFP_NOWAIT carries __GFP_NOWARN), only kswapd is woken.
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
        Assert.Null(m.LastAllocFailureReport);
        Assert.True(m.KswapdPending);
        var page = m.AllocPages(s.Cpu, Gfp.Atomic, 0);
        Assert.NotNull(page);
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
        // It came from below the min watermark of its zone: the reserve GFP_NOWAIT may not touch.
        var zone = m.Zones[m.ReadPage(page!.Value.Pfn).ZoneIndex];
        int normal = m.Zones.First(z => z.Type == ZoneType.Normal).Index;
        Assert.True(zone.FreePages < zone.WatermarkMin + zone.LowmemReserve(normal));
        Assert.True(m.Zones.Sum(z => z.FreePages) <= free0);
        m.CheckConsistency();
    }

    [Fact]
    public void Gfp_dma_gets_zone_dma_which_lowmem_reserve_kept_from_the_others()
    {
        using var s = PressureState.Build(ArchKind.X86_64);
        var m = s.M;
        var dma = m.Zones[0];
        // The NOWAIT fill stopped at DMA's min watermark plus its lowmem_reserve against DMA32/NORMAL requests...
        Assert.True(dma.FreePages > dma.WatermarkMin);
        Assert.Null(m.AllocPages(s.Cpu, Gfp.NoWait, 0));
        // ...which does not apply to a request for ZONE_DMA itself: no reclaim needed.
        var page = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.Dma, 0);
        Assert.NotNull(page);
        Assert.True(page!.Value.Pfn < 4096);    // below 16 MiB
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
        m.CheckConsistency();
    }

    [Fact]
    public void Gfp_dma_under_pressure_in_zone_dma_never_invokes_the_oom_killer()
    {
        using var s = PressureState.Build(ArchKind.X86_64);
        var m = s.M;
        // Exhaust ZONE_DMA too (GFP_DMA | GFP_NOWAIT stops at its own min watermark).
        while (m.AllocPages(s.Cpu, Gfp.NoWait | Gfp.Dma, 0) is { } p)
            s.Pinned.Add(p.Pfn);
        var page = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.Dma, 0);
        // Direct reclaim for ZONE_DMA (allocstall_dma) finds nothing there: the LRU pages all live in DMA32, which
        // is above the request's reclaim_idx, so get_scan_count() gives every list a target of 0. Lowmem requests
        // never OOM-kill ("the OOM killer does not needlessly kill tasks for lowmem").
        Assert.Null(page);
        Assert.True(Events(m, VmEvent.AllocstallDma) > 0);
        Assert.Equal(0, Events(m, VmEvent.PgstealDirect));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        Assert.Contains("mode:0xcc1(GFP_KERNEL|GFP_DMA)", m.LastAllocFailureReport);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_nofail_succeeds_after_reclaim(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 0);
        Assert.NotNull(page);
        Assert.True(Events(m, VmEvent.PgstealDirect) > 0);
        m.CheckConsistency();
    }
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_kernel_inside_memalloc_noio_save_behaves_as_gfp_noio(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        uint cookie = s.Cpu.MemallocNoioSave();
        var page = m.AllocPages(s.Cpu, Gfp.Kernel, 0);
        s.Cpu.MemallocNoioRestore(cookie);
        Assert.Null(page);
        Assert.Equal(1024, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        // The report shows the flags the allocation ran with: the scope took __GFP_IO and __GFP_FS away.
        Assert.Contains("mode:0xc00(GFP_NOIO)", m.LastAllocFailureReport);
        // Out of the scope the same request succeeds.
        Assert.NotNull(m.AllocPages(s.Cpu, Gfp.Kernel, 0));
    }

    [Fact]
    public void Gfp_kernel_inside_memalloc_nofs_save_leaves_the_fs_shrinker_alone()
    {
        using var s = PressureState.Build(ArchKind.X86_64);
        var m = s.M;
        uint cookie = s.Cpu.MemallocNofsSave();
        var page = m.AllocPages(s.Cpu, Gfp.Kernel, 0);
        s.Cpu.MemallocNofsRestore(cookie);
        Assert.NotNull(page);
        Assert.Equal((PressureState.Dentries, 0), Dcache(s));
        Assert.Equal(1024, m.NodeState(NodeStat.NrDirty));
        Assert.True(m.DriverPoolCount < PressureState.PoolObjects);
    }

    [Fact]
    public void Memalloc_reaches_below_the_watermarks_unless_nomemalloc()
    {
        using var s = PressureState.Build(ArchKind.X86_64);
        var m = s.M;
        // ALLOC_NO_WATERMARKS: a request that helps free memory may take the last pages.
        Assert.Null(m.AllocPages(s.Cpu, Gfp.NoWait | Gfp.Memalloc | Gfp.NoMemalloc, 0));
        Assert.NotNull(m.AllocPages(s.Cpu, Gfp.NoWait | Gfp.Memalloc, 0));
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
    }

    [Fact]
    public void The_fs_shrinker_frees_dentries_and_inodes_only_with_gfp_fs()
    {
        using var m = Machines.X64(64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.Equal(3000, m.DcacheFill(cpu, 3000));
        m.DcacheTouch(100);
        long sreclaimable = m.NodeState(NodeStat.NrSlabReclaimable);
        for (int i = 0; i < 5; i++)
            m.TryToFreePages(cpu, Gfp.NoFs);
        Assert.Equal((3000, 0), m.DcacheUnused);
        for (int i = 0; i < 5; i++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        var (dentries, inodes) = m.DcacheUnused;
        Assert.True(dentries < 3000);
        Assert.True(dentries >= 100);       // the referenced ones got another round
        Assert.True(inodes < 3000 - dentries);  // inodes whose dentries died were pruned too
        Assert.True(m.NodeState(NodeStat.NrSlabReclaimable) < sreclaimable);
        Assert.True(m.Shrinkers.Single(x => x.Name == "sb-ext4").Freed > 0);
        Assert.True(Events(m, VmEvent.SlabsScanned) > 0);
        m.CheckConsistency();
    }
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Retry_mayfail_succeeds_while_reclaim_makes_progress(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        Assert.NotNull(s.M.AllocPages(s.Cpu, Gfp.Kernel | Gfp.RetryMayFail, 0));
        Assert.True(Events(s.M, VmEvent.PgstealDirect) > 0);
        Assert.Equal(0, Events(s.M, VmEvent.OomKill));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Noretry_succeeds_when_one_reclaim_invocation_is_enough(ArchKind arch)
    {
        using var s = PressureState.Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoRetry, 0);
        // One try_to_free_pages() (allocstall counts direct-reclaim invocations): its priority loop woke the flusher,
        // ran it and freed the written pages within the one call. Where one call is not enough NORETRY fails
        // (OomTests.Noretry_retry_mayfail_and_costly_orders_fail_without_oom).
        long stalls = Enumerable.Range(0, 6).Sum(i => Events(m, VmEvent.AllocstallDma + i));
        Assert.Equal(1, stalls);
        Assert.NotNull(page);
        Assert.Equal(0, Events(m, VmEvent.OomKill));
    }
}
