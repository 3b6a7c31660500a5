using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;

namespace KmemNative.Trace;

// Page events: mm_page_alloc / mm_page_free(_batched), the slab-page rule, the look-ahead for large kmalloc pages,
// split_page() blocks, and pages the traced kernel freed without a traced free.
internal sealed unsafe partial class TraceReplayer<TArch>
{
    private void MmPageAlloc(Cpu cpu, int c, ref FtraceEvent ev, long line)
    {
        Gfp gfp = ev.Gfp;
        int order = ev.Order;
        bool tracedFailure = ev.Page == 0 && ev.Pfn == 0;
        if (_o.SkipSlabPages)
        {
            int retryOrder = _slabRetry[c];
            _slabRetry[c] = -1;
            bool slab = SlabPageHeuristic.IsSlabPage(gfp) ||
                        (retryOrder >= 0 && IsSlabRetry(gfp, order, retryOrder, _slabRetryGfp[c]));
            if (tracedFailure)
            {
                if (slab)
                {
                    // allocate_slab()'s first attempt failed: its minimum-order retry comes next on this CPU.
                    if (SlabPageHeuristic.IsSlabPage(gfp))
                    {
                        _slabRetry[c] = order;
                        _slabRetryGfp[c] = gfp;
                    }
                    Skip(ReplaySkip.SlabPage, FtraceEventKind.MmPageAlloc);
                    return;
                }
            }
            else if ((gfp & Gfp.Comp) != 0 && order >= 2)
            {
                // Perhaps a large kmalloc's pages: the kmalloc event, next on this CPU, will tell.
                Hold(c, ref ev, slab, line);
                return;
            }
            else if (slab)
            {
                MarkOwned(cpu, ev.Pfn, PageKind.Slab);
                Skip(ReplaySkip.SlabPage, FtraceEventKind.MmPageAlloc);
                return;
            }
        }
        ExecutePageAlloc(cpu, ev.Pfn, order, gfp, tracedFailure, line);
    }

    /// <summary>
    /// allocate_slab()'s fallback: the first attempt's flags without what it added (__GFP_NOWARN, __GFP_NORETRY,
    /// __GFP_NOMEMALLOC with direct reclaim taken away), at an order no higher.
    /// </summary>
    private static bool IsSlabRetry(Gfp gfp, int order, int failedOrder, Gfp failedGfp)
    {
        const Gfp added = Gfp.NoWarn | Gfp.NoRetry | Gfp.NoFail | Gfp.Reclaim | Gfp.NoMemalloc | Gfp.Comp;
        return order <= failedOrder && (gfp & SlabPageHeuristic.NeverSlab) == 0 && (gfp & ~added) == (failedGfp & ~added);
    }

    private void Hold(int c, ref FtraceEvent ev, bool slabClass, long line)
    {
        ref var p = ref _pending[c];
        p.Active = true;
        p.SlabClass = slabClass;
        p.Pfn = ev.Pfn;
        p.Order = ev.Order;
        p.Gfp = ev.Gfp;
        p.TimestampUs = ev.TimestampUs;
        p.FlagsId = ev.FlagsId;
        p.CommId = ev.CommId;
        p.Pid = ev.Pid;
        p.Line = line;
        _pendingCount++;
    }

    /// <summary>
    /// The held block meets the CPU's next event: pages of the large kmalloc that event is (kmalloc with
    /// bytes_alloc above KMALLOC_MAX_CACHE_SIZE at the block's linear address), a slab page, or a page allocation
    /// of its own, replayed now.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ResolvePending(Cpu cpu, int c, ref FtraceEvent next)
    {
        ref var p = ref _pending[c];
        p.Active = false;
        _pendingCount--;
        if (next.Kind == FtraceEventKind.Kmalloc && (ulong)next.BytesAlloc > SlubConst.KmallocMaxCacheSize && IsLinearAddressOf(next.Ptr, p.Pfn))
        {
            MarkOwned(cpu, p.Pfn, PageKind.LargeKmalloc);
            Skip(ReplaySkip.LargeKmallocPage, FtraceEventKind.MmPageAlloc);
            return;
        }
        ReplayHeld(cpu, ref p);
    }

    private void ReplayHeld(Cpu cpu, ref PendingPage p)
    {
        if (p.SlabClass)
        {
            MarkOwned(cpu, p.Pfn, PageKind.Slab);
            Skip(ReplaySkip.SlabPage, FtraceEventKind.MmPageAlloc);
            return;
        }
        cpu.Pid = p.Pid;
        cpu.Comm = _strings[p.CommId];
        if (_writer is { } w)
        {
            w.TimestampUs = p.TimestampUs;
            w.FlagsColumn = _strings[p.FlagsId];
        }
        ExecutePageAlloc(cpu, p.Pfn, p.Order, p.Gfp, tracedFailure: false, p.Line);
    }

    /// <summary>At a lost-events marker and at the end: every held block is a page allocation of its own.</summary>
    private void FlushPending()
    {
        for (int c = 0; c < _pending.Length && _pendingCount > 0; c++)
        {
            ref var p = ref _pending[c];
            if (!p.Active)
                continue;
            p.Active = false;
            _pendingCount--;
            ReplayHeld(_cpus[c]!, ref p);
        }
    }

