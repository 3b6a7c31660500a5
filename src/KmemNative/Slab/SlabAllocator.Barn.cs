using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// The per-node barn of full and empty sheaves (struct node_barn), and setting sheaves up and tearing them down.
internal sealed unsafe partial class SlabAllocator<TArch>
{
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
}
