using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PhysMem;
using KmemNative.Reclaim;

namespace KmemNative.PageAlloc;

/// <summary>
/// The zoned buddy allocator (mm/page_alloc.c) over the arena's <c>mem_map</c>: per-zone <c>free_area[]</c>
/// lists, per-CPU page lists for orders 0..3, watermarks, lowmem reserves and the GFP rules.
/// </summary>
/// <remarks>
/// Allocation walks the zonelist from the highest zone the GFP flags allow downwards, checks each zone's
/// watermark, and takes pages from the CPU's per-CPU list (refilled from the buddy lists in batches) or,
/// above order 3, from the buddy lists directly. Buddy lists are guarded by <c>zone-&gt;lock</c>; per-CPU lists
/// belong to the CPU and take no lock. Every state change is preceded by the checks that can refuse it, so a
/// refused request leaves the allocator exactly as it was.
/// </remarks>
internal sealed unsafe partial class PageAllocator<TArch> where TArch : struct, IArch
{
    /// <summary>"No page": what a failed allocation returns instead of a PFN.</summary>
    public const ulong NoPage = ulong.MaxValue;

    private readonly Machine _machine;
    private readonly MemMap<TArch> _mm;
    private readonly KernelLayouts _l;
    private readonly Zone[] _zones;
    private readonly Zone[][] _zonelists;   // [gfp_zone] -> populated zones <= it, highest first
    private readonly byte* _pageblock;      // one migratetype byte per pageblock
    private readonly int _pageblockOrder = TArch.PageblockOrder;

    public PageAllocator(Machine machine, MemMap<TArch> mm, KernelLayouts layouts, Zone[] zones, byte* pageblockFlags, bool mobilityDisabled)
    {
        _machine = machine;
        _mm = mm;
        _l = layouts;
        _zones = zones;
        _pageblock = pageblockFlags;
        MobilityDisabled = mobilityDisabled;
        _zonelists = new Zone[zones.Length][];
        for (int h = 0; h < zones.Length; h++)
            _zonelists[h] = [.. zones.Take(h + 1).Where(z => z.IsPopulated).Reverse()];
    }

    public MemMap<TArch> MemMap => _mm;

    public Zone[] Zones => _zones;

    /// <summary>page_group_by_mobility_disabled: too little memory for grouping by mobility (every request is unmovable).</summary>
    public bool MobilityDisabled { get; }

    /// <summary>The zonelist a request with highest zone <paramref name="highestZoneIdx"/> walks.</summary>
    public ReadOnlySpan<Zone> Zonelist(int highestZoneIdx) => _zonelists[highestZoneIdx];

    /// <summary>
    /// The reclaim subsystem (issue #6): kswapd wake-ups, direct reclaim, the OOM killer and the allocation-failure
    /// report. Null only while the machine boots; the slow path then fails cleanly.
    /// </summary>
    internal IAllocReclaim? Reclaim { get; set; }

    // ---- allocation -----------------------------------------------------------------------------------

    /// <summary>
    /// __alloc_pages(gfp, order): a block of 2^order pages with refcount 1, or <see cref="NoPage"/>.
    /// </summary>
    /// <exception cref="InvalidAllocationException">Order above MAX_PAGE_ORDER, unknown GFP bits, or zone modifiers naming no zone.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong AllocPages(Cpu cpu, Gfp gfp, int order)
    {
        if ((uint)order > PageSize.MaxOrder)
            ThrowHelper.ThrowInvalidOrder(order);
        if (((uint)gfp & ~GfpFlags.ValidMask) != 0 || !GfpFlags.ZoneValid(gfp))
            ThrowInvalidGfp(gfp);
        // One predictable branch: atomic context or a memalloc_noio/nofs scope is rare, and handled out of line.
        if (cpu.AllocContext != 0)
            return AllocPagesInContext(cpu, gfp, order);
        return AllocPagesChecked(cpu, gfp, order);
    }

