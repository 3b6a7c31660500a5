using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class ZonePlacementTests
{
    private static ZoneType ZoneOf(Machine m, Page p) => m.Zones[p.Descriptor.ZoneIndex].Type;

    [Fact]
    public void I386_gfp_dma_lands_below_16M_highuser_prefers_highmem_kernel_never_does()
    {
        using var m = Machines.I386(1024);
        for (int i = 0; i < 200; i++)
        {
            var dma = m.AllocPages(Gfp.Kernel | Gfp.Dma, 0)!.Value;
            Assert.True(dma.PhysAddr < 16UL << 20);
            Assert.Equal(ZoneType.Dma, ZoneOf(m, dma));
            var user = m.AllocPages(Gfp.HighUser, 0)!.Value;
            Assert.Equal(ZoneType.HighMem, ZoneOf(m, user));
            var kernel = m.AllocPages(Gfp.Kernel, 0)!.Value;
            Assert.Equal(ZoneType.Normal, ZoneOf(m, kernel));
            Assert.NotEqual(0UL, m.PageAddress(kernel));
            Assert.Equal(0UL, m.PageAddress(user));                 // HIGHMEM pages have no permanent address
        }
        m.CheckConsistency();
    }

    [Fact]
    public void I386_gfp_kernel_never_returns_highmem_even_when_normal_runs_out()
    {
        using var m = Machines.I386(1024);
        long normalAndDma = m.Zones.Where(z => !z.IsHighMem).Sum(z => (long)z.Managed);
        long n = 0;
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is { } p)
        {
            Assert.NotEqual(ZoneType.HighMem, ZoneOf(m, p));
            n++;
        }
        Assert.True(n > normalAndDma * 9 / 10, $"{n} of {normalAndDma}");
        Assert.Equal(m.Zones[2].Managed, (ulong)m.Zones[2].FreePages);  // HIGHMEM untouched
        Assert.Equal(ZoneType.HighMem, ZoneOf(m, m.AllocPages(Gfp.HighUser, 0)!.Value));
    }

    [Fact]
    public void X86_64_gfp_dma32_stays_below_4G_and_kernel_prefers_normal()
    {
        using var m = Machines.X64(3 * 1024 + 256);
        for (int i = 0; i < 100; i++)
        {
            var p32 = m.AllocPages(Gfp.Kernel | Gfp.Dma32, 0)!.Value;
            Assert.True(p32.PhysAddr < 1UL << 32);
            Assert.Equal(ZoneType.Dma32, ZoneOf(m, p32));
            Assert.Equal(ZoneType.Normal, ZoneOf(m, m.AllocPages(Gfp.Kernel, 0)!.Value));
            Assert.Equal(ZoneType.Normal, ZoneOf(m, m.AllocPages(Gfp.HighUserMovable, 0)!.Value));
            Assert.Equal(ZoneType.Dma, ZoneOf(m, m.AllocPages(Gfp.Dma, 0)!.Value));
        }
        m.CheckConsistency();
    }

    [Fact]
    public void Fallback_goes_down_the_zonelist_but_keeps_the_lowmem_reserve()
    {
        using var m = Machines.X64(64);                               // zones: DMA, DMA32 (Normal empty)
        var (dma, dma32) = (m.Zones[0], m.Zones[1]);
        var fromDma = 0;
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is { } p)
            if (ZoneOf(m, p) == ZoneType.Dma)
                fromDma++;
        Assert.True(fromDma > 0, "GFP_KERNEL fell back to ZONE_DMA");
        // DMA keeps lowmem_reserve[DMA32] pages back from a DMA32-capable request, above its min watermark.
        long reserve = dma.LowmemReserve(1);
        Assert.True(reserve > 0);
        Assert.True(dma.FreePages >= dma.WatermarkMin + reserve - 63, $"DMA free {dma.FreePages}, min {dma.WatermarkMin}, reserve {reserve}");
        Assert.True(dma32.FreePages <= dma32.WatermarkMin + 1);
        // A GFP_DMA request is not bound by that reserve.
        Assert.NotNull(m.AllocPages(Gfp.Dma, 0));
        m.CheckConsistency();
    }
}
