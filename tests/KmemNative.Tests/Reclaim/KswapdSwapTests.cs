using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.Mm;
using KmemNative.Tests.TestUtil;
using Shrinker = KmemNative.Reclaim.Shrinker;

namespace KmemNative.Tests.Reclaim;

/// <summary>kswapd in step mode and as a thread; swap-out and swap-in; drop_caches and the shrinkers.</summary>
public class KswapdSwapTests
{
    private static long Events(Machine m, VmEvent e) => m.Cpus.Sum(c => c.Event(e));

    /// <summary>A machine with <paramref name="fileMib"/> MiB of clean page cache (a file read once).</summary>
    private static (Machine M, Cpu Cpu, int Fd) WithCleanCache(ArchKind arch, ulong fileMib)
    {
        var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/cache", fileMib << 20).Unwrap();
        var buf = new byte[1 << 20];
        for (ulong off = 0; off < fileMib << 20; off += (ulong)buf.Length)
            Assert.Equal((ulong)buf.Length, m.FileRead(cpu, fd, off, buf).Unwrap());
        m.LruAddDrain(cpu);
        return (m, cpu, fd);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kswapd_keeps_free_memory_between_low_and_high_under_a_steady_stream(ArchKind arch)
    {
        var (m, cpu, _) = WithCleanCache(arch, 24);
        using var _m = m;
        long cache = m.LruSize(LruList.InactiveFile) + m.LruSize(LruList.ActiveFile);
        Assert.True(cache >= 6000);
        var zones = m.Zones.Where(z => z.IsPopulated).ToList();
        // The watermarks as a GFP_KERNEL request sees them: each zone's own mark plus its lowmem_reserve against it.
        int normal = m.Zones.First(z => z.Type == ZoneType.Normal).Index;
        long Low(Zone z) => z.WatermarkLow + z.LowmemReserve(normal);
        long High(Zone z) => z.WatermarkHigh + z.LowmemReserve(normal);
        long Free() => m.Zones.Sum(z => z.FreePages + m.Cpus.Sum(c => (long)m.PcpCount(c, z)));
        long free0 = Free();
        int steps = 0;
        for (int i = 0; i < 12000; i++)
        {
            Assert.NotNull(m.AllocPages(cpu, Gfp.Kernel, 0));
            if (!m.KswapdPending)
                continue;
            // Woken only when the request found no zone above its low watermark (__zone_watermark_ok: free > mark)...
            Assert.All(zones, z => Assert.True(z.FreePages <= Low(z), $"step {steps} i {i}: {z.Name} free {z.FreePages} low {Low(z)} min {z.WatermarkMin} high {High(z)}"));
            Assert.True(m.KswapdStep(cpu) > 0);
            steps++;
            // ...and it stops once a zone the request may use is above its high watermark.
            Assert.Contains(zones, z => z.FreePages >= High(z));
            Assert.False(m.KswapdPending);
        }
        Assert.True(steps >= 2, $"kswapd ran {steps} times");
        Assert.Equal(steps, Events(m, VmEvent.Pageoutrun));
        // Every page of the stream came from free memory or from what kswapd reclaimed: nothing else freed any.
        Assert.Equal(12000 - (free0 - Free()), Events(m, VmEvent.PgstealKswapd));
        Assert.True(Events(m, VmEvent.PgscanKswapd) >= Events(m, VmEvent.PgstealKswapd));
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
        Assert.Equal(0L, Enumerable.Range(0, 6).Sum(i => Events(m, VmEvent.AllocstallDma + i)));
        Assert.Contains("pgsteal_kswapd ", m.Proc.Read("vmstat"));
        m.CheckConsistency();
    }

    [Fact]
    public void Kswapd_step_with_nothing_to_do_does_nothing()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        Assert.False(m.KswapdPending);
        Assert.Equal(0, m.KswapdStep(cpu));
        Assert.Equal(0, Events(m, VmEvent.Pageoutrun));
    }

    [Fact]
    public void Kswapd_thread_needs_a_free_cpu_and_the_wakeup_waits_for_one()
    {
        var (m, cpu, _) = WithCleanCache(ArchKind.X86_64, 24);
        using var _m = m;
        m.KswapdThread = true;
        Assert.True(m.KswapdThread);
        try
        {
            while (!m.KswapdPending)
                Assert.NotNull(m.AllocPages(cpu, Gfp.Kernel, 0));
            // The only CPU belongs to this thread: kswapd cannot run, the wakeup stays pending.
            Thread.Sleep(300);
            Assert.True(m.KswapdPending);
            Assert.Equal(0, Events(m, VmEvent.PgstealKswapd));
        }
        finally
        {
            m.KswapdThread = false;
        }
        Assert.False(m.KswapdThread);
        Assert.True(m.KswapdStep(cpu) > 0);
        Assert.False(m.KswapdPending);
        m.CheckConsistency();
    }

