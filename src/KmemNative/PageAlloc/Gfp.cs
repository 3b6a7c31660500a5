namespace KmemNative.PageAlloc;

/// <summary>
/// GFP ("get free pages") flags with their Linux 6.18 bit values (include/linux/gfp_types.h).
/// </summary>
/// <remarks>
/// Single <c>__GFP_*</c> bits first, then the composites the kernel defines from them. Names drop the
/// <c>__GFP_</c>/<c>GFP_</c> prefixes; <see cref="GfpFlags.Format"/> prints the kernel's names.
/// </remarks>
[Flags]
public enum Gfp : uint
{
    /// <summary>0: no flags (prints as <c>none</c>).</summary>
    None = 0,

    // ---- zone modifiers (GFP_ZONEMASK) ----
    /// <summary>__GFP_DMA: ZONE_DMA.</summary>
    Dma = 0x1,
    /// <summary>__GFP_HIGHMEM: may use ZONE_HIGHMEM.</summary>
    HighMem = 0x2,
    /// <summary>__GFP_DMA32: ZONE_DMA32.</summary>
    Dma32 = 0x4,
    /// <summary>__GFP_MOVABLE: movable page (MIGRATE_MOVABLE; ZONE_MOVABLE with HIGHMEM).</summary>
    Movable = 0x8,

    // ---- mobility and placement ----
    /// <summary>__GFP_RECLAIMABLE: reclaimable slab (MIGRATE_RECLAIMABLE).</summary>
    Reclaimable = 0x10,
    /// <summary>__GFP_HIGH: high priority, may dip into part of the min reserve.</summary>
    High = 0x20,
    /// <summary>__GFP_IO: reclaim may start physical I/O.</summary>
    Io = 0x40,
    /// <summary>__GFP_FS: reclaim may call into file systems.</summary>
    Fs = 0x80,
    /// <summary>__GFP_ZERO: return zeroed memory.</summary>
    Zero = 0x100,
    /// <summary>__GFP_DIRECT_RECLAIM: the caller may sleep and reclaim.</summary>
    DirectReclaim = 0x400,
    /// <summary>__GFP_KSWAPD_RECLAIM: wake kswapd at the low watermark.</summary>
    KswapdReclaim = 0x800,
    /// <summary>__GFP_WRITE: the caller intends to dirty the page.</summary>
    Write = 0x1000,
    /// <summary>__GFP_NOWARN: no allocation-failure report.</summary>
    NoWarn = 0x2000,
    /// <summary>__GFP_RETRY_MAYFAIL: retry while progress is made, may fail, never OOM-kills.</summary>
    RetryMayFail = 0x4000,
    /// <summary>__GFP_NOFAIL: never fail; retry forever.</summary>
    NoFail = 0x8000,
    /// <summary>__GFP_NORETRY: one light attempt, no OOM killer.</summary>
    NoRetry = 0x10000,
    /// <summary>__GFP_MEMALLOC: ignore watermarks (reclaim context).</summary>
    Memalloc = 0x20000,
    /// <summary>__GFP_COMP: build compound-page metadata.</summary>
    Comp = 0x40000,
    /// <summary>__GFP_NOMEMALLOC: never use emergency reserves (overrides MEMALLOC).</summary>
    NoMemalloc = 0x80000,
    /// <summary>__GFP_HARDWALL: enforce the cpuset memory policy.</summary>
    Hardwall = 0x100000,
    /// <summary>__GFP_THISNODE: no node fallback.</summary>
    ThisNode = 0x200000,
    /// <summary>__GFP_ACCOUNT: charge to kmemcg.</summary>
    Account = 0x400000,
    /// <summary>__GFP_ZEROTAGS.</summary>
    ZeroTags = 0x800000,
    /// <summary>__GFP_NO_OBJ_EXT.</summary>
    NoObjExt = 0x1000000,

    // ---- composites ----
    /// <summary>__GFP_RECLAIM = DIRECT_RECLAIM | KSWAPD_RECLAIM.</summary>
    Reclaim = DirectReclaim | KswapdReclaim,
    /// <summary>GFP_ATOMIC: cannot sleep, may use reserves.</summary>
    Atomic = High | KswapdReclaim,
    /// <summary>GFP_KERNEL: normal kernel allocation, may sleep and reclaim.</summary>
    Kernel = Reclaim | Io | Fs,
    /// <summary>GFP_KERNEL_ACCOUNT.</summary>
    KernelAccount = Kernel | Account,
    /// <summary>GFP_NOWAIT: no sleeping, no reserves, no warning.</summary>
    NoWait = KswapdReclaim | NoWarn,
    /// <summary>GFP_NOIO: may reclaim but start no I/O.</summary>
    NoIo = Reclaim,
    /// <summary>GFP_NOFS: may reclaim and do I/O but not call into file systems.</summary>
    NoFs = Reclaim | Io,
    /// <summary>GFP_USER: user-space allocation, kernel-accessible.</summary>
    User = Reclaim | Io | Fs | Hardwall,
    /// <summary>GFP_HIGHUSER: user page, may be in HIGHMEM.</summary>
    HighUser = User | HighMem,
    /// <summary>GFP_HIGHUSER_MOVABLE: user page, HIGHMEM, migratable.</summary>
    HighUserMovable = HighUser | Movable,
    /// <summary>GFP_TRANSHUGE_LIGHT.</summary>
    TransHugeLight = (HighUserMovable | Comp | NoMemalloc | NoWarn) & ~Reclaim,
    /// <summary>GFP_TRANSHUGE.</summary>
    TransHuge = TransHugeLight | DirectReclaim,
}
