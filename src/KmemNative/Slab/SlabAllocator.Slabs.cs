using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Slabs: allocate_slab()/__free_slab() on the page allocator, the struct slab overlay, the node's lists and
// counters, the freelist compare-and-swap, and deactivate_slab()/flush of CPU slabs.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>kmem_cache_node field offsets.</summary>
    private static class NodeOff
    {
        public static readonly int ListLock = HotSlab<TArch>.L.KmemCacheNode.Offset("list_lock");
        public static readonly int NrPartial = HotSlab<TArch>.L.KmemCacheNode.Offset("nr_partial");
        public static readonly int Partial = HotSlab<TArch>.L.KmemCacheNode.Offset("partial");
        public static readonly int NrSlabs = HotSlab<TArch>.L.KmemCacheNode.Offset("nr_slabs");
        public static readonly int TotalObjects = HotSlab<TArch>.L.KmemCacheNode.Offset("total_objects");
        public static readonly int Full = HotSlab<TArch>.L.KmemCacheNode.Offset("full");
    }

    // GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK (mm/internal.h): what of the caller's flags a slab allocation keeps.
    private const Gfp ReclaimConstraintMask = Gfp.Reclaim | Gfp.High | Gfp.Io | Gfp.Fs | Gfp.NoWarn | Gfp.RetryMayFail |
        Gfp.NoFail | Gfp.NoRetry | Gfp.Memalloc | Gfp.NoMemalloc | Gfp.Hardwall | Gfp.ThisNode;

    /// <summary>
    /// kmalloc_fix_flags(): GFP_SLAB_BUG_MASK (__GFP_DMA32, __GFP_HIGHMEM, unknown bits) never reaches the page
    /// allocator from slab: the kernel warns and drops them, so slab memory is never HIGHMEM.
    /// </summary>
    private Gfp FixFlags(Gfp flags)
    {
        const uint bug = (uint)(Gfp.Dma32 | Gfp.HighMem) | ~GfpFlags.ValidMask;
        if (((uint)flags & bug) == 0)
            return flags;
        var fixedFlags = (Gfp)((uint)flags & ~bug);
        _m.Log.Warn($"Unexpected gfp: {Hx((uint)flags)} ({GfpFlags.Format(flags)}). Fixing up to gfp: {Hx((uint)fixedFlags)} ({GfpFlags.Format(fixedFlags)}). Fix your code!");
        return fixedFlags;
    }

    private static string Hx(ulong v) => "0x" + v.ToString("x", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// new_slab() / allocate_slab(): pages of the cache's order (falling back to its minimum order) with the
    /// caller's reclaim flags plus s-&gt;allocflags; the slab overlay set up and every object threaded on the
    /// freelist (poisoned, red-zoned and constructed as the cache asks). Returns the head pfn, or NoPage.
    /// </summary>
    private ulong NewSlab(Cpu cpu, KmemCache s, Gfp gfp)
    {
        Gfp flags = (FixFlags(gfp) & ReclaimConstraintMask) | s.AllocFlags;
        // Let the higher-order attempt fail quickly under pressure: the minimum order is the fallback.
        Gfp first = (flags | Gfp.NoWarn | Gfp.NoRetry) & ~Gfp.NoFail;
        if ((first & Gfp.DirectReclaim) != 0 && s.Order > s.MinOrder)
            first = (first | Gfp.NoMemalloc) & ~Gfp.Reclaim;
        int order = s.Order;
        uint objects = (uint)s.ObjectsPerSlab;
        ulong pfn = _pages.AllocPages(cpu, first, order);
        if (pfn == PageAllocator<TArch>.NoPage && s.MinOrder != s.Order)
        {
            order = s.MinOrder;
            objects = OrderObjects(order, (uint)s.Size);
            pfn = _pages.AllocPages(cpu, order == 0 ? flags & ~Gfp.Comp : flags | Gfp.Comp, order);
        }
        if (pfn == PageAllocator<TArch>.NoPage)
        {
            if ((gfp & Gfp.NoWarn) == 0)
                SlabOutOfMemory(s, gfp);
            return pfn;
        }

        byte* desc = _mm.Desc(pfn);
        // __folio_set_slab(): the page type first, then the overlay.
        MemMap<TArch>.PageType(desc) = (uint)PageBits.PgtySlab << 24;
        St(desc + HotSlab<TArch>.SlabCounters, SlabCounters.Make(0, objects, frozen: false));
        St(desc + HotSlab<TArch>.SlabList, 0);
        St(desc + HotSlab<TArch>.SlabList + TArch.PointerSize, 0);
        AccountSlab(s, order, +1);
        St(desc + HotSlab<TArch>.SlabCache, s.Va);

        ulong start = PageAddress(pfn);
        if ((s.Flags & SlabFlags.Poison) != 0)
            new Span<byte>(_base + (pfn << PageSize.Shift), PageSize.Int << order).Fill(SlabPoison.Inuse);
        try
        {
            ulong p = start + (ulong)s.RedLeftPad;
            SetupObject(s, p);
            St(desc + HotSlab<TArch>.SlabFreelist, p);
            for (uint i = 1; i < objects; i++)
            {
                ulong next = p + (ulong)s.Size;
                SetupObject(s, next);
                SetFreePointer(s, p, next);
                p = next;
            }
            SetFreePointer(s, p, 0);
        }
        catch
        {
            // A constructor threw: give the pages back untouched by the lists.
            ReleaseSlabPages(cpu, s, pfn, order);
            throw;
        }
        return pfn;
    }

    /// <summary>setup_object(): debug initialisation (red zones, poison, empty tracks), then the constructor.</summary>
    private void SetupObject(KmemCache s, ulong obj)
    {
        if ((s.Flags & (SlabFlags.StoreUser | SlabFlags.RedZone | SlabFlags.ObjectPoison)) != 0)
        {
            InitObject(s, obj, SlabPoison.RedInactive);
            InitTracking(s, obj);
        }
        s.Ctor?.Invoke(obj);
    }

    /// <summary>account_slab() / unaccount_slab(): NR_SLAB_RECLAIMABLE or NR_SLAB_UNRECLAIMABLE, in pages.</summary>
    private void AccountSlab(KmemCache s, int order, int sign) =>
        _m.ModNodeState((s.Flags & SlabFlags.ReclaimAccount) != 0 ? NodeStat.NrSlabReclaimable : NodeStat.NrSlabUnreclaimable, sign * (1L << order));

    private int SlabOrder(byte* desc) =>
        MemMap<TArch>.TestFlag(desc, PageFlag.Head) ? (int)(MemMap<TArch>.Flags(desc + TArch.StructPageSize) & 0xff) : 0;

    /// <summary>discard_slab(): dec_slabs_node() and free_slab().</summary>
    private void DiscardSlab(Cpu cpu, KmemCache s, ulong slabVa)
    {
        byte* desc = SlabHost(slabVa);
        DecSlabsNode(s, SlabCounters.Objects(Ld(desc + HotSlab<TArch>.SlabCounters)));
        FreeSlab(cpu, s, slabVa);
    }

    /// <summary>free_slab(): with consistency checks every object is checked once more (they must all be free).</summary>
    private void FreeSlab(Cpu cpu, KmemCache s, ulong slabVa)
    {
        byte* desc = SlabHost(slabVa);
        if ((s.Flags & SlabFlags.ConsistencyChecks) != 0)
        {
            SlabPadCheck(s, slabVa);
            uint objects = SlabCounters.Objects(Ld(desc + HotSlab<TArch>.SlabCounters));
            ulong p = PageAddress(PfnOfSlab(slabVa)) + (ulong)s.RedLeftPad;
            for (uint i = 0; i < objects; i++, p += (ulong)s.Size)
                CheckObject(s, slabVa, p, SlabPoison.RedInactive);
        }
        ReleaseSlabPages(cpu, s, PfnOfSlab(slabVa), SlabOrder(desc));
    }

    /// <summary>__free_slab(): reset every overlaid field (the page allocator checks them), unaccount, free the pages.</summary>
    private void ReleaseSlabPages(Cpu cpu, KmemCache s, ulong pfn, int order)
    {
        byte* desc = _mm.Desc(pfn);
        St(desc + HotSlab<TArch>.SlabCache, 0);
        St(desc + HotSlab<TArch>.SlabList, 0);
        St(desc + HotSlab<TArch>.SlabList + TArch.PointerSize, 0);   // mapping
        St(desc + HotSlab<TArch>.SlabFreelist, 0);
        St(desc + HotSlab<TArch>.SlabCounters, 0);
        AtomicClearFlags(desc, (1UL << (int)PageFlag.Workingset) | (1UL << (int)PageFlag.Locked) | (1UL << (int)PageFlag.Active));
        MemMap<TArch>.PageType(desc) = PageBits.NoType;
        AccountSlab(s, order, -1);
        // mm_account_reclaimed_pages(): slab pages freed while a shrinker runs count as reclaimed.
        if (cpu.ReclaimStateActive)
            cpu.ReclaimedSlabPages += 1L << order;
        _pages.FreePages(cpu, pfn, order);
    }

    /// <summary>slab_out_of_memory(): the warning printed when a slab cannot be allocated.</summary>
    private void SlabOutOfMemory(KmemCache s, Gfp gfp)
    {
        _m.Log.Warn($"SLUB: Unable to allocate memory on node -1, gfp={Hx((uint)gfp)}({GfpFlags.Format(gfp)})");
        _m.Log.Warn($"  cache: {s.Name}, object size: {s.ObjectSize}, buffer size: {s.Size}, default order: {s.Order}, min order: {s.MinOrder}");
        byte* n = s.NodeHost;
        _m.Log.Warn($"  node 0: slabs: {Ld(n + NodeOff.NrSlabs)}, objs: {Ld(n + NodeOff.TotalObjects)}, free: {CountPartialFree(s)}");
    }

    // ---- bootstrap of the first node structure ---------------------------------------------------------

    private ulong _earlySlab;

    /// <summary>early_kmem_cache_node_alloc(): the node structure of kmem_cache_node is its own first object.</summary>
    private ulong EarlyNodeAlloc(Cpu cpu, KmemCache s)
    {
        ulong pfn = NewSlab(cpu, s, Gfp.NoWait);
        if (pfn == PageAllocator<TArch>.NoPage)
            throw new KmemException("SLUB: cannot allocate the first kmem_cache_node slab");
        byte* desc = _mm.Desc(pfn);
        ulong n = Ld(desc + HotSlab<TArch>.SlabFreelist);
        if ((s.Flags & SlabFlagsText.DebugMetadata) != 0)
        {
            InitObject(s, n, SlabPoison.RedActive);
            InitTracking(s, n);
        }
        St(desc + HotSlab<TArch>.SlabFreelist, GetFreePointer(s, n));
        St(desc + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(Ld(desc + HotSlab<TArch>.SlabCounters), 1));
        _earlySlab = _mm.DescVa(pfn);
        return n;
    }

    private void FinishEarlyNode(KmemCache s)
    {
        IncSlabsNode(s, SlabCounters.Objects(Ld(SlabHost(_earlySlab) + HotSlab<TArch>.SlabCounters)));
        AddPartial(s, _earlySlab, tail: false);
    }

    // ---- node lists and counters (list_lock held) ---------------------------------------------------------

    /// <summary>__add_partial(): list_add (head) or list_add_tail, nr_partial++, SL_partial (PG_workingset) set.</summary>
    private void AddPartial(KmemCache s, ulong slabVa, bool tail)
    {
        byte* n = s.NodeHost;
        St(n + NodeOff.NrPartial, Ld(n + NodeOff.NrPartial) + 1);
        ulong entry = slabVa + (ulong)HotSlab<TArch>.SlabList;
        ulong head = s.NodeVa + (ulong)NodeOff.Partial;
        if (tail)
            _mm.ListAddTail(entry, head);
        else
            _mm.ListAdd(entry, head);
        SetNodePartial(SlabHost(slabVa), true);
    }

    /// <summary>remove_partial(): list_del, SL_partial cleared, nr_partial--.</summary>
    private void RemovePartial(KmemCache s, ulong slabVa)
    {
        byte* n = s.NodeHost;
        _mm.ListDel(slabVa + (ulong)HotSlab<TArch>.SlabList);
        SetNodePartial(SlabHost(slabVa), false);
        St(n + NodeOff.NrPartial, Ld(n + NodeOff.NrPartial) - 1);
    }

    /// <summary>add_full(): debug caches with SLAB_STORE_USER keep their full slabs on n-&gt;full.</summary>
    private void AddFull(KmemCache s, ulong slabVa)
    {
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            _mm.ListAdd(slabVa + (ulong)HotSlab<TArch>.SlabList, s.NodeVa + (ulong)NodeOff.Full);
    }

    private void RemoveFull(KmemCache s, ulong slabVa)
    {
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            _mm.ListDel(slabVa + (ulong)HotSlab<TArch>.SlabList);
    }

    private static bool OnNodePartial(byte* slab) => MemMap<TArch>.TestFlag(slab, PageFlag.Workingset);

    /// <summary>inc_slabs_node(): atomic_long nr_slabs and total_objects.</summary>
    private void IncSlabsNode(KmemCache s, uint objects)
    {
        AtomicAdd(s.NodeHost + NodeOff.NrSlabs, 1);
        AtomicAdd(s.NodeHost + NodeOff.TotalObjects, objects);
    }

    private void DecSlabsNode(KmemCache s, uint objects)
    {
        AtomicAdd(s.NodeHost + NodeOff.NrSlabs, -1);
        AtomicAdd(s.NodeHost + NodeOff.TotalObjects, -(long)objects);
    }

    private static void AtomicAdd(byte* p, long delta)
    {
        if (TArch.PointerSize == 8)
            Interlocked.Add(ref *(long*)p, delta);
        else
            Interlocked.Add(ref *(int*)p, (int)delta);
    }

    /// <summary>count_partial(n, count_free): free objects on the node's partial slabs.</summary>
    private long CountPartialFree(KmemCache s)
    {
        long free = 0;
        SpinLock(s.NodeHost);
        try
        {
            foreach (ulong slab in ListSlabs(s.NodeVa + (ulong)NodeOff.Partial))
            {
                ulong c = Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters);
                free += SlabCounters.Objects(c) - SlabCounters.Inuse(c);
            }
        }
        finally
        {
            SpinUnlock(s.NodeHost);
        }
        return free;
    }

    /// <summary>The slabs on a list of slab_list entries (snapshot; the caller holds list_lock or the machine is quiet).</summary>
    private List<ulong> ListSlabs(ulong head)
    {
        var slabs = new List<ulong>();
        ulong guard = _mm.MaxPfn;
        for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head; e = MemMap<TArch>.Next(_mm.ListHost(e)))
        {
            if (guard-- == 0)
                throw new ConsistencyException($"slab list at 0x{head:x} does not come back to its head");
            slabs.Add(e - (ulong)HotSlab<TArch>.SlabList);
        }
        return slabs;
    }

    /// <summary>The slabs on the node's partial and full lists.</summary>
    private List<ulong> NodeSlabs(KmemCache s)
    {
        var all = ListSlabs(s.NodeVa + (ulong)NodeOff.Partial);
        all.AddRange(ListSlabs(s.NodeVa + (ulong)NodeOff.Full));
        return all;
    }

    // ---- spin locks in the arena ------------------------------------------------------------------------

    /// <summary>spin_lock(&amp;n-&gt;list_lock): a test-and-set on the spinlock_t word in the node structure.</summary>
    private static void SpinLock(byte* node)
    {
        ref int word = ref *(int*)(node + NodeOff.ListLock);
        if (Interlocked.CompareExchange(ref word, 1, 0) == 0)
            return;
        var spin = new SpinWait();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0)
            spin.SpinOnce(sleep1Threshold: -1);
    }

    private static void SpinUnlock(byte* node) => Volatile.Write(ref *(int*)(node + NodeOff.ListLock), 0);

    private static void AtomicSetFlags(byte* desc, ulong bits)
    {
        if (TArch.PointerSize == 8)
            Interlocked.Or(ref *(long*)desc, (long)bits);
        else
            Interlocked.Or(ref *(int*)desc, (int)bits);
    }

    private static void AtomicClearFlags(byte* desc, ulong bits)
    {
        if (TArch.PointerSize == 8)
            Interlocked.And(ref *(long*)desc, ~(long)bits);
        else
            Interlocked.And(ref *(int*)desc, ~(int)bits);
    }

    // ---- slab->freelist + slab->counters as one compare-and-swap -----------------------------------------

    /// <summary>
    /// slab_update_freelist(): replace freelist and counters together if both still hold the old values. i386 does
    /// it with one 8-byte compare-and-swap (cmpxchg8b) on the adjacent words; x86-64 would need cmpxchg16b, which
    /// .NET does not expose, so the pair is compared and written under slab_lock() (bit_spin_lock of PG_locked in
    /// the head page's flags), the kernel's own fallback for machines without a double-word compare-and-swap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool UpdateFreelist(byte* slab, ulong oldFreelist, ulong oldCounters, ulong newFreelist, ulong newCounters)
    {
        if (HotSlab<TArch>.DoubleWordCas)
        {
            long oldPair = (long)((oldFreelist & 0xffff_ffff) | (oldCounters << 32));
            long newPair = (long)((newFreelist & 0xffff_ffff) | (newCounters << 32));
            return Interlocked.CompareExchange(ref *(long*)(slab + HotSlab<TArch>.SlabFreelist), newPair, oldPair) == oldPair;
        }
        ulong flags = SlabLock(slab);
        bool ok = Ld(slab + HotSlab<TArch>.SlabFreelist) == oldFreelist && Ld(slab + HotSlab<TArch>.SlabCounters) == oldCounters;
        if (ok)
        {
            St(slab + HotSlab<TArch>.SlabFreelist, newFreelist);
            St(slab + HotSlab<TArch>.SlabCounters, newCounters);
        }
        SlabUnlock(slab, flags);
        return ok;
    }

    /// <summary>
    /// slab_lock(): bit_spin_lock(PG_locked, &amp;page-&gt;flags) with one compare-and-swap. Every other change of a
    /// slab's flags word (SL_partial) is made under the same lock, so the unlock is a plain release store.
    /// Returns the flags word without the lock bit.
    /// </summary>
    private static ulong SlabLock(byte* slab)
    {
        ref long word = ref *(long*)slab;
        const long locked = 1L << (int)PageFlag.Locked;
        long flags = Volatile.Read(ref word) & ~locked;
        if (Interlocked.CompareExchange(ref word, flags | locked, flags) == flags)
            return (ulong)flags;
        var spin = new SpinWait();
        while (true)
        {
            flags = Volatile.Read(ref word) & ~locked;
            if (Interlocked.CompareExchange(ref word, flags | locked, flags) == flags)
                return (ulong)flags;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    private static void SlabUnlock(byte* slab, ulong flags) => Volatile.Write(ref *(long*)slab, (long)flags);

    /// <summary>Sets or clears SL_partial (PG_workingset): atomically on i386, under slab_lock on x86-64.</summary>
    private static void SetNodePartial(byte* slab, bool on)
    {
        const ulong bit = 1UL << (int)PageFlag.Workingset;
        if (HotSlab<TArch>.DoubleWordCas)
        {
            if (on)
                AtomicSetFlags(slab, bit);
            else
                AtomicClearFlags(slab, bit);
            return;
        }
        ulong flags = SlabLock(slab);
        SlabUnlock(slab, on ? flags | bit : flags & ~bit);
    }

    // ---- free pointers ----------------------------------------------------------------------------------

    /// <summary>get_freepointer(): the (decoded) free pointer stored in an object the caller validated.</summary>
    private ulong GetFreePointer(KmemCache s, ulong obj)
    {
        ulong addr = obj + s.FpOffset;
        ulong v = Ld(HostOfLinear(addr));
        return s.Hardened ? v ^ s.Random ^ Swab(addr) : v;
    }

    /// <summary>set_freepointer(): store the (encoded) free pointer into an object the caller validated.</summary>
    private void SetFreePointer(KmemCache s, ulong obj, ulong next)
    {
        ulong addr = obj + s.FpOffset;
        St(HostOfLinear(addr), s.Hardened ? next ^ s.Random ^ Swab(addr) : next);
    }

    /// <summary>check_valid_pointer() that also refuses NULL: the start of one of the slab's objects.</summary>
    private bool IsObjectOf(KmemCache s, byte* slab, ulong obj)
    {
        ulong baseVa = PageAddress(_mm.PfnOfDesc(slab)) + (ulong)s.RedLeftPad;
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        ulong off = obj - baseVa;
        // Slabs are at most 4 MiB: a 32-bit remainder suffices.
        return obj >= baseVa && off < (ulong)objects * (ulong)s.Size && s.IsMultipleOfSize((uint)off);
    }
}
