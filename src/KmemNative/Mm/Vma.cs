using KmemNative.PhysMem;

namespace KmemNative.Mm;

// VMA objects: vm_area_alloc/dup/free, splitting (__split_vma) and merging (vma_merge, the 3.x-6.0 algorithm
// with its eight cases), removal, and the links to the file's i_mmap.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>vm_area_alloc(): a zeroed VMA of <paramref name="mm"/> with an empty anon_vma_chain; 0 on ENOMEM.</summary>
    internal ulong VmAreaAlloc(Cpu cpu, MmState<TArch> mm)
    {
        ulong vma = Zalloc(cpu, VmaCache);
        if (vma == 0)
            return 0;
        TArch.StoreLong(VmaH(vma) + MmOff<TArch>.VmMm, mm.Va);
        _m.MemMap.InitListHead(vma + (ulong)MmOff<TArch>.AnonVmaChain);
        return vma;
    }

    /// <summary>vm_area_dup(): a copy of every field, with its own (empty) anon_vma_chain and no list or tree links.</summary>
    internal ulong VmAreaDup(Cpu cpu, ulong orig, MmState<TArch> mm)
    {
        ulong vma = Zalloc(cpu, VmaCache);
        if (vma == 0)
            return 0;
        new ReadOnlySpan<byte>(VmaH(orig), MmOff<TArch>.VmaSize).CopyTo(new Span<byte>(VmaH(vma), MmOff<TArch>.VmaSize));
        byte* h = VmaH(vma);
        TArch.StoreLong(h + MmOff<TArch>.VmMm, mm.Va);
        TArch.StoreLong(h + MmOff<TArch>.VmNext, 0);
        TArch.StoreLong(h + MmOff<TArch>.VmPrev, 0);
        new Span<byte>(h + MmOff<TArch>.VmRb, 4 * TArch.PointerSize).Clear(); // vm_rb + rb_subtree_gap
        new Span<byte>(h + MmOff<TArch>.SharedRb, 2 * TArch.PointerSize).Clear();
        _m.MemMap.InitListHead(vma + (ulong)MmOff<TArch>.AnonVmaChain);
        return vma;
    }

    /// <summary>vm_area_free().</summary>
    internal void VmAreaFree(Cpu cpu, ulong vma) => Free(cpu, VmaCache, vma);

    /// <summary>
    /// remove_vma(): drops the VMA's anon_vma chain and file reference and frees it. The VMA is already out of the
    /// list and the tree, its pages zapped.
    /// </summary>
    internal void RemoveVma(Cpu cpu, ulong vma)
    {
        UnlinkAnonVmas(cpu, vma);
        ulong file = VmFile(vma);
        if (file != 0)
        {
            UnlinkFileVma(vma);
            Fput(cpu, file);
        }
        VmAreaFree(cpu, vma);
    }

    /// <summary>vma_link(): into the mm's list and tree after <paramref name="prev"/>, and onto its file's i_mmap.</summary>
    internal void VmaLinkAll(MmState<TArch> mm, ulong vma, ulong prev)
    {
        VmaLink(mm, vma, prev);
        if (VmFile(vma) != 0)
            LinkFileVma(vma);
    }

    /// <summary>
    /// __split_vma(): splits <paramref name="vma"/> at <paramref name="addr"/>; the new VMA takes the lower part
    /// when <paramref name="newBelow"/>, else the upper part. Returns the new VMA, or 0 on ENOMEM.
    /// </summary>
    internal ulong SplitVma(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool newBelow)
    {
        ulong start = VmStart(vma), end = VmEnd(vma), pgoff = VmPgoff(vma);
        ulong @new = VmAreaDup(cpu, vma, mm);
        if (@new == 0)
            return 0;
        if (!AnonVmaClone(cpu, @new, vma))
        {
            VmAreaFree(cpu, @new);
            return 0;
        }
        ulong file = VmFile(@new);
        if (file != 0)
            GetFile(file);
        ulong delta = (addr - start) >> PageSize.Shift;
        if (newBelow)
        {
            SetVmStart(@new, start);
            SetVmEnd(@new, addr);
            SetVmPgoff(@new, pgoff);
            VmaSetRange(mm, vma, addr, end, pgoff + delta);
            VmaLinkAll(mm, @new, VmPrev(vma));
        }
        else
        {
            SetVmStart(@new, addr);
            SetVmEnd(@new, end);
            SetVmPgoff(@new, pgoff + delta);
            VmaSetRange(mm, vma, start, addr, pgoff);
            VmaLinkAll(mm, @new, vma);
        }
        return @new;
    }

    /// <summary>split_vma(): __split_vma() unless the mm is at vm.max_map_count (-ENOMEM).</summary>
    internal Errno SplitVmaChecked(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool newBelow)
    {
        if (MapCount(mm) >= MaxMapCount)
            return Errno.ENOMEM;
        return SplitVma(cpu, mm, vma, addr, newBelow) == 0 ? Errno.ENOMEM : Errno.None;
    }

    // ---- merging -----------------------------------------------------------------------------------

    /// <summary>is_mergeable_vma(): same flags (VM_SOFTDIRTY aside) and the same file.</summary>
    private bool IsMergeableVma(ulong vma, ulong file, VmFlags flags) =>
        (((ulong)VmFlagsOf(vma) ^ (ulong)flags) & ~(ulong)VmFlags.SoftDirty) == 0 && VmFile(vma) == file;

    /// <summary>
    /// is_mergeable_anon_vma(): compatible when equal, or when one side has none and the existing VMA
    /// (<paramref name="vma"/>, 0 for a three-way merge) is not a fork child (its anon_vma_chain is singular).
    /// </summary>
    private bool IsMergeableAnonVma(ulong anonVma1, ulong anonVma2, ulong vma)
    {
        if ((anonVma1 == 0 || anonVma2 == 0) && (vma == 0 || ListIsSingular(vma + (ulong)MmOff<TArch>.AnonVmaChain)))
            return true;
        return anonVma1 == anonVma2;
    }

    /// <summary>can_vma_merge_after(): [.. prev) + [addr ..) with pgoff continuing prev's.</summary>
    private bool CanVmaMergeAfter(ulong prev, VmFlags flags, ulong anonVma, ulong file, ulong pgoff) =>
        IsMergeableVma(prev, file, flags) && IsMergeableAnonVma(anonVma, VmAnonVma(prev), prev) &&
        VmPgoff(prev) + VmaPages(prev) == pgoff;

    /// <summary>can_vma_merge_before(): [.. end) + [next ..) with next's pgoff continuing ours.</summary>
    private bool CanVmaMergeBefore(ulong next, VmFlags flags, ulong anonVma, ulong file, ulong pgoffEnd) =>
        IsMergeableVma(next, file, flags) && IsMergeableAnonVma(anonVma, VmAnonVma(next), next) && VmPgoff(next) == pgoffEnd;

    /// <summary>
    /// vma_merge(): tries to make [addr, end) with these attributes part of a neighbour instead of a VMA of its
    /// own. [addr, end) is a hole after <paramref name="prev"/> (mmap, brk: cases 1-3) or lies inside existing VMAs
    /// (mprotect: cases 4-8 — the part of <paramref name="prev"/> from addr, or the VMA starting at addr). Returns
    /// the VMA that now covers the range, or 0 when nothing merged.
    /// </summary>
    internal ulong VmaMerge(Cpu cpu, MmState<TArch> mm, ulong prev, ulong addr, ulong end, VmFlags flags, ulong anonVma, ulong file, ulong pgoff)
    {
        if ((flags & VmFlags.Special) != 0)
            return 0;
        ulong pglen = (end - addr) >> PageSize.Shift;
        ulong next = prev != 0 ? VmNext(prev) : FirstVma(mm);
        ulong area = next;
        if (area != 0 && VmEnd(area) == end)   // cases 6, 7, 8
            next = VmNext(next);
        bool areaInRange = area != 0 && VmStart(area) < end && VmStart(area) >= addr;

        if (prev != 0 && VmEnd(prev) == addr && CanVmaMergeAfter(prev, flags, anonVma, file, pgoff))
        {
            if (next != 0 && end == VmStart(next) && CanVmaMergeBefore(next, flags, anonVma, file, pgoff + pglen) &&
                IsMergeableAnonVma(VmAnonVma(prev), VmAnonVma(next), 0))
            {
                // cases 1, 6: prev swallows [addr, end) and next (and area in case 6).
                ulong newEnd = VmEnd(next);
                if (areaInRange && area != next)
                    AbsorbAndRemove(cpu, mm, prev, area);
                AbsorbAndRemove(cpu, mm, prev, next);
                VmaSetRange(mm, prev, VmStart(prev), newEnd, VmPgoff(prev));
            }
            else if (areaInRange && VmEnd(area) == end)
            {
                // case 7: prev swallows area.
                AbsorbAndRemove(cpu, mm, prev, area);
                VmaSetRange(mm, prev, VmStart(prev), end, VmPgoff(prev));
            }
            else if (areaInRange)
            {
                // case 5: prev grows over the first part of area.
                AdoptAnonVma(cpu, prev, area);
                VmaSetRange(mm, area, end, VmEnd(area), VmPgoff(area) + pglen);
                VmaSetRange(mm, prev, VmStart(prev), end, VmPgoff(prev));
            }
            else
            {
                // case 2: prev grows over the hole.
                VmaSetRange(mm, prev, VmStart(prev), end, VmPgoff(prev));
            }
            return prev;
        }

        if (next != 0 && end == VmStart(next) && CanVmaMergeBefore(next, flags, anonVma, file, pgoff + pglen))
        {
            if (prev != 0 && addr < VmEnd(prev))
            {
                // case 4: the tail of prev moves to next.
                AdoptAnonVma(cpu, next, prev);
                VmaSetRange(mm, prev, VmStart(prev), addr, VmPgoff(prev));
            }
            else if (areaInRange && area != next)
            {
                // case 8: next swallows area.
                AbsorbAndRemove(cpu, mm, next, area);
            }
            VmaSetRange(mm, next, addr, VmEnd(next), VmPgoff(next) - pglen);
            return next;
        }
        return 0;
    }

    /// <summary>
    /// What __vma_adjust() does to a VMA a merge removes: the surviving VMA adopts its anon_vma when it has none
    /// (anon_vma_clone), then it leaves the list, the tree and i_mmap and is freed.
    /// </summary>
    private void AbsorbAndRemove(Cpu cpu, MmState<TArch> mm, ulong importer, ulong exporter)
    {
        AdoptAnonVma(cpu, importer, exporter);
        VmaUnlink(mm, exporter);
        RemoveVma(cpu, exporter);
    }

    /// <summary>The importer takes the exporter's anon_vma (and chain) when it has none, so rmap finds the pages that move.</summary>
    private void AdoptAnonVma(Cpu cpu, ulong importer, ulong exporter)
    {
        if (VmAnonVma(exporter) != 0 && VmAnonVma(importer) == 0)
        {
            SetVmAnonVma(importer, VmAnonVma(exporter));
            if (!AnonVmaClone(cpu, importer, exporter))
                throw new KmemException("out of memory for an anon_vma_chain while merging VMAs");
        }
    }

    /// <summary>list_is_singular().</summary>
    private bool ListIsSingular(ulong head)
    {
        byte* h = _m.MemMap.ListHost(head);
        ulong next = TArch.LoadLong(h);
        return next != head && next == TArch.LoadLong(h + TArch.PointerSize);
    }
}
