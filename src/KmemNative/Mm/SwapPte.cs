using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Reclaim;

namespace KmemNative.Mm;

/// <summary>
/// The swap device and swap cache as the process subsystem sees them (mm/swapfile.c, mm/swap_state.c): entries
/// are generic swp_entry_t values (<see cref="SwpEntry"/>); the reclaim subsystem implements it.
/// </summary>
internal interface ISwapOps
{
    /// <summary>swap_cache_get_folio(): the page holding the entry's data, with a reference, or NoPage.</summary>
    ulong LookupSwapCache(ulong entry);

    /// <summary>
    /// swapin: a new GFP_HIGHUSER_MOVABLE page read from the slot (pswpin), added to the swap cache and the
    /// anonymous LRU, returned with the caller's reference; or the page another fault already brought in. NoPage when
    /// no page can be allocated.
    /// </summary>
    ulong SwapIn(Cpu cpu, ulong entry, out bool major);

    /// <summary>swap_duplicate(): one more PTE names the entry; false when the entry is not in use.</summary>
    bool SwapDuplicate(ulong entry);

    /// <summary>swap_free()/free_swap_and_cache(): one PTE fewer; the slot and an unmapped swap-cache page go with the last.</summary>
    void SwapFree(Cpu cpu, ulong entry);

    /// <summary>swp_swapcount(): how many PTEs name the entry (0 for an invalid one).</summary>
    int SwapCount(ulong entry);

    /// <summary>folio_free_swap(): drop an unmapped-elsewhere page's swap-cache copy (and its slot once unreferenced).</summary>
    bool TryFreeSwap(Cpu cpu, ulong pfn);

    /// <summary>vm_swap_full(): more than half of the swap space is in use.</summary>
    bool SwapFull { get; }
}

