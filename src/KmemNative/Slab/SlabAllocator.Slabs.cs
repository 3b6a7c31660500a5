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

    // ---- deactivate_slab() and flushing CPU slabs --------------------------------------------------------

    /// <summary>
    /// __flush_cpu_slab(): take <paramref name="cpu"/>'s CPU slab of <paramref name="s"/> away from it and
    /// deactivate it. The caller owns the CPU, has claimed it, or (kmem_cache_destroy) knows the cache is idle.
    /// </summary>
    private void FlushCpuSlab(Cpu cpu, KmemCache s)
    {
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        ulong slabVa = Ld(c + HotSlab<TArch>.CpuSlab);
        ulong freelist = Ld(c);
        ClearCpuSlab(c);
        if (slabVa != 0)
            DeactivateSlab(cpu, s, slabVa, freelist);
    }

    /// <summary>
    /// deactivate_slab(): splice the CPU's freelist back onto the slab's freelist, unfreeze it, and put it on the
    /// partial list, or free it when it is empty and the node already keeps min_partial slabs.
    /// </summary>
    private void DeactivateSlab(Cpu cpu, KmemCache s, ulong slabVa, ulong freelist)
    {
        byte* slab = SlabHost(slabVa);
        bool tail = Ld(slab + HotSlab<TArch>.SlabFreelist) != 0;   // remote frees happened: DEACTIVATE_TO_TAIL
        // Stage one: count the CPU freelist and find its tail, cutting it at the first pointer outside the slab.
        uint freeDelta = 0;
        ulong last = 0;
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        for (ulong it = freelist; it != 0 && freeDelta <= objects;)
        {
            if (!IsObjectOf(s, slab, it))
            {
                ReportFreechain(s, slabVa, last, it, "Freechain corrupt");
                if (last == 0)
                    freelist = 0;
                else
                    SetFreePointer(s, last, 0);
                break;
            }
            last = it;
            freeDelta++;
            it = GetFreePointer(s, it);
        }
        if (freeDelta > objects)
        {
            ReportFreechain(s, slabVa, last, freelist, "Freechain corrupt");
            freelist = 0;
            last = 0;
            freeDelta = 0;
        }

        // Stage two: unfreeze while splicing the CPU freelist in front of the slab's.
        ulong newFreelist, newCounters;
        while (true)
        {
            ulong oldFreelist = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong oldCounters = Ld(slab + HotSlab<TArch>.SlabCounters);
            newCounters = SlabCounters.WithFrozen(oldCounters, false);
            if (last != 0)
            {
                newCounters = SlabCounters.WithInuse(newCounters, SlabCounters.Inuse(oldCounters) - freeDelta);
                SetFreePointer(s, last, oldFreelist);
                newFreelist = freelist;
            }
            else
            {
                newFreelist = oldFreelist;
            }
            if (UpdateFreelist(slab, oldFreelist, oldCounters, newFreelist, newCounters))
                break;
        }

        // Stage three: the lists.
        byte* n = s.NodeHost;
        if (SlabCounters.Inuse(newCounters) == 0 && Ld(n + NodeOff.NrPartial) >= (ulong)s.MinPartial)
        {
            DiscardSlab(cpu, s, slabVa);
        }
        else if (newFreelist != 0)
        {
            SpinLock(n);
            AddPartial(s, slabVa, tail);
            SpinUnlock(n);
        }
        // else: full, on no list.
    }

    /// <summary>
    /// flush_all(): every CPU slab of <paramref name="s"/> goes back to the node. CPUs the calling thread owns or
    /// can claim are flushed at once; a CPU another live thread runs is asked to flush at its next slab slow path.
    /// Returns the CPUs that could not be flushed now.
    /// </summary>
    private int FlushAll(Cpu self, KmemCache s)
    {
        int deferred = 0;
        foreach (var cpu in _m.Cpus)
        {
            if (Ld(cpu.Percpu + s.CpuSlabOffset + HotSlab<TArch>.CpuSlab) == 0 && !HasPcsUsed(cpu, s))
                continue;
            if (ReferenceEquals(cpu, self))
            {
                PcsFlushAll(cpu, s);
                FlushCpuSlab(cpu, s);
                continue;
            }
            if (_m.TryClaimCpu(cpu, out bool mine))
            {
                try
                {
                    PcsFlushAll(cpu, s);
                    FlushCpuSlab(cpu, s);
                }
                finally
                {
                    if (!mine)
                        _m.UnclaimCpu(cpu);
                }
                continue;
            }
            cpu.SlabFlushRequested = true;
            deferred++;
        }
        return deferred;
    }

    /// <summary>The owner of a CPU honours a flush request: every CPU slab of every cache goes back.</summary>
    private void HonourFlushRequest(Cpu cpu)
    {
        cpu.SlabFlushRequested = false;
        foreach (var s in _cacheSnapshot)
        {
            if (s.IsDestroyed)
                continue;
            PcsFlushAll(cpu, s);
            FlushCpuSlab(cpu, s);
        }
    }

    // ---- shutdown and shrink ----------------------------------------------------------------------------

    /// <summary>
    /// __kmem_cache_shutdown() after the flush: free_partial() frees the empty partial slabs and reports the
    /// objects still allocated; false when slabs remain.
    /// </summary>
    private bool ShutdownNode(Cpu cpu, KmemCache s)
    {
        BarnShrink(cpu, s);
        byte* n = s.NodeHost;
        var discard = new List<ulong>();
        SpinLock(n);
        try
        {
            foreach (ulong slab in ListSlabs(s.NodeVa + (ulong)NodeOff.Partial))
            {
                if (SlabCounters.Inuse(Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters)) == 0)
                {
                    RemovePartial(s, slab);
                    discard.Add(slab);
                }
            }
        }
        finally
        {
            SpinUnlock(n);
        }
        foreach (ulong slab in discard)
            DiscardSlab(cpu, s, slab);
        if (Ld(n + NodeOff.NrPartial) == 0 && Ld(n + NodeOff.NrSlabs) == 0)
            return true;
        // list_slab_objects() for every slab still holding objects (full ones are found in mem_map).
        foreach (ulong slab in AllSlabsOf(s))
            ListSlabObjects(s, slab, $"Objects remaining in {s.Name} on __kmem_cache_shutdown()");
        return false;
    }

    /// <summary>
    /// kmem_cache_shrink(): flush the CPU slabs, free every empty partial slab, and sort the rest so the fullest
    /// come first. Returns 0 when the cache has no slabs left.
    /// </summary>
    public int Shrink(Cpu cpu, KmemCache s)
    {
        CheckCpu(cpu);
        CheckCache(s);
        if (s.IsDestroyed)
            throw new SlabCacheException($"kmem_cache_shrink({s.Name}): the cache was destroyed");
        BeginOp();
        try
        {
            FlushAll(cpu, s);
            return DoShrink(cpu, s);
        }
        finally
        {
            EndOp();
        }
    }

    /// <summary>__kmem_cache_do_shrink().</summary>
    private int DoShrink(Cpu cpu, KmemCache s)
    {
        const int promoteMax = 32;   // SHRINK_PROMOTE_MAX
        BarnShrink(cpu, s);
        byte* n = s.NodeHost;
        var discard = new List<ulong>();
        SpinLock(n);
        try
        {
            var promote = new List<ulong>[promoteMax];
            for (int i = 0; i < promoteMax; i++)
                promote[i] = [];
            var rest = new List<ulong>();
            foreach (ulong slab in ListSlabs(s.NodeVa + (ulong)NodeOff.Partial))
            {
                ulong c = Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters);
                uint free = SlabCounters.Objects(c) - SlabCounters.Inuse(c);
                RemovePartial(s, slab);
                if (free == SlabCounters.Objects(c))
                    discard.Add(slab);
                else if (free <= promoteMax)
                    promote[free - 1].Add(slab);
                else
                    rest.Add(slab);
            }
            // Rebuild: the slabs with the fewest free objects first, then the others in their old order.
            foreach (var group in promote)
                foreach (ulong slab in group)
                    AddPartial(s, slab, tail: true);
            foreach (ulong slab in rest)
                AddPartial(s, slab, tail: true);
            foreach (ulong slab in discard)
                DecSlabsNode(s, SlabCounters.Objects(Ld(SlabHost(slab) + HotSlab<TArch>.SlabCounters)));
        }
        finally
        {
            SpinUnlock(n);
        }
        foreach (ulong slab in discard)
            FreeSlab(cpu, s, slab);
        return Ld(n + NodeOff.NrSlabs) != 0 ? 1 : 0;
    }

    /// <summary>
    /// Every slab of <paramref name="s"/>, found the way crash's fallback does: by scanning mem_map for slab pages
    /// whose slab_cache is the cache (full slabs of non-debug caches are on no list).
    /// </summary>
    internal List<ulong> AllSlabsOf(KmemCache s)
    {
        var slabs = new List<ulong>();
        for (ulong pfn = 0; pfn < _m.MaxLowPfn; pfn++)
        {
            byte* desc = _mm.Desc(pfn);
            if (MemMap<TArch>.PageType(desc) >> 24 != PageBits.PgtySlab || (Ld(desc + TArch.PageLruOffset) & 1) != 0)
                continue;
            if (Ld(desc + HotSlab<TArch>.SlabCache) == s.Va)
                slabs.Add(_mm.DescVa(pfn));
        }
        return slabs;
    }
}
