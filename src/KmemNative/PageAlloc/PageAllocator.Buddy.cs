using System.Runtime.CompilerServices;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

// The buddy lists proper: split (expand), merge (__free_one_page) and the migratetype fallbacks.
// Every method here runs with zone->lock held.
//
// Invariants (checked by CheckConsistency): a free block of order k starts at a pfn aligned to 2^k, its head
// descriptor has page_type PGTY_buddy and private = k, its other descriptors are untouched, it sits on
// zone->free_area[k].free_list[mt] where mt is its pageblock's migratetype, and nr_free counts such blocks.
internal sealed unsafe partial class PageAllocator<TArch>
{
    // fallbacks[] (mm/page_alloc.c): where each migratetype may take pages when its own lists are empty.
    private static readonly int[][] s_fallbacks =
    [
        [(int)MigrateType.Reclaimable, (int)MigrateType.Movable],    // UNMOVABLE
        [(int)MigrateType.Reclaimable, (int)MigrateType.Unmovable],  // MOVABLE
        [(int)MigrateType.Unmovable, (int)MigrateType.Movable],      // RECLAIMABLE
    ];

    /// <summary>Offset of free_area[order].free_list[mt] in struct zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FreeListOffset(int order, int mt) =>
        HotLayout<TArch>.FreeAreaOff + order * HotLayout<TArch>.FreeAreaSize + HotLayout<TArch>.FreeListOff + mt * 2 * TArch.PointerSize;

    /// <summary>Offset of free_area[order].nr_free in struct zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NrFreeOffset(int order) =>
        HotLayout<TArch>.FreeAreaOff + order * HotLayout<TArch>.FreeAreaSize + HotLayout<TArch>.NrFreeOff;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FreeListVa(Zone zone, int order, int mt) => zone.Va + (ulong)FreeListOffset(order, mt);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* NrFreePtr(Zone zone, int order) => zone.Host + NrFreeOffset(order);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong LruVa(ulong pfn) => _mm.DescVa(pfn) + (ulong)TArch.PageLruOffset;

    /// <summary>account_freepages(): NR_FREE_PAGES follows every block entering or leaving the buddy lists.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AccountFreepages(Zone zone, long nrPages, int mt)
    {
        if (mt == (int)MigrateType.Isolate)
            return;
        byte* stat = zone.Host + HotLayout<TArch>.VmStatOff + (int)ZoneStat.NrFreePages * TArch.PointerSize;
        TArch.StoreLong(stat, (ulong)((long)TArch.LoadLong(stat) + nrPages));
        if (mt == (int)MigrateType.HighAtomic)
        {
            byte* ha = zone.Host + HotLayout<TArch>.NrFreeHighatomicOff;
            TArch.StoreLong(ha, (ulong)((long)TArch.LoadLong(ha) + nrPages));
        }
    }

    /// <summary>__add_to_free_list() + set_buddy_order(): the block becomes a PageBuddy of <paramref name="order"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AddToFreeList(Zone zone, ulong pfn, int order, int mt, bool toTail)
    {
        byte* p = _mm.Desc(pfn);
        MemMap<TArch>.SetPrivate(p, (ulong)order);
        MemMap<TArch>.PageType(p) = (uint)PageBits.PgtyBuddy << 24;
        if (toTail)
            _mm.ListAddTail(LruVa(pfn), FreeListVa(zone, order, mt));
        else
            _mm.ListAdd(LruVa(pfn), FreeListVa(zone, order, mt));
        byte* nr = NrFreePtr(zone, order);
        TArch.StoreLong(nr, TArch.LoadLong(nr) + 1);
        if (order >= _pageblockOrder && mt != (int)MigrateType.Isolate)
            AddStat(zone, ZoneStat.NrFreePagesBlocks, 1L << order);
    }

    /// <summary>__del_page_from_free_list(): unlink, clear PageBuddy and the order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void DelFromFreeList(Zone zone, ulong pfn, int order, int mt)
    {
        byte* p = _mm.Desc(pfn);
        _mm.ListDel(LruVa(pfn));
        MemMap<TArch>.PageType(p) = PageBits.NoType;
        MemMap<TArch>.SetPrivate(p, 0);
        byte* nr = NrFreePtr(zone, order);
        TArch.StoreLong(nr, TArch.LoadLong(nr) - 1);
        if (order >= _pageblockOrder && mt != (int)MigrateType.Isolate)
            AddStat(zone, ZoneStat.NrFreePagesBlocks, -(1L << order));
    }

    private void AddStat(Zone zone, ZoneStat item, long delta)
    {
        byte* stat = zone.Host + HotLayout<TArch>.VmStatOff + (int)item * TArch.PointerSize;
        TArch.StoreLong(stat, (ulong)((long)TArch.LoadLong(stat) + delta));
    }

