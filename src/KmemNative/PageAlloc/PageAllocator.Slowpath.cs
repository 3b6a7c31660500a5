using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>
/// What the allocator's slow path asks of the reclaim subsystem (issue #6): mm/vmscan.c, mm/oom_kill.c and the
/// reports of mm/page_alloc.c and mm/show_mem.c.
/// </summary>
internal interface IAllocReclaim
{
    /// <summary>wake_all_kswapds(): wake the node's kswapd for a request that fell below the low watermark.</summary>
    void WakeAllKswapds(Cpu cpu, int order, Gfp gfp, int highestZoneIdx);

    /// <summary>__perform_reclaim() → try_to_free_pages(): direct reclaim; returns the pages reclaimed.</summary>
    long TryToFreePages(Cpu cpu, Gfp gfp, int order, int highestZoneIdx);

    /// <summary>zone_reclaimable_pages(): the file LRU, plus the anonymous LRU while swap space is left.</summary>
    long ZoneReclaimablePages(Zone zone);

    /// <summary>out_of_memory(): true when progress can be expected (a victim was killed, or nothing may be killed for this request); <paramref name="killed"/> when a task was actually killed.</summary>
    bool OutOfMemory(Cpu cpu, Gfp gfp, int order, int highestZoneIdx, out bool killed);

    /// <summary>tsk_is_oom_victim(current).</summary>
    bool IsOomVictim(Cpu cpu);

    /// <summary>warn_alloc(): the allocation-failure report with show_mem().</summary>
    void WarnAlloc(Cpu cpu, Gfp gfp, int order);

    /// <summary>WARN_ON_ONCE() at <paramref name="site"/>: the warning line (once per boot per site) and TAINT_WARN.</summary>
    void WarnOnce(Cpu cpu, string site);
}

// __alloc_pages_slowpath() (mm/page_alloc.c, 6.18) in the kernel's order: wake kswapd, retry at the min watermark
// with gfp_to_alloc_flags(), the reserves __gfp_pfmemalloc_flags() grants, direct reclaim (only with
// __GFP_DIRECT_RECLAIM), __GFP_NORETRY and costly orders giving up, should_reclaim_retry(), the OOM killer, and the
// __GFP_NOFAIL loop. There is no compaction (CONFIG_COMPACTION off): costly orders never retry.
internal sealed unsafe partial class PageAllocator<TArch>
{
    /// <summary>MAX_RECLAIM_RETRIES.</summary>
    internal const int MaxReclaimRetries = 16;

    /// <summary>
    /// The emulator's stand-in for "somebody else will free memory": the kernel loops a request that may not fail
    /// (order ≤ 3 without __GFP_FS, __GFP_NOFAIL) until kswapd, the flusher or an exiting task frees memory. With
    /// nothing else running that may never happen, so after this many OOM rounds that killed nothing the request
    /// gives up (a __GFP_NOFAIL one with <see cref="AllocationDeadlockException"/>).
    /// </summary>
    internal const int EmulatorStallRounds = 2;

    private readonly Lock _oomLock = new();

