using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

// Watermarks, lowmem reserves and per-CPU list sizing: __setup_per_zone_wmarks(), setup_per_zone_lowmem_reserve(),
// zone_batchsize()/zone_highsize(), and the checks __zone_watermark_ok()/zone_watermark_fast().
internal sealed unsafe partial class PageAllocator<TArch>
{
    private const int WatermarkScaleFactor = 10;      // vm.watermark_scale_factor default
    private const int SwapClusterMax = 32;            // SWAP_CLUSTER_MAX

    /// <summary>min_free_kbytes in effect.</summary>
    public long MinFreeKbytes { get; private set; }

    /// <summary>sysctl_lowmem_reserve_ratio[] by zone type: DMA 256, DMA32 256, Normal 32, HighMem 0, Movable 0.</summary>
    public static int LowmemReserveRatio(ZoneType type) => type switch
    {
        ZoneType.Dma or ZoneType.Dma32 => 256,
        ZoneType.Normal => 32,
        _ => 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long Watermark(Zone zone, int which) => (long)TArch.LoadLong(zone.Host + HotLayout<TArch>.WatermarkOff + which * TArch.PointerSize);

    /// <summary>wmark_pages(): the watermark plus any boost.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long WmarkPages(Zone zone, int which) =>
        Watermark(zone, which) + (long)TArch.LoadLong(zone.Host + HotLayout<TArch>.BoostOff);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long LowmemReserveOf(Zone zone, int highest) => (long)TArch.LoadLong(zone.Host + HotLayout<TArch>.LowmemReserveOff + highest * TArch.PointerSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long NrFreePages(Zone zone) => (long)TArch.LoadLong(zone.Host + HotLayout<TArch>.VmStatOff + (int)ZoneStat.NrFreePages * TArch.PointerSize);

    /// <summary>__zone_watermark_unusable_free(): the part of the free pages this request may not count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long UnusableFree(Zone zone, int order, int allocFlags)
    {
        long unusable = (1L << order) - 1;
        if ((allocFlags & AllocFlags.Reserves) == 0)
            unusable += (long)TArch.LoadLong(zone.Host + HotLayout<TArch>.NrFreeHighatomicOff);
        return unusable;
    }

    /// <summary>zone_watermark_fast(): a cheap order-0 test before the full one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool WatermarkFast(Zone zone, int order, long mark, int highest, int allocFlags)
    {
        long free = NrFreePages(zone);
        if (order == 0)
        {
            long usable = free - Math.Min(free, UnusableFree(zone, 0, allocFlags));
            if (usable > mark + LowmemReserveOf(zone, highest))
                return true;
        }
        return WatermarkOk(zone, order, mark, highest, allocFlags, free);
    }

    /// <summary>
    /// __zone_watermark_ok(): free pages above the mark plus the lowmem reserve for the request's highest zone;
    /// __GFP_HIGH may use half the reserve, a non-blocking __GFP_HIGH (GFP_ATOMIC) 5/8 of it, an OOM victim half
    /// again. Orders above 0 also need a free block of at least that order in a usable list.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // the full check: kept out of the order-0 fast path's code
    internal bool WatermarkOk(Zone zone, int order, long mark, int highest, int allocFlags, long free)
    {
        long min = mark;
        free -= UnusableFree(zone, order, allocFlags);
        if ((allocFlags & AllocFlags.Reserves) != 0)
        {
            if ((allocFlags & AllocFlags.MinReserve) != 0)
            {
                min -= min / 2;
                if ((allocFlags & AllocFlags.NonBlock) != 0)
                    min -= min / 4;
            }
            if ((allocFlags & AllocFlags.Oom) != 0)
                min -= min / 2;
        }
        if (free <= min + LowmemReserveOf(zone, highest))
            return false;
        if (order == 0)
            return true;
        for (int o = order; o <= PageSize.MaxOrder; o++)
        {
            if (TArch.LoadLong(NrFreePtr(zone, o)) == 0)
                continue;
            for (int mt = 0; mt < MigrateTypes.PcpTypes; mt++)
                if (!_mm.ListEmpty(FreeListVa(zone, o, mt)))
                    return true;
            if ((allocFlags & (AllocFlags.HighAtomic | AllocFlags.Oom)) != 0 &&
                !_mm.ListEmpty(FreeListVa(zone, o, (int)MigrateType.HighAtomic)))
                return true;
        }
        return false;
    }

    /// <summary>zone_watermark_ok() against a named mark, for callers outside the allocation path (kswapd, tests).</summary>
    public bool ZoneWatermarkOk(Zone zone, int order, int which, int highest, int allocFlags = 0) =>
        WatermarkOk(zone, order, WmarkPages(zone, which), highest, allocFlags, NrFreePages(zone));

    /// <summary>
    /// calculate_min_free_kbytes(): sqrt(lowmem_kbytes * 16), clamped to [128, 262144], where lowmem counts the
    /// managed pages of the zones GFP_USER may use. A larger user setting is kept.
    /// </summary>
    public void CalculateMinFreeKbytes(long userMinFreeKbytes)
    {
        int userZone = GfpFlags.Zone<TArch>(Gfp.User);
        long lowmemKbytes = 0;
        foreach (var z in _zones)
            if (z.Index <= userZone)
                lowmemKbytes += (long)z.Managed * 4;
        long computed = Math.Clamp((long)Math.Sqrt(lowmemKbytes * 16.0), 128, 262144);
        MinFreeKbytes = Math.Max(computed, userMinFreeKbytes);
        SetupPerZoneWmarks();
    }

    /// <summary>
    /// __setup_per_zone_wmarks(): split pages_min over the lowmem zones by size; HIGHMEM/MOVABLE get a small
    /// fixed min; low/high/promo step up by max(min/4, managed * watermark_scale_factor / 10000). Then the
    /// lowmem reserves and the per-CPU list bounds follow.
    /// </summary>
    public void SetupPerZoneWmarks()
    {
        long pagesMin = MinFreeKbytes >> (PageSize.Shift - 10);
        long lowmemPages = 0;
        foreach (var z in _zones)
            if (z.Type is not (ZoneType.HighMem or ZoneType.Movable))
                lowmemPages += (long)z.Managed;

        foreach (var z in _zones)
        {
            lock (z.Lock)
            {
                long managed = (long)z.Managed;
                long tmp = lowmemPages == 0 ? 0 : pagesMin * managed / lowmemPages;
                long min = z.Type is ZoneType.HighMem or ZoneType.Movable
                    ? Math.Clamp(managed / 1024, SwapClusterMax, 128)
                    : tmp;
                // The step uses the zone's proportional share (tmp), not its min: HIGHMEM's small fixed min
                // does not shrink its low/high distances, and an empty ZONE_MOVABLE gets min = low = high.
                tmp = Math.Max(tmp >> 2, managed * WatermarkScaleFactor / 10000);
                z.WriteLong(HotLayout<TArch>.WatermarkOff, min);
                z.WriteLong(HotLayout<TArch>.WatermarkOff + TArch.PointerSize, min + tmp);
                z.WriteLong(HotLayout<TArch>.WatermarkOff + 2 * TArch.PointerSize, min + 2 * tmp);
                z.WriteLong(HotLayout<TArch>.WatermarkOff + 3 * TArch.PointerSize, min + 3 * tmp);
                z.WriteLong(HotLayout<TArch>.BoostOff, 0);
            }
        }
        SetupLowmemReserve();
        foreach (var z in _zones)
            SetPagesetHighAndBatch(z);
    }

    /// <summary>
    /// setup_per_zone_lowmem_reserve(): zone i keeps back (managed pages of zones i+1..j) / ratio[i] pages from
    /// requests whose highest zone is j.
    /// </summary>
    private void SetupLowmemReserve()
    {
        for (int i = 0; i < _zones.Length; i++)
        {
            var z = _zones[i];
            int ratio = LowmemReserveRatio(z.Type);
            long above = 0;
            for (int j = 0; j < _zones.Length; j++)
            {
                long reserve = 0;
                if (j > i)
                {
                    above += (long)_zones[j].Managed;
                    reserve = ratio == 0 || z.Managed == 0 ? 0 : above / ratio;
                }
                z.WriteLong(HotLayout<TArch>.LowmemReserveOff + j * TArch.PointerSize, reserve);
            }
        }
    }

    /// <summary>
    /// zone_set_pageset_high_and_batch(): batch = min(managed >> 12, 64) rounded down to 2^n - 1; high_min is the
    /// low watermark split over the node's CPUs, high_max an eighth of the zone split likewise, both at least 4 batches.
    /// </summary>
    private void SetPagesetHighAndBatch(Zone zone)
    {
        int cpus = _machine.Cpus.Count;
        long managed = (long)zone.Managed;
        int batch = (int)Math.Min(managed >> 12, 256 * 1024 / (long)PageSize.Bytes);
        if (batch <= 1)
            batch = 1;
        else
            batch = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(batch + batch / 2) + 1) / 2 - 1;
        int highMin = (int)Math.Max(WmarkPages(zone, AllocFlags.WmarkLow) / cpus, batch << 2);
        int highMax = (int)Math.Max(managed / 8 / cpus, batch << 2);
        if (managed == 0)
            highMin = highMax = 0;
        int* fields = (int*)(zone.Host + _l.Zone.Offset("pageset_high_min"));
        fields[0] = highMin;
        fields[1] = highMax;
        fields[2] = batch;
        UpdatePcpBounds(zone);
    }

    /// <summary>totalreserve_pages: Σ min(managed, high watermark + largest lowmem reserve) (calculate_totalreserve_pages).</summary>
    public long TotalReservePages()
    {
        long total = 0;
        foreach (var z in _zones)
        {
            long maxReserve = 0;
            for (int j = 0; j < _zones.Length; j++)
                maxReserve = Math.Max(maxReserve, z.LowmemReserve(j));
            total += Math.Min((long)z.Managed, z.WatermarkHigh + maxReserve);
        }
        return total;
    }
}
