using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class WatermarkTests
{
    /// <summary>Fills the machine with GFP_KERNEL until it fails: every zone is then at or below min + reserve.</summary>
    private static List<Page> FillToMin(Machine m)
    {
        var held = new List<Page>();
        while (m.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is { } p)
            held.Add(p);
        return held;
    }

    [Fact]
    public void Gfp_atomic_dips_into_the_reserve_where_gfp_nowait_fails()
    {
        using var m = Machines.X64(64);
        FillToMin(m);
        var dma32 = m.Zones[1];
        Assert.True(dma32.FreePages <= dma32.WatermarkMin);
        Assert.Null(m.AllocPages(Gfp.NoWait, 0));                   // no reserve access
        Assert.NotNull(m.AllocPages(Gfp.Atomic, 0));                 // __GFP_HIGH without direct reclaim
        int atomic = 1;
        while (m.AllocPages(Gfp.Atomic | Gfp.NoWarn, 0) is not null)
            atomic++;
        // GFP_ATOMIC stops at 3/8 of min (min - min/2 - (min - min/2)/4).
        long min = dma32.WatermarkMin;
        long floor = min - min / 2;
        floor -= floor / 4;
        Assert.True(dma32.FreePages <= floor, $"free {dma32.FreePages}, atomic floor {floor}");
        Assert.True(atomic >= min - floor - dma32.PcpBatch, $"atomic got {atomic} pages below min {min}");
        Assert.NotNull(m.AllocPages(Gfp.Kernel | Gfp.Memalloc, 0));  // __GFP_MEMALLOC ignores watermarks
        Assert.Null(m.AllocPages(Gfp.Kernel | Gfp.Memalloc | Gfp.NoMemalloc | Gfp.NoWarn, 0)); // NOMEMALLOC wins
        m.CheckConsistency();
    }

    [Fact]
    public void High_priority_blocking_request_may_use_half_the_reserve()
    {
        using var m = Machines.X64(64);
        FillToMin(m);
        var dma32 = m.Zones[1];
        int got = 0;
        while (m.AllocPages(Gfp.Kernel | Gfp.High | Gfp.NoWarn, 0) is not null)
            got++;
        long min = dma32.WatermarkMin;
        Assert.True(got > 0);
        Assert.True(dma32.FreePages <= min - min / 2);
        Assert.True(dma32.FreePages > (min - min / 2) - (min - min / 2) / 4 - dma32.PcpBatch);
    }
}
