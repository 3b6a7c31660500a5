using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Freeing: the lockless per-CPU fast path (do_slab_free), __slab_free() for objects of other slabs (remote frees),
// free_to_partial_list() for debug caches, and the validation of the pointer being freed.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    private readonly byte* _memmapHost;
    private readonly ulong _memmapVa, _memmapBytes;
    private readonly ulong _kmemCacheLimit;     // last physical address a struct kmem_cache may start at (0: hardened)
    private readonly ulong _cpuSlotLimit;       // last per-CPU offset a kmem_cache_cpu may start at

    /// <summary>
    /// kmem_cache_free() on <paramref name="cpu"/>: an object of the CPU slab is pushed on the CPU freelist with
    /// two stores. Anything else (another slab: a remote free; a debug cache; the naive double free of the object
    /// already at the head) takes the slow path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Free(Cpu cpu, KmemCache s, ulong obj)
    {
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        ulong head = Ld(c);
        ulong pa = obj - TArch.PageOffset;
        if (obj - Ld(c + HotSlab<TArch>.CpuSlabAddr) < Ld(c + HotSlab<TArch>.CpuSlabSpan) && pa <= s.FpLimit && obj != head)
        {
            St((byte*)(pa + s.FpHost), head);
            St(c, obj);
            return;
        }
        var owner = Unsafe.As<SlabAllocator<TArch>>(s.Owner);
        if (s.SheafCapacity != 0 && owner.FreeToPcsFast(cpu, s, obj))
            return;
        owner.FreeSlow(cpu, s, obj, "kmem_cache_free");
    }

    /// <summary>
    /// kfree() on <paramref name="cpu"/>: virt_to_slab() through the page descriptor (compound head for a tail
    /// page), the cache from slab-&gt;slab_cache, its CPU slab from s-&gt;cpu_slab and the free pointer offset from
    /// s-&gt;offset, every arena value bounds-checked before use; then the same two stores as kmem_cache_free().
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Kfree(Cpu cpu, ulong obj)
    {
        ulong pa = obj - TArch.PageOffset;
        if (pa < _lowmemBytes)
        {
            byte* page = _memmapHost + (pa >> PageSize.Shift) * (ulong)TArch.StructPageSize;
            ulong word = Ld(page + TArch.PageLruOffset);
            if ((word & 1) != 0)
            {
                ulong off = word - 1 - _memmapVa;
                if (off >= _memmapBytes || (off & (ulong)(TArch.StructPageSize - 1)) != 0)
                    goto slow;
                page = _memmapHost + off;
                word = Ld(page + TArch.PageLruOffset);
            }
            // A slab head page: the word at lru.next is slab->slab_cache.
            if (MemMap<TArch>.PageType(page) == (uint)PageBits.PgtySlab << 24 && word - TArch.PageOffset <= _kmemCacheLimit)
            {
                byte* sh = _base + (word - TArch.PageOffset);
                ulong cpuOff = Ld(sh + HotSlab<TArch>.KcCpuSlab);
                if (cpuOff <= _cpuSlotLimit)
                {
                    byte* c = cpu.Percpu + cpuOff;
                    ulong fpOff = *(uint*)(sh + HotSlab<TArch>.KcOffset);
                    ulong head = Ld(c);
                    ulong fp = pa + fpOff;
                    if (obj - Ld(c + HotSlab<TArch>.CpuSlabAddr) < Ld(c + HotSlab<TArch>.CpuSlabSpan) && fp <= _longLimit && obj != head)
                    {
                        St(_base + fp, head);
                        St(c, obj);
                        return;
                    }
                }
            }
        }
    slow:
        FreeSlow(cpu, null, obj, "kfree");
    }

    /// <summary>
    /// The slow path of every free (<paramref name="s"/> null for kfree()): the pointer is resolved and validated,
    /// then freed to the CPU slab, to a debug cache's lists, or to its slab with __slab_free().
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void FreeSlow(Cpu cpu, KmemCache? s, ulong obj, string site)
    {
        if (TryRemoteFree(cpu, s, obj))
            return;
        CheckCpu(cpu);
        if (s is not null)
        {
            CheckCache(s);
            if (s.IsDestroyed)
                throw new SlabCacheException($"{site}({s.Name}): the cache was destroyed");
        }
        // kfree(NULL) and kfree(ZERO_SIZE_PTR) do nothing; kmem_cache_free(s, NULL) likewise.
        if (obj == 0 || (s is null && obj <= SlubConst.ZeroSizePtr))
            return;
        EnsureInit(cpu);
        BeginOp();
        try
        {
            if (cpu.SlabFlushRequested)
                HonourFlushRequest(cpu);
            if (!ResolveForFree(cpu, s, obj, site, out var cache, out ulong slabVa))
                return;
            if (cache.IsDebug)
            {
                FreeDebug(cpu, cache, slabVa, obj, site);
                return;
            }
            if (cache.SheafCapacity != 0)
            {
                ulong main = Ld(cpu.Percpu + cache.PcsOffset + HotSlab<TArch>.PcsMain);
                uint size = SheafSizeOf(main);
                if (size != 0 && Ld(SheafSlot(main, size - 1)) == obj)
                {
                    // The object on top of the main sheaf freed again: the naive double free.
                    ObjectErr(cache, slabVa, obj, "Object already free", SlabBug.ObjectAlreadyFree, printTrailer: true);
                    return;
                }
                if (FreeToPcs(cpu, cache, obj))
                    return;
            }
            FreeToSlab(cpu, cache, slabVa, obj);
        }
        finally
        {
            EndOp();
        }
    }

    /// <summary>do_slab_free() of one validated object: onto the CPU freelist if its slab is the CPU slab, else __slab_free().</summary>
    private void FreeToSlab(Cpu cpu, KmemCache cache, ulong slabVa, ulong obj)
    {
        byte* c = cpu.Percpu + cache.CpuSlabOffset;
        if (Ld(c + HotSlab<TArch>.CpuSlab) == slabVa)
        {
            if (Ld(c) == obj)
            {
                // set_freepointer()'s BUG_ON(object == fp): the naive double free.
                ObjectErr(cache, slabVa, obj, "Object already free", SlabBug.ObjectAlreadyFree, printTrailer: true);
                return;
            }
            SetFreePointer(cache, obj, Ld(c));
            St(c, obj);
            return;
        }
        if (!SlabFree(cpu, cache, slabVa, obj, obj, 1))
            ObjectErr(cache, slabVa, obj, "Object already free", SlabBug.ObjectAlreadyFree, printTrailer: true);
    }

    /// <summary>
    /// The common remote free without the bookkeeping of the full slow path: a well-formed object of a cache
    /// without debugging whose slab is not this CPU's goes straight to __slab_free(). Anything unusual (a debug
    /// cache, a bad pointer, a double free, a pending flush) returns false and takes the full path, which reports.
    /// </summary>
    private bool TryRemoteFree(Cpu cpu, KmemCache? s, ulong obj)
    {
        if (cpu.SlabFlushRequested || !ReferenceEquals(cpu.Machine, _m) || !TrySlabOf(s, obj, out var cache, out ulong slabVa))
            return false;
        if (cache.SheafCapacity != 0 || Ld(cpu.Percpu + cache.CpuSlabOffset + HotSlab<TArch>.CpuSlab) == slabVa)
            return false;
        return SlabFree(cpu, cache, slabVa, obj, obj, 1);
    }

    /// <summary>
    /// virt_to_slab() + cache_from_obj() + check_valid_pointer(): the slab and cache of a pointer being freed, or
    /// a report (not a direct-map address, not a slab page, another cache's object, not an object's start). A
    /// large kmalloc allocation given to kfree() is freed here.
    /// </summary>
    private bool ResolveForFree(Cpu cpu, KmemCache? s, ulong obj, string site, out KmemCache cache, out ulong slabVa)
    {
        cache = null!;
        slabVa = 0;
        if (!TryHostOfLinear(obj, 1, out _))
        {
            ReportBadAddress(s, obj, site);
            return false;
        }
        ulong pfn = (obj - TArch.PageOffset) >> PageSize.Shift;
        ulong headPfn = CompoundHeadPfn(pfn);
        byte* head = _mm.Desc(headPfn);
        uint type = MemMap<TArch>.PageType(head);
        if (type >> 24 != PageBits.PgtySlab)
        {
            if (s is null && type >> 24 == PageBits.PgtyLargeKmalloc && obj == PageAddress(headPfn))
            {
                FreeLargeKmalloc(cpu, headPfn);
                return false;
            }
            ReportNotSlab(s, obj, headPfn, site);
            return false;
        }
        slabVa = _mm.DescVa(headPfn);
        ulong cacheVa = Ld(head + HotSlab<TArch>.SlabCache);
        var owner = CacheAt(cacheVa);
        if (owner is null || owner.IsDestroyed)
        {
            Report(SlabBug.InvalidObjectPointer, s?.Name ?? "kmalloc", obj,
                $"SLUB <none>: no slab for object 0x{P(obj)}.\n(slab 0x{P(slabVa)} names cache 0x{P(cacheVa)}, which is not a live cache)");
            return false;
        }
        if (s is not null && !ReferenceEquals(owner, s))
        {
            Report(SlabBug.InvalidObjectPointer, s.Name, obj,
                $"------------[ cut here ]------------\ncache_from_obj: Wrong slab cache. {s.Name} but object is from {owner.Name}");
            return false;
        }
        if (!IsObjectOf(owner, head, obj))
        {
            SlabErr(owner, slabVa, $"Invalid object pointer 0x{P(obj)}", SlabBug.InvalidObjectPointer, obj);
            return false;
        }
        cache = owner;
        return true;
    }

    /// <summary>compound_head(): the head pfn of a tail page (bounds-checked), else the pfn itself.</summary>
    private ulong CompoundHeadPfn(ulong pfn)
    {
        ulong word = Ld(_mm.Desc(pfn) + TArch.PageLruOffset);
        if ((word & 1) != 0 && _mm.TryPfnOfDescVa(word - 1, out ulong head))
            return head;
        return pfn;
    }

    /// <summary>
    /// __slab_free(): put the object on its slab's freelist with the freelist/counters compare-and-swap. A frozen
    /// slab (some CPU's CPU slab) needs nothing else; a full slab becomes partial and an empty partial slab beyond
    /// min_partial is freed, both under list_lock, taken before the swap so the list state cannot change under it.
    /// </summary>
    private bool SlabFree(Cpu cpu, KmemCache s, ulong slabVa, ulong head, ulong tail, uint cnt)
    {
        byte* slab = SlabHost(slabVa);
        byte* n = s.NodeHost;
        bool locked = false, onNodePartial = false;
        ulong prior, newCounters;
        while (true)
        {
            if (locked)
            {
                SpinUnlock(n);
                locked = false;
            }
            prior = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
            uint inuse = SlabCounters.Inuse(counters);
            if (inuse < cnt)
                return false;   // more frees than allocated objects: already free (a check the emulator always makes)
            SetFreePointer(s, tail, prior);
            newCounters = SlabCounters.WithInuse(counters, inuse - cnt);
            bool wasFrozen = SlabCounters.Frozen(counters);
            if ((inuse - cnt == 0 || prior == 0) && !wasFrozen)
            {
                SpinLock(n);
                locked = true;
                onNodePartial = OnNodePartial(slab);
            }
            if (UpdateFreelist(slab, prior, counters, head, newCounters))
                break;
        }
        if (!locked)
            return true;   // frozen (a CPU slab), or partial staying partial
        if (prior != 0 && !onNodePartial)
        {
            // Partially free but off the node list: taken by get_partial() and about to be frozen.
            SpinUnlock(n);
            return true;
        }
        if (SlabCounters.Inuse(newCounters) == 0 && Ld(n + NodeOff.NrPartial) >= (ulong)s.MinPartial)
        {
            if (prior != 0)
                RemovePartial(s, slabVa);
            SpinUnlock(n);
            DiscardSlab(cpu, s, slabVa);
            return true;
        }
        if (prior == 0)
            AddPartial(s, slabVa, tail: true);   // was full
        SpinUnlock(n);
        return true;
    }

    /// <summary>free_to_partial_list(): a debug cache's free, one object, under list_lock, after free_debug_processing().</summary>
    private void FreeDebug(Cpu cpu, KmemCache s, ulong slabVa, ulong obj, string site)
    {
        byte* n = s.NodeHost;
        byte* slab = SlabHost(slabVa);
        bool discard = false;
        SpinLock(n);
        try
        {
            if (!FreeDebugProcessing(cpu, s, slabVa, obj, site))
                return;
            ulong prior = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
            uint inuse = SlabCounters.Inuse(counters) - 1;
            SetFreePointer(s, obj, prior);
            St(slab + HotSlab<TArch>.SlabFreelist, obj);
            St(slab + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(counters, inuse));
            discard = inuse == 0 && Ld(n + NodeOff.NrPartial) >= (ulong)s.MinPartial;
            if (prior == 0)
            {
                RemoveFull(s, slabVa);
                if (!discard)
                    AddPartial(s, slabVa, tail: true);
            }
            else if (discard)
            {
                RemovePartial(s, slabVa);
            }
            if (discard)
                DecSlabsNode(s, SlabCounters.Objects(counters));
        }
        finally
        {
            SpinUnlock(n);
        }
        if (discard)
            FreeSlab(cpu, s, slabVa);
    }

    /// <summary>free_debug_processing(): the checks, the free track, poisoning. False: the object is not freed.</summary>
    private bool FreeDebugProcessing(Cpu cpu, KmemCache s, ulong slabVa, ulong obj, string site)
    {
        byte* slab = SlabHost(slabVa);
        bool ok = false;
        if ((s.Flags & SlabFlags.ConsistencyChecks) != 0 && !CheckSlab(s, slabVa))
            goto fail;
        uint inuse = SlabCounters.Inuse(Ld(slab + HotSlab<TArch>.SlabCounters));
        if (inuse < 1)
        {
            SlabErr(s, slabVa, $"Slab has {inuse} allocated objects but 1 are to be freed", SlabBug.ObjectAlreadyFree, obj);
            goto fail;
        }
        if ((s.Flags & SlabFlags.ConsistencyChecks) != 0)
        {
            if (OnFreelist(s, slabVa, obj))
            {
                ObjectErr(s, slabVa, obj, "Object already free", SlabBug.ObjectAlreadyFree, printTrailer: true);
                goto fail;
            }
            if (!CheckObject(s, slabVa, obj, SlabPoison.RedActive))
                goto fail;
        }
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            SetTrack(cpu, s, obj, TrackItem.Free, site);
        Trace(s, slabVa, obj, alloc: false);
        InitObject(s, obj, SlabPoison.RedInactive);
        ok = true;
    fail:
        if (!ok)
            SlabFix(s, $"Object at 0x{P(obj)} not freed");
        return ok;
    }

    /// <summary>Frees a large kmalloc allocation: clear the page type, unaccount, give the compound page back.</summary>
    private void FreeLargeKmalloc(Cpu cpu, ulong pfn)
    {
        byte* desc = _mm.Desc(pfn);
        int order = SlabOrder(desc);
        MemMap<TArch>.PageType(desc) = PageBits.NoType;
        _m.ModNodeState(NodeStat.NrSlabUnreclaimable, -(1L << order));
        _pages.FreePages(cpu, pfn, order);
    }

    /// <summary>
    /// kmem_cache_free_bulk() (<paramref name="s"/> null: kfree_bulk()): a cache with sheaves takes
    /// free_to_pcs_bulk(); debug caches free one object at a time with the checks; otherwise detached freelists
    /// free the objects of one slab with one do_slab_free(). NULL and ZERO_SIZE_PTR entries are skipped.
    /// </summary>
    public void FreeBulk(Cpu cpu, KmemCache? s, ReadOnlySpan<ulong> objects)
    {
        if (objects.IsEmpty)
            return;
        CheckCpu(cpu);
        if (s is not null)
        {
            CheckCache(s);
            if (s.IsDestroyed)
                throw new SlabCacheException($"kmem_cache_free_bulk({s.Name}): the cache was destroyed");
        }
        if (s is not null && s.IsDebug)
        {
            foreach (ulong obj in objects)
                Free(cpu, s, obj);
            return;
        }
        BeginOp();
        ulong[]? rented = null;
        try
        {
            if (cpu.SlabFlushRequested)
                HonourFlushRequest(cpu);
            if (s is not null && s.SheafCapacity != 0)
            {
                FreeToPcsBulk(cpu, s, objects);
                return;
            }
            Span<ulong> p = objects.Length <= 64 ? stackalloc ulong[objects.Length] : (rented = System.Buffers.ArrayPool<ulong>.Shared.Rent(objects.Length)).AsSpan(0, objects.Length);
            int n = 0;
            foreach (ulong obj in objects)
                if (obj > SlubConst.ZeroSizePtr)
                    p[n++] = obj;
            FreeToSlabsBulk(cpu, s, p[..n]);
        }
        finally
        {
            if (rented is not null)
                System.Buffers.ArrayPool<ulong>.Shared.Return(rented);
            EndOp();
        }
    }
}