    /// <summary>
    /// __free_one_page(): merge with the buddy (pfn ^ 2^order) while it is a free block of the same order in the
    /// same zone, then put the result on its free list; at the tail when the next merge looks likely.
    /// </summary>
    internal void FreeOneBlock(Zone zone, ulong pfn, int order, int mt, bool toTail)
    {
        AccountFreepages(zone, 1L << order, mt);
        while (order < PageSize.MaxOrder)
        {
            ulong buddyPfn = pfn ^ (1UL << order);
            if (!IsBuddyOf(zone, buddyPfn, order))
                break;
            int buddyMt = PageblockMigratetype(buddyPfn);
            if (buddyMt != mt && (mt == (int)MigrateType.Isolate || buddyMt == (int)MigrateType.Isolate))
                break;
            DelFromFreeList(zone, buddyPfn, order, buddyMt);
            if (buddyMt != mt)
            {
                // Match the buddy's pageblock(s) to ours so a later split puts the halves on the right lists.
                for (ulong b = buddyPfn; b < buddyPfn + (1UL << order); b += 1UL << _pageblockOrder)
                    SetPageblockMigratetype(b, mt);
            }
            pfn &= buddyPfn;
            order++;
        }
        if (!toTail && order < PageSize.MaxOrder - 1)
        {
            // buddy_merge_likely(): if the block one order up is free, keep this one cold so it stays put.
            ulong higherBuddy = (pfn & ~((2UL << order) - 1)) ^ (2UL << order);
            toTail = IsBuddyOf(zone, higherBuddy, order + 1);
        }
        AddToFreeList(zone, pfn, order, mt, toTail);
    }

    /// <summary>page_is_buddy(): a free block head of exactly <paramref name="order"/> in the same zone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsBuddyOf(Zone zone, ulong buddyPfn, int order)
    {
        if (buddyPfn < zone.StartPfn || buddyPfn >= zone.EndPfn)
            return false;
        byte* b = _mm.Desc(buddyPfn);
        return MemMap<TArch>.IsBuddy(b) && MemMap<TArch>.Private(b) == (ulong)order &&
               MemMap<TArch>.ZoneIdx(b) == zone.Index;
    }

    /// <summary>
    /// expand(): split a block of order <paramref name="high"/> down to <paramref name="low"/>, putting each upper
    /// half back on the free list one order lower. Returns the pages put back.
    /// </summary>
    private long Expand(Zone zone, ulong pfn, int low, int high, int mt)
    {
        long added = 0;
        ulong size = 1UL << high;
        while (high > low)
        {
            high--;
            size >>= 1;
            AddToFreeList(zone, pfn + size, high, mt, toTail: false);
            added += (long)size;
        }
        return added;
    }

    /// <summary>page_del_and_expand(): take a free block off its list and keep 2^low pages of it.</summary>
    private void DelAndExpand(Zone zone, ulong pfn, int low, int high, int mt)
    {
        DelFromFreeList(zone, pfn, high, mt);
        long nrPages = (1L << high) - Expand(zone, pfn, low, high, mt);
        AccountFreepages(zone, -nrPages, mt);
    }

    /// <summary>__rmqueue_smallest(): the smallest free block of migratetype <paramref name="mt"/> at or above <paramref name="order"/>.</summary>
    private ulong RmqueueSmallest(Zone zone, int order, int mt)
    {
        for (int current = order; current <= PageSize.MaxOrder; current++)
        {
            ulong head = FreeListVa(zone, current, mt);
            ulong first = MemMap<TArch>.Next(_mm.ListHost(head));
            if (first == head)
                continue;
            ulong pfn = _mm.PfnOfLru(first);
            DelAndExpand(zone, pfn, order, current, mt);
            return pfn;
        }
        return NoPage;
    }

    /// <summary>
    /// __rmqueue(): the requested migratetype first, then claim a whole pageblock from a fallback type, then
    /// steal a single block from one.
    /// </summary>
    private ulong Rmqueue(Zone zone, int order, int mt, int allocFlags)
    {
        ulong pfn = RmqueueSmallest(zone, order, mt);
        if (pfn != NoPage)
            return pfn;
        if (mt >= MigrateTypes.PcpTypes)
            return NoPage;
        pfn = RmqueueClaim(zone, order, mt, allocFlags);
        if (pfn != NoPage)
            return pfn;
        return (allocFlags & AllocFlags.NoFragment) == 0 ? RmqueueSteal(zone, order, mt) : NoPage;
    }

    /// <summary>find_suitable_fallback(): the first fallback type with a free block at <paramref name="order"/>.</summary>
    private int FindSuitableFallback(Zone zone, int order, int mt, bool claimable)
    {
        if (claimable && !ShouldTryClaimBlock(order, mt))
            return -2;
        if (TArch.LoadLong(NrFreePtr(zone, order)) == 0)
            return -1;
        foreach (int fb in s_fallbacks[mt])
        {
            if (!_mm.ListEmpty(FreeListVa(zone, order, fb)))
                return fb;
        }
        return -1;
    }