    private ulong AllocPagesSlowpath(Cpu cpu, Gfp gfp, int order, int highest, int mt, out Zone? zone)
    {
        var rc = Reclaim;
        bool canDirectReclaim = (gfp & Gfp.DirectReclaim) != 0;
        bool nofail = (gfp & Gfp.NoFail) != 0;
        bool costly = order > PageSize.CostlyOrder;
        if (nofail && rc is not null)
        {
            // "We most definitely don't want callers attempting to allocate greater than order-1 page units with
            // __GFP_NOFAIL", nor without direct reclaim, nor from a PF_MEMALLOC context.
            if (order > 1)
                rc.WarnOnce(cpu, "__alloc_pages_slowpath: __GFP_NOFAIL order > 1");
            if (!canDirectReclaim)
                rc.WarnOnce(cpu, "__alloc_pages_slowpath: __GFP_NOFAIL without __GFP_DIRECT_RECLAIM");
            if ((cpu.TaskFlags & Cpu.PfMemalloc) != 0)
                rc.WarnOnce(cpu, "__alloc_pages_slowpath: __GFP_NOFAIL from PF_MEMALLOC");
        }

        int noProgressLoops = 0, stallRounds = 0, nofailRounds = 0;
        int allocFlags = AllocFlags.FromGfp(gfp, order);
        if (rc is not null && (allocFlags & AllocFlags.Kswapd) != 0)
            rc.WakeAllKswapds(cpu, order, gfp, highest);
        // The adjusted alloc_flags might result in immediate success.
        ulong pfn = GetPageFromFreelist(cpu, order, allocFlags, highest, mt, out zone);
        if (pfn != NoPage)
            return pfn;
        if (rc is null)
            return NoReclaimFallback(cpu, gfp, order, allocFlags, highest, mt, out zone);

        while (true)
        {
            // retry:
            if ((allocFlags & AllocFlags.Kswapd) != 0)
                rc.WakeAllKswapds(cpu, order, gfp, highest);
            int reserve = PfmemallocFlags(cpu, gfp, rc);
            if (reserve != 0)
                allocFlags = reserve | (allocFlags & AllocFlags.Kswapd);
            pfn = GetPageFromFreelist(cpu, order, allocFlags, highest, mt, out zone);
            if (pfn != NoPage)
                return pfn;

            bool tryOom = false;
            // "Caller is not willing to reclaim, we can't balance anything"; "avoid recursion of direct reclaim".
            if (canDirectReclaim && (cpu.TaskFlags & Cpu.PfMemalloc) == 0)
            {
                long progress = DirectReclaim(cpu, gfp, order, allocFlags, highest, mt, rc, out pfn, out zone);
                if (pfn != NoPage)
                    return pfn;
                if ((gfp & Gfp.NoRetry) == 0 && !costly)
                {
                    if (ShouldReclaimRetry(order, highest, allocFlags, progress > 0, ref noProgressLoops, rc))
                        continue;
                    tryOom = true;
                }
            }

            if (tryOom)
            {
                pfn = MayOom(cpu, gfp, order, highest, mt, rc, out bool oomProgress, out bool killed, out zone);
                if (pfn != NoPage)
                    return pfn;
                // "Avoid allocations with no watermarks from looping endlessly."
                bool victimLooping = rc.IsOomVictim(cpu) && ((allocFlags & AllocFlags.Oom) != 0 || (gfp & Gfp.NoMemalloc) != 0);
                if (!victimLooping && oomProgress && (killed || ++stallRounds < EmulatorStallRounds))
                {
                    noProgressLoops = 0;
                    continue;
                }
            }

            // nopage:
            if (nofail && canDirectReclaim)
            {
                // Help non-failing allocations by giving them some access to memory reserves (not NO_WATERMARKS).
                pfn = GetPageFromFreelist(cpu, order, AllocFlags.MinReserve | (allocFlags & AllocFlags.Kswapd), highest, mt, out zone);
                if (pfn != NoPage)
                    return pfn;
                if (++nofailRounds >= EmulatorStallRounds)
                    throw new AllocationDeadlockException(
                        $"{cpu.Comm}: __GFP_NOFAIL allocation of order {order} ({GfpFlags.Format(gfp)}) cannot make progress: " +
                        "nothing is reclaimable and the OOM killer has no victim; the kernel would loop here forever");
                stallRounds = 0;
                noProgressLoops = 0;
                continue;
            }
            break;
        }
        zone = null;
        if ((gfp & Gfp.NoWarn) == 0)
            rc.WarnAlloc(cpu, gfp, order);
        return NoPage;
    }

    /// <summary>Before the reclaim subsystem is attached (during boot): drain the per-CPU lists once, then fail.</summary>
    private ulong NoReclaimFallback(Cpu cpu, Gfp gfp, int order, int allocFlags, int highest, int mt, out Zone? zone)
    {
        int reserve = AllocFlags.Pfmemalloc(gfp);
        if (reserve != 0)
            allocFlags = reserve;
        if (DrainAllPages(cpu) > 0)
        {
            ulong pfn = GetPageFromFreelist(cpu, order, allocFlags, highest, mt, out zone);
            if (pfn != NoPage)
                return pfn;
        }
        zone = null;
        if ((gfp & Gfp.NoWarn) == 0)
            _machine.Log.Warn($"{cpu.Comm}: page allocation failure: order:{order}, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)");
        return NoPage;
    }

    /// <summary>
    /// __gfp_pfmemalloc_flags(): __GFP_MEMALLOC (unless __GFP_NOMEMALLOC), a reclaimer (PF_MEMALLOC) outside
    /// interrupts and an OOM victim get into the reserves.
    /// </summary>
    private static int PfmemallocFlags(Cpu cpu, Gfp gfp, IAllocReclaim rc)
    {
        if ((gfp & Gfp.NoMemalloc) != 0)
            return 0;
        if ((gfp & Gfp.Memalloc) != 0)
            return AllocFlags.NoWatermarks;
        if (!cpu.InInterrupt)
        {
            if ((cpu.TaskFlags & Cpu.PfMemalloc) != 0)
                return AllocFlags.NoWatermarks;
            if (rc.IsOomVictim(cpu))
                return AllocFlags.Oom;
        }
        return 0;
    }

