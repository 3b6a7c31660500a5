using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class BootTests
{
    [Fact]
    public void I386_1G_has_dma_normal_highmem_split_at_the_lowmem_limit()
    {
        using var m = Machines.I386(1024);
        Assert.Equal(["DMA", "Normal", "HighMem", "Movable"], m.Zones.Select(z => z.Name));
        var (dma, normal, high) = (m.Zones[0], m.Zones[1], m.Zones[2]);
        Assert.Equal((1UL, 0x1000UL), (dma.StartPfn, dma.EndPfn));
        Assert.Equal(4095UL, dma.Spanned);
        Assert.Equal(3998UL, dma.Present);        // pfn 0 and the 97-page legacy hole are missing
        Assert.Equal(3840UL, dma.Managed);        // the first MiB is reserved, as on x86
        Assert.Equal(0x36ffeUL, m.MaxLowPfn);     // MAXMEM: 879 MiB of lowmem
        Assert.Equal((0x1000UL, 0x36ffeUL), (normal.StartPfn, normal.EndPfn));
        Assert.Equal((0x36ffeUL, 0x40000UL), (high.StartPfn, high.EndPfn));
        Assert.Equal(high.Present, high.Managed);  // nothing reserved in HIGHMEM
        Assert.False(m.Zones[3].IsPopulated);
    }

    [Fact]
    public void X86_64_above_3G_has_a_pci_hole_and_ram_remapped_above_4G()
    {
        using var m = Machines.X64(3 * 1024 + 256);
        Assert.Equal(["DMA", "DMA32", "Normal", "Movable", "Device"], m.Zones.Select(z => z.Name));
        var (dma32, normal) = (m.Zones[1], m.Zones[2]);
        Assert.Equal((0x1000UL, 0x100000UL), (dma32.StartPfn, dma32.EndPfn));
        Assert.Equal(1044480UL, dma32.Spanned);
        Assert.Equal(782336UL, dma32.Present);    // the same numbers as the reference machine's zoneinfo
        Assert.Equal((0x100000UL, 0x110000UL), (normal.StartPfn, normal.EndPfn));
        Assert.Equal(0x110000UL, m.MaxPfn);
        Assert.False(m.IsRamPfn(0xc0000));
        Assert.True(m.IsRamPfn(0x100000));
    }

    [Fact]
    public void Boot_log_has_the_kernels_lines()
    {
        using var m = Machines.X64(64);
        var log = m.Log.Lines;
        Assert.Contains("Zone ranges:", log);
        Assert.Contains("  DMA      [mem 0x0000000000001000-0x0000000000ffffff]", log);
        Assert.Contains("  DMA32    [mem 0x0000000001000000-0x0000000003ffffff]", log);
        Assert.Contains("  Normal   empty", log);
        Assert.Contains("  Device   empty", log);
        Assert.Contains("Movable zone start for each node", log);
        Assert.Contains("Early memory node ranges", log);
        Assert.Contains("  node   0: [mem 0x0000000000001000-0x000000000009efff]", log);
        Assert.Contains("On node 0, zone DMA: 1 pages in unavailable ranges", log);
        Assert.Contains("On node 0, zone DMA: 97 pages in unavailable ranges", log);
        var memory = Assert.Single(log, l => l.StartsWith("Memory: ", StringComparison.Ordinal));
        ulong freeK = (ulong)m.Zones.Sum(z => z.FreePages) * 4;
        Assert.StartsWith($"Memory: {freeK}K/{m.PresentPages * 4}K available (", memory);
        Assert.EndsWith($"{(m.PresentPages - m.TotalRamPages) * 4}K reserved, 0K cma-reserved)", memory);
    }

    [Fact]
    public void I386_boot_log_has_the_virtual_kernel_memory_layout()
    {
        using var m = Machines.I386(1024);
        var log = m.Log.Lines;
        Assert.Contains("virtual kernel memory layout:", log);
        Assert.Contains("    fixmap  : 0xfff3a000 - 0xfffff000   ( 788 kB)", log);
        Assert.Contains("    pkmap   : 0xff000000 - 0xff400000   (4096 kB)", log);
        Assert.Contains("    vmalloc : 0xf77fe000 - 0xfeffe000   ( 120 MB)", log);
        Assert.Contains("    lowmem  : 0xc0000000 - 0xf6ffe000   ( 879 MB)", log);
        Assert.Contains("144MB HIGHMEM available.", log);
        Assert.Contains("879MB LOWMEM available.", log);
        Assert.Contains(log, l => l.StartsWith("Memory: ", StringComparison.Ordinal) && l.EndsWith($", {m.TotalHighPages * 4}K highmem)", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Boot_conserves_every_page(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 48);
        var report = m.CheckConsistency();
        foreach (var z in report.Zones)
        {
            Assert.Equal(z.Present, z.Free + z.PerCpu + z.Allocated + z.Reserved);
            Assert.Equal(0, z.Allocated);
        }
        // The early reservations are in the reserved count: first MiB, image, mem_map, page_ext, node data, per-CPU.
        var names = m.Memblock.Reserved.Select(r => r.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "first 1 MiB (BIOS, real mode)", "kernel image", "mem_map", "page_ext", "pageblock_flags", "node_data", "percpu" }, names);
    }

    [Fact]
    public void Smallest_machine_boots_and_a_smaller_one_is_refused()
    {
        using (var m = Machines.I386(16))
            Assert.True(m.TotalRamPages > 0);
        var e = Assert.Throws<MachineConfigException>(() => Machines.I386(15));
        Assert.Contains("at least 16 MiB", e.Message);
        Assert.Throws<MachineConfigException>(() => Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 45 }));
        Assert.Throws<MachineConfigException>(() => Machine.Boot(new MachineConfig { Arch = ArchKind.I386, MemBytes = 5UL << 30 }));
    }

    [Theory]
    [InlineData("16M", 16UL << 20)]
    [InlineData("1G", 1UL << 30)]
    [InlineData("512k", 512UL << 10)]
    [InlineData("0x1000000", 16UL << 20)]
    [InlineData("2GiB", 2UL << 30)]
    public void Sizes_parse_like_memparse(string text, ulong bytes) => Assert.Equal(bytes, MachineConfig.ParseSize(text));

    [Theory]
    [InlineData("abc")]
    [InlineData("12Q")]
    [InlineData("")]
    public void Bad_sizes_are_typed_errors(string text) => Assert.Throws<MachineConfigException>(() => MachineConfig.ParseSize(text));

    [Fact]
    public void Watermarks_follow_min_free_kbytes()
    {
        using var m = Machines.X64(256);
        // lowmem = managed pages * 4 kB; min_free_kbytes = sqrt(lowmem_kbytes * 16) clamped to [128, 262144].
        long lowmemKb = m.Zones.Where(z => z.Type != ZoneType.Movable).Sum(z => (long)z.Managed) * 4;
        Assert.Equal(Math.Clamp((long)Math.Sqrt(lowmemKb * 16.0), 128, 262144), m.MinFreeKbytes);
        long pagesMin = m.MinFreeKbytes / 4;
        long lowmemPages = m.Zones.Where(z => z.Type is not (ZoneType.HighMem or ZoneType.Movable)).Sum(z => (long)z.Managed);
        foreach (var z in m.Zones.Where(z => z.IsPopulated))
        {
            long min = pagesMin * (long)z.Managed / lowmemPages;
            long step = Math.Max(min / 4, (long)z.Managed * 10 / 10000);
            Assert.Equal(min, z.WatermarkMin);
            Assert.Equal(min + step, z.WatermarkLow);
            Assert.Equal(min + 2 * step, z.WatermarkHigh);
        }
        // lowmem_reserve: DMA keeps DMA32.managed / 256 from DMA32 requests.
        Assert.Equal((long)m.Zones[1].Managed / 256, m.Zones[0].LowmemReserve(1));
        // Empty ZONE_MOVABLE: min = low = high = 32, as in the reference zoneinfo.
        Assert.Equal((32L, 32L, 32L), (m.Zones[3].WatermarkMin, m.Zones[3].WatermarkLow, m.Zones[3].WatermarkHigh));
    }

    [Fact]
    public void Pcp_batch_and_high_bounds_follow_the_kernel_formulas()
    {
        using var m = Machines.X64(256);
        var dma = m.Zones[0];
        Assert.Equal(1, dma.PcpBatch);                          // managed >> 12 = 0
        Assert.Equal(Math.Max(dma.WatermarkLow / 2, 4), dma.PcpHighMin);
        Assert.Equal((int)(dma.Managed / 8 / 2), dma.PcpHighMax);
        var dma32 = m.Zones[1];
        int b = (int)Math.Min(dma32.Managed >> 12, 64);
        int pow = 1;
        while (pow * 2 <= b + b / 2)
            pow *= 2;
        Assert.Equal(b <= 1 ? 1 : pow - 1, dma32.PcpBatch);      // rounddown_pow_of_two(b + b/2) - 1
        Assert.Equal(0, m.PcpField(m.Cpus[0], dma32, "high"));   // starts at 0, tuned on first use
    }
}