    /// <summary>
    /// __alloc_frozen_pages_noprof() with a context to honour: current_gfp_context() (the memalloc_noio/nofs scope
    /// clears __GFP_IO/__GFP_FS), then prepare_alloc_pages()'s might_alloc(), which reports a blocking request made
    /// in atomic context and, on a machine with <see cref="Machine.StrictMightSleep"/>, refuses it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong AllocPagesInContext(Cpu cpu, Gfp gfp, int order)
    {
        gfp = AllocContext.CurrentGfpContext(cpu, gfp);
        AllocContext.MightAlloc(cpu, gfp, "alloc_pages");
        return AllocPagesChecked(cpu, gfp, order);
    }

    /// <summary>The allocation proper once the request is known valid: the fast path at the low watermark, then the slow path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AllocPagesChecked(Cpu cpu, Gfp gfp, int order)
    {
        int highest = GfpFlags.Zone<TArch>(gfp);
        int mt = MobilityDisabled ? 0 : (int)GfpFlags.Migratetype(gfp);

        // Fast path: allocate at the low watermark.
        ulong pfn = GetPageFromFreelist(cpu, order, AllocFlags.WmarkLow, highest, mt, out Zone? zone);
        if (pfn == NoPage)
            pfn = AllocPagesSlowpath(cpu, gfp, order, highest, mt, out zone);
        if (pfn != NoPage)
            PrepNewPage(cpu, zone!, pfn, order, gfp);
        if (_machine.Tracer is { } tracer)
            tracer.MmPageAlloc(cpu, pfn == NoPage ? null : pfn, order, mt, gfp);
        return pfn;
    }

    /// <summary>get_page_from_freelist(): the first zone of the zonelist that passes its watermark and has pages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong GetPageFromFreelist(Cpu cpu, int order, int allocFlags, int highest, int mt, out Zone? zone)
    {
        foreach (var z in _zonelists[highest])
        {
            if ((allocFlags & AllocFlags.NoWatermarks) == 0)
            {
                // Zones known to be above the high mark skip straight to the requested mark; a zone found
                // below high is remembered (ZONE_BELOW_HIGH), which makes the per-CPU lists shrink sooner.
                if (!z.BelowHigh)
                {
                    if (WatermarkFast(z, order, WmarkPages(z, AllocFlags.WmarkHigh), highest, allocFlags))
                        goto tryThisZone;
                    z.BelowHigh = true;
                }
                if (!WatermarkFast(z, order, WmarkPages(z, allocFlags & AllocFlags.WmarkMask), highest, allocFlags))
                    continue;
            }
        tryThisZone:
            ulong pfn = Rmqueue(cpu, z, order, allocFlags, mt);
            if (pfn != NoPage)
            {
                zone = z;
                return pfn;
            }
        }
        zone = null;
        return NoPage;
    }

    /// <summary>rmqueue(): per-CPU list for orders up to PAGE_ALLOC_COSTLY_ORDER, else the buddy lists.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Rmqueue(Cpu cpu, Zone zone, int order, int allocFlags, int mt)
    {
        if (order <= PageSize.CostlyOrder)
        {
            ulong pfn = RmqueuePcplist(cpu, zone, order, mt, allocFlags);
            if (pfn != NoPage)
                return pfn;
        }
        return RmqueueBuddy(zone, order, allocFlags, mt);
    }

    private ulong RmqueueBuddy(Zone zone, int order, int allocFlags, int mt)
    {
        lock (zone.Lock)
        {
            ulong pfn = NoPage;
            if ((allocFlags & AllocFlags.HighAtomic) != 0)
                pfn = RmqueueSmallest(zone, order, (int)MigrateType.HighAtomic);
            if (pfn == NoPage)
                pfn = Rmqueue(zone, order, mt, allocFlags);
            if (pfn == NoPage && (allocFlags & (AllocFlags.Oom | AllocFlags.NonBlock)) != 0)
                pfn = RmqueueSmallest(zone, order, (int)MigrateType.HighAtomic);
            return pfn;
        }
    }

