using System.Runtime.CompilerServices;

namespace KmemNative.Mm;

// The VMA index: the sorted doubly linked list mm->mmap / vm_next / vm_prev plus the augmented red-black tree
// mm->mm_rb / vma->vm_rb whose rb_subtree_gap is the largest free gap below any VMA of a subtree — the design of
// mm/mmap.c from 3.9 to 6.0 (lib/rbtree.c, include/linux/rbtree_augmented.h). Every node lives in the arena as a
// struct rb_node {__rb_parent_color, rb_right, rb_left} holding kernel virtual addresses, so crash-style hex dumps
// show real links. find_vma() is O(log n), and the gap search of get_unmapped_area() descends only into subtrees
// whose gap is large enough (O(log n) too).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    private const ulong RbRed = 0, RbBlack = 1;

    // ---- rb_node accessors (node = VA of the vm_rb field) ---------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* Node(ulong va) => Obj(va, 3 * TArch.PointerSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Pc(ulong n) => TArch.LoadLong(Node(n));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong RbRight(ulong n) => TArch.LoadLong(Node(n) + TArch.PointerSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong RbLeft(ulong n) => TArch.LoadLong(Node(n) + 2 * TArch.PointerSize);

    private void SetPc(ulong n, ulong pc) => TArch.StoreLong(Node(n), pc);

    private void SetRight(ulong n, ulong v) => TArch.StoreLong(Node(n) + TArch.PointerSize, v);

    private void SetLeft(ulong n, ulong v) => TArch.StoreLong(Node(n) + 2 * TArch.PointerSize, v);

    /// <summary>rb_node's child slots by their word index: rb_right is word 1, rb_left word 2; the mirror of a side is 3 - side.</summary>
    private const int RbRightSlot = 1, RbLeftSlot = 2;

    private ulong RbChild(ulong n, int side) => TArch.LoadLong(Node(n) + side * TArch.PointerSize);

    private void SetChild(ulong n, int side, ulong v) => TArch.StoreLong(Node(n) + side * TArch.PointerSize, v);

    private ulong RbParent(ulong n) => Pc(n) & ~3UL;

    private bool RbIsBlack(ulong n) => (Pc(n) & 1) != 0;

    private bool RbIsRed(ulong n) => (Pc(n) & 1) == 0;

    private void RbSetParent(ulong n, ulong p) => SetPc(n, (Pc(n) & 1) | p);

    private void RbSetParentColor(ulong n, ulong p, ulong color) => SetPc(n, p | color);

    private void RbSetBlack(ulong n) => SetPc(n, Pc(n) | RbBlack);

    private static ulong RootSlot(byte* mm) => TArch.LoadLong(mm + MmOff<TArch>.MmRb);

    private static void SetRoot(byte* mm, ulong node) => TArch.StoreLong(mm + MmOff<TArch>.MmRb, node);

    private void ChangeChild(ulong old, ulong @new, ulong parent, byte* mm)
    {
        if (parent != 0)
        {
            if (RbLeft(parent) == old)
                SetLeft(parent, @new);
            else
                SetRight(parent, @new);
        }
        else
        {
            SetRoot(mm, @new);
        }
    }

    private void RotateSetParents(ulong old, ulong @new, byte* mm, ulong color)
    {
        ulong parent = RbParent(old);
        SetPc(@new, Pc(old));
        RbSetParentColor(old, @new, color);
        ChangeChild(old, @new, parent, mm);
    }

    // ---- the gap augmentation (vma_gap_callbacks) -----------------------------------------------------

    private static ulong VmaOfNode(ulong node) => node - (ulong)MmOff<TArch>.VmRb;

    private static ulong NodeOfVma(ulong vma) => vma + (ulong)MmOff<TArch>.VmRb;

    private ulong SubtreeGap(ulong node) => TArch.LoadLong(Node(node) - MmOff<TArch>.VmRb + MmOff<TArch>.RbSubtreeGap);

    private void SetSubtreeGap(ulong node, ulong gap) => TArch.StoreLong(Node(node) - MmOff<TArch>.VmRb + MmOff<TArch>.RbSubtreeGap, gap);

    /// <summary>vm_start_gap(): the start minus the stack guard gap for VM_GROWSDOWN (0 if that would wrap).</summary>
    internal ulong VmStartGap(ulong vma)
    {
        ulong start = VmStart(vma);
        if ((VmFlagsOf(vma) & VmFlags.GrowsDown) != 0)
        {
            ulong gap = start - StackGuardGap;
            return gap > start ? 0 : gap;
        }
        return start;
    }

    /// <summary>vm_end_gap(): the end (x86 has no VM_GROWSUP).</summary>
    internal ulong VmEndGap(ulong vma) => VmEnd(vma);

    /// <summary>vma_compute_gap(): the free space between the previous VMA's end and this one's start (guard gaps included).</summary>
    private ulong VmaComputeGap(ulong vma)
    {
        ulong gap = VmStartGap(vma);
        ulong prev = VmPrev(vma);
        if (prev != 0)
        {
            ulong prevEnd = VmEndGap(prev);
            gap = gap > prevEnd ? gap - prevEnd : 0;
        }
        return gap;
    }

    /// <summary>vma_compute_subtree_gap(): the largest gap in the node's subtree.</summary>
    private ulong ComputeSubtreeGap(ulong node)
    {
        ulong max = VmaComputeGap(VmaOfNode(node));
        ulong l = RbLeft(node), r = RbRight(node);
        if (l != 0 && SubtreeGap(l) > max)
            max = SubtreeGap(l);
        if (r != 0 && SubtreeGap(r) > max)
            max = SubtreeGap(r);
        return max;
    }

    /// <summary>The propagate callback: recompute up to <paramref name="stop"/>, stopping early once a value is unchanged.</summary>
    private void AugmentPropagate(ulong node, ulong stop)
    {
        while (node != stop)
        {
            ulong gap = ComputeSubtreeGap(node);
            if (SubtreeGap(node) == gap)
                break;
            SetSubtreeGap(node, gap);
            node = RbParent(node);
        }
    }

    private void AugmentCopy(ulong old, ulong @new) => SetSubtreeGap(@new, SubtreeGap(old));

    private void AugmentRotate(ulong old, ulong @new)
    {
        SetSubtreeGap(@new, SubtreeGap(old));
        SetSubtreeGap(old, ComputeSubtreeGap(old));
    }

    /// <summary>vma_gap_update(): after a VMA's start or its predecessor's end changed.</summary>
    internal void VmaGapUpdate(ulong vma) => AugmentPropagate(NodeOfVma(vma), 0);

    // ---- linking VMAs (the list and the tree together) ------------------------------------------------

    /// <summary>
    /// __vma_link_list() + __vma_link_rb(): inserts <paramref name="vma"/> after <paramref name="prev"/> (0: at the
    /// head) in the list and into the tree, updates the gaps and highest_vm_end, map_count++.
    /// </summary>
    internal void VmaLink(MmState<TArch> mm, ulong vma, ulong prev)
    {
        byte* m = mm.H;
        ulong next;
        if (prev != 0)
        {
            next = VmNext(prev);
            SetVmNext(prev, vma);
        }
        else
        {
            next = TArch.LoadLong(m + MmOff<TArch>.Mmap);
            TArch.StoreLong(m + MmOff<TArch>.Mmap, vma);
        }
        SetVmPrev(vma, prev);
        SetVmNext(vma, next);
        if (next != 0)
            SetVmPrev(next, vma);

        // Find the link point in the tree (find_vma_links()).
        ulong start = VmStart(vma);
        ulong parent = 0, link = RootSlot(m);
        bool left = false;
        while (link != 0)
        {
            parent = link;
            if (VmEnd(VmaOfNode(link)) > start)
            {
                left = true;
                link = RbLeft(link);
            }
            else
            {
                left = false;
                link = RbRight(link);
            }
        }
        ulong node = NodeOfVma(vma);
        RbSetParentColor(node, parent, RbRed);
        SetLeft(node, 0);
        SetRight(node, 0);
        if (parent == 0)
            SetRoot(m, node);
        else if (left)
            SetLeft(parent, node);
        else
            SetRight(parent, node);

        if (next != 0)
            VmaGapUpdate(next);
        else
            SetMmLong(m, MmOff<TArch>.HighestVmEnd, VmEndGap(vma));
        SetSubtreeGap(node, 0);
        VmaGapUpdate(vma);
        RbInsertColor(node, m);
        AddMapCount(mm, 1);
        mm.InvalidateCache();
    }

    /// <summary>__vma_unlink(): removes <paramref name="vma"/> from the list and the tree; map_count--.</summary>
    internal void VmaUnlink(MmState<TArch> mm, ulong vma)
    {
        byte* m = mm.H;
        ulong prev = VmPrev(vma), next = VmNext(vma);
        RbErase(NodeOfVma(vma), m);
        if (prev != 0)
            SetVmNext(prev, next);
        else
            TArch.StoreLong(m + MmOff<TArch>.Mmap, next);
        if (next != 0)
        {
            SetVmPrev(next, prev);
            VmaGapUpdate(next);
        }
        else
        {
            SetMmLong(m, MmOff<TArch>.HighestVmEnd, prev != 0 ? VmEndGap(prev) : 0);
        }
        SetVmNext(vma, 0);
        SetVmPrev(vma, 0);
        AddMapCount(mm, -1);
        mm.InvalidateCache();
    }

    /// <summary>
    /// Changes a linked VMA's range (what __vma_adjust() does to the VMAs it keeps): the tree order is unchanged
    /// because the caller never moves a VMA over a neighbour. Gaps and highest_vm_end follow.
    /// </summary>
    internal void VmaSetRange(MmState<TArch> mm, ulong vma, ulong start, ulong end, ulong pgoff)
    {
        SetVmStart(vma, start);
        SetVmEnd(vma, end);
        SetVmPgoff(vma, pgoff);
        VmaGapUpdate(vma);
        ulong next = VmNext(vma);
        if (next != 0)
            VmaGapUpdate(next);
        else
            SetMmLong(mm.H, MmOff<TArch>.HighestVmEnd, VmEndGap(vma));
        mm.InvalidateCache();
    }

    // ---- lookups --------------------------------------------------------------------------------------

    /// <summary>find_vma(): the first VMA with vm_end &gt; <paramref name="addr"/>, or 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong FindVma(MmState<TArch> mm, ulong addr)
    {
        // mm->mmap_cache (2.6-3.14; per-thread vmacache later): the VMA the last lookup found.
        if (addr - mm.CacheStart < mm.CacheSpan)
            return mm.CacheVma;
        return FindVmaSlow(mm, addr);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong FindVmaSlow(MmState<TArch> mm, ulong addr)
    {
        ulong found = 0;
        ulong node = RootSlot(mm.H);
        int depth = 0;
        while (node != 0)
        {
            ulong vma = VmaOfNode(node);
            if (VmEnd(vma) > addr)
            {
                found = vma;
                if (VmStart(vma) <= addr)
                    break;
                node = RbLeft(node);
            }
            else
            {
                node = RbRight(node);
            }
            if (++depth > 128)
                throw new MmCorruptException("mm_rb does not end: the VMA tree is corrupt");
        }
        if (found != 0 && VmStart(found) <= addr)
            mm.SetCache(found, VmStart(found), VmEnd(found));
        return found;
    }

    /// <summary>find_vma_intersection(): the first VMA overlapping [start, end), or 0.</summary>
    internal ulong FindVmaIntersection(MmState<TArch> mm, ulong start, ulong end)
    {
        ulong vma = FindVma(mm, start);
        return vma != 0 && end > VmStart(vma) ? vma : 0;
    }

    /// <summary>find_vma_prev(): find_vma() and the VMA before it (the last one when nothing follows).</summary>
    internal ulong FindVmaPrev(MmState<TArch> mm, ulong addr, out ulong prev)
    {
        ulong vma = FindVma(mm, addr);
        if (vma != 0)
        {
            prev = VmPrev(vma);
            return vma;
        }
        prev = LastVma(mm);
        return 0;
    }

    /// <summary>The last VMA (the one ending at highest_vm_end), or 0.</summary>
    internal ulong LastVma(MmState<TArch> mm)
    {
        ulong node = RootSlot(mm.H);
        if (node == 0)
            return 0;
        while (RbRight(node) != 0)
            node = RbRight(node);
        return VmaOfNode(node);
    }

    /// <summary>The first VMA (mm->mmap), or 0.</summary>
    internal ulong FirstVma(MmState<TArch> mm) => TArch.LoadLong(mm.H + MmOff<TArch>.Mmap);

    // ---- the unmapped-area search (mm/mmap.c unmapped_area / unmapped_area_topdown, 3.9-6.0) ----------

    /// <summary>vm_unmapped_area() bottom-up: the lowest fit in [low, high); -ENOMEM as ulong.MaxValue.</summary>
    internal ulong UnmappedArea(MmState<TArch> mm, ulong length0, ulong lowLimit0, ulong highLimit0)
    {
        ulong length = length0;
        if (highLimit0 < length)
            return NoArea;
        ulong highLimit = highLimit0 - length;
        if (lowLimit0 > highLimit)
            return NoArea;
        ulong lowLimit = lowLimit0 + length;
        ulong gapStart, gapEnd;
        ulong node = RootSlot(mm.H);
        if (node == 0 || SubtreeGap(node) < length)
            goto checkHighest;
        ulong vma = VmaOfNode(node);
        while (true)
        {
            gapEnd = VmStartGap(vma);
            ulong lnode = RbLeft(NodeOfVma(vma));
            if (gapEnd >= lowLimit && lnode != 0 && SubtreeGap(lnode) >= length)
            {
                vma = VmaOfNode(lnode);
                continue;
            }
            gapStart = VmPrev(vma) != 0 ? VmEndGap(VmPrev(vma)) : 0;
        checkCurrent:
            if (gapStart > highLimit)
                return NoArea;
            if (gapEnd >= lowLimit && gapEnd > gapStart && gapEnd - gapStart >= length)
                goto found;
            ulong rnode = RbRight(NodeOfVma(vma));
            if (rnode != 0 && SubtreeGap(rnode) >= length)
            {
                vma = VmaOfNode(rnode);
                continue;
            }
            while (true)
            {
                ulong prevNode = NodeOfVma(vma);
                ulong parent = RbParent(prevNode);
                if (parent == 0)
                    goto checkHighest;
                vma = VmaOfNode(parent);
                if (prevNode == RbLeft(parent))
                {
                    gapStart = VmEndGap(VmPrev(vma));
                    gapEnd = VmStartGap(vma);
                    goto checkCurrent;
                }
            }
        }
    checkHighest:
        gapStart = TArch.LoadLong(mm.H + MmOff<TArch>.HighestVmEnd);
        if (gapStart > highLimit)
            return NoArea;
    found:
        if (gapStart < lowLimit0)
            gapStart = lowLimit0;
        return gapStart;
    }

    /// <summary>vm_unmapped_area() top-down: the highest fit in [low, high); -ENOMEM as ulong.MaxValue.</summary>
    internal ulong UnmappedAreaTopdown(MmState<TArch> mm, ulong length, ulong lowLimit0, ulong highLimit0)
    {
        ulong gapEnd = highLimit0;
        if (gapEnd < length)
            return NoArea;
        ulong highLimit = gapEnd - length;
        if (lowLimit0 > highLimit)
            return NoArea;
        ulong lowLimit = lowLimit0 + length;
        ulong gapStart = TArch.LoadLong(mm.H + MmOff<TArch>.HighestVmEnd);
        if (gapStart <= highLimit)
            goto foundHighest;
        ulong node = RootSlot(mm.H);
        if (node == 0 || SubtreeGap(node) < length)
            return NoArea;
        ulong vma = VmaOfNode(node);
        while (true)
        {
            gapStart = VmPrev(vma) != 0 ? VmEndGap(VmPrev(vma)) : 0;
            ulong rnode = RbRight(NodeOfVma(vma));
            if (gapStart <= highLimit && rnode != 0 && SubtreeGap(rnode) >= length)
            {
                vma = VmaOfNode(rnode);
                continue;
            }
        checkCurrent:
            gapEnd = VmStartGap(vma);
            if (gapEnd < lowLimit)
                return NoArea;
            if (gapStart <= highLimit && gapEnd > gapStart && gapEnd - gapStart >= length)
                goto found;
            ulong lnode = RbLeft(NodeOfVma(vma));
            if (lnode != 0 && SubtreeGap(lnode) >= length)
            {
                vma = VmaOfNode(lnode);
                continue;
            }
            while (true)
            {
                ulong prevNode = NodeOfVma(vma);
                ulong parent = RbParent(prevNode);
                if (parent == 0)
                    return NoArea;
                vma = VmaOfNode(parent);
                if (prevNode == RbRight(parent))
                {
                    gapStart = VmPrev(vma) != 0 ? VmEndGap(VmPrev(vma)) : 0;
                    goto checkCurrent;
                }
            }
        }
    found:
        if (gapEnd > highLimit0)
            gapEnd = highLimit0;
    foundHighest:
        return gapEnd - length;
    }

    /// <summary>What the gap searches return for -ENOMEM.</summary>
    internal const ulong NoArea = ulong.MaxValue;
}
