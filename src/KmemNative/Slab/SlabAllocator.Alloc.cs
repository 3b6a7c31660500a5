using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Allocation: the lockless per-CPU fast path (slab_alloc_node) and ___slab_alloc(), its slow path.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>
    /// kmem_cache_alloc() on <paramref name="cpu"/>: pop the head of the CPU freelist. One compare checks that the
    /// head's free pointer lies inside the arena, which also fails for an empty freelist (NULL wraps around); an
    /// empty freelist, a CPU without a slab, and every debug cache take the slow path. Like the kernel's, the pop
    /// trusts the free pointer it reads: a pointer corrupted by a use-after-free write is handed out as is, and
    /// caught when it is freed (or by the consistency checker); it can never lead outside the arena.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Alloc(Cpu cpu, KmemCache s, Gfp gfp)
    {
        if (TryPopCpuFreelist(cpu, s, gfp, out ulong obj))
            return obj;
        if (s.SheafCapacity != 0)
            return AllocFromPcs(cpu, s, gfp);
        return Unsafe.As<SlabAllocator<TArch>>(s.Owner).AllocSlow(cpu, s, gfp, (uint)s.ObjectSize, "kmem_cache_alloc");
    }

    /// <summary>
    /// The lockless fast path shared by kmem_cache_alloc() and kmalloc(): pop the CPU freelist's head when it is an
    /// object of the arena (its free pointer in reach), zeroing it for __GFP_ZERO. False when the freelist is empty.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryPopCpuFreelist(Cpu cpu, KmemCache s, Gfp gfp, out ulong obj)
    {
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        obj = Ld(c);
        ulong pa = obj - TArch.PageOffset;
        if (pa > s.FpLimit)
            return false;
        St(c, Ld((byte*)(pa + s.FpHost)));
        if ((gfp & Gfp.Zero) != 0)
            ZeroObject(s, pa);
        return true;
    }

    /// <summary>swab() of an unsigned long: the byte-reversed address the hardened free pointer is mixed with.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Swab(ulong v) =>
        TArch.PointerSize == 8 ? BinaryPrimitives.ReverseEndianness(v) : BinaryPrimitives.ReverseEndianness((uint)v);

    /// <summary>__GFP_ZERO on the fast path: the object at physical address <paramref name="pa"/> (inside a slab).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ZeroObject(KmemCache s, ulong pa) =>
        new Span<byte>((byte*)(pa + s.FpHost - s.FpOffset), s.ObjectSize).Clear();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ZeroObject(ulong obj, uint bytes) => new Span<byte>(HostOfLinear(obj), (int)bytes).Clear();

    /// <summary>The slow path of every allocation: checks, debug caches, CPU slab refill, new slabs.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal ulong AllocSlow(Cpu cpu, KmemCache s, Gfp gfp, uint origSize, string site)
    {
        CheckCpu(cpu);
        if (ReferenceEquals(s, _notReady))
        {
            // kmalloc() before kmem_cache_init(): initialise, then serve the request for real.
            EnsureInit(cpu);
            return Kmalloc(cpu, origSize, gfp);
        }
        CheckCache(s);
        if (s.IsDestroyed)
            throw new SlabCacheException($"{site}({s.Name}): the cache was destroyed");
        BeginOp();
        try
        {
            ulong obj;
            if (s.IsDebug)
                obj = AllocDebug(cpu, s, gfp, origSize, site);
            else
            {
                // alloc_from_pcs() first for a cache with sheaves, then __slab_alloc_node().
                obj = s.SheafCapacity != 0 ? AllocFromPcsSlow(cpu, s, gfp) : 0;
                if (obj == 0)
                    obj = SlabAllocCpu(cpu, s, gfp);
            }
            if (obj != 0)
                PostAlloc(s, obj, gfp, origSize);
            return obj;
        }
        finally
        {
            EndOp();
        }
    }

    /// <summary>slab_post_alloc_hook(): __GFP_ZERO clears the object (the requested size for a red-zoned kmalloc object).</summary>
    private void PostAlloc(KmemCache s, ulong obj, Gfp gfp, uint origSize)
    {
        if ((gfp & Gfp.Zero) == 0)
            return;
        if (s.Ctor is not null)
            _m.Log.Warn($"WARNING: {s.Name}: __GFP_ZERO allocation from a cache with a constructor");
        uint zero = (uint)s.ObjectSize;
        if ((s.Flags & (SlabFlags.StoreUser | SlabFlags.RedZone)) != 0 && s.IsKmalloc)
            zero = origSize;
        ZeroObject(obj, zero);
    }

    /// <summary>
    /// ___slab_alloc() for a cache without debugging: take what remote CPUs freed to the CPU slab (get_freelist),
    /// else freeze a partial slab, else allocate a new slab, and load its freelist into <c>c-&gt;freelist</c>.
    /// </summary>
    private ulong SlabAllocCpu(Cpu cpu, KmemCache s, Gfp gfp)
    {
        if (cpu.SlabFlushRequested)
            HonourFlushRequest(cpu);
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        ulong slabVa = Ld(c + HotSlab<TArch>.CpuSlab);
        if ((s.Hardened || s.SheafCapacity != 0) && slabVa != 0 && Ld(c) is var head && head != 0 && IsObjectOf(s, SlabHost(slabVa), head))
        {
            // The CPU freelist of a cache whose inline fast path does not pop it: free pointers encoded, or
            // sheaves in front (their refills take objects here).
            St(c, GetFreePointer(s, head));
            return head;
        }
        if (slabVa != 0)
        {
            ulong stale = Ld(c);
            if (stale != 0)
            {
                // The fast path refused a non-empty freelist: the pointer it read leads outside the arena. Cut the
                // chain (its objects stay counted as in use) and fail this allocation with the report.
                ReportFreechain(s, slabVa, 0, stale, "Freechain corrupt");
                St(c, 0);
                return 0;
            }
            byte* slab = SlabHost(slabVa);
            ulong freelist = GetFreelist(slab);
            if (freelist != 0)
                return LoadFreelist(s, c, slabVa, freelist);
            // Full: the slab leaves the CPU unfrozen and on no list until an object comes back (__slab_free).
            ClearCpuSlab(c);
        }

        ulong partial = GetPartial(s);
        if (partial != 0)
        {
            ulong freelist = FreezeSlab(SlabHost(partial));
            SetCpuSlab(s, c, partial);
            return LoadFreelist(s, c, partial, freelist);
        }

        ulong pfn = NewSlab(cpu, s, gfp);
        if (pfn == PageAllocator<TArch>.NoPage)
            return 0;
        byte* desc = _mm.Desc(pfn);
        ulong fl = Ld(desc + HotSlab<TArch>.SlabFreelist);
        uint objects = SlabCounters.Objects(Ld(desc + HotSlab<TArch>.SlabCounters));
        // No other reference to the new slab yet: no compare-and-swap needed.
        St(desc + HotSlab<TArch>.SlabFreelist, 0);
        St(desc + HotSlab<TArch>.SlabCounters, SlabCounters.Make(objects, objects, frozen: true));
        IncSlabsNode(s, objects);
        ulong newVa = _mm.DescVa(pfn);
        SetCpuSlab(s, c, newVa);
        return LoadFreelist(s, c, newVa, fl);
    }

    /// <summary>load_freelist: the first object is returned, the rest becomes the CPU's lockless freelist.</summary>
    private ulong LoadFreelist(KmemCache s, byte* c, ulong slabVa, ulong freelist)
    {
        byte* slab = SlabHost(slabVa);
        if (!IsObjectOf(s, slab, freelist))
        {
            // Only corruption of the arena can put a foreign pointer at the head of a slab's freelist.
            ReportFreechain(s, slabVa, 0, freelist, "Freechain corrupt");
            St(c, 0);
            return 0;
        }
        St(c, GetFreePointer(s, freelist));
        St(c + HotSlab<TArch>.CpuTid, Ld(c + HotSlab<TArch>.CpuTid) + 1);
        return freelist;
    }

    /// <summary>Makes <paramref name="slabVa"/> the CPU slab: c-&gt;slab plus the emulator's range words.</summary>
    private void SetCpuSlab(KmemCache s, byte* c, ulong slabVa)
    {
        byte* slab = SlabHost(slabVa);
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        St(c + HotSlab<TArch>.CpuSlab, slabVa);
        if (s.SheafCapacity != 0)
        {
            // Frees of a cache with sheaves go to the sheaves: the inline "object of my CPU slab" test must fail.
            St(c + HotSlab<TArch>.CpuSlabAddr, 0);
            St(c + HotSlab<TArch>.CpuSlabSpan, 0);
            return;
        }
        St(c + HotSlab<TArch>.CpuSlabAddr, PageAddress(PfnOfSlab(slabVa)));
        St(c + HotSlab<TArch>.CpuSlabSpan, objects == 0 ? 0 : (ulong)s.RedLeftPad + (objects - 1) * (ulong)s.Size + 1);
    }

    private static void ClearCpuSlab(byte* c)
    {
        St(c, 0);
        St(c + HotSlab<TArch>.CpuSlab, 0);
        St(c + HotSlab<TArch>.CpuSlabAddr, 0);
        St(c + HotSlab<TArch>.CpuSlabSpan, 0);
        St(c + HotSlab<TArch>.CpuTid, Ld(c + HotSlab<TArch>.CpuTid) + 1);
    }

    /// <summary>get_partial_node(): the first slab on the node's partial list, taken off it (NULL when empty).</summary>
    private ulong GetPartial(KmemCache s)
    {
        byte* n = s.NodeHost;
        if (Ld(n + NodeOff.NrPartial) == 0)
            return 0;
        SpinLock(n);
        try
        {
            ulong head = s.NodeVa + (ulong)NodeOff.Partial;
            ulong first = MemMap<TArch>.Next(_mm.ListHost(head));
            if (first == head)
                return 0;
            ulong slabVa = first - (ulong)HotSlab<TArch>.SlabList;
            RemovePartial(s, slabVa);
            return slabVa;
        }
        finally
        {
            SpinUnlock(n);
        }
    }

    /// <summary>get_freelist(): take the whole slab freelist for the CPU; the slab stays frozen only if there was one.</summary>
    private ulong GetFreelist(byte* slab)
    {
        while (true)
        {
            ulong freelist = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
            ulong nc = SlabCounters.WithFrozen(SlabCounters.WithInuse(counters, SlabCounters.Objects(counters)), freelist != 0);
            if (UpdateFreelist(slab, freelist, counters, 0, nc))
                return freelist;
        }
    }

    /// <summary>freeze_slab(): a slab from the partial list becomes a CPU slab; its freelist goes to the CPU.</summary>
    private ulong FreezeSlab(byte* slab)
    {
        while (true)
        {
            ulong freelist = Ld(slab + HotSlab<TArch>.SlabFreelist);
            ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
            ulong nc = SlabCounters.WithFrozen(SlabCounters.WithInuse(counters, SlabCounters.Objects(counters)), true);
            if (UpdateFreelist(slab, freelist, counters, 0, nc))
                return freelist;
        }
    }

    // ---- debug caches: one object at a time under list_lock -----------------------------------------------

    /// <summary>
    /// The debug allocation path: alloc_single_from_partial() from the first partial slab, else
    /// alloc_single_from_new_slab(), each object going through alloc_debug_processing(). A check that fails marks
    /// the slab full (the kernel's repair) and the allocation fails with the report.
    /// </summary>
    private ulong AllocDebug(Cpu cpu, KmemCache s, Gfp gfp, uint origSize, string site)
    {
        byte* n = s.NodeHost;
        ulong obj = 0;
        SpinLock(n);
        try
        {
            ulong head = s.NodeVa + (ulong)NodeOff.Partial;
            ulong first = MemMap<TArch>.Next(_mm.ListHost(head));
            if (first != head)
            {
                ulong slabVa = first - (ulong)HotSlab<TArch>.SlabList;
                obj = AllocSingle(cpu, s, slabVa, origSize, fromPartial: true);
                if (obj == 0)
                    return 0;
            }
        }
        finally
        {
            SpinUnlock(n);
        }

        if (obj == 0)
        {
            ulong pfn = NewSlab(cpu, s, gfp);
            if (pfn == PageAllocator<TArch>.NoPage)
                return 0;
            ulong slabVa = _mm.DescVa(pfn);
            SpinLock(n);
            try
            {
                obj = AllocSingle(cpu, s, slabVa, origSize, fromPartial: false);
                byte* slab = _mm.Desc(pfn);
                ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
                IncSlabsNode(s, SlabCounters.Objects(counters));
                if (SlabCounters.Inuse(counters) == SlabCounters.Objects(counters))
                    AddFull(s, slabVa);
                else
                    AddPartial(s, slabVa, tail: false);
            }
            finally
            {
                SpinUnlock(n);
            }
            if (obj == 0)
                return 0;
        }
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            SetTrack(cpu, s, obj, TrackItem.Alloc, site);
        return obj;
    }

    /// <summary>Takes one object off a slab's freelist with the debug checks; list_lock held.</summary>
    private ulong AllocSingle(Cpu cpu, KmemCache s, ulong slabVa, uint origSize, bool fromPartial)
    {
        byte* slab = SlabHost(slabVa);
        ulong obj = Ld(slab + HotSlab<TArch>.SlabFreelist);
        ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
        if (!IsObjectOf(s, slab, obj))
        {
            // alloc_consistency_checks(): check_valid_pointer() before the pointer is followed.
            ObjectErr(s, slabVa, obj, "Freelist Pointer check fails", SlabBug.FreechainCorrupt, printTrailer: false);
            MarkAllUsed(s, slabVa, fromPartial);
            return 0;
        }
        St(slab + HotSlab<TArch>.SlabFreelist, GetFreePointer(s, obj));
        St(slab + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(counters, SlabCounters.Inuse(counters) + 1));
        if (!AllocDebugProcessing(cpu, s, slabVa, obj, origSize))
        {
            MarkAllUsed(s, slabVa, fromPartial);
            return 0;
        }
        if (fromPartial && SlabCounters.Inuse(Ld(slab + HotSlab<TArch>.SlabCounters)) == SlabCounters.Objects(counters))
        {
            RemovePartial(s, slabVa);
            AddFull(s, slabVa);
        }
        return obj;
    }

    /// <summary>"Marking all objects used": a slab that failed its checks keeps its objects and leaves the lists.</summary>
    private void MarkAllUsed(KmemCache s, ulong slabVa, bool onPartial)
    {
        byte* slab = SlabHost(slabVa);
        SlabFix(s, "Marking all objects used");
        ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
        St(slab + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(counters, SlabCounters.Objects(counters)));
        St(slab + HotSlab<TArch>.SlabFreelist, 0);
        if (onPartial)
            RemovePartial(s, slabVa);
    }

    // ---- internal allocations (struct kmem_cache, node structures, names) ---------------------------------

    /// <summary>kmem_cache_alloc(s, GFP_KERNEL) for the allocator's own structures.</summary>
    private ulong AllocForKernel(Cpu cpu, KmemCache s, bool zero)
    {
        ulong va = Alloc(cpu, s, zero ? Gfp.Kernel | Gfp.Zero : Gfp.Kernel);
        return va;
    }

    // ---- bulk -------------------------------------------------------------------------------------------

    /// <summary>
    /// kmem_cache_alloc_bulk(): fills <paramref name="objects"/> from the CPU freelist, refilling through the slow
    /// path as needed. All or nothing: on failure the objects taken so far are freed and 0 is returned.
    /// </summary>
    public int AllocBulk(Cpu cpu, KmemCache s, Gfp gfp, Span<ulong> objects)
    {
        if (s.SheafCapacity != 0)
            return AllocBulkSheaves(cpu, s, gfp, objects);
        int i = 0;
        try
        {
            for (; i < objects.Length; i++)
            {
                ulong obj = Alloc(cpu, s, gfp);
                if (obj == 0)
                {
                    FreeBulk(cpu, s, objects[..i]);
                    return 0;
                }
                objects[i] = obj;
            }
        }
        catch
        {
            FreeBulk(cpu, s, objects[..i]);
            throw;
        }
        return objects.Length;
    }

    /// <summary>kmem_cache_alloc_bulk() of a cache with sheaves: alloc_from_pcs_bulk(), then the slabs for the rest.</summary>
    private int AllocBulkSheaves(Cpu cpu, KmemCache s, Gfp gfp, Span<ulong> objects)
    {
        CheckCpu(cpu);
        CheckCache(s);
        if (s.IsDestroyed)
            throw new SlabCacheException($"kmem_cache_alloc_bulk({s.Name}): the cache was destroyed");
        BeginOp();
        int i = 0;
        try
        {
            if (cpu.SlabFlushRequested)
                HonourFlushRequest(cpu);
            i = AllocFromPcsBulk(cpu, s, objects);
            for (; i < objects.Length; i++)
            {
                ulong obj = SlabAllocCpu(cpu, s, gfp);
                if (obj == 0)
                {
                    // Out of memory: the objects go back to the slabs, not to the sheaves.
                    FreeToSlabsBulk(cpu, s, objects[..i]);
                    return 0;
                }
                objects[i] = obj;
            }
            if ((gfp & Gfp.Zero) != 0)
                foreach (ulong obj in objects)
                    ZeroObject(obj, (uint)s.ObjectSize);
            return objects.Length;
        }
        finally
        {
            EndOp();
        }
    }
}
