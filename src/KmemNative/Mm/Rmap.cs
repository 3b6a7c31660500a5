using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

// Reverse mapping of anonymous pages (mm/rmap.c): anon_vma objects and the anon_vma_chain links between them
// and the VMAs, so that from a page (page->mapping = anon_vma | PAGE_MAPPING_ANON, page->index) every PTE that
// may map it can be found. The kernel keeps each anon_vma's AVCs in an interval tree keyed by the VMA's pgoff
// range; here they are a list (the rb_root_cached of the anon_vma and the rb node of the AVC hold its links), which
// finds the same VMAs with a linear walk. File pages are found through the address_space's i_mmap (Files.cs).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    private byte* AvH(ulong av) => Obj(av, L.AnonVma.Size);

    private byte* AvcH(ulong avc) => Obj(avc, L.AnonVmaChain.Size);

    private ulong AvcOfSameVma(ulong link) => link - (ulong)MmOff<TArch>.AvcSameVma;

    private ulong AvcOfRb(ulong link) => link - (ulong)MmOff<TArch>.AvcRb;

    private ref int AvInt(ulong av, int off) => ref *(int*)(AvH(av) + off);

    /// <summary>anon_vma_alloc(): refcount 1, itself as root and parent, an empty AVC list.</summary>
    private ulong AnonVmaAlloc(Cpu cpu)
    {
        ulong av = Zalloc(cpu, AnonVmaCache);
        if (av == 0)
            return 0;
        byte* h = AvH(av);
        TArch.StoreLong(h + MmOff<TArch>.AvRoot, av);
        TArch.StoreLong(h + MmOff<TArch>.AvParent, av);
        *(int*)(h + MmOff<TArch>.AvRefcount) = 1;
        _m.MemMap.InitListHead(av + (ulong)MmOff<TArch>.AvList);
        return av;
    }

    /// <summary>anon_vma_chain_link(): the AVC joins the VMA's chain (head) and the anon_vma's list.</summary>
    private void AnonVmaChainLink(ulong vma, ulong avc, ulong av)
    {
        byte* h = AvcH(avc);
        TArch.StoreLong(h + MmOff<TArch>.AvcVma, vma);
        TArch.StoreLong(h + MmOff<TArch>.AvcAnonVma, av);
        _m.MemMap.ListAdd(avc + (ulong)MmOff<TArch>.AvcSameVma, vma + (ulong)MmOff<TArch>.AnonVmaChain);
        _m.MemMap.ListAddTail(avc + (ulong)MmOff<TArch>.AvcRb, av + (ulong)MmOff<TArch>.AvList);
    }

    /// <summary>
    /// __anon_vma_prepare(): gives a VMA the anon_vma its new pages will point to, on its first write fault:
    /// a compatible neighbour's (find_mergeable_anon_vma(), so the two can still merge) or a new one.
    /// </summary>
    internal bool AnonVmaPrepare(Cpu cpu, ulong vma)
    {
        if (VmAnonVma(vma) != 0)
            return true;
        return AnonVmaPrepareLocked(cpu, vma);
    }

    private bool AnonVmaPrepareLocked(Cpu cpu, ulong vma)
    {
        lock (_rmapLock)
        {
            ulong avc = Zalloc(cpu, AvcCache);
            if (avc == 0)
                return false;
            ulong av = FindMergeableAnonVma(vma);
            if (av == 0)
            {
                av = AnonVmaAlloc(cpu);
                if (av == 0)
                {
                    Free(cpu, AvcCache, avc);
                    return false;
                }
                AvInt(av, MmOff<TArch>.AvNumChildren)++; // the self-parent link of a new root
            }
            SetVmAnonVma(vma, av);
            AnonVmaChainLink(vma, avc, av);
            AvInt(av, MmOff<TArch>.AvNumActiveVmas)++;
            return true;
        }
    }

    /// <summary>find_mergeable_anon_vma(): the anon_vma of an adjacent compatible VMA that is not a fork child.</summary>
    private ulong FindMergeableAnonVma(ulong vma)
    {
        ulong next = VmNext(vma);
        if (next != 0)
        {
            ulong av = ReusableAnonVma(next, vma, next);
            if (av != 0)
                return av;
        }
        ulong prev = VmPrev(vma);
        return prev != 0 ? ReusableAnonVma(prev, prev, vma) : 0;
    }

    private ulong ReusableAnonVma(ulong old, ulong a, ulong b)
    {
        // anon_vma_compatible(): adjacent, same file, flags equal apart from access bits, pgoff continuous.
        bool compatible = VmEnd(a) == VmStart(b) && VmFile(a) == VmFile(b) &&
                          (((ulong)VmFlagsOf(a) ^ (ulong)VmFlagsOf(b)) & ~(ulong)(VmFlags.AccessFlags | VmFlags.SoftDirty)) == 0 &&
                          VmPgoff(b) == VmPgoff(a) + ((VmStart(b) - VmStart(a)) >> PageSize.Shift);
        if (!compatible)
            return 0;
        ulong av = VmAnonVma(old);
        return av != 0 && ListIsSingular(old + (ulong)MmOff<TArch>.AnonVmaChain) ? av : 0;
    }

    /// <summary>
    /// anon_vma_clone(): <paramref name="dst"/> joins every anon_vma <paramref name="src"/> is chained to (a split
    /// VMA, a fork child). While cloning for a fork child, an anon_vma without VMAs and with at most one child is
    /// reused as the child's own.
    /// </summary>
    internal bool AnonVmaClone(Cpu cpu, ulong dst, ulong src)
    {
        lock (_rmapLock)
        {
            ulong head = src + (ulong)MmOff<TArch>.AnonVmaChain;
            var mm = _m.MemMap;
            // list_for_each_entry_reverse(pavc, &src->anon_vma_chain, same_vma)
            int guard = 0;
            for (ulong link = PhysMem.MemMap<TArch>.Prev(mm.ListHost(head)); link != head; link = PhysMem.MemMap<TArch>.Prev(mm.ListHost(link)))
            {
                if (++guard > 1 << 20)
                    throw new MmCorruptException($"vma 0x{src:x}: anon_vma_chain does not end");
                ulong pavc = AvcOfSameVma(link);
                ulong av = TArch.LoadLong(AvcH(pavc) + MmOff<TArch>.AvcAnonVma);
                ulong avc = Zalloc(cpu, AvcCache);
                if (avc == 0)
                {
                    UnlinkAnonVmas(cpu, dst);
                    return false;
                }
                AnonVmaChainLink(dst, avc, av);
                if (VmAnonVma(dst) == 0 && VmAnonVma(src) != 0 && AvInt(av, MmOff<TArch>.AvNumChildren) < 2 &&
                    AvInt(av, MmOff<TArch>.AvNumActiveVmas) == 0)
                    SetVmAnonVma(dst, av);
            }
            if (VmAnonVma(dst) != 0)
                AvInt(VmAnonVma(dst), MmOff<TArch>.AvNumActiveVmas)++;
            return true;
        }
    }

    /// <summary>
    /// anon_vma_fork(): the child VMA joins the parent's anon_vmas (so rmap finds the shared pages) and gets an
    /// anon_vma of its own, a child of the parent's, where its COWed pages will go.
    /// </summary>
    internal bool AnonVmaFork(Cpu cpu, ulong vma, ulong pvma)
    {
        lock (_rmapLock)
        {
            if (VmAnonVma(pvma) == 0)
                return true;
            SetVmAnonVma(vma, 0);
            if (!AnonVmaClone(cpu, vma, pvma))
                return false;
            if (VmAnonVma(vma) != 0)
                return true;
            ulong av = AnonVmaAlloc(cpu);
            ulong avc = av == 0 ? 0 : Zalloc(cpu, AvcCache);
            if (avc == 0)
            {
                if (av != 0)
                    Free(cpu, AnonVmaCache, av);
                UnlinkAnonVmas(cpu, vma);
                return false;
            }
            AvInt(av, MmOff<TArch>.AvNumActiveVmas)++;
            ulong parentAv = VmAnonVma(pvma);
            ulong root = TArch.LoadLong(AvH(parentAv) + MmOff<TArch>.AvRoot);
            TArch.StoreLong(AvH(av) + MmOff<TArch>.AvRoot, root);
            TArch.StoreLong(AvH(av) + MmOff<TArch>.AvParent, parentAv);
            AvInt(root, MmOff<TArch>.AvRefcount)++; // get_anon_vma(anon_vma->root)
            SetVmAnonVma(vma, av);
            AnonVmaChainLink(vma, avc, av);
            AvInt(parentAv, MmOff<TArch>.AvNumChildren)++;
            return true;
        }
    }

    /// <summary>
    /// unlink_anon_vmas(): the VMA leaves every anon_vma; an anon_vma left without AVCs loses its parent link and
    /// is put (freed with its last reference, dropping its root's reference).
    /// </summary>
    internal void UnlinkAnonVmas(Cpu cpu, ulong vma)
    {
        lock (_rmapLock)
        {
            var mm = _m.MemMap;
            ulong head = vma + (ulong)MmOff<TArch>.AnonVmaChain;
            var empty = new List<(ulong Avc, ulong Av)>();
            int guard = 0;
            for (ulong link = PhysMem.MemMap<TArch>.Next(mm.ListHost(head)); link != head;)
            {
                if (++guard > 1 << 20)
                    throw new MmCorruptException($"vma 0x{vma:x}: anon_vma_chain does not end");
                ulong next = PhysMem.MemMap<TArch>.Next(mm.ListHost(link));
                ulong avc = AvcOfSameVma(link);
                ulong av = TArch.LoadLong(AvcH(avc) + MmOff<TArch>.AvcAnonVma);
                mm.ListDel(avc + (ulong)MmOff<TArch>.AvcRb);
                mm.ListDel(link);
                if (mm.ListEmpty(av + (ulong)MmOff<TArch>.AvList))
                {
                    ulong parent = TArch.LoadLong(AvH(av) + MmOff<TArch>.AvParent);
                    AvInt(parent, MmOff<TArch>.AvNumChildren)--;
                    empty.Add((avc, av));
                }
                else
                {
                    Free(cpu, AvcCache, avc);
                }
                link = next;
            }
            ulong own = VmAnonVma(vma);
            if (own != 0)
            {
                AvInt(own, MmOff<TArch>.AvNumActiveVmas)--;
                SetVmAnonVma(vma, 0);
            }
            foreach (var (avc, av) in empty)
            {
                PutAnonVma(cpu, av);
                Free(cpu, AvcCache, avc);
            }
        }
    }

    /// <summary>put_anon_vma(): the last reference frees it and drops its root's reference.</summary>
    private void PutAnonVma(Cpu cpu, ulong av)
    {
        if (--AvInt(av, MmOff<TArch>.AvRefcount) != 0)
            return;
        ulong root = TArch.LoadLong(AvH(av) + MmOff<TArch>.AvRoot);
        Free(cpu, AnonVmaCache, av);
        if (root != av && --AvInt(root, MmOff<TArch>.AvRefcount) == 0)
            Free(cpu, AnonVmaCache, root);
    }

    // ---- page rmap --------------------------------------------------------------------------------

    /// <summary>
    /// folio_add_new_anon_rmap(): a freshly allocated anonymous page mapped once: mapping = anon_vma | ANON, index =
    /// linear_page_index(), _mapcount 0, PG_swapbacked, PG_anon_exclusive; NR_ANON_MAPPED++.
    /// </summary>
    internal void PageAddNewAnonRmap(ulong pfn, ulong vma, ulong addr)
    {
        byte* d = Desc(pfn);
        MemMap<TArch>.SetMapping(d, VmAnonVma(vma) | PageMappingAnon);
        MemMap<TArch>.SetIndex(d, LinearPageIndex(vma, addr));
        MemMap<TArch>.PageType(d) = 0; // _mapcount = 0: one mapping
        ulong flags = MemMap<TArch>.Flags(d) | 1UL << (int)PageFlag.Swapbacked | 1UL << (int)PageFlag.Owner2 | 1UL << (int)PageFlag.Uptodate;
        MemMap<TArch>.SetFlags(d, flags);
        NodeStatAdd(NodeStat.NrAnonPages, 1);
    }

    /// <summary>folio_remove_rmap_pte(): one mapping fewer; NR_ANON_MAPPED / NR_FILE_MAPPED drop with the last one.</summary>
    internal void PageRemoveRmap(ulong pfn, bool anon)
    {
        if (MapcountDec(pfn))
            NodeStatAdd(anon ? NodeStat.NrAnonPages : NodeStat.NrMapped, -1);
    }

    /// <summary>folio_add_file_rmap_pte(): one more mapping of a page-cache page; NR_FILE_MAPPED with the first.</summary>
    internal void PageAddFileRmap(ulong pfn)
    {
        if (MapcountInc(pfn))
            NodeStatAdd(NodeStat.NrMapped, 1);
    }

    /// <summary>What an rmap walk found: the mm, the VMA, the address and the PTE that maps the page.</summary>
    internal delegate bool RmapVisitor(MmState<TArch> mm, ulong vma, ulong address, byte* pte);

    /// <summary>
    /// rmap_walk(): calls <paramref name="visit"/> for every PTE mapping <paramref name="pfn"/> (anonymous pages
    /// through their anon_vma's AVCs, file pages through i_mmap) until it returns false. The caller must keep the
    /// mms stable (issue #6's reclaim takes each mm's lock).
    /// </summary>
    internal void RmapWalk(ulong pfn, RmapVisitor visit)
    {
        lock (_rmapLock)
        {
            byte* d = Desc(pfn);
            ulong mapping = MemMap<TArch>.Mapping(d);
            ulong index = MemMap<TArch>.Index(d);
            if (mapping == 0)
                return;
            var memMap = _m.MemMap;
            ulong head, linkOffset;
            if ((mapping & PageMappingAnon) != 0)
            {
                head = (mapping & ~3UL) + (ulong)MmOff<TArch>.AvList;
                linkOffset = (ulong)MmOff<TArch>.AvcRb;
            }
            else
            {
                head = mapping - (ulong)MmOff<TArch>.IData + (ulong)MmOff<TArch>.AsIMmap;
                linkOffset = (ulong)MmOff<TArch>.SharedRb;
            }
            int guard = 0;
            for (ulong link = PhysMem.MemMap<TArch>.Next(memMap.ListHost(head)); link != head; link = PhysMem.MemMap<TArch>.Next(memMap.ListHost(link)))
            {
                if (++guard > 1 << 22)
                    throw new MmCorruptException("an rmap list does not end");
                ulong vma = (mapping & PageMappingAnon) != 0
                    ? TArch.LoadLong(AvcH(link - linkOffset) + MmOff<TArch>.AvcVma)
                    : link - linkOffset;
                ulong pgoff = VmPgoff(vma);
                if (index < pgoff || index - pgoff >= VmaPages(vma))
                    continue;
                ulong address = VmStart(vma) + ((index - pgoff) << PageSize.Shift);
                var mm = MmOfVma(vma);
                if (mm is null)
                    continue;
                byte* pte = mm.As.PteOffset(address);
                if (pte == null)
                    continue;
                ulong e = TArch.LoadPte(pte);
                if ((e & (PteP | PteProtNone)) == 0 || ((e & TArch.PtePfnMask) >> PageSize.Shift) != pfn)
                    continue;
                if (!visit(mm, vma, address, pte))
                    return;
            }
        }
    }

    /// <summary>The live mm a VMA belongs to (by vm_mm), or null (a child dup_mmap() is still filling).</summary>
    private MmState<TArch>? MmOfVma(ulong vma)
    {
        ulong mmVa = VmMm(vma);
        lock (_lock)
        {
            foreach (var t in _tasks.Values)
                if (t.MmState is { } mm && mm.Va == mmVa)
                    return mm;
        }
        return null;
    }

    /// <summary>
    /// The anon_vma root rwsem and i_mmap_rwsem, as one lock: anon_vma chains and i_mmap lists are shared between
    /// processes (a parent and its children), so their changes and the rmap walks are serialised here.
    /// </summary>
    private readonly object _rmapLock = new();

    /// <summary>
    /// folio_referenced(): how many PTEs mapping the page had Accessed set (cleared as it counts, with a TLB flush),
    /// plus the page's PG_referenced — what reclaim asks before evicting.
    /// </summary>
    internal int PageReferenced(ulong pfn)
    {
        int referenced = 0;
        RmapWalk(pfn, (mm, vma, address, pte) =>
        {
            ulong e = TArch.LoadPte(pte);
            if ((e & PteA) != 0)
            {
                TArch.StorePte(pte, e & ~PteA);
                _m.Mmu.FlushRange(mm.As, address, address + PageSize.Bytes);
                referenced++;
            }
            return true;
        });
        return referenced;
    }
}
