using System.Text.RegularExpressions;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Diagnostics;

public partial class ProcFormatTests
{
    private static string Reference(string name) => File.ReadAllText(Machines.DataFile("proc-6.18", name));

    [GeneratedRegex(@" *\d+")]
    private static partial Regex Numbers();

    /// <summary>
    /// The text with every number (and the padding that right-aligns it) replaced by " #": equal shapes mean the
    /// same labels, order and separators whatever the values. Column widths are checked separately.
    /// </summary>
    private static string[] Shape(string text) => [.. text.Split('\n').Select(l => Numbers().Replace(l, " #"))];

    [Fact]
    public void Zoneinfo_has_the_shape_of_the_real_file()
    {
        // 3.25 GiB: populated DMA, DMA32 and Normal plus empty Movable and Device, like the reference machine.
        using var m = Machines.X64(3 * 1024 + 256);
        Assert.Equal(Shape(Reference("zoneinfo")), Shape(m.Proc.Zoneinfo()));
    }

    [Fact]
    public void Buddyinfo_lines_have_the_kernels_columns()
    {
        using var m = Machines.X64(3 * 1024 + 256);
        Assert.Equal(Shape(Reference("buddyinfo")), Shape(m.Proc.Buddyinfo()));
        foreach (var line in m.Proc.Buddyinfo().TrimEnd('\n').Split('\n'))
            Assert.Matches(@"^Node 0, zone [ A-Za-z0-9]{8} ( {0,5}\d{1,6} ){11}$", line);
    }

    [Fact]
    public void Buddyinfo_numbers_are_the_allocators_counters()
    {
        using var m = Machines.I386(64);
        var fields = m.Proc.Buddyinfo().Split('\n')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Normal", fields[3]);
        for (int o = 0; o < 11; o++)
            Assert.Equal(m.Zones[1].NrFree(o), long.Parse(fields[4 + o]));
    }

    [Fact]
    public void Pagetypeinfo_has_the_shape_of_the_real_file()
    {
        using var m = Machines.X64(3 * 1024 + 256);
        Assert.Equal(Shape(Reference("pagetypeinfo")), Shape(m.Proc.Pagetypeinfo()));
        // Block counts add up to the zone's pageblocks; free counts per type add up to buddyinfo.
        var dma = m.Zones[0];
        long blocks = 0;
        for (int o = 0; o < 11; o++)
        {
            long sum = Enum.GetValues<PhysMem.MigrateType>().Sum(mt => m.CountFreeBlocks(dma, o, mt));
            Assert.Equal(dma.NrFree(o), sum);
        }
        foreach (var line in m.Proc.Pagetypeinfo().Split('\n').Where(l => l.StartsWith("Node 0, zone      DMA ", StringComparison.Ordinal)))
            blocks = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(4).Sum(long.Parse);
        Assert.Equal(8, blocks);                                       // 4096 pfns / 512 per block
    }

    [Fact]
    public void Meminfo_has_the_real_labels_in_order_and_widths()
    {
        using var m = Machines.X64(256);
        var labels = Reference("meminfo").Split('\n').Where(l => l.Length > 0).Select(l => l[..l.IndexOf(':')]).ToList();
        var ours = m.Proc.Meminfo().Split('\n').Where(l => l.Length > 0).ToList();
        Assert.Equal(labels, ours.Select(l => l[..l.IndexOf(':')]));
        foreach (var l in ours.Where(l => l.EndsWith(" kB", StringComparison.Ordinal)))
            Assert.Matches(@"^[A-Za-z0-9_()]+:\s+\d+ kB$", l);
        Assert.Equal(Shape(Reference("meminfo")).Where(l => l.Length > 0).Select(l => l.Replace(" ", "")),
                     Shape(m.Proc.Meminfo()).Where(l => l.Length > 0).Select(l => l.Replace(" ", "")));
        Assert.Contains($"MemTotal:       {m.TotalRamPages * 4,8} kB", ours);
        Assert.Contains($"MemFree:        {m.Zones.Sum(z => z.FreePages) * 4,8} kB", ours);
    }

    [Fact]
    public void I386_meminfo_has_highmem_lines_after_mlocked()
    {
        using var m = Machines.I386(1024);
        var lines = m.Proc.Meminfo().Split('\n').ToList();
        int mlocked = lines.FindIndex(l => l.StartsWith("Mlocked:", StringComparison.Ordinal));
        Assert.StartsWith("HighTotal:", lines[mlocked + 1]);
        Assert.StartsWith("HighFree:", lines[mlocked + 2]);
        Assert.StartsWith("LowTotal:", lines[mlocked + 3]);
        Assert.StartsWith("LowFree:", lines[mlocked + 4]);
        Assert.Equal($"HighTotal:      {m.TotalHighPages * 4,8} kB", lines[mlocked + 1]);
        Assert.Contains(lines, l => l.StartsWith("DirectMap4M:", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("AnonHugePages:", StringComparison.Ordinal));
    }

    [Fact]
    public void Vmstat_has_the_real_names_in_order_and_live_values()
    {
        using var m = Machines.X64(64);
        var names = Reference("vmstat").Split('\n').Where(l => l.Length > 0).Select(l => l.Split(' ')[0]);
        for (int i = 0; i < 10; i++)
            m.AllocPages(Gfp.Kernel, 0);
        var ours = m.Proc.Vmstat().Split('\n').Where(l => l.Length > 0).Select(l => l.Split(' ')).ToList();
        Assert.Equal(names, ours.Select(f => f[0]));
        Assert.All(ours, f => Assert.Matches(@"^\d+$", f[1]));
        var values = ours.ToDictionary(f => f[0], f => long.Parse(f[1]));
        Assert.Equal(10, values["pgalloc_dma32"]);
        Assert.Equal(m.Zones.Sum(z => z.FreePages), values["nr_free_pages"]);
        Assert.Equal((long)(m.MemmapBytes / 4096), values["nr_memmap_boot_pages"]);
    }

    [Fact]
    public void I386_vmstat_lists_its_own_zones()
    {
        using var m = Machines.I386(64);
        var names = m.Proc.Vmstat().Split('\n').Select(l => l.Split(' ')[0]).ToList();
        Assert.Contains("pgalloc_high", names);
        Assert.DoesNotContain("pgalloc_dma32", names);
        Assert.DoesNotContain("numa_hit", names);
        Assert.Equal("nr_unstable", names[^2]);
    }
}