    /// <summary>
    /// prep_new_page(): refcount 1, the allocation record, __GFP_ZERO clearing and __GFP_COMP compound metadata.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PrepNewPage(Cpu cpu, Zone zone, ulong pfn, int order, Gfp gfp)
    {
        MemMap<TArch>.Refcount(_mm.Desc(pfn)) = 1;
        _mm.Ext(pfn) = (byte)(PageExt.Head | order);
        if (order != 0 || (gfp & (Gfp.Zero | Gfp.Comp)) != 0)
            PrepNewBlock(pfn, order, gfp);
        cpu.Events[(int)VmEvent.PgallocDma + (int)zone.Type] += 1L << order;
        cpu.NumaHit[zone.Index]++;
    }

    /// <summary>The rarer parts of prep_new_page(): tail records, zeroing, compound metadata.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void PrepNewBlock(ulong pfn, int order, Gfp gfp)
    {
        if (order != 0)
            _mm.SetExtRange(pfn + 1, (1UL << order) - 1, PageExt.Tail);
        if ((gfp & Gfp.Zero) != 0)
            new Span<byte>(_machine.Memory.Base + (pfn << PageSize.Shift), PageSize.Int << order).Clear();
        if ((gfp & Gfp.Comp) != 0 && order != 0)
            PrepCompoundPage(pfn, order);
    }

    /// <summary>prep_compound_page(): PG_head on the head, compound_head = head | 1 and TAIL_MAPPING on tails, order in page[1].</summary>
    private void PrepCompoundPage(ulong pfn, int order)
    {
        byte* head = _mm.Desc(pfn);
        MemMap<TArch>.SetFlag(head, PageFlag.Head);
        ulong headWord = _mm.DescVa(pfn) | 1;
        ulong n = 1UL << order;
        for (ulong i = 1; i < n; i++)
        {
            byte* t = _mm.Desc(pfn + i);
            MemMap<TArch>.SetCompoundHeadWord(t, headWord);
            MemMap<TArch>.SetMapping(t, MemMap<TArch>.TailMapping);
        }
        // folio_set_order(): the order lives in the low byte of the second page's flags (_flags_1).
        byte* second = _mm.Desc(pfn + 1);
        MemMap<TArch>.SetFlags(second, (MemMap<TArch>.Flags(second) & ~0xffUL) | (uint)order);
    }

    // ---- freeing --------------------------------------------------------------------------------------

    /// <summary>
    /// __free_pages(page, order): drop a reference; when it was the last, return the block. When other references
    /// remain on a non-compound block, the tail pages are freed now and the head waits for its last put_page(),
    /// as the kernel does.
    /// </summary>
    /// <exception cref="BadPageException">The page is not the head of an allocation of this order, or is in a bad state; nothing changes.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FreePages(Cpu cpu, ulong pfn, int order)
    {
        if ((uint)order > PageSize.MaxOrder)
            ThrowHelper.ThrowInvalidOrder(order);
        if (pfn >= _mm.MaxPfn)
            ThrowBadPfn(pfn, "__free_pages");
        if (_mm.Ext(pfn) != (byte)(PageExt.Head | order))
            ThrowBadFree(cpu, pfn, order);

        byte* p = _mm.Desc(pfn);
        ref int refcount = ref MemMap<TArch>.Refcount(p);
        if (refcount != 1)
        {
            FreeSharedPages(cpu, pfn, order, p);
            return;
        }
        CheckFreePage(cpu, pfn, order, p, expectedRefcount: 1);
        refcount = 0;
        FreeFrozenPages(cpu, pfn, order, p);
    }