    /// <summary>
    /// True when <paramref name="ptr"/> is page <paramref name="pfn"/>'s address in a linear map: the difference is a
    /// plausible PAGE_OFFSET (x86-64's page_offset_base is 1 GiB aligned even with KASLR; i386's is 3G, 2G or 1G).
    /// </summary>
    private static bool IsLinearAddressOf(ulong ptr, ulong pfn)
    {
        if ((ptr & (PageSize.Bytes - 1)) != 0)
            return false;
        ulong offset = ptr - (pfn << PageSize.Shift);
        return (offset >= 0xffff_8000_0000_0000UL && (offset & ((1UL << 30) - 1)) == 0) ||
               (offset is >= 0x4000_0000UL and <= 0xc000_0000UL && (offset & ((4UL << 20) - 1)) == 0);
    }

    /// <summary>The traced block belongs to the slab allocator or a large kmalloc: its free is skipped by pfn.</summary>
    private void MarkOwned(Cpu cpu, ulong tracedPfn, PageKind kind)
    {
        ref var e = ref CollectionsMarshal.GetValueRefOrAddDefault(_pages, tracedPfn, out bool exists);
        if (exists)
            ImplicitPageFree(cpu, e);
        e = new PageEntry(NoPage, 0, kind, false);
    }

    private void ExecutePageAlloc(Cpu cpu, ulong tracedPfn, int order, Gfp gfp, bool tracedFailure, long line)
    {
        ulong pfn;
        try
        {
            pfn = _m.AllocPagesPfn(cpu, gfp, order);
        }
        catch (KmemException ex)
        {
            Refused(FtraceEventKind.MmPageAlloc, ex, line);
            if (!tracedFailure)
                MarkOwned(cpu, tracedPfn, PageKind.Failed);
            return;
        }
        Replayed(FtraceEventKind.MmPageAlloc);
        if (tracedFailure)
        {
            // The traced kernel could not; if the emulator can, it gives the block back at once.
            _r.TracedFailures++;
            if (pfn != NoPage)
            {
                _r.TracedFailuresSucceeded++;
                _m.FreePagesPfn(cpu, pfn, order);
            }
            return;
        }
        if (pfn == NoPage)
        {
            Failed(FtraceEventKind.MmPageAlloc);
            MarkOwned(cpu, tracedPfn, PageKind.Failed);
            return;
        }
        ref var e = ref CollectionsMarshal.GetValueRefOrAddDefault(_pages, tracedPfn, out bool exists);
        if (exists)
            ImplicitPageFree(cpu, e);
        e = new PageEntry(pfn, order, PageKind.Plain, (gfp & Gfp.Comp) != 0 && order > 0);
        _pagesHeld += 1L << order;
        TrackPeak();
    }

    /// <summary>A traced pfn allocated again while the replay still held it: the traced kernel freed it untraced.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ImplicitPageFree(Cpu cpu, PageEntry old)
    {
        if (old.Kind != PageKind.Plain)
            return;
        _r.ImplicitFrees++;
        FreeHeld(cpu, old, FtraceEventKind.MmPageFree);
    }

    private void FreeHeld(Cpu cpu, PageEntry e, FtraceEventKind kind)
    {
        _pagesHeld -= 1L << e.Order;
        try
        {
            _m.FreePagesPfn(cpu, e.EmuPfn, e.Order);
        }
        catch (KmemException ex)
        {
            Refused(kind, ex, 0);
        }
    }

    private void MmPageFree(Cpu cpu, FtraceEventKind kind, ulong tracedPfn, int order)
    {
        if (!_pages.Remove(tracedPfn, out var e))
        {
            if (!TrySplitFree(cpu, kind, tracedPfn, order))
                Skip(ReplaySkip.UnknownPage, kind);
            return;
        }
        switch (e.Kind)
        {
            case PageKind.Slab:
                Skip(ReplaySkip.SlabPage, kind);
                return;
            case PageKind.LargeKmalloc:
                Skip(ReplaySkip.LargeKmallocPage, kind);
                return;
            case PageKind.Failed:
                Skip(ReplaySkip.AllocationFailedHere, kind);
                return;
        }
        FreeHeld(cpu, e, kind);
        Replayed(kind);
    }

    /// <summary>
    /// An order-N block allocated without __GFP_COMP can be split_page()d into order-0 pages and freed page by page
    /// (alloc_pages_exact() does, freeing the tail right away): a free inside a held block splits it first.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TrySplitFree(Cpu cpu, FtraceEventKind kind, ulong tracedPfn, int order)
    {
        if (order != 0)
            return false;
        for (int k = 1; k <= PageSize.MaxOrder; k++)
        {
            ulong head = tracedPfn & ~((1UL << k) - 1);
            if (head == tracedPfn || !_pages.TryGetValue(head, out var e))
                continue;
            if (e.Kind != PageKind.Plain || e.Compound || e.Order < k)
                return false;
            _m.SplitPage(e.EmuPfn, e.Order);
            _r.SplitPages++;
            for (ulong i = 0; i < 1UL << e.Order; i++)
                _pages[head + i] = new PageEntry(e.EmuPfn + i, 0, PageKind.Plain, false);
            MmPageFree(cpu, kind, tracedPfn, 0);
            return true;
        }
        return false;
    }
}
