using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

// The process subsystem's (issue #5) access to a user address space's page tables: pte_offset_map() /
// pte_alloc() without a virtual call per page, and free_pgtables() of the tables a range no longer needs. The
// caller serialises PTE changes of one address space (the mm's lock, the kernel's mmap_lock + PTE lock); table
// population takes page_table_lock as __pte_alloc()/__pmd_alloc() do.
internal sealed unsafe partial class UserAddressSpace<TArch>
{
    private const ulong Present = (ulong)PteFlags.Present;

    /// <summary>
    /// pte_offset_map(): the PTE slot of <paramref name="va"/>, or null when a table on the way is missing. Never
    /// allocates.
    /// </summary>
    /// <exception cref="MappingException">A large page maps the address.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* PteOffset(ulong va)
    {
        byte* arena = _m.Memory.Base;
        ulong table = Pgd;
        for (int level = TArch.PagingLevels; level > 1; level--)
        {
            ulong e = TArch.LoadPte(arena + table + ((ulong)PageTables<TArch>.Index(va, level) << TArch.PteShift));
            if ((e & Present) == 0)
                return null;
            if (PageTables<TArch>.IsLarge(e, level))
                ThrowLarge(va, level);
            table = e & TArch.PtePfnMask;
        }
        return arena + table + ((ulong)PageTables<TArch>.Index(va, 1) << TArch.PteShift);
    }

    /// <summary>
    /// pte_alloc() + pte_offset_map(): the PTE slot of <paramref name="va"/>, allocating the missing tables (charged
    /// to this address space and NR_PAGETABLE); null when a table could not be allocated (VM_FAULT_OOM).
    /// </summary>
    /// <exception cref="MappingException">A large page maps the address.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* PteAlloc(Cpu cpu, ulong va)
    {
        byte* p = PteOffset(va);
        return p != null ? p : PteAllocSlow(cpu, va);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private byte* PteAllocSlow(Cpu cpu, ulong va)
    {
        if (IsDisposed)
            throw new KmemException("the address space has been torn down");
        lock (_lock)
        {
            long before = PageTables<TArch>.AllocatedByThisThread;
            bool top = false;
            byte* p = _paging.Tables.WalkAlloc(cpu, Pgd, va, 1, user: true, ref top);
            _tables += PageTables<TArch>.AllocatedByThisThread - before;
            return p;
        }
    }

    /// <summary>
    /// free_pgtables() for the tables on <paramref name="va"/>'s path: frees, bottom up, every user table that holds
    /// no entry any more (the pgd stays). The caller zapped the leaves and knows no VMA needs the span. Returns the
    /// tables freed.
    /// </summary>
    internal int FreeEmptyTables(Cpu cpu, ulong va)
    {
        var tables = _paging.Tables;
        Span<nint> entry = stackalloc nint[6];
        Span<ulong> table = stackalloc ulong[6];
        int freed = 0;
        lock (_lock)
        {
            table[TArch.PagingLevels] = Pgd;
            int deepest = TArch.PagingLevels;
            for (int level = TArch.PagingLevels; level > 1; level--)
            {
                byte* p = tables.EntryPtr(table[level], level, va);
                ulong e = PageTables<TArch>.Load(p);
                if ((e & Present) == 0 || PageTables<TArch>.IsLarge(e, level))
                    break;
                entry[level] = (nint)p;
                table[level - 1] = PageTables<TArch>.NextTable(e);
                deepest = level - 1;
            }
            for (int l = deepest; l < TArch.PagingLevels; l++)
            {
                if (!tables.IsBuddyTable(table[l]) || !tables.TableEmpty(table[l], l))
                    break;
                PageTables<TArch>.Clear((byte*)entry[l + 1]);
                tables.FreeTable(cpu, table[l]);
                freed++;
            }
            _tables -= freed;
        }
        return freed;
    }

    private static void ThrowLarge(ulong va, int level) =>
        throw new MappingException($"0x{va:x} is mapped by a {PageTables<TArch>.EntrySpan(level) >> 10} KiB page: user huge pages are not supported by the process subsystem", va);
}
