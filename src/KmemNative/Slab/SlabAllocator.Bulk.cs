using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Bulk operations (__kmem_cache_free_bulk() with detached freelists, the sheaves' bulk paths) and sheaf views.
internal sealed unsafe partial class SlabAllocator<TArch>
{
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