// Swap entries in page tables (issue #6): do_swap_page() on a fault, the copies fork makes, the zap of an unmap or
// exit, and the unmapping reclaim does (try_to_unmap) — the places Mm/README.md marked for swap.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>The swap subsystem, or null before the reclaim subsystem attaches (swap entries then never appear).</summary>
    internal ISwapOps? Swap { get; set; }

    /// <summary>
    /// do_swap_page(): the page named by a swap PTE comes from the swap cache (minor) or the device (major, pswpin);
    /// its swap reference goes, the swap-cache copy is dropped when this write makes it private, the PTE maps it
    /// (writable at once if the entry was exclusive or nobody else holds the page) and a write to a shared one COWs.
    /// </summary>
    private int DoSwapPage(Cpu cpu, MmState<TArch> mm, ulong vma, ulong addr, bool write, byte* pte, ulong orig)
    {
        var swap = Swap;
        ulong entry = SwapPte<TArch>.ToEntry(orig);
        if (swap is null || swap.SwapCount(entry) == 0)
        {
            _m.Log.Err($"BUG: Bad page map in process {mm.Owner?.Comm ?? cpu.Comm}  pte:{orig:x} pmd:0");
            return VmFaultSigbus;
        }
        int ret = 0;
        ulong pfn = swap.LookupSwapCache(entry);
        if (pfn == PageAllocator<TArch>.NoPage)
        {
            if (!AnonVmaPrepare(cpu, vma))
                return VmFaultOom;
            pfn = swap.SwapIn(cpu, entry, out bool major);
            if (pfn == PageAllocator<TArch>.NoPage)
                return VmFaultOom;
            if (major)
            {
                ret |= VmFaultMajor;
                cpu.Events[(int)VmEvent.Pgmajfault]++;
            }
        }
        if (TArch.LoadPte(pte) != orig)
        {
            PutPageRef(cpu, pfn);  // somebody else resolved it (not possible under mmap_lock, kept for symmetry)
            return ret;
        }
        bool exclusive = (orig & SwapPte<TArch>.Exclusive) != 0;
        swap.SwapFree(cpu, entry);
        // should_try_to_free_swap(): a write that leaves us the only user, or swap space running short.
        if (swap.SwapFull || (VmFlagsOf(vma) & VmFlags.Locked) != 0 || (write && Refcount(pfn) == 2))
            swap.TryFreeSwap(cpu, pfn);
        AddMmCounter(mm, MmCounter.AnonPages, 1);
        AddMmCounter(mm, MmCounter.SwapEnts, -1);
        ulong newPte = (pfn << PageSize.Shift) | VmPageProt(vma);
        if ((orig & SwapPte<TArch>.SoftDirty) != 0)
            newPte |= PteSoftDirty;
        bool mkExclusive = exclusive || Refcount(pfn) == 1;
        if (mkExclusive && (VmFlagsOf(vma) & VmFlags.Write) != 0)
        {
            newPte |= PteRw;
            if (write)
            {
                newPte |= PteD | PteSoftDirty;
                write = false;
            }
        }
        byte* d = Desc(pfn);
        if (PageAnon(pfn))
        {
            // folio_add_anon_rmap_ptes(): one more mapping of a page other users may still see through the cache.
            if (MapcountInc(pfn))
                NodeStatAdd(NodeStat.NrAnonPages, 1);
            if (mkExclusive)
                MemMap<TArch>.SetFlag(d, PageFlag.Owner2);
        }
        else
        {
            // A page fresh from the device: folio_add_new_anon_rmap().
            PageAddNewAnonRmap(pfn, vma, addr);
            if (!mkExclusive)
                MemMap<TArch>.ClearFlag(d, PageFlag.Owner2);
        }
        TArch.StorePte(pte, newPte);
        if (write)
            ret |= DoWpPage(cpu, mm, vma, addr, pte, newPte);
        return ret;
    }

    /// <summary>copy_nonpresent_pte() for a swap entry: swap_duplicate(), and neither copy stays exclusive.</summary>
    private bool CopySwapPte(byte* spte, byte* dpte, ulong e)
    {
        var swap = Swap;
        ulong entry = SwapPte<TArch>.ToEntry(e);
        if (swap is null || !swap.SwapDuplicate(entry))
            return false;
        if ((e & SwapPte<TArch>.Exclusive) != 0)
        {
            e &= ~SwapPte<TArch>.Exclusive;
            TArch.StorePte(spte, e);
        }
        TArch.StorePte(dpte, e);
        return true;
    }

    /// <summary>zap_nonpresent_ptes(): the swap entry's reference goes (free_swap_and_cache()).</summary>
    private void ZapSwapPte(Cpu cpu, ulong e)
    {
        if (Swap is { } swap)
            swap.SwapFree(cpu, SwapPte<TArch>.ToEntry(e));
    }

    /// <summary>Validate(): a swap PTE must name a slot that is in use.</summary>
    private void CheckSwapPte(ulong va, ulong e)
    {
        ulong entry = SwapPte<TArch>.ToEntry(e);
        if (Swap is not { } swap || swap.SwapCount(entry) == 0)
            throw new MmCorruptException($"0x{va:x}: swap entry 0x{e:x} (type {SwpEntry.Type<TArch>(entry)}, offset 0x{SwpEntry.Offset<TArch>(entry):x}) names no slot in use");
    }

    /// <summary>pte_to_pagemap_entry() for a swap PTE: PM_SWAP (+ PM_SOFT_DIRTY), frame = type | offset &lt;&lt; 5.</summary>
    private static ulong PagemapSwapFrame(ulong e, ref ulong flags)
    {
        ulong entry = SwapPte<TArch>.ToEntry(e);
        flags |= PmSwap;
        if ((e & SwapPte<TArch>.SoftDirty) != 0 && SwapPte<TArch>.SoftDirty != 0)
            flags |= PmSoftDirty;
        return (ulong)(uint)SwpEntry.Type<TArch>(entry) | (SwpEntry.Offset<TArch>(entry) << SwpEntry.MaxSwapfilesShift);
    }

    /// <summary>swp_swapcount() of a swap PTE's entry, for SwapPss.</summary>
    private int SwapEntryUsers(ulong e) => Swap?.SwapCount(SwapPte<TArch>.ToEntry(e)) ?? 1;
}
