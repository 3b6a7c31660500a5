using KmemNative.PhysMem;

namespace KmemNative.Mm;

// Process.Validate(): validate_mm() plus the agreement of every PTE with its VMA, the rmap and the counters.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>
    /// validate_mm() plus the page-level agreement: every PTE lies in a VMA, anonymous pages point at an anon_vma
    /// of that VMA's chain with the right index, the RSS counters equal the PTEs counted, pgtables_bytes matches.
    /// </summary>
    internal void ValidateProcess(MmState<TArch> mm)
    {
        ValidateMm(mm);
        long anon = 0, file = 0, shmem = 0, swapents = 0;
        ulong prevEnd = 0;
        for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
        {
            // No PTE may exist between the previous VMA and this one.
            CheckNoPtes(mm, prevEnd, VmStart(v));
            prevEnd = VmEnd(v);
            bool isShmem = VmFile(v) != 0 && FileIsShmem(VmFile(v));
            var anonVmas = new HashSet<ulong>();
            ulong head = v + (ulong)MmOff<TArch>.AnonVmaChain;
            for (ulong link = MemMap<TArch>.Next(_m.MemMap.ListHost(head)); link != head; link = MemMap<TArch>.Next(_m.MemMap.ListHost(link)))
                anonVmas.Add(TArch.LoadLong(AvcH(AvcOfSameVma(link)) + MmOff<TArch>.AvcAnonVma));
            if (VmAnonVma(v) != 0 && !anonVmas.Contains(VmAnonVma(v)))
                throw new MmCorruptException($"vma 0x{v:x}: its anon_vma 0x{VmAnonVma(v):x} is not on its anon_vma_chain");
            ulong vma = v;
            ForEachPte(mm, VmStart(v), VmEnd(v), (va, e) =>
            {
                if ((e & (PteP | PteProtNone)) == 0)
                {
                    // A swap entry: it must name a slot of a swap device that is still referenced.
                    CheckSwapPte(va, e);
                    swapents++;
                    return;
                }
                if ((e & PteSpecial) != 0)
                    return;
                ulong pfn = (e & TArch.PtePfnMask) >> PageSize.Shift;
                if (pfn == ZeroPfn)
                    throw new MmCorruptException($"0x{va:x}: the zero page mapped without _PAGE_SPECIAL");
                if (Mapcount(pfn) < 1 || Refcount(pfn) < Mapcount(pfn))
                    throw new MmCorruptException($"0x{va:x}: pfn 0x{pfn:x} mapcount {Mapcount(pfn)} refcount {Refcount(pfn)}");
                if (PageAnon(pfn))
                {
                    anon++;
                    ulong av = MemMap<TArch>.Mapping(Desc(pfn)) & ~3UL;
                    if (!anonVmas.Contains(av))
                        throw new MmCorruptException($"0x{va:x}: anon pfn 0x{pfn:x} points at anon_vma 0x{av:x}, not on vma 0x{vma:x}'s chain");
                    if (MemMap<TArch>.Index(Desc(pfn)) != LinearPageIndex(vma, va))
                        throw new MmCorruptException($"0x{va:x}: anon pfn 0x{pfn:x} index {MemMap<TArch>.Index(Desc(pfn))}, expected {LinearPageIndex(vma, va)}");
                }
                else if (isShmem)
                {
                    shmem++;
                }
                else
                {
                    file++;
                }
            });
        }
        CheckNoPtes(mm, prevEnd, TArch.TaskSizeMax);
        if (anon != GetMmCounter(mm, MmCounter.AnonPages) || file != GetMmCounter(mm, MmCounter.FilePages) || shmem != GetMmCounter(mm, MmCounter.ShmemPages))
            throw new MmCorruptException($"rss_stat anon/file/shmem {GetMmCounter(mm, MmCounter.AnonPages)}/{GetMmCounter(mm, MmCounter.FilePages)}/{GetMmCounter(mm, MmCounter.ShmemPages)}, PTEs say {anon}/{file}/{shmem}");
        if (swapents != GetMmCounter(mm, MmCounter.SwapEnts))
            throw new MmCorruptException($"rss_stat MM_SWAPENTS {GetMmCounter(mm, MmCounter.SwapEnts)}, PTEs hold {swapents} swap entries");
        if (GetMmLong(mm.H, MmOff<TArch>.PgtablesBytes) != (ulong)Math.Max(0, mm.As.PageTablePages - 1) << PageSize.Shift)
            throw new MmCorruptException($"pgtables_bytes {GetMmLong(mm.H, MmOff<TArch>.PgtablesBytes)} but {mm.As.PageTablePages - 1} user tables");
    }

    private void CheckNoPtes(MmState<TArch> mm, ulong start, ulong end)
    {
        if (end <= start)
            return;
        _m.Paging.Tables.ForEachLeaf(mm.As.Pgd, start, end, (va, e, level) =>
            throw new MmCorruptException($"0x{va:x}: a level-{level} entry (0x{e:x}) outside every VMA"));
    }

    /// <summary>
    /// Calls <paramref name="visit"/>(va, pte) for every non-empty PTE of [<paramref name="start"/>, <paramref name="end"/>)
    /// (present pages and swap entries alike), skipping the whole span of a missing page table.
    /// </summary>
    private void ForEachPte(MmState<TArch> mm, ulong start, ulong end, Action<ulong, ulong> visit)
    {
        for (ulong va = start; va < end; va += PageSize.Bytes)
        {
            byte* pte = mm.As.PteOffset(va);
            if (pte == null)
            {
                va |= PageTableSpan - 1;
                continue;
            }
            ulong e = TArch.LoadPte(pte);
            if (e != 0)
                visit(va, e);
        }
    }
}
