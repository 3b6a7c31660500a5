using System.Text.RegularExpressions;
using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.Mm;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>meminfo/vmstat/zoneinfo under reclaim, the Mem-Info report, conservation across reclaim, swap and OOM.</summary>
public partial class ReclaimViewTests
{
    [GeneratedRegex(@"^(?<k>[A-Za-z_()]+):\s+(?<v>\d+) kB$", RegexOptions.Multiline)]
    private static partial Regex MeminfoLine();

    private static Dictionary<string, long> Meminfo(Machine m) =>
        MeminfoLine().Matches(m.Proc.Read("meminfo")).ToDictionary(x => x.Groups["k"].Value, x => long.Parse(x.Groups["v"].Value));

    private static long Vmstat(Machine m, string name) =>
        long.Parse(m.Proc.Read("vmstat").Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1]);

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Meminfo_and_vmstat_show_the_lru_dirty_swap_and_reclaimable_slab(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.True(m.Swapon(8 << 20).IsOk);
        int clean = (int)m.FileCreate(cpu, "/data/clean", 2 << 20).Unwrap();
        int dirty = (int)m.FileCreate(cpu, "/data/dirty", 1 << 20).Unwrap();
        var buf = new byte[2 << 20];
        m.FileRead(cpu, clean, 0, buf);
        m.FileRead(cpu, clean, 0, buf.AsSpan(0, 1 << 20));    // a second read of the first half activates it
        m.FileWrite(cpu, dirty, 0, buf.AsSpan(0, 1 << 20));
        m.DcacheFill(cpu, 300);
        m.LruAddDrain(cpu);
        var mi = Meminfo(m);
        Assert.Equal(8188, mi["SwapTotal"]);
        Assert.Equal(8188, mi["SwapFree"]);
        Assert.Equal(1024, mi["Dirty"]);
        Assert.Equal(256, Vmstat(m, "nr_dirty"));
        Assert.Equal(0, mi["Writeback"]);
        Assert.Equal(m.LruSize(LruList.ActiveFile) * 4, mi["Active(file)"]);
        Assert.Equal(m.LruSize(LruList.InactiveFile) * 4, mi["Inactive(file)"]);
        Assert.True(m.LruSize(LruList.ActiveFile) >= 256);    // the re-read half
        Assert.Equal(768, m.LruSize(LruList.ActiveFile) + m.LruSize(LruList.InactiveFile));
        Assert.Equal(Vmstat(m, "nr_active_file"), m.LruSize(LruList.ActiveFile));
        Assert.Equal(m.NodeState(NodeStat.NrSlabReclaimable) * 4, mi["SReclaimable"]);
        Assert.True(mi["SReclaimable"] > 0);
        // si_mem_available(), restated.
        long wmarkLow = m.Zones.Sum(z => z.WatermarkLow + z.WatermarkBoost);
        long pagecache = m.LruSize(LruList.ActiveFile) + m.LruSize(LruList.InactiveFile);
        long reclaimable = m.NodeState(NodeStat.NrSlabReclaimable);
        long avail = m.Zones.Sum(z => z.FreePages) - m.TotalReservePages + pagecache - Math.Min(pagecache / 2, wmarkLow) +
                     reclaimable - Math.Min(reclaimable / 2, wmarkLow);
        Assert.Equal(avail * 4, mi["MemAvailable"]);
        Assert.Equal("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t8188\t\t0\t\t-2\n", m.Swaps());
        Assert.Contains("node_unreclaimable:  0", m.Proc.Read("zoneinfo"));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Show_mem_lists_every_zone_and_its_free_blocks(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        var lines = m.ShowMem(cpu).TrimEnd('\n').Split('\n');
        Assert.Equal("Mem-Info:", lines[0]);
        Assert.StartsWith("active_anon:0 inactive_anon:0 isolated_anon:0", lines[1]);
        foreach (var z in m.Zones.Where(z => z.IsPopulated))
        {
            string zl = lines.Single(l => l.StartsWith($"Node 0 {z.Name} free:", StringComparison.Ordinal));
            Assert.Contains($" free:{z.FreePages * 4}kB boost:0kB min:{z.WatermarkMin * 4}kB low:{z.WatermarkLow * 4}kB high:{z.WatermarkHigh * 4}kB ", zl);
            Assert.Contains($" managed:{(long)z.Managed * 4}kB ", zl);
            string buddy = lines.Single(l => l.StartsWith($"Node 0 {z.Name}: ", StringComparison.Ordinal));
            // "N*4kB (types) ... = TOTALkB", the total being the zone's free memory.
            Assert.EndsWith($"= {z.FreePages * 4}kB", buddy);
            Assert.Matches(@"^Node 0 \w+: (\d+\*\d+kB (\([UMEHI]+\) )?){11}= \d+kB$", buddy);
        }
        Assert.Equal($"{m.Zones.Where(z => z.IsPopulated).Sum(z => (long)z.Present)} pages RAM", lines[^3]);
        Assert.Equal("0 pages in swap cache", lines.Single(l => l.EndsWith("pages in swap cache", StringComparison.Ordinal)));
        Assert.Contains("Total swap = 0kB", lines);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void No_page_is_lost_across_reclaim_swap_and_oom(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        // The caches the scenario creates on first use, so that the baseline includes their kmem_cache structs.
        m.DcacheFill(cpu, 0);
        m.DriverPoolFill(cpu, 0);
        m.Spawn(cpu, "warmup").Exit(cpu);
        Assert.True(m.Swapon(8 << 20).IsOk);
        var before = MmTestUtil.Snapshot(m);

        int fd = (int)m.FileCreate(cpu, "/data/f", 8 << 20).Unwrap();
        var data = new byte[8 << 20];
        Array.Fill(data, (byte)0x33);
        m.FileWrite(cpu, fd, 0, data);
        m.DcacheFill(cpu, 1000);
        m.DriverPoolFill(cpu, 300);
        var a = m.Spawn(cpu, "a");
        ulong va = a.MapAnon(cpu, 4 << 20);
        Assert.True(a.Touch(cpu, va, 4 << 20, MemoryAccess.Write).IsOk);
        var b = m.Spawn(cpu, "b");
        // More than RAM and swap together: reclaim writes the file back, swaps, and finally the OOM killer kills b.
        var r = PressureHelpers.TouchTwoMappingsOf40M(b, cpu);
        m.CheckConsistency();
        Assert.True(m.Cpus.Sum(c => c.Event(VmEvent.PgstealDirect)) > 0);
        Assert.True(m.Cpus.Sum(c => c.Event(VmEvent.Pswpout)) > 0);
        Assert.Equal(Signal.SIGKILL, r.Signal?.Signal);
        Assert.False(b.IsAlive);

        a.Exit(cpu);
        Assert.True(m.FileClose(cpu, fd).IsOk);
        m.Sync(cpu);
        m.DropCaches(cpu, 3);
        for (int i = 0; i < 20 && m.SwapFreePages != m.SwapTotalPages; i++)
            m.TryToFreePages(cpu, Gfp.Kernel);
        Assert.Equal(m.SwapTotalPages, m.SwapFreePages);
        var after = MmTestUtil.Snapshot(m);
        Assert.Equal(before.Allocated, after.Allocated);
        Assert.Equal(before.Objects, after.Objects);
        Assert.Equal(before.Node, after.Node);
    }

    [Fact]
    public void The_reclaim_consistency_check_catches_a_wrong_lru_counter()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/f", 1 << 20).Unwrap();
        m.FileRead(cpu, fd, 0, new byte[1 << 20]);
        m.LruAddDrain(cpu);
        m.CheckConsistency();
        m.ModNodeState(NodeStat.NrInactiveFile, 1);
        var e = Assert.Throws<ConsistencyException>(() => m.CheckConsistency());
        Assert.Contains("nr_inactive_file is 257 but the list holds 256 pages", e.Message);
        m.ModNodeState(NodeStat.NrInactiveFile, -1);
        m.CheckConsistency();
    }
    [Fact]
    public void Path_based_file_io_dirties_and_reads_through_the_page_cache()
    {
        using var m = Machines.X64(64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.True(m.FileCreate(cpu, "/data/script", 3 * 4096).IsOk);
        Assert.Equal(Errno.EBADF, m.FileWrite(cpu, "/data/none", 0, 10).Error);
        Assert.Equal(8192UL, m.FileWrite(cpu, "/data/script", 4096, 8192, 0x11).Unwrap());
        Assert.Equal(2, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(100UL, m.FileRead(cpu, "/data/script", 0, 100).Unwrap());
        Assert.Equal(3, m.NodeState(NodeStat.NrFilePages));
        // Past the end of the file nothing is written (files keep their size).
        Assert.Equal(0UL, m.FileWrite(cpu, "/data/script", 3 * 4096, 10).Unwrap());
        Assert.Equal("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n", m.Proc.Read("swaps"));
    }
}