    /// <summary>__free_pages() of a block someone else still references: drop ours, and return the tails of a non-compound block.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeSharedPages(Cpu cpu, ulong pfn, int order, byte* p)
    {
        ref int refcount = ref MemMap<TArch>.Refcount(p);
        if (refcount <= 0)
            ThrowBadPage(cpu, pfn, "nonzero _refcount");
        Interlocked.Decrement(ref refcount);
        if (order != 0 && !MemMap<TArch>.TestFlag(p, PageFlag.Head))
        {
            // The head stays allocated (order 0) for its remaining users; the upper halves go back now.
            _mm.Ext(pfn) = PageExt.Head;
            for (int o = order - 1; o >= 0; o--)
            {
                ulong tail = pfn + (1UL << o);
                _mm.Ext(tail) = (byte)(PageExt.Head | o);
                if (o != 0)
                    _mm.SetExtRange(tail + 1, (1UL << o) - 1, PageExt.Tail);
                FreeFrozenPages(cpu, tail, o, _mm.Desc(tail));
            }
        }
    }

    /// <summary>get_page(): take a reference on an allocated page (the compound head for a tail).</summary>
    public void GetPage(Cpu cpu, ulong pfn)
    {
        ulong head = AllocatedHead(cpu, pfn, "get_page");
        Interlocked.Increment(ref MemMap<TArch>.Refcount(_mm.Desc(head)));
    }

    /// <summary>put_page(): drop a reference; the last one frees the page (a compound page at its order).</summary>
    public void PutPage(Cpu cpu, ulong pfn)
    {
        ulong head = AllocatedHead(cpu, pfn, "put_page");
        byte* p = _mm.Desc(head);
        int order = _mm.Ext(head) & PageExt.OrderMask;
        bool compound = MemMap<TArch>.TestFlag(p, PageFlag.Head);
        ref int refcount = ref MemMap<TArch>.Refcount(p);
        if (refcount == 1)
        {
            if (order != 0 && !compound)
                ThrowBadPage(cpu, head, $"put_page() dropped the last reference to a non-compound order-{order} block (use __free_pages)");
            CheckFreePage(cpu, head, order, p, expectedRefcount: 1);
            refcount = 0;
            FreeFrozenPages(cpu, head, order, p);
            return;
        }
        Interlocked.Decrement(ref refcount);
    }

    /// <summary>Refcount of the allocation containing <paramref name="pfn"/>, resolving tails to their head.</summary>
    private ulong AllocatedHead(Cpu cpu, ulong pfn, string op)
    {
        if (pfn >= _mm.MaxPfn)
            ThrowBadPfn(pfn, op);
        byte ext = _mm.Ext(pfn);
        if ((ext & PageExt.Tail) != 0)
        {
            byte* p = _mm.Desc(pfn);
            ulong word = MemMap<TArch>.CompoundHeadWord(p);
            bool isTail = (word & 1) != 0;
            if (!_mm.TryPfnOfDescVa(word & ~1UL, out ulong head) || !isTail)
                ThrowBadPage(cpu, pfn, $"{op}() on a tail page of a non-compound allocation");
            pfn = head;
            ext = _mm.Ext(pfn);
        }
        if ((ext & PageExt.Head) == 0)
            ThrowBadPage(cpu, pfn, $"{op}() on a page that is not allocated");
        if (MemMap<TArch>.Refcount(_mm.Desc(pfn)) <= 0)
            ThrowBadPage(cpu, pfn, "nonzero _refcount");
        return pfn;
    }

    /// <summary>
    /// free_pages_prepare()'s checks (free_page_is_bad, free_tail_page_prepare), run before anything changes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckFreePage(Cpu cpu, ulong pfn, int order, byte* p, int expectedRefcount)
    {
        ulong flags = MemMap<TArch>.Flags(p);
        // page_type (-1: untyped, unmapped) and _refcount are adjacent 32-bit words: one compare checks both.
        ulong typeAndRef = *(ulong*)(p + TArch.PageTypeOffset);
        if (typeAndRef != ((ulong)(uint)expectedRefcount << 32 | PageBits.NoType) || MemMap<TArch>.Mapping(p) != 0 ||
            (flags & PageBits.CheckAtFree) != 0 || MemMap<TArch>.MemcgData(p) != 0)
        {
            ThrowBadPage(cpu, pfn, PageBadReason(p, expectedRefcount));
        }
        if (order != 0 && (flags & (1UL << (int)PageFlag.Head)) != 0)
            CheckCompoundTails(cpu, pfn, order);
    }

