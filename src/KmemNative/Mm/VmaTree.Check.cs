namespace KmemNative.Mm;

// validate_mm(): the VMA list and tree checked against each other and against the mm's counters.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    // ---- checks -----------------------------------------------------------------------------------------

    /// <summary>
    /// validate_mm(): the list is sorted and doubly linked, the tree holds the same VMAs in order with valid
    /// red-black colouring and correct subtree gaps, map_count and highest_vm_end agree. Throws on the first
    /// disagreement.
    /// </summary>
    internal void ValidateMm(MmState<TArch> mm)
    {
        var list = new List<ulong>();
        ulong prev = 0, lastEnd = 0;
        for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
        {
            if (VmPrev(v) != prev)
                throw new MmCorruptException($"vma 0x{v:x}: vm_prev 0x{VmPrev(v):x}, expected 0x{prev:x}");
            if (VmStart(v) >= VmEnd(v) || (VmStart(v) & 0xfff) != 0 || (VmEnd(v) & 0xfff) != 0)
                throw new MmCorruptException($"vma 0x{v:x}: bad range 0x{VmStart(v):x}-0x{VmEnd(v):x}");
            if (VmStart(v) < lastEnd)
                throw new MmCorruptException($"vma 0x{v:x} at 0x{VmStart(v):x} overlaps or precedes its predecessor ending at 0x{lastEnd:x}");
            if (VmMm(v) != mm.Va)
                throw new MmCorruptException($"vma 0x{v:x}: vm_mm 0x{VmMm(v):x} is not mm 0x{mm.Va:x}");
            lastEnd = VmEnd(v);
            list.Add(v);
            prev = v;
            if (list.Count > 1 << 20)
                throw new MmCorruptException("the VMA list does not end");
        }
        int mapCount = MapCount(mm);
        if (mapCount != list.Count)
            throw new MmCorruptException($"map_count {mapCount} but {list.Count} VMAs on the list");
        ulong highest = TArch.LoadLong(mm.H + MmOff<TArch>.HighestVmEnd);
        if (highest != (list.Count == 0 ? 0 : VmEndGap(list[^1])))
            throw new MmCorruptException($"highest_vm_end 0x{highest:x} is not the last VMA's end");
        var inorder = new List<ulong>(list.Count);
        ulong root = RootSlot(mm.H);
        if (root != 0)
        {
            if (RbParent(root) != 0 || RbIsRed(root))
                throw new MmCorruptException("mm_rb: the root has a parent or is red");
            CheckSubtree(root, inorder, out _);
        }
        if (inorder.Count != list.Count)
            throw new MmCorruptException($"mm_rb holds {inorder.Count} VMAs, the list {list.Count}");
        for (int i = 0; i < list.Count; i++)
            if (inorder[i] != list[i])
                throw new MmCorruptException($"mm_rb order differs from the list at position {i}");
    }

    private void CheckSubtree(ulong node, List<ulong> inorder, out int blackHeight)
    {
        ulong l = RbLeft(node), r = RbRight(node);
        int lh = 0, rh = 0;
        if (l != 0)
        {
            if (RbParent(l) != node)
                throw new MmCorruptException($"rb_node 0x{l:x}: parent link does not point back");
            if (RbIsRed(node) && RbIsRed(l))
                throw new MmCorruptException($"rb_node 0x{node:x}: red node with a red child");
            CheckSubtree(l, inorder, out lh);
        }
        inorder.Add(VmaOfNode(node));
        if (r != 0)
        {
            if (RbParent(r) != node)
                throw new MmCorruptException($"rb_node 0x{r:x}: parent link does not point back");
            if (RbIsRed(node) && RbIsRed(r))
                throw new MmCorruptException($"rb_node 0x{node:x}: red node with a red child");
            CheckSubtree(r, inorder, out rh);
        }
        if (lh != rh)
            throw new MmCorruptException($"rb_node 0x{node:x}: black heights {lh} and {rh} differ");
        blackHeight = lh + (RbIsBlack(node) ? 1 : 0);
        if (SubtreeGap(node) != ComputeSubtreeGap(node))
            throw new MmCorruptException($"vma 0x{VmaOfNode(node):x}: rb_subtree_gap 0x{SubtreeGap(node):x}, expected 0x{ComputeSubtreeGap(node):x}");
    }
}
