namespace KmemNative.PageAlloc;

/// <summary>The allocator's internal ALLOC_* flags (mm/internal.h), derived from GFP flags per attempt.</summary>
internal static class AllocFlags
{
    public const int WmarkMin = 0;           // index into zone->_watermark[]
    public const int WmarkLow = 1;
    public const int WmarkHigh = 2;
    public const int WmarkMask = 0x3;
    public const int NoWatermarks = 0x04;    // __GFP_MEMALLOC: ignore watermarks
    public const int Oom = 0x08;             // OOM victim: halve the reserve again
    public const int NonBlock = 0x10;        // caller cannot reclaim: may use more of the reserve with MIN_RESERVE
    public const int MinReserve = 0x20;      // __GFP_HIGH: may use half of the min reserve (== __GFP_HIGH)
    public const int Cpuset = 0x40;
    public const int Cma = 0x80;
    public const int NoFragment = 0x100;
    public const int HighAtomic = 0x200;
    public const int Trylock = 0x400;
    public const int Kswapd = 0x800;         // == __GFP_KSWAPD_RECLAIM
    public const int Reserves = NonBlock | MinReserve | HighAtomic | Oom;

    /// <summary>gfp_to_alloc_flags(): the slow path's flags for a request.</summary>
    public static int FromGfp(Gfp gfp, int order)
    {
        int f = WmarkMin | Cpuset;
        f |= (int)(gfp & (Gfp.High | Gfp.KswapdReclaim));
        if ((gfp & Gfp.DirectReclaim) == 0)
        {
            // Not allowed to sleep: the caller may dig deeper into the reserves (GFP_ATOMIC), unless it
            // explicitly refused them (__GFP_NOMEMALLOC).
            if ((gfp & Gfp.NoMemalloc) == 0)
            {
                f |= NonBlock;
                if (order > 0 && (f & MinReserve) != 0)
                    f |= HighAtomic;
            }
            if ((f & MinReserve) != 0)
                f &= ~Cpuset;
        }
        return f;
    }

    /// <summary>__gfp_pfmemalloc_flags(): ALLOC_NO_WATERMARKS for __GFP_MEMALLOC unless __GFP_NOMEMALLOC.</summary>
    public static int Pfmemalloc(Gfp gfp)
    {
        if ((gfp & Gfp.NoMemalloc) != 0)
            return 0;
        return (gfp & Gfp.Memalloc) != 0 ? NoWatermarks : 0;
    }
}