    /// <summary>should_try_claim_block(): big blocks, unmovable/reclaimable requests, or no mobility grouping.</summary>
    private bool ShouldTryClaimBlock(int order, int mt) =>
        order >= _pageblockOrder / 2 || mt == (int)MigrateType.Reclaimable || mt == (int)MigrateType.Unmovable || MobilityDisabled;

    /// <summary>__rmqueue_claim(): largest fallback block first; convert its pageblock(s) to the requested type if worth it.</summary>
    private ulong RmqueueClaim(Zone zone, int order, int mt, int allocFlags)
    {
        int minOrder = (allocFlags & AllocFlags.NoFragment) != 0 && order < _pageblockOrder ? _pageblockOrder : order;
        for (int current = PageSize.MaxOrder; current >= minOrder; current--)
        {
            int fb = FindSuitableFallback(zone, current, mt, claimable: true);
            if (fb == -1)
                continue;
            if (fb == -2)
                break;
            ulong first = MemMap<TArch>.Next(_mm.ListHost(FreeListVa(zone, current, fb)));
            ulong pfn = TryToClaimBlock(zone, _mm.PfnOfLru(first), current, order, mt, fb);
            if (pfn != NoPage)
                return pfn;
        }
        return NoPage;
    }

    /// <summary>
    /// try_to_claim_block(): a block of a pageblock or more changes type wholesale; a smaller one converts its
    /// pageblock when at least half of it is free or compatible.
    /// </summary>
    private ulong TryToClaimBlock(Zone zone, ulong pfn, int current, int order, int startType, int blockType)
    {
        if (current >= _pageblockOrder)
        {
            DelFromFreeList(zone, pfn, current, blockType);
            AccountFreepages(zone, -(1L << current), blockType);
            for (ulong b = pfn; b < pfn + (1UL << current); b += 1UL << _pageblockOrder)
                SetPageblockMigratetype(b, startType);
            long added = Expand(zone, pfn, order, current, startType);
            AccountFreepages(zone, added, startType);
            return pfn;
        }

        ulong blockStart = pfn & ~((1UL << _pageblockOrder) - 1);
        ulong blockEnd = blockStart + (1UL << _pageblockOrder);
        if (blockStart < zone.StartPfn || blockEnd > zone.EndPfn)
            return NoPage;
        CountPageblock(blockStart, blockEnd, out long free, out long movable);
        long alike = startType == (int)MigrateType.Movable ? movable
            : blockType == (int)MigrateType.Movable ? (1L << _pageblockOrder) - free - movable : 0;
        if (free + alike >= 1L << (_pageblockOrder - 1) || MobilityDisabled)
        {
            MoveFreepagesBlock(zone, blockStart, blockEnd, blockType, startType);
            SetPageblockMigratetype(blockStart, startType);
            return RmqueueSmallest(zone, order, startType);
        }
        return NoPage;
    }

    /// <summary>prep_move_freepages_block(): free pages and pages on the LRU (movable) in a pageblock.</summary>
    private void CountPageblock(ulong start, ulong end, out long free, out long movable)
    {
        free = 0;
        movable = 0;
        for (ulong pfn = start; pfn < end;)
        {
            byte* p = _mm.Desc(pfn);
            if (MemMap<TArch>.IsBuddy(p))
            {
                ulong n = 1UL << (int)MemMap<TArch>.Private(p);
                free += (long)n;
                pfn += n;
                continue;
            }
            if (MemMap<TArch>.TestFlag(p, PageFlag.Lru))
                movable++;
            pfn++;
        }
    }

    /// <summary>__move_freepages_block(): every free block in the pageblock moves to the new type's lists.</summary>
    private void MoveFreepagesBlock(Zone zone, ulong start, ulong end, int oldType, int newType)
    {
        for (ulong pfn = start; pfn < end;)
        {
            byte* p = _mm.Desc(pfn);
            if (!MemMap<TArch>.IsBuddy(p))
            {
                pfn++;
                continue;
            }
            int order = (int)MemMap<TArch>.Private(p);
            DelFromFreeList(zone, pfn, order, oldType);
            AccountFreepages(zone, -(1L << order), oldType);
            AddToFreeList(zone, pfn, order, newType, toTail: false);
            AccountFreepages(zone, 1L << order, newType);
            pfn += 1UL << order;
        }
    }

    /// <summary>__rmqueue_steal(): the smallest fallback block, taken without changing its pageblock's type.</summary>
    private ulong RmqueueSteal(Zone zone, int order, int mt)
    {
        for (int current = order; current <= PageSize.MaxOrder; current++)
        {
            int fb = FindSuitableFallback(zone, current, mt, claimable: false);
            if (fb < 0)
                continue;
            ulong first = MemMap<TArch>.Next(_mm.ListHost(FreeListVa(zone, current, fb)));
            ulong pfn = _mm.PfnOfLru(first);
            DelAndExpand(zone, pfn, order, current, fb);
            return pfn;
        }
        return NoPage;
    }
}