    private void CheckCompoundTails(Cpu cpu, ulong pfn, int order)
    {
        byte* second = _mm.Desc(pfn + 1);
        if ((MemMap<TArch>.Flags(second) & 0xff) != (ulong)order)
            ThrowBadPage(cpu, pfn + 1, $"wrong compound order (page[1] says {MemMap<TArch>.Flags(second) & 0xff})");
        ulong headWord = _mm.DescVa(pfn) | 1;
        for (ulong i = 1; i < 1UL << order; i++)
        {
            byte* t = _mm.Desc(pfn + i);
            if (MemMap<TArch>.CompoundHeadWord(t) != headWord)
                ThrowBadPage(cpu, pfn + i, "corrupted compound_head");
            if (MemMap<TArch>.Mapping(t) != MemMap<TArch>.TailMapping)
                ThrowBadPage(cpu, pfn + i, "corrupted mapping in tail page");
            if (MemMap<TArch>.Refcount(t) != 0)
                ThrowBadPage(cpu, pfn + i, "nonzero _refcount");
        }
    }

    /// <summary>page_bad_reason(): every test overwrites the previous one, so the last problem found is reported.</summary>
    private static string PageBadReason(byte* p, int expectedRefcount)
    {
        string reason = "page state is not what a free requires";
        if (MemMap<TArch>.PageType(p) != PageBits.NoType)
            reason = "nonzero mapcount";
        if (MemMap<TArch>.Mapping(p) != 0)
            reason = "non-NULL mapping";
        if (MemMap<TArch>.Refcount(p) != expectedRefcount)
            reason = "nonzero _refcount";
        if ((MemMap<TArch>.Flags(p) & PageBits.CheckAtFree) != 0)
            reason = "PAGE_FLAGS_CHECK_AT_FREE flag(s) set";
        if (MemMap<TArch>.MemcgData(p) != 0)
            reason = "page still charged to cgroup";
        return reason;
    }

