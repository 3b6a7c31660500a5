using System.Buffers;
using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Per-CPU sheaves (6.18, opt-in with kmem_cache_args.sheaf_capacity): a per-CPU main and spare array of object
// pointers in front of the slabs, a per-node barn of full and empty sheaves, refills and flushes in bulk
// (__kmem_cache_alloc_bulk, __kmem_cache_free_bulk with detached freelists).
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>MAX_FULL_SHEAVES: full sheaves a barn takes before frees flush sheaves to the slabs.</summary>
    private const int MaxFullSheaves = 10;

    /// <summary>PCS_BATCH_MAX: objects moved out of the main sheaf per step of sheaf_flush_main().</summary>
    private const int PcsBatchMax = 32;

    private readonly Stack<int> _freePcsSlots = new();

    private static class BarnOff
    {
        public static readonly int Lock = HotSlab<TArch>.L.NodeBarn.Offset("lock");
        public static readonly int Full = HotSlab<TArch>.L.NodeBarn.Offset("sheaves_full");
        public static readonly int Empty = HotSlab<TArch>.L.NodeBarn.Offset("sheaves_empty");
        public static readonly int NrFull = HotSlab<TArch>.L.NodeBarn.Offset("nr_full");
        public static readonly int NrEmpty = HotSlab<TArch>.L.NodeBarn.Offset("nr_empty");
    }

    private static readonly int SheafBarnList = HotSlab<TArch>.L.SlabSheaf.Offset("barn_list");
    private static readonly int SheafCache = HotSlab<TArch>.L.SlabSheaf.Offset("cache");
    private static readonly int SheafNode = HotSlab<TArch>.L.SlabSheaf.Offset("node");
    private static readonly int KmemCacheNodeBarn = HotSlab<TArch>.L.KmemCacheNode.Offset("barn");

    // ---- the fast paths ---------------------------------------------------------------------------------

    /// <summary>
    /// alloc_from_pcs(): pop the top of the CPU's main sheaf. The sheaf pointer is checked to lie inside the
    /// arena and the size against the capacity; an empty main sheaf, and __GFP_ZERO, take the slow path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AllocFromPcs(Cpu cpu, KmemCache s, Gfp gfp)
    {
        byte* pcs = cpu.Percpu + s.PcsOffset;
        ulong mainPa = Ld(pcs + HotSlab<TArch>.PcsMain) - TArch.PageOffset;
        if (mainPa <= s.SheafLimit && (gfp & Gfp.Zero) == 0)
        {
            byte* main = s.ArenaBase + mainPa;
            uint top = *(uint*)(main + HotSlab<TArch>.SheafSize) - 1;
            if (top < (uint)s.SheafCapacity)
            {
                *(uint*)(main + HotSlab<TArch>.SheafSize) = top;
                return Ld(main + HotSlab<TArch>.SheafObjects + (nint)top * TArch.PointerSize);
            }
        }
        return Unsafe.As<SlabAllocator<TArch>>(s.Owner).AllocSlow(cpu, s, gfp, (uint)s.ObjectSize, "kmem_cache_alloc");
    }

    /// <summary>
    /// free_to_pcs(): push an object of <paramref name="s"/> on the CPU's main sheaf. The object must lie in a
    /// slab page of the cache (its struct page, through the compound head, has the slab type and names the cache);
    /// like the CPU-slab fast path, the pointer is not checked to be an object's start (the flush to the slabs
    /// and the consistency check are). False (the slow path decides) when the main sheaf is full, the pointer is
    /// not in a slab of the cache, or it is the object on top already (the naive double free).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool FreeToPcsFast(Cpu cpu, KmemCache s, ulong obj)
    {
        ulong pa = obj - TArch.PageOffset;
        if (pa >= _lowmemBytes)
            return false;
        byte* desc = _memmapHost + (pa >> PageSize.Shift) * (ulong)TArch.StructPageSize;
        ulong word = Ld(desc + TArch.PageLruOffset);
        if ((word & 1) != 0)
            return FreeToPcsTail(cpu, s, obj);
        if (word != s.Va || MemMap<TArch>.PageType(desc) != (uint)PageBits.PgtySlab << 24)
            return false;
        return PushToMain(cpu, s, obj);
    }

    /// <summary>free_to_pcs() of an object in a tail page of a higher-order slab: the full checks, then the push.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FreeToPcsTail(Cpu cpu, KmemCache s, ulong obj) =>
        ReferenceEquals(cpu.Machine, _m) && TrySlabOf(s, obj, out _, out _) && PushToMain(cpu, s, obj);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool PushToMain(Cpu cpu, KmemCache s, ulong obj)
    {
        byte* pcs = cpu.Percpu + s.PcsOffset;
        ulong mainPa = Ld(pcs + HotSlab<TArch>.PcsMain) - TArch.PageOffset;
        if (mainPa > s.SheafLimit)
            return false;
        byte* main = s.ArenaBase + mainPa;
        uint size = *(uint*)(main + HotSlab<TArch>.SheafSize);
        byte* slot = main + HotSlab<TArch>.SheafObjects + (nint)size * TArch.PointerSize;
        if (size >= (uint)s.SheafCapacity || (size != 0 && Ld(slot - TArch.PointerSize) == obj))
            return false;
        St(slot, obj);
        *(uint*)(main + HotSlab<TArch>.SheafSize) = size + 1;
        return true;
    }

    /// <summary>
    /// The checks of the remote free and sheaf paths: <paramref name="obj"/> is the start of an object of a slab
    /// of a live cache without debugging (of <paramref name="s"/> when given), found through its struct page.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TrySlabOf(KmemCache? s, ulong obj, out KmemCache cache, out ulong slabVa)
    {
        cache = null!;
        slabVa = 0;
        ulong pa = obj - TArch.PageOffset;
        if (pa >= _lowmemBytes)
            return false;
        byte* desc = _memmapHost + (pa >> PageSize.Shift) * (ulong)TArch.StructPageSize;
        ulong word = Ld(desc + TArch.PageLruOffset);
        if ((word & 1) != 0)
        {
            ulong off = word - 1 - _memmapVa;
            if (off >= _memmapBytes || (off & (ulong)(TArch.StructPageSize - 1)) != 0)
                return false;
            desc = _memmapHost + off;
            word = Ld(desc + TArch.PageLruOffset);
        }
        if (MemMap<TArch>.PageType(desc) != (uint)PageBits.PgtySlab << 24)
            return false;
        KmemCache? c = s ?? CacheAt(word);
        if (c is null || word != c.Va || c.IsDebug || c.IsDestroyed || !ReferenceEquals(c.Owner, this))
            return false;
        ulong descOff = (ulong)(desc - _memmapHost);
        ulong first = TArch.PageOffset + ((descOff / (ulong)TArch.StructPageSize) << PageSize.Shift);
        ulong objOff = obj - first;
        uint objects = SlabCounters.Objects(Ld(desc + HotSlab<TArch>.SlabCounters));
        if (objOff >= (ulong)objects * (ulong)c.Size || !c.IsMultipleOfSize((uint)objOff))
            return false;
        cache = c;
        slabVa = _memmapVa + descOff;
        return true;
    }

    // ---- the slow paths ---------------------------------------------------------------------------------

    private static byte* Pcs(Cpu cpu, KmemCache s) => cpu.Percpu + s.PcsOffset;

    private uint SheafSizeOf(ulong sheaf) => *(uint*)(HostOfLinear(sheaf) + HotSlab<TArch>.SheafSize);

    private void SetSheafSize(ulong sheaf, uint size) => *(uint*)(HostOfLinear(sheaf) + HotSlab<TArch>.SheafSize) = size;

    private byte* SheafSlot(ulong sheaf, uint index) => HostOfLinear(sheaf) + HotSlab<TArch>.SheafObjects + (nint)index * TArch.PointerSize;

    /// <summary>
    /// alloc_from_pcs() when the main sheaf is empty (or the request wants zeroing): __pcs_replace_empty_main(),
    /// then the pop; 0 when no full sheaf could be had (the caller allocates from the slabs).
    /// </summary>
    private ulong AllocFromPcsSlow(Cpu cpu, KmemCache s, Gfp gfp)
    {
        if (cpu.SlabFlushRequested)
            HonourFlushRequest(cpu);
        byte* pcs = Pcs(cpu, s);
        if (SheafSizeOf(Ld(pcs + HotSlab<TArch>.PcsMain)) == 0 && !ReplaceEmptyMain(cpu, s, pcs, gfp))
            return 0;
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
        uint top = SheafSizeOf(main) - 1;
        SetSheafSize(main, top);
        return Ld(SheafSlot(main, top));
    }

    /// <summary>
    /// __pcs_replace_empty_main(): a non-empty spare becomes main; else the barn trades a full sheaf for the empty
    /// main; else, if the request may block, an empty sheaf (the spare, one from the barn, or a new one) is
    /// refilled from the slabs in bulk and installed.
    /// </summary>
    private bool ReplaceEmptyMain(Cpu cpu, KmemCache s, byte* pcs, Gfp gfp)
    {
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
        ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
        if (spare != 0 && SheafSizeOf(spare) > 0)
        {
            St(pcs + HotSlab<TArch>.PcsMain, spare);
            St(pcs + HotSlab<TArch>.PcsSpare, main);
            return true;
        }
        ulong full = BarnReplaceEmptySheaf(s, main);
        if (full != 0)
        {
            St(pcs + HotSlab<TArch>.PcsMain, full);
            return true;
        }
        if (!GfpFlags.AllowBlocking(gfp))
            return false;
        ulong empty;
        if (spare != 0)
        {
            empty = spare;
            St(pcs + HotSlab<TArch>.PcsSpare, 0);
        }
        else
        {
            empty = BarnGetEmptySheaf(s);
        }
        if (empty != 0)
        {
            if (RefillSheaf(cpu, s, empty, gfp))
            {
                full = empty;
            }
            else
            {
                // Very low on memory: don't bother with the barn.
                FreeEmptySheaf(cpu, empty);
            }
        }
        else
        {
            full = AllocFullSheaf(cpu, s, gfp);
        }
        if (full == 0)
            return false;
        // No preemption here: main is still the empty sheaf we started with.
        main = Ld(pcs + HotSlab<TArch>.PcsMain);
        spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
        if (SheafSizeOf(main) == 0)
        {
            BarnPutEmptySheaf(s, main);
            St(pcs + HotSlab<TArch>.PcsMain, full);
        }
        else if (spare == 0)
        {
            St(pcs + HotSlab<TArch>.PcsSpare, full);
        }
        else if (SheafSizeOf(spare) == 0)
        {
            BarnPutEmptySheaf(s, spare);
            St(pcs + HotSlab<TArch>.PcsSpare, full);
        }
        else
        {
            BarnPutFullSheaf(s, full);
        }
        return true;
    }

    /// <summary>
    /// free_to_pcs() from the slow path: make room with __pcs_replace_full_main() when the main sheaf is full, then
    /// push. False when no room could be made (the object goes to its slab).
    /// </summary>
    private bool FreeToPcs(Cpu cpu, KmemCache s, ulong obj)
    {
        byte* pcs = Pcs(cpu, s);
        if (SheafSizeOf(Ld(pcs + HotSlab<TArch>.PcsMain)) >= (uint)s.SheafCapacity && !ReplaceFullMain(cpu, s, pcs))
            return false;
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
        uint size = SheafSizeOf(main);
        St(SheafSlot(main, size), obj);
        SetSheafSize(main, size + 1);
        return true;
    }

    /// <summary>
    /// __pcs_replace_full_main(): an empty sheaf from the barn becomes main (main becoming the spare); a spare
    /// with room is swapped in; the barn trades an empty sheaf for the full main unless it holds
    /// MAX_FULL_SHEAVES already, in which case the full spare is flushed to the slabs and reused; without
    /// empty sheaves a new one is allocated (GFP_NOWAIT), and failing that the main sheaf is flushed.
    /// </summary>
    private bool ReplaceFullMain(Cpu cpu, KmemCache s, byte* pcs)
    {
        while (true)
        {
            ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
            ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
            ulong empty;
            if (spare == 0)
            {
                empty = BarnGetEmptySheaf(s);
                if (empty != 0)
                {
                    St(pcs + HotSlab<TArch>.PcsSpare, main);
                    St(pcs + HotSlab<TArch>.PcsMain, empty);
                    return true;
                }
            }
            else
            {
                if (SheafSizeOf(spare) < (uint)s.SheafCapacity)
                {
                    St(pcs + HotSlab<TArch>.PcsMain, spare);
                    St(pcs + HotSlab<TArch>.PcsSpare, main);
                    return true;
                }
                empty = BarnReplaceFullSheaf(s, main, out bool tooMany);
                if (empty != 0)
                {
                    St(pcs + HotSlab<TArch>.PcsMain, empty);
                    return true;
                }
                if (tooMany)
                {
                    // -E2BIG: the spare exists and is full; flush it and use it as the empty sheaf.
                    St(pcs + HotSlab<TArch>.PcsSpare, 0);
                    SheafFlushUnused(cpu, s, spare);
                    InstallEmptySheaf(s, pcs, spare);
                    return true;
                }
            }
            empty = AllocEmptySheaf(cpu, s, Gfp.NoWait);
            if (empty != 0)
            {
                InstallEmptySheaf(s, pcs, empty);
                return true;
            }
            if (!SheafFlushMain(cpu, s))
                return false;
            if (SheafSizeOf(Ld(pcs + HotSlab<TArch>.PcsMain)) < (uint)s.SheafCapacity)
                return true;
        }
    }

    /// <summary>__pcs_install_empty_sheaf().</summary>
    private void InstallEmptySheaf(KmemCache s, byte* pcs, ulong empty)
    {
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
        ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
        if (spare == 0)
        {
            St(pcs + HotSlab<TArch>.PcsSpare, main);
            St(pcs + HotSlab<TArch>.PcsMain, empty);
            return;
        }
        if (SheafSizeOf(main) < (uint)s.SheafCapacity)
        {
            BarnPutEmptySheaf(s, empty);
            return;
        }
        if (SheafSizeOf(spare) < (uint)s.SheafCapacity)
        {
            St(pcs + HotSlab<TArch>.PcsMain, spare);
            St(pcs + HotSlab<TArch>.PcsSpare, main);
            BarnPutEmptySheaf(s, empty);
            return;
        }
        // barn_replace_full_sheaf() found no empty sheaf but one was allocated: finish the job.
        BarnPutFullSheaf(s, main);
        St(pcs + HotSlab<TArch>.PcsMain, empty);
    }

    // ---- sheaves: allocation, refill, flush ------------------------------------------------------------

    /// <summary>alloc_empty_sheaf(): kzalloc(struct_size(sheaf, objects, s-&gt;sheaf_capacity)), sheaf-&gt;cache = s.</summary>
    private ulong AllocEmptySheaf(Cpu cpu, KmemCache s, Gfp gfp)
    {
        // OBJCGS_CLEAR_MASK: the sheaf is the allocator's, not charged and not of the caller's zone.
        gfp = (gfp & ~(Gfp.Dma | Gfp.Reclaimable | Gfp.Account | Gfp.NoFail)) | Gfp.Zero;
        ulong sheaf = Kmalloc(cpu, (ulong)_l.SheafBytes(s.SheafCapacity), gfp);
        if (sheaf == 0)
            return 0;
        St(HostOfLinear(sheaf) + SheafCache, s.Va);
        return sheaf;
    }

    /// <summary>free_empty_sheaf(): kfree().</summary>
    private void FreeEmptySheaf(Cpu cpu, ulong sheaf) => Kfree(cpu, sheaf);

    /// <summary>alloc_full_sheaf(): a new sheaf refilled to capacity, or 0.</summary>
    private ulong AllocFullSheaf(Cpu cpu, KmemCache s, Gfp gfp)
    {
        ulong sheaf = AllocEmptySheaf(cpu, s, gfp);
        if (sheaf == 0)
            return 0;
        if (!RefillSheaf(cpu, s, sheaf, gfp))
        {
            FreeEmptySheaf(cpu, sheaf);
            return 0;
        }
        return sheaf;
    }

    /// <summary>refill_sheaf(): __kmem_cache_alloc_bulk() of the missing objects straight into the sheaf.</summary>
    private bool RefillSheaf(Cpu cpu, KmemCache s, ulong sheaf, Gfp gfp)
    {
        uint size = SheafSizeOf(sheaf);
        int toFill = s.SheafCapacity - (int)size;
        if (toFill <= 0)
            return true;
        byte* dest = SheafSlot(sheaf, size);
        for (int i = 0; i < toFill; i++)
        {
            ulong obj = SlabAllocCpu(cpu, s, gfp);
            if (obj == 0)
            {
                // __kmem_cache_alloc_bulk() is all or nothing: give back what was taken.
                var taken = new ulong[i];
                for (int j = 0; j < i; j++)
                    taken[j] = Ld(dest + (nint)j * TArch.PointerSize);
                FreeToSlabsBulk(cpu, s, taken);
                return false;
            }
            St(dest + (nint)i * TArch.PointerSize, obj);
        }
        SetSheafSize(sheaf, (uint)s.SheafCapacity);
        return true;
    }

    /// <summary>
    /// sheaf_flush_main(): the main sheaf's objects go back to their slabs, PCS_BATCH_MAX at a time (taken from
    /// the top). True if anything was flushed.
    /// </summary>
    private bool SheafFlushMain(Cpu cpu, KmemCache s)
    {
        bool flushed = false;
        Span<ulong> batch = stackalloc ulong[PcsBatchMax];
        while (true)
        {
            ulong main = Ld(Pcs(cpu, s) + HotSlab<TArch>.PcsMain);
            uint size = SheafSizeOf(main);
            int n = (int)Math.Min((uint)PcsBatchMax, size);
            if (n == 0)
                return flushed;
            size -= (uint)n;
            SetSheafSize(main, size);
            for (int i = 0; i < n; i++)
                batch[i] = Ld(SheafSlot(main, size + (uint)i));
            FreeToSlabsBulk(cpu, s, batch[..n]);
            flushed = true;
        }
    }

    /// <summary>sheaf_flush_unused(): every object of a sheaf no CPU uses goes back to its slab.</summary>
    private void SheafFlushUnused(Cpu cpu, KmemCache s, ulong sheaf)
    {
        uint size = SheafSizeOf(sheaf);
        if (size == 0)
            return;
        var objs = ArrayPool<ulong>.Shared.Rent((int)size);
        try
        {
            for (uint i = 0; i < size; i++)
                objs[i] = Ld(SheafSlot(sheaf, i));
            SetSheafSize(sheaf, 0);
            FreeToSlabsBulk(cpu, s, objs.AsSpan(0, (int)size));
        }
        finally
        {
            ArrayPool<ulong>.Shared.Return(objs);
        }
    }

    /// <summary>pcs_flush_all() for <paramref name="cpu"/> (run by it or with it claimed): the spare is flushed and freed, main flushed.</summary>
    private void PcsFlushAll(Cpu cpu, KmemCache s)
    {
        if (s.SheafCapacity == 0 || s.PcsSlot < 0)
            return;
        byte* pcs = Pcs(cpu, s);
        ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
        St(pcs + HotSlab<TArch>.PcsSpare, 0);
        if (spare != 0)
        {
            SheafFlushUnused(cpu, s, spare);
            FreeEmptySheaf(cpu, spare);
        }
        if (Ld(pcs + HotSlab<TArch>.PcsMain) != 0)
            SheafFlushMain(cpu, s);
    }

    /// <summary>has_pcs_used().</summary>
    private bool HasPcsUsed(Cpu cpu, KmemCache s)
    {
        if (s.SheafCapacity == 0 || s.PcsSlot < 0)
            return false;
        byte* pcs = Pcs(cpu, s);
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
        return Ld(pcs + HotSlab<TArch>.PcsSpare) != 0 || (main != 0 && SheafSizeOf(main) != 0);
    }

    // ---- the barn ---------------------------------------------------------------------------------------

    private void BarnLock(KmemCache s)
    {
        ref int word = ref *(int*)(s.BarnHost + BarnOff.Lock);
        if (Interlocked.CompareExchange(ref word, 1, 0) == 0)
            return;
        var spin = new SpinWait();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0)
            spin.SpinOnce(sleep1Threshold: -1);
    }

    private void BarnUnlock(KmemCache s) => Volatile.Write(ref *(int*)(s.BarnHost + BarnOff.Lock), 0);

    private ref uint BarnCount(KmemCache s, int field) => ref *(uint*)(s.BarnHost + field);

    /// <summary>list_first_entry() of a barn list, unlinked; 0 when empty.</summary>
    private ulong BarnTakeFirst(KmemCache s, int listOff, int countOff)
    {
        ulong head = s.BarnVa + (ulong)listOff;
        ulong first = MemMap<TArch>.Next(_mm.ListHost(head));
        if (first == head)
            return 0;
        _mm.ListDel(first);
        BarnCount(s, countOff)--;
        return first - (ulong)SheafBarnList;
    }

    private void BarnAdd(KmemCache s, ulong sheaf, int listOff, int countOff)
    {
        _mm.ListAdd(sheaf + (ulong)SheafBarnList, s.BarnVa + (ulong)listOff);
        BarnCount(s, countOff)++;
    }

    /// <summary>barn_get_empty_sheaf().</summary>
    private ulong BarnGetEmptySheaf(KmemCache s)
    {
        BarnLock(s);
        try
        {
            return BarnCount(s, BarnOff.NrEmpty) != 0 ? BarnTakeFirst(s, BarnOff.Empty, BarnOff.NrEmpty) : 0;
        }
        finally
        {
            BarnUnlock(s);
        }
    }

    /// <summary>barn_put_empty_sheaf() (no limit checked: used to undo).</summary>
    private void BarnPutEmptySheaf(KmemCache s, ulong sheaf)
    {
        BarnLock(s);
        try
        {
            BarnAdd(s, sheaf, BarnOff.Empty, BarnOff.NrEmpty);
        }
        finally
        {
            BarnUnlock(s);
        }
    }

    /// <summary>barn_put_full_sheaf() (no limit checked).</summary>
    private void BarnPutFullSheaf(KmemCache s, ulong sheaf)
    {
        BarnLock(s);
        try
        {
            BarnAdd(s, sheaf, BarnOff.Full, BarnOff.NrFull);
        }
        finally
        {
            BarnUnlock(s);
        }
    }

    /// <summary>barn_replace_empty_sheaf(): a full sheaf for the given empty one, or 0.</summary>
    private ulong BarnReplaceEmptySheaf(KmemCache s, ulong empty)
    {
        BarnLock(s);
        try
        {
            if (BarnCount(s, BarnOff.NrFull) == 0)
                return 0;
            ulong full = BarnTakeFirst(s, BarnOff.Full, BarnOff.NrFull);
            BarnAdd(s, empty, BarnOff.Empty, BarnOff.NrEmpty);
            return full;
        }
        finally
        {
            BarnUnlock(s);
        }
    }

    /// <summary>
    /// barn_replace_full_sheaf(): an empty sheaf for the given full one; 0 with <paramref name="tooMany"/> when the
    /// barn already holds MAX_FULL_SHEAVES (-E2BIG), 0 without it when it has no empty sheaf (-ENOMEM).
    /// </summary>
    private ulong BarnReplaceFullSheaf(KmemCache s, ulong full, out bool tooMany)
    {
        BarnLock(s);
        try
        {
            tooMany = BarnCount(s, BarnOff.NrFull) >= MaxFullSheaves;
            if (tooMany || BarnCount(s, BarnOff.NrEmpty) == 0)
                return 0;
            ulong empty = BarnTakeFirst(s, BarnOff.Empty, BarnOff.NrEmpty);
            BarnAdd(s, full, BarnOff.Full, BarnOff.NrFull);
            return empty;
        }
        finally
        {
            BarnUnlock(s);
        }
    }

    /// <summary>barn_shrink(): every full sheaf of the barn flushed to the slabs, every sheaf freed.</summary>
    private void BarnShrink(Cpu cpu, KmemCache s)
    {
        if (s.BarnVa == 0)
            return;
        var full = new List<ulong>();
        var empty = new List<ulong>();
        BarnLock(s);
        try
        {
            for (ulong sh; (sh = BarnTakeFirst(s, BarnOff.Full, BarnOff.NrFull)) != 0;)
                full.Add(sh);
            for (ulong sh; (sh = BarnTakeFirst(s, BarnOff.Empty, BarnOff.NrEmpty)) != 0;)
                empty.Add(sh);
        }
        finally
        {
            BarnUnlock(s);
        }
        foreach (ulong sh in full)
        {
            SheafFlushUnused(cpu, s, sh);
            FreeEmptySheaf(cpu, sh);
        }
        foreach (ulong sh in empty)
            FreeEmptySheaf(cpu, sh);
    }

    // ---- set-up and tear-down ---------------------------------------------------------------------------

    /// <summary>
    /// The sheaves part of kmem_cache_open(): the node's barn (kmalloc'ed), s-&gt;cpu_sheaves in the per-CPU area
    /// and an empty main sheaf for every CPU (init_percpu_sheaves()). False when memory ran out.
    /// </summary>
    private bool InitSheaves(Cpu cpu, KmemCache s)
    {
        ulong barn = Kmalloc(cpu, (ulong)_l.NodeBarn.Size, Gfp.Kernel | Gfp.Zero);
        if (barn == 0)
            return false;
        s.BarnVa = barn;
        s.BarnHost = HostOfLinear(barn);
        _mm.InitListHead(barn + (ulong)BarnOff.Full);
        _mm.InitListHead(barn + (ulong)BarnOff.Empty);
        St(s.NodeHost + KmemCacheNodeBarn, barn);
        int slot = _freePcsSlots.Count > 0 ? _freePcsSlots.Pop() : _m.PercpuAlloc(_l.PercpuSheaves.Size, TArch.PointerSize);
        s.PcsSlot = slot;
        s.PcsOffset = slot;
        foreach (var c in _m.Cpus)
            new Span<byte>(c.Percpu + slot, _l.PercpuSheaves.Size).Clear();
        foreach (var c in _m.Cpus)
        {
            ulong main = AllocEmptySheaf(cpu, s, Gfp.Kernel);
            if (main == 0)
                return false;
            St(c.Percpu + slot + HotSlab<TArch>.PcsMain, main);
        }
        WriteKmemCache(s);
        return true;
    }

    /// <summary>
    /// pcs_destroy() and the barn's kfree() in free_kmem_cache_nodes(): the cache is flushed, so the main sheaves
    /// are empty and the barn holds nothing (anything found is flushed first).
    /// </summary>
    private void ReleaseSheaves(Cpu cpu, KmemCache s)
    {
        if (s.PcsSlot >= 0)
        {
            foreach (var c in _m.Cpus)
            {
                byte* pcs = c.Percpu + s.PcsSlot;
                foreach (int field in (ReadOnlySpan<int>)[HotSlab<TArch>.PcsSpare, HotSlab<TArch>.PcsMain])
                {
                    ulong sheaf = Ld(pcs + field);
                    if (sheaf == 0)
                        continue;
                    SheafFlushUnused(cpu, s, sheaf);
                    FreeEmptySheaf(cpu, sheaf);
                }
                new Span<byte>(pcs, _l.PercpuSheaves.Size).Clear();
            }
            _freePcsSlots.Push(s.PcsSlot);
            s.PcsSlot = -1;
            s.PcsOffset = 0;
        }
        if (s.BarnVa != 0)
        {
            BarnShrink(cpu, s);
            Kfree(cpu, s.BarnVa);
            St(s.NodeHost + KmemCacheNodeBarn, 0);
            s.BarnVa = 0;
            s.BarnHost = null;
        }
        s.SheafCapacity = 0;
    }

    // ---- bulk: __kmem_cache_free_bulk() and the sheaves' bulk paths --------------------------------------

    /// <summary>
    /// __kmem_cache_free_bulk(): build_detached_freelist() groups the objects of one slab (looking at most three
    /// misses ahead) into a list freed with one do_slab_free(); objects that fail the checks are freed one by one
    /// through the reporting path. Never goes to the sheaves.
    /// </summary>
    private void FreeToSlabsBulk(Cpu cpu, KmemCache? s, Span<ulong> p)
    {
        int size = p.Length;
        while (size > 0)
        {
            ulong obj = p[--size];
            if (!TrySlabOf(s, obj, out var cache, out ulong slabVa))
            {
                if (s is null)
                    FreeSlow(cpu, null, obj, "kfree_bulk");
                else
                    FreeToSlabChecked(cpu, s, obj, "kmem_cache_free_bulk");
                continue;
            }
            ulong head = obj, tail = obj;
            uint cnt = 1;
            SetFreePointer(cache, obj, 0);
            int same = size, lookahead = 3;
            while (size > 0)
            {
                obj = p[--size];
                if (TrySlabOf(cache, obj, out _, out ulong sv) && sv == slabVa && obj != head)
                {
                    SetFreePointer(cache, obj, head);
                    head = obj;
                    cnt++;
                    same--;
                    if (size != same)
                        (p[size], p[same]) = (p[same], p[size]);
                    continue;
                }
                if (--lookahead == 0)
                    break;
            }
            size = same;
            DoSlabFree(cpu, cache, slabVa, head, tail, cnt);
        }
    }

    /// <summary>do_slab_free() of a detached list: spliced onto the CPU freelist when it is the CPU slab, else __slab_free().</summary>
    private void DoSlabFree(Cpu cpu, KmemCache s, ulong slabVa, ulong head, ulong tail, uint cnt)
    {
        byte* c = cpu.Percpu + s.CpuSlabOffset;
        if (Ld(c + HotSlab<TArch>.CpuSlab) == slabVa)
        {
            SetFreePointer(s, tail, Ld(c));
            St(c, head);
            return;
        }
        if (!SlabFree(cpu, s, slabVa, head, tail, cnt))
        {
            BeginOp();
            try
            {
                ObjectErr(s, slabVa, head, "Object already free", SlabBug.ObjectAlreadyFree, printTrailer: true);
            }
            finally
            {
                EndOp();
            }
        }
    }

    /// <summary>One object to its slab (never the sheaves), through the validating and reporting path.</summary>
    private void FreeToSlabChecked(Cpu cpu, KmemCache s, ulong obj, string site)
    {
        BeginOp();
        try
        {
            if (ResolveForFree(cpu, s, obj, site, out var cache, out ulong slabVa))
            {
                if (cache.IsDebug)
                    FreeDebug(cpu, cache, slabVa, obj, site);
                else
                    FreeToSlab(cpu, cache, slabVa, obj);
            }
        }
        finally
        {
            EndOp();
        }
    }

    /// <summary>
    /// alloc_from_pcs_bulk(): objects copied off the main sheaf (swapping in the spare or a full sheaf from the
    /// barn when it runs dry); stops when no full sheaf is at hand. Returns how many were taken.
    /// </summary>
    private int AllocFromPcsBulk(Cpu cpu, KmemCache s, Span<ulong> p)
    {
        int allocated = 0;
        byte* pcs = Pcs(cpu, s);
        while (allocated < p.Length)
        {
            ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
            if (SheafSizeOf(main) == 0)
            {
                ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
                if (spare != 0 && SheafSizeOf(spare) > 0)
                {
                    St(pcs + HotSlab<TArch>.PcsMain, spare);
                    St(pcs + HotSlab<TArch>.PcsSpare, main);
                    continue;
                }
                ulong full = BarnReplaceEmptySheaf(s, main);
                if (full == 0)
                    return allocated;
                St(pcs + HotSlab<TArch>.PcsMain, full);
                continue;
            }
            uint size = SheafSizeOf(main);
            int batch = (int)Math.Min((uint)(p.Length - allocated), size);
            size -= (uint)batch;
            for (int i = 0; i < batch; i++)
                p[allocated + i] = Ld(SheafSlot(main, size + (uint)i));
            SetSheafSize(main, size);
            allocated += batch;
        }
        return allocated;
    }

    /// <summary>
    /// free_to_pcs_bulk(): after the per-object checks (a bad pointer is reported and dropped from the batch),
    /// the objects are copied into the main sheaf, trading full sheaves for empty ones as long as the spare and the
    /// barn allow; the rest is freed to the slabs.
    /// </summary>
    private void FreeToPcsBulk(Cpu cpu, KmemCache s, ReadOnlySpan<ulong> objects)
    {
        var p = new List<ulong>(objects.Length);
        foreach (ulong obj in objects)
        {
            if (TrySlabOf(s, obj, out _, out _))
                p.Add(obj);
            else
                FreeToSlabChecked(cpu, s, obj, "kmem_cache_free_bulk");
        }
        if (cpu.SlabFlushRequested)
            HonourFlushRequest(cpu);
        byte* pcs = Pcs(cpu, s);
        int i = 0;
        while (i < p.Count)
        {
            ulong main = Ld(pcs + HotSlab<TArch>.PcsMain);
            uint size = SheafSizeOf(main);
            if (size >= (uint)s.SheafCapacity)
            {
                ulong spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
                ulong empty;
                if (spare == 0)
                {
                    empty = BarnGetEmptySheaf(s);
                    if (empty == 0)
                        break;
                    St(pcs + HotSlab<TArch>.PcsSpare, main);
                    St(pcs + HotSlab<TArch>.PcsMain, empty);
                    continue;
                }
                if (SheafSizeOf(spare) < (uint)s.SheafCapacity)
                {
                    St(pcs + HotSlab<TArch>.PcsMain, spare);
                    St(pcs + HotSlab<TArch>.PcsSpare, main);
                    continue;
                }
                empty = BarnReplaceFullSheaf(s, main, out _);
                if (empty == 0)
                    break;
                St(pcs + HotSlab<TArch>.PcsMain, empty);
                continue;
            }
            int batch = Math.Min(p.Count - i, s.SheafCapacity - (int)size);
            for (int k = 0; k < batch; k++)
                St(SheafSlot(main, size + (uint)k), p[i + k]);
            SetSheafSize(main, size + (uint)batch);
            i += batch;
        }
        if (i < p.Count)
            FreeToSlabsBulk(cpu, s, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(p)[i..]);
    }

    // ---- views ------------------------------------------------------------------------------------------

    /// <summary>
    /// Every object cached in a sheaf of <paramref name="s"/> with where it is: the CPU (null for the barn) and
    /// "main", "spare" or "barn". Objects are not validated (the consistency check does that).
    /// </summary>
    internal List<(ulong Obj, int? Cpu, string Where)> SheafObjects(KmemCache s)
    {
        var list = new List<(ulong, int?, string)>();
        if (s.SheafCapacity == 0 || s.PcsSlot < 0)
            return list;
        void Add(ulong sheaf, int? cpu, string where)
        {
            if (sheaf == 0)
                return;
            uint size = Math.Min(SheafSizeOf(sheaf), (uint)s.SheafCapacity);
            for (uint i = 0; i < size; i++)
                list.Add((Ld(SheafSlot(sheaf, i)), cpu, where));
        }
        foreach (var c in _m.Cpus)
        {
            byte* pcs = Pcs(c, s);
            Add(Ld(pcs + HotSlab<TArch>.PcsMain), c.Id, "main");
            Add(Ld(pcs + HotSlab<TArch>.PcsSpare), c.Id, "spare");
        }
        if (s.BarnVa != 0)
            foreach (ulong sheaf in BarnSheaves(s, full: true))
                Add(sheaf, null, "barn");
        return list;
    }

    /// <summary>The sheaves on one of the barn's lists (read under the barn lock).</summary>
    internal List<ulong> BarnSheaves(KmemCache s, bool full)
    {
        var list = new List<ulong>();
        if (s.BarnVa == 0)
            return list;
        BarnLock(s);
        try
        {
            ulong head = s.BarnVa + (ulong)(full ? BarnOff.Full : BarnOff.Empty);
            int guard = 0;
            for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head && guard++ < 1_000_000; e = MemMap<TArch>.Next(_mm.ListHost(e)))
                list.Add(e - (ulong)SheafBarnList);
        }
        finally
        {
            BarnUnlock(s);
        }
        return list;
    }

    /// <summary>nr_full / nr_empty of the barn.</summary>
    internal (uint Full, uint Empty) BarnCounts(KmemCache s) =>
        s.BarnVa == 0 ? (0, 0) : (BarnCount(s, BarnOff.NrFull), BarnCount(s, BarnOff.NrEmpty));

    /// <summary>The main and spare sheaf of a CPU (0 when none), and their sizes.</summary>
    internal (ulong Main, uint MainSize, ulong Spare, uint SpareSize) CpuSheaves(Cpu cpu, KmemCache s)
    {
        if (s.SheafCapacity == 0 || s.PcsSlot < 0)
            return (0, 0, 0, 0);
        byte* pcs = Pcs(cpu, s);
        ulong main = Ld(pcs + HotSlab<TArch>.PcsMain), spare = Ld(pcs + HotSlab<TArch>.PcsSpare);
        return (main, main == 0 ? 0 : SheafSizeOf(main), spare, spare == 0 ? 0 : SheafSizeOf(spare));
    }

    private ulong SheafCacheOf(ulong sheaf) => Ld(HostOfLinear(sheaf) + SheafCache);

    private int SheafNodeOf(ulong sheaf) => *(int*)(HostOfLinear(sheaf) + SheafNode);
}
