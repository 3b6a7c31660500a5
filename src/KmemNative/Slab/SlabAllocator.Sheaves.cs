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
}