    /// <summary>
    /// __alloc_pages_direct_reclaim(): try_to_free_pages() under PF_MEMALLOC, then one more attempt; when that fails
    /// the per-CPU lists are drained (pages may be parked there) and it is tried once more.
    /// </summary>
    private long DirectReclaim(Cpu cpu, Gfp gfp, int order, int allocFlags, int highest, int mt, IAllocReclaim rc, out ulong pfn, out Zone? zone)
    {
        pfn = NoPage;
        zone = null;
        uint saved = cpu.TaskFlags;
        cpu.SetTaskFlags(saved | Cpu.PfMemalloc);    // memalloc_noreclaim_save()
        long progress;
        try
        {
            progress = rc.TryToFreePages(cpu, gfp, order, highest);
        }
        finally
        {
            cpu.SetTaskFlags(saved);
        }
        if (progress <= 0)
            return progress;
        pfn = GetPageFromFreelist(cpu, order, allocFlags, highest, mt, out zone);
        if (pfn == NoPage)
        {
            DrainAllPages(cpu);
            pfn = GetPageFromFreelist(cpu, order, allocFlags, highest, mt, out zone);
        }
        return progress;
    }

    /// <summary>
    /// should_reclaim_retry(): retry while fewer than MAX_RECLAIM_RETRIES attempts in a row made no progress (costly
    /// orders always count as no progress) and some zone would pass its min watermark if everything reclaimable in
    /// it were freed.
    /// </summary>
    private bool ShouldReclaimRetry(int order, int highest, int allocFlags, bool didSomeProgress, ref int noProgressLoops, IAllocReclaim rc)
    {
        if (didSomeProgress && order <= PageSize.CostlyOrder)
            noProgressLoops = 0;
        else
            noProgressLoops++;
        if (noProgressLoops > MaxReclaimRetries)
            return false;
        foreach (var z in _zonelists[highest])
        {
            long available = rc.ZoneReclaimablePages(z) + NrFreePages(z);
            if (WatermarkOk(z, order, WmarkPages(z, AllocFlags.WmarkMin), highest, allocFlags, available))
                return true;
        }
        return false;
    }

    /// <summary>
    /// __alloc_pages_may_oom(): under oom_lock, one last attempt at the high watermark (to catch a parallel kill),
    /// then the OOM killer unless the request is costly, __GFP_RETRY_MAYFAIL, for lowmem only or __GFP_THISNODE.
    /// A __GFP_NOFAIL request is then allowed to ignore the watermarks.
    /// </summary>
    private ulong MayOom(Cpu cpu, Gfp gfp, int order, int highest, int mt, IAllocReclaim rc, out bool progress, out bool killed, out Zone? zone)
    {
        progress = false;
        killed = false;
        zone = null;
        if (!_oomLock.TryEnter())
        {
            // "If that fails, somebody else is making progress for us."
            progress = true;
            Thread.Sleep(1);
            return NoPage;
        }
        try
        {
            ulong pfn = GetPageFromFreelist(cpu, order, AllocFlags.WmarkHigh | AllocFlags.Cpuset, highest, mt, out zone);
            if (pfn != NoPage)
                return pfn;
            if (order > PageSize.CostlyOrder || (gfp & (Gfp.RetryMayFail | Gfp.ThisNode)) != 0 || TArch.ZoneTypes[highest] < ZoneType.Normal)
                return NoPage;
            bool oom = rc.OutOfMemory(cpu, gfp, order, highest, out killed);
            if (!oom && (gfp & Gfp.NoFail) != 0 && (gfp & Gfp.NoWarn) == 0)
                rc.WarnOnce(cpu, "__alloc_pages_may_oom: __GFP_NOFAIL without an OOM kill");
            if (oom || (gfp & Gfp.NoFail) != 0)
            {
                progress = true;
                if ((gfp & Gfp.NoFail) != 0)
                    return GetPageFromFreelist(cpu, order, AllocFlags.NoWatermarks, highest, mt, out zone);
            }
            return NoPage;
        }
        finally
        {
            _oomLock.Exit();
        }
    }
}