    [Fact]
    public void Disposing_the_machine_stops_the_kswapd_thread_first()
    {
        var m = Machines.X64(32, cpus: 2);
        m.KswapdThread = true;
        Assert.True(m.KswapdThread);
        m.Dispose();    // joins the thread before the arena is freed (it would otherwise touch freed memory)
        Assert.False(m.KswapdThread);
        Assert.Throws<ObjectDisposedException>(() => m.KswapdThread = true);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kswapd_thread_on_a_second_cpu_reclaims_by_itself(ArchKind arch)
    {
        var m = Machines.Boot(arch, 64, cpus: 2);
        using var _m = m;
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/cache", 24 << 20).Unwrap();
        var buf = new byte[1 << 20];
        for (ulong off = 0; off < 24 << 20; off += (ulong)buf.Length)
            m.FileRead(cpu, fd, off, buf);
        m.KswapdThread = true;
        try
        {
            var pinned = new List<ulong>();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (Events(m, VmEvent.PgstealKswapd) == 0 && DateTime.UtcNow < deadline)
            {
                if (m.AllocPages(cpu, Gfp.Kernel, 0) is { } p)
                    pinned.Add(p.Pfn);
                else
                    Thread.Sleep(1);
            }
            Assert.True(Events(m, VmEvent.PgstealKswapd) > 0);
        }
        finally
        {
            m.KswapdThread = false;
        }
        m.CheckConsistency();
    }

    /// <summary>
    /// After the processes exit, what still holds swap slots is the swap cache: pages whose write-out was in flight
    /// (they could not leave the cache under PG_writeback). Once the I/O completes reclaim frees them, and with them
    /// every slot: no slot is lost.
    /// </summary>
    private static void SwapCacheDrains(Machine m, Cpu cpu)
    {
        m.Sync(cpu);
        for (int i = 0; i < 20 && m.SwapFreePages != m.SwapTotalPages; i++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        Assert.Equal(m.SwapTotalPages, m.SwapFreePages);
        Assert.Equal(0, m.NodeState(NodeStat.NrSwapcached));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Swap_out_and_swap_in_preserve_the_bytes(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.True(m.Swapon(16 << 20).IsOk);
        Assert.Equal(Errno.EBUSY, m.Swapon(16 << 20).Error);
        Assert.Equal(4095, m.SwapTotalPages);     // the header page is not swap space
        var p = m.Spawn(cpu, "swapper");
        const int pages = 2048;
        ulong a = p.MapAnon(cpu, pages * 4096UL);
        var data = new byte[pages * 4096];
        new Random(42).NextBytes(data);
        Assert.True(p.Write(cpu, a, data).IsOk);
        for (int round = 0; round < 200 && Events(m, VmEvent.Pswpout) < pages / 2; round++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        Assert.True(Events(m, VmEvent.Pswpout) >= pages / 2, $"pswpout {Events(m, VmEvent.Pswpout)}");
        m.Sync(cpu);
        m.TryToFreePages(cpu, Gfp.Kernel);
        var pm = p.Pagemap(a, pages);
        int swapped = pm.Count(e => (e & (1UL << 62)) != 0);
        Assert.True(swapped > 0);
        Assert.True(p.Mm.SwapEnts >= swapped);     // the stack may have been swapped out too
        Assert.True(m.SwapFreePages < m.SwapTotalPages);
        Assert.Contains("SwapFree:", m.Proc.Read("meminfo"));
        p.Validate();
        m.CheckConsistency();
        long ents = p.Mm.SwapEnts;
        var back = new byte[data.Length];
        var r = p.Read(cpu, a, back);
        Assert.True(r.IsOk);
        Assert.True(r.MajorFaults > 0);
        Assert.Equal(data, back);
        Assert.True(Events(m, VmEvent.Pswpin) > 0);
        Assert.Equal(ents - swapped, p.Mm.SwapEnts);
        p.Validate();
        m.CheckConsistency();
        p.Exit(cpu);
        SwapCacheDrains(m, cpu);
        m.CheckConsistency();
    }

    [Fact]
    public void Swapped_out_pages_shared_by_fork_keep_their_bytes_in_both()
    {
        using var m = Machines.X64(64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.True(m.Swapon(16 << 20).IsOk);
        var p = m.Spawn(cpu, "parent");
        ulong a = p.MapAnon(cpu, 256 * 4096);
        for (int i = 0; i < 256; i++)
            p.Poke(cpu, a + (ulong)i * 4096, 0x1000UL + (ulong)i);
        for (int round = 0; round < 200 && p.Mm.SwapEnts < 128; round++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        Assert.True(p.Mm.SwapEnts > 0);
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.Equal(p.Mm.SwapEnts, c.Mm.SwapEnts);
        m.CheckConsistency();
        c.Poke(cpu, a, 0xdead);
        for (int i = 0; i < 256; i++)
            Assert.Equal(i == 0 ? 0xdeadUL : 0x1000UL + (ulong)i, c.Peek(cpu, a + (ulong)i * 4096));
        for (int i = 0; i < 256; i++)
            Assert.Equal(0x1000UL + (ulong)i, p.Peek(cpu, a + (ulong)i * 4096));
        c.Exit(cpu);
        p.Exit(cpu);
        SwapCacheDrains(m, cpu);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Drop_caches_frees_clean_page_cache_and_reclaimable_slab_but_not_dirty_pages(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        int clean = (int)m.FileCreate(cpu, "/data/clean", 1 << 20).Unwrap();
        int dirty = (int)m.FileCreate(cpu, "/data/dirty", 1 << 20).Unwrap();
        var buf = new byte[1 << 20];
        m.FileRead(cpu, clean, 0, buf);
        Array.Fill(buf, (byte)0x5a);
        m.FileWrite(cpu, dirty, 0, buf);
        Assert.Equal(512, m.NodeState(NodeStat.NrFilePages));
        Assert.Equal(256, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(800, m.DcacheFill(cpu, 800));
        Assert.Equal(100, m.DriverPoolFill(cpu, 100));
        long sreclaimable = m.NodeState(NodeStat.NrSlabReclaimable);

        m.DropCaches(cpu, 1);
        Assert.Equal(256, m.NodeState(NodeStat.NrFilePages));     // the dirty half stays
        Assert.Equal(256, m.NodeState(NodeStat.NrDirty));
        Assert.Equal((800, 0), m.DcacheUnused);
        Assert.Contains(m.Log.Lines, l => l.EndsWith("drop_caches: 1", StringComparison.Ordinal));

        m.DropCaches(cpu, 2);
        Assert.Equal((0, 0), m.DcacheUnused);
        Assert.Equal(0, m.DriverPoolCount);
        Assert.True(m.NodeState(NodeStat.NrSlabReclaimable) < sreclaimable);
        Assert.True(Events(m, VmEvent.SlabsScanned) >= 1700);

        Assert.Equal(256, m.Sync(cpu));
        Assert.Equal(0, m.NodeState(NodeStat.NrDirty));
        m.DropCaches(cpu, 3);
        Assert.Equal(0, m.NodeState(NodeStat.NrFilePages));
        Assert.Equal(1, Events(m, VmEvent.DropSlab) - 1);
        Assert.Equal(2, Events(m, VmEvent.DropPagecache));
        // The written bytes are on "disk": reading them back brings them in again.
        var back = new byte[1 << 20];
        m.FileRead(cpu, dirty, 0, back);
        Assert.Equal(buf, back);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.DropCaches(cpu, 5));
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Evicted_page_cache_leaves_shadow_entries_that_a_refault_finds(ArchKind arch)
    {
        var (m, cpu, fd) = WithCleanCache(arch, 1);
        using var _m = m;
        for (int i = 0; i < 50 && m.NodeState(NodeStat.NrFilePages) > 128; i++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        long evicted = 256 - m.NodeState(NodeStat.NrFilePages);
        Assert.True(evicted > 0);
        Assert.Equal(0, m.NodeState(NodeStat.WorkingsetRefaultFile));
        // Reading the file again brings the evicted pages back in: each finds its shadow entry (workingset_refault).
        m.FileRead(cpu, fd, 0, new byte[1 << 20]);
        Assert.Equal(256, m.NodeState(NodeStat.NrFilePages));
        Assert.Equal(evicted, m.NodeState(NodeStat.WorkingsetRefaultFile));
        Assert.Contains($"workingset_refault_file {evicted}", m.Proc.Read("vmstat"));
        m.CheckConsistency();
    }

    [Fact]
    public void A_registered_shrinker_is_scanned_in_batches_with_deferred_work()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        long objects = 1000, scannedTotal = 0;
        var calls = new List<(long ToScan, Gfp Gfp)>();
        var s = new Shrinker("test", (c, sc) => objects, (c, sc) =>
        {
            calls.Add((sc.NrToScan, sc.GfpMask));
            long n = Math.Min(sc.NrToScan, objects);
            objects -= n;
            scannedTotal += sc.NrToScan;
            return n;
        }) { Seeks = 2 };
        m.RegisterShrinker(s);
        Assert.Contains(s, m.Shrinkers);
        // drop_caches 2: priority 0, so the target is freeable * 4 / seeks (capped at 2 * freeable), in batches of 128.
        m.DropCaches(cpu, 2);
        Assert.Equal(0, objects);
        Assert.All(calls, c => Assert.True(c.ToScan <= Shrinker.DefaultBatch));
        Assert.All(calls, c => Assert.Equal(Gfp.Kernel, c.Gfp));
        Assert.Equal(1000, s.Freed);
        Assert.True(m.UnregisterShrinker(s));
        Assert.False(m.UnregisterShrinker(s));
    }
}