    /// <summary>
    /// free_frozen_pages(): the block's refcount is 0 and it passed the checks. Clear its state and give it to the
    /// per-CPU list (orders up to 3) or the buddy lists.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FreeFrozenPages(Cpu cpu, ulong pfn, int order, byte* p)
    {
        if (_machine.Tracer is { } tracer)
            tracer.MmPageFree(cpu, pfn, order);
        // Keep only the zone/node bits: PG_head and friends go with the allocation.
        ulong flags = MemMap<TArch>.Flags(p);
        MemMap<TArch>.SetFlags(p, flags & ~((1UL << PageBits.FlagBits) - 1));
        if (order != 0)
            ClearBlockRecord(pfn, order, flags);
        else
            _mm.Ext(pfn) = PageExt.None;
        cpu.Events[(int)VmEvent.Pgfree] += 1L << order;

        var zone = _zones[MemMap<TArch>.ZoneIdx(p)];
        int mt = PageblockMigratetype(pfn);
        // Orders the per-CPU lists cache go there; a highatomic pageblock's pages go on the movable list, as
        // free_frozen_pages() does; isolated pageblocks go straight to the buddy lists.
        if (order <= PageSize.CostlyOrder && (mt < MigrateTypes.PcpTypes || mt == (int)MigrateType.HighAtomic))
        {
            FreeToPcp(cpu, zone, pfn, order, mt < MigrateTypes.PcpTypes ? mt : (int)MigrateType.Movable);
            return;
        }
        lock (zone.Lock)
            FreeOneBlock(zone, pfn, order, mt, toTail: false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ClearBlockRecord(ulong pfn, int order, ulong headFlags)
    {
        if ((headFlags & (1UL << (int)PageFlag.Head)) != 0)
            ClearCompoundTails(pfn, order);
        _mm.SetExtRange(pfn, 1UL << order, PageExt.None);
    }

    private void ClearCompoundTails(ulong pfn, int order)
    {
        byte* second = _mm.Desc(pfn + 1);
        MemMap<TArch>.SetFlags(second, MemMap<TArch>.Flags(second) & ~0xffUL);
        for (ulong i = 1; i < 1UL << order; i++)
        {
            byte* t = _mm.Desc(pfn + i);
            MemMap<TArch>.SetCompoundHeadWord(t, MemMap<TArch>.ListPoison1);
            MemMap<TArch>.SetMapping(t, 0);
        }
    }

    // ---- pageblocks -----------------------------------------------------------------------------------

    /// <summary>get_pfnblock_migratetype().</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PageblockMigratetype(ulong pfn) => _pageblock[pfn >> _pageblockOrder];

    /// <summary>set_pageblock_migratetype().</summary>
    internal void SetPageblockMigratetype(ulong pfn, int mt) => _pageblock[pfn >> _pageblockOrder] = (byte)mt;

    // ---- throw helpers --------------------------------------------------------------------------------

    [DoesNotReturn]
    private static void ThrowInvalidGfp(Gfp gfp)
    {
        uint unknown = GfpFlags.UnknownBits(gfp);
        if (unknown != 0)
            throw new InvalidAllocationException($"gfp 0x{(uint)gfp:x} has unknown bits 0x{unknown:x}");
        throw new InvalidAllocationException(
            $"gfp 0x{(uint)gfp:x} ({GfpFlags.Format(gfp)}): zone modifiers 0x{(uint)gfp & GfpFlags.ZoneMask:x} name no zone (GFP_ZONE_BAD)");
    }

    [DoesNotReturn]
    private void ThrowBadPfn(ulong pfn, string op) =>
        throw new BadPageException(pfn, "pfn outside RAM",
            $"BUG: Bad page state in process {CurrentComm()}  pfn:{pfn:x5}\n{op}: pfn 0x{pfn:x} is outside the machine's memory (max_pfn 0x{_mm.MaxPfn:x})\npage dumped because: pfn outside RAM");

    private string CurrentComm() => _machine.CurrentComm;

    [DoesNotReturn]
    internal void ThrowBadPage(Cpu cpu, ulong pfn, string reason) =>
        throw new BadPageException(pfn, reason, BadPageReport<TArch>.Format(_mm, _zones, cpu.Comm, pfn, reason));

    /// <summary>Explains why a free was refused: not allocated (free, on a per-CPU list, reserved, a hole), a tail page, or the wrong order.</summary>
    [DoesNotReturn]
    private void ThrowBadFree(Cpu cpu, ulong pfn, int order)
    {
        byte ext = _mm.Ext(pfn);
        byte* p = _mm.Desc(pfn);
        string reason;
        if ((ext & PageExt.Head) != 0)
            reason = $"freed with order {order}, but allocated with order {ext & PageExt.OrderMask}";
        else if ((ext & PageExt.Tail) != 0)
            reason = "freeing a tail page of an allocation";
        else if ((ext & PageExt.Pcp) != 0)
            reason = "page already free (on a per-CPU list)";
        else if (MemMap<TArch>.IsBuddy(p))
            reason = "page already free (PageBuddy)";
        else if (IsInsideFreeBlock(pfn))
            reason = "page already free (inside a free buddy block)";
        else if (MemMap<TArch>.TestFlag(p, PageFlag.Reserved))
            reason = _machine.IsRamPfn(pfn) ? "PAGE_FLAGS_CHECK_AT_FREE flag(s) set (PG_reserved)" : "pfn is a memory hole (PG_reserved)";
        else
            reason = "page was never allocated";
        ThrowBadPage(cpu, pfn, reason);
    }

    private bool IsInsideFreeBlock(ulong pfn)
    {
        for (int order = 1; order <= PageSize.MaxOrder; order++)
        {
            ulong start = pfn & ~((1UL << order) - 1);
            byte* p = _mm.Desc(start);
            if (MemMap<TArch>.IsBuddy(p) && (int)MemMap<TArch>.Private(p) >= order)
                return true;
        }
        return false;
    }
}
