namespace KmemNative.Mm;

// The red-black tree of VMAs (lib/rbtree.c __rb_insert, __rb_erase_augmented, ____rb_erase_color) over rb_nodes in
// the arena, with the rb_subtree_gap augment callbacks of VmaTree.cs.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    // ---- insert and erase (lib/rbtree.c __rb_insert / __rb_erase_augmented / ____rb_erase_color) -------

    private void RbInsertColor(ulong node, byte* mm)
    {
        ulong parent = Pc(node) & ~3UL; // rb_red_parent(): node is red
        while (true)
        {
            if (parent == 0)
            {
                RbSetParentColor(node, 0, RbBlack);
                break;
            }
            if (RbIsBlack(parent))
                break;
            ulong gparent = Pc(parent) & ~3UL;
            // lib/rbtree.c writes the two mirror cases out; here 'side' is the parent's side under gparent.
            int side = parent != RbRight(gparent) ? RbLeftSlot : RbRightSlot, other = 3 - side;
            ulong tmp = RbChild(gparent, other);
            if (tmp != 0 && RbIsRed(tmp))
            {
                RbSetParentColor(tmp, gparent, RbBlack);
                RbSetParentColor(parent, gparent, RbBlack);
                node = gparent;
                parent = RbParent(node);
                RbSetParentColor(node, parent, RbRed);
                continue;
            }
            tmp = RbChild(parent, other);
            if (node == tmp)
            {
                tmp = RbChild(node, side);
                SetChild(parent, other, tmp);
                SetChild(node, side, parent);
                if (tmp != 0)
                    RbSetParentColor(tmp, parent, RbBlack);
                RbSetParentColor(parent, node, RbRed);
                AugmentRotate(parent, node);
                parent = node;
                tmp = RbChild(node, other);
            }
            SetChild(gparent, side, tmp);
            SetChild(parent, other, gparent);
            if (tmp != 0)
                RbSetParentColor(tmp, gparent, RbBlack);
            RotateSetParents(gparent, parent, mm, RbRed);
            AugmentRotate(gparent, parent);
            break;
        }
    }

    private void RbErase(ulong node, byte* mm)
    {
        ulong child = RbRight(node), tmp = RbLeft(node), parent, rebalance, pc;
        if (tmp == 0)
        {
            pc = Pc(node);
            parent = pc & ~3UL;
            ChangeChild(node, child, parent, mm);
            if (child != 0)
            {
                SetPc(child, pc);
                rebalance = 0;
            }
            else
            {
                rebalance = (pc & 1) != 0 ? parent : 0;
            }
            tmp = parent;
        }
        else if (child == 0)
        {
            pc = Pc(node);
            SetPc(tmp, pc);
            parent = pc & ~3UL;
            ChangeChild(node, tmp, parent, mm);
            rebalance = 0;
            tmp = parent;
        }
        else
        {
            ulong successor = child, child2;
            tmp = RbLeft(child);
            if (tmp == 0)
            {
                parent = successor;
                child2 = RbRight(successor);
                AugmentCopy(node, successor);
            }
            else
            {
                do
                {
                    parent = successor;
                    successor = tmp;
                    tmp = RbLeft(tmp);
                }
                while (tmp != 0);
                child2 = RbRight(successor);
                SetLeft(parent, child2);
                SetRight(successor, child);
                RbSetParent(child, successor);
                AugmentCopy(node, successor);
                AugmentPropagate(parent, successor);
            }
            tmp = RbLeft(node);
            SetLeft(successor, tmp);
            RbSetParent(tmp, successor);
            pc = Pc(node);
            tmp = pc & ~3UL;
            ChangeChild(node, successor, tmp, mm);
            if (child2 != 0)
            {
                RbSetParentColor(child2, parent, RbBlack);
                rebalance = 0;
            }
            else
            {
                rebalance = RbIsBlack(successor) ? parent : 0;
            }
            SetPc(successor, pc);
            tmp = successor;
        }
        AugmentPropagate(tmp, 0);
        if (rebalance != 0)
            RbEraseColor(rebalance, mm);
    }

    private void RbEraseColor(ulong parent, byte* mm)
    {
        ulong node = 0, sibling, tmp1, tmp2;
        while (true)
        {
            // lib/rbtree.c writes the two mirror cases out; here 'side' is node's side under parent (node may be
            // NULL: it is the left child unless parent's right slot is NULL too).
            int side = node != RbRight(parent) ? RbLeftSlot : RbRightSlot, other = 3 - side;
            sibling = RbChild(parent, other);
            if (RbIsRed(sibling))
            {
                tmp1 = RbChild(sibling, side);
                SetChild(parent, other, tmp1);
                SetChild(sibling, side, parent);
                RbSetParentColor(tmp1, parent, RbBlack);
                RotateSetParents(parent, sibling, mm, RbRed);
                AugmentRotate(parent, sibling);
                sibling = tmp1;
            }
            tmp1 = RbChild(sibling, other);
            if (tmp1 == 0 || RbIsBlack(tmp1))
            {
                tmp2 = RbChild(sibling, side);
                if (tmp2 == 0 || RbIsBlack(tmp2))
                {
                    RbSetParentColor(sibling, parent, RbRed);
                    if (RbIsRed(parent))
                    {
                        RbSetBlack(parent);
                    }
                    else
                    {
                        node = parent;
                        parent = RbParent(node);
                        if (parent != 0)
                            continue;
                    }
                    break;
                }
                tmp1 = RbChild(tmp2, other);
                SetChild(sibling, side, tmp1);
                SetChild(tmp2, other, sibling);
                SetChild(parent, other, tmp2);
                if (tmp1 != 0)
                    RbSetParentColor(tmp1, sibling, RbBlack);
                AugmentRotate(sibling, tmp2);
                tmp1 = sibling;
                sibling = tmp2;
            }
            tmp2 = RbChild(sibling, side);
            SetChild(parent, other, tmp2);
            SetChild(sibling, side, parent);
            RbSetParentColor(tmp1, sibling, RbBlack);
            if (tmp2 != 0)
                RbSetParent(tmp2, parent);
            RotateSetParents(parent, sibling, mm, RbBlack);
            AugmentRotate(parent, sibling);
            break;
        }
    }
}
