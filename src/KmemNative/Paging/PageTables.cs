using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

/// <summary>
/// Page tables as the kernel builds them (mm/memory.c, include/linux/pgtable.h, arch/x86/include/asm/pgalloc.h):
/// tables are 4 KiB pages of the arena, entries hold physical addresses, and every level is reached through the
/// profile's geometry, so the same code builds 2-level and 4-level trees.
/// </summary>
/// <remarks>
/// <para>Tables come from memblock while the kernel boots (reserved pages, like the kernel's early page tables)
/// and afterwards from the buddy allocator with GFP_PGTABLE_KERNEL (GFP_KERNEL|__GFP_ZERO, plus __GFP_ACCOUNT for
/// user tables): the descriptor is typed PGTY_table and NR_PAGETABLE counts it (__pagetable_ctor()); freeing
/// resets the type first (pagetable_dtor()). Boot tables are never freed.</para>
/// <para>Non-leaf entries are written as the x86 populate functions write them: <c>_PAGE_TABLE | __pa(table)</c>.</para>
/// <para>Callers serialise changes to one tree (the kernel's page_table_lock); the MMU reads without locks.</para>
/// </remarks>
internal sealed unsafe partial class PageTables<TArch> where TArch : struct, IArch
{
    /// <summary>What <see cref="AllocTable"/> returns when there is no memory.</summary>
    public const ulong NoTable = ulong.MaxValue;

    private const ulong P = (ulong)PteFlags.Present;
    private const ulong Ps = (ulong)PteFlags.Pse;

    private readonly Machine<TArch> _m;
    private readonly byte* _base;
    private readonly ulong _arenaSize;

    public PageTables(Machine<TArch> machine)
    {
        _m = machine;
        _base = machine.Memory.Base;
        _arenaSize = machine.Memory.Size;
    }

    /// <summary>The early allocator (memblock) while booting; null once the buddy allocator runs.</summary>
    public Func<ulong>? BootAlloc { get; set; }

    /// <summary>Boot-time page-table pages taken from memblock.</summary>
    public int BootTables { get; set; }

    /// <summary>Buddy page-table pages this thread allocated (callers diff it around an operation to account its tables).</summary>
    [ThreadStatic]
    private static long t_allocated;

    /// <summary>Page-table pages allocated from the buddy allocator by the calling thread so far.</summary>
    public static long AllocatedByThisThread => t_allocated;

    // ---- geometry -------------------------------------------------------------------------------------

    /// <summary>PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT...: the address bit where level <paramref name="level"/>'s index starts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Shift(int level) => 12 + (level - 1) * TArch.IndexBits;

    /// <summary>Bytes one entry of <paramref name="level"/> maps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntrySpan(int level) => 1UL << Shift(level);

    /// <summary>PTRS_PER_*: entries per table at <paramref name="level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Ptrs(int level) => 1 << (level == TArch.PagingLevels ? TArch.TopLevelIndexBits : TArch.IndexBits);

    /// <summary>pgd_index()/pmd_index()/pte_index(): the entry of <paramref name="va"/> in a table of <paramref name="level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(ulong va, int level) => (int)((va >> Shift(level)) & (ulong)(Ptrs(level) - 1));

    /// <summary>True when <paramref name="e"/> at <paramref name="level"/> is a PS leaf (pmd_leaf()/pud_leaf()).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsLarge(ulong e, int level) =>
        level > 1 && ((TArch.LargeLeafLevels >> level) & 1) != 0 && (e & (P | Ps)) == (P | Ps);

    /// <summary>True when a PS leaf may sit at <paramref name="level"/>.</summary>
    public static bool LargeAllowed(int level) => ((TArch.LargeLeafLevels >> level) & 1) != 0;

    /// <summary>Host pointer of the table page at <paramref name="phys"/>, checked against the arena.</summary>
    public byte* Table(ulong phys)
    {
        if (phys > _arenaSize - PageSize.Bytes || (phys & 0xfff) != 0)
            throw new PhysicalAddressException($"page table at physical 0x{phys:x} is outside the machine's memory", phys);
        return _base + phys;
    }

    /// <summary>Pointer to the entry of <paramref name="va"/> in the table at <paramref name="table"/> of <paramref name="level"/>.</summary>
    public byte* EntryPtr(ulong table, int level, ulong va) => Table(table) + ((long)Index(va, level) << TArch.PteShift);

    /// <summary>Physical address of an entry pointer.</summary>
    public ulong PhysOf(byte* entry) => (ulong)(entry - _base);

    /// <summary>READ_ONCE(*entry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load(byte* p) => TArch.LoadPte(p);

    /// <summary>set_pte()/set_pmd()/set_pud()/set_p4d()/set_pgd(): store an entry (masked by __supported_pte_mask).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Set(byte* p, ulong value) => TArch.StorePte(p, value & TArch.SupportedPteMask);

    /// <summary>pte_clear()/pmd_clear()/...: store 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Clear(byte* p) => TArch.StorePte(p, 0);

    /// <summary>The next table's physical address in a non-leaf entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong NextTable(ulong e) => e & TArch.PtePfnMask;

    /// <summary>
    /// A leaf entry mapping <paramref name="phys"/> at <paramref name="level"/> (pfn_pte()/pfn_pmd()/pfn_pud()).
    /// <paramref name="prot"/> is a 4 KiB protection (bit 7 = PAT); a large leaf gets PSE, its PAT bit moves to
    /// bit 12 (protval_4k_2_large()), and on 2-level paging address bits 39:32 go to bits 20:13 (PSE-36).
    /// </summary>
    public static ulong MakeLeaf(ulong phys, ulong prot, int level)
    {
        if (level == 1)
            return (phys & TArch.PtePfnMask) | (prot & ~TArch.PtePfnMask);
        ulong flags = (prot & 0xfff & ~Ps) | (prot & 0xfff0_0000_0000_0000UL) | Ps;
        if ((prot & (ulong)PteFlags.Pat) != 0)
            flags |= (ulong)PteFlags.PatLarge;
        if (TArch.Mode == PagingMode.TwoLevel)
            return (phys & Pte32.LargeFrameMask) | (((phys >> 32) & 0xff) << 13) | flags;
        return (phys & ~(EntrySpan(level) - 1) & TArch.PtePfnMask) | flags;
    }

    /// <summary>The physical frame a leaf maps (first byte of the page).</summary>
    public static ulong LeafFrame(ulong e, int level) => level == 1 ? e & TArch.PtePfnMask : TArch.LargePageFrame(e, level);

    // ---- table pages ----------------------------------------------------------------------------------

    /// <summary>
    /// pte_alloc_one()/pmd_alloc_one()/pgd_alloc()'s page: a zeroed table page; from memblock during boot, else
    /// from the buddy allocator typed as a page table. <see cref="NoTable"/> when memory is exhausted.
    /// </summary>
    public ulong AllocTable(Cpu? cpu, bool user)
    {
        if (BootAlloc is { } boot)
        {
            ulong phys = boot();
            new Span<byte>(Table(phys), PageSize.Int).Clear();
            BootTables++;
            return phys;
        }
        // GFP_PGTABLE_KERNEL = GFP_KERNEL | __GFP_ZERO; GFP_PGTABLE_USER adds __GFP_ACCOUNT.
        var gfp = Gfp.Kernel | Gfp.Zero | (user ? Gfp.Account : Gfp.None);
        ulong pfn = _m.PageAllocator.AllocPages(cpu ?? _m.ThisCpu, gfp, 0);
        if (pfn == PageAllocator<TArch>.NoPage)
            return NoTable;
        // __pagetable_ctor(): __folio_set_pgtable() and lruvec_stat_add_folio(folio, NR_PAGETABLE).
        MemMap<TArch>.PageType(_m.MemMap.Desc(pfn)) = (uint)PageBits.PgtyTable << 24;
        _m.ModNodeState(NodeStat.NrPageTablePages, 1);
        t_allocated++;
        return pfn << PageSize.Shift;
    }

    /// <summary>True when the table at <paramref name="phys"/> came from the buddy allocator (PageTable()).</summary>
    public bool IsBuddyTable(ulong phys) =>
        phys >> PageSize.Shift < _m.MaxPfn && MemMap<TArch>.PageType(_m.MemMap.Desc(phys >> PageSize.Shift)) >> 24 == PageBits.PgtyTable;

    /// <summary>pagetable_dtor() + pagetable_free(): back to the buddy allocator. Boot tables stay; returns false for them.</summary>
    public bool FreeTable(Cpu? cpu, ulong phys)
    {
        if (!IsBuddyTable(phys))
            return false;
        ulong pfn = phys >> PageSize.Shift;
        byte* d = _m.MemMap.Desc(pfn);
        MemMap<TArch>.PageType(d) = PageBits.NoType;
        MemMap<TArch>.SetIndex(d, 0);   // pt_mm / pt_index overlay page->index
        _m.ModNodeState(NodeStat.NrPageTablePages, -1);
        _m.PageAllocator.FreePages(cpu ?? _m.ThisCpu, pfn, 0);
        return true;
    }

    // ---- walking and populating ------------------------------------------------------------------------

    /// <summary>
    /// The entry of <paramref name="va"/> at <paramref name="target"/> under <paramref name="root"/>, allocating
    /// missing tables on the way (pud_alloc()/pmd_alloc()/pte_alloc_kernel() and the *_populate() calls).
    /// Null when a table could not be allocated. <paramref name="topChanged"/> is set when a top-level entry was
    /// populated (the kernel's PGTBL_*_MODIFIED mask for arch_sync_kernel_mappings()).
    /// </summary>
    /// <exception cref="MappingException">A large page already maps the address above <paramref name="target"/>.</exception>
    public byte* WalkAlloc(Cpu? cpu, ulong root, ulong va, int target, bool user, ref bool topChanged)
    {
        ulong table = root;
        for (int level = TArch.PagingLevels; ; level--)
        {
            byte* p = EntryPtr(table, level, va);
            if (level == target)
                return p;
            ulong e = Load(p);
            if ((e & P) == 0)
            {
                if (e != 0)
                    throw new MappingException($"0x{va:x}: level-{level} entry 0x{e:x} is not present but not empty", va);
                ulong t = AllocTable(cpu, user);
                if (t == NoTable)
                    return null;
                Set(p, t | PageProt.PageTable);
                if (level == TArch.PagingLevels)
                    topChanged = true;
                e = Load(p);
            }
            else if (IsLarge(e, level))
            {
                throw new MappingException($"0x{va:x} is inside a {EntrySpan(level) >> 10} KiB page mapped at level {level}", va);
            }
            table = NextTable(e);
        }
    }

    /// <summary>
    /// Walks to the leaf of <paramref name="va"/> without allocating: returns the pointer to the leaf entry (a PTE,
    /// or a large PDE/PDPTE) and its level, or the first non-present entry; never null.
    /// </summary>
    public byte* Lookup(ulong root, ulong va, out int level)
    {
        ulong table = root;
        for (level = TArch.PagingLevels; ; level--)
        {
            byte* p = EntryPtr(table, level, va);
            ulong e = Load(p);
            if (level == 1 || (e & P) == 0 || IsLarge(e, level))
                return p;
            table = NextTable(e);
        }
    }

    /// <summary>Maps one page of size EntrySpan(<paramref name="level"/>) at <paramref name="va"/>; false when out of memory.</summary>
    /// <exception cref="MappingException">Misaligned, or something is mapped there already.</exception>
    public bool MapLeaf(Cpu? cpu, ulong root, ulong va, ulong phys, ulong prot, int level, bool user, ref bool topChanged)
    {
        ulong span = EntrySpan(level);
        if (((va | phys) & (span - 1)) != 0)
            throw new MappingException($"0x{va:x} -> 0x{phys:x}: not aligned to the {span >> 10} KiB page size", va);
        if (level > 1 && !LargeAllowed(level))
            throw new MappingException($"{TArch.Name} has no {span >> 10} KiB pages", va);
        byte* p = WalkAlloc(cpu, root, va, level, user, ref topChanged);
        if (p == null)
            return false;
        ulong old = Load(p);
        if (old != 0)
            throw new MappingException($"0x{va:x} is already mapped (level-{level} entry 0x{old:x})", va);
        Set(p, MakeLeaf(phys, prot, level));
        return true;
    }

    /// <summary>pte_clear()/pmd_clear() of the leaf mapping <paramref name="va"/>; returns the old entry (0 when nothing was mapped).</summary>
    public ulong ClearLeaf(ulong root, ulong va, out int level)
    {
        byte* p = Lookup(root, va, out level);
        ulong old = Load(p);
        if ((old & P) != 0 && (level == 1 || IsLarge(old, level)))
        {
            Clear(p);
            return old;
        }
        if (level == 1 && old != 0)
        {
            Clear(p); // a non-present PTE (PROT_NONE, swap entry) is cleared too
            return old;
        }
        return 0;
    }

    /// <summary>True when every entry of the table at <paramref name="table"/> is 0.</summary>
    public bool TableEmpty(ulong table, int level)
    {
        byte* t = Table(table);
        int n = Ptrs(level) << TArch.PteShift;
        return new ReadOnlySpan<byte>(t, n).IndexOfAnyExcept((byte)0) < 0;
    }

    /// <summary>
    /// Frees the tables on <paramref name="va"/>'s path that hold nothing any more, from the bottom up, as long as
    /// the table being emptied sits below <paramref name="keepLevel"/> (tables referenced from levels at or above it
    /// stay). Sets <paramref name="topChanged"/> when a top-level entry was cleared.
    /// </summary>
    public void FreeEmptyTables(Cpu? cpu, ulong root, ulong va, int keepLevel, ref bool topChanged)
    {
        Span<nint> entry = stackalloc nint[6];   // entry[l]: the level-l entry pointing at table[l - 1]
        Span<ulong> table = stackalloc ulong[6]; // table[l]: the level-l table on va's path
        table[TArch.PagingLevels] = root;
        int deepest = TArch.PagingLevels;
        for (int level = TArch.PagingLevels; level > 1; level--)
        {
            byte* p = EntryPtr(table[level], level, va);
            ulong e = Load(p);
            if ((e & P) == 0 || IsLarge(e, level))
                break;
            entry[level] = (nint)p;
            table[level - 1] = NextTable(e);
            deepest = level - 1;
        }
        for (int l = deepest; l < TArch.PagingLevels && l + 1 < keepLevel; l++)
        {
            if (!IsBuddyTable(table[l]) || !TableEmpty(table[l], l))
                return;
            Clear((byte*)entry[l + 1]);
            if (l + 1 == TArch.PagingLevels)
                topChanged = true;
            FreeTable(cpu, table[l]);
        }
    }

    /// <summary>
    /// Splits the large leaf mapping <paramref name="va"/> into a table of the next level down with the same
    /// protection (split_large_page()). Returns false when no table page could be allocated.
    /// </summary>
    public bool SplitLarge(Cpu? cpu, ulong root, ulong va, bool user)
    {
        byte* p = Lookup(root, va, out int level);
        ulong e = Load(p);
        if (!IsLarge(e, level))
            throw new MappingException($"0x{va:x} is not mapped by a large page", va);
        ulong t = AllocTable(cpu, user);
        if (t == NoTable)
            return false;
        ulong frame = TArch.LargePageFrame(e, level);
        ulong prot = e & 0xfff & ~Ps | (e & 0xfff0_0000_0000_0000UL);
        if ((e & (ulong)PteFlags.PatLarge) != 0)
            prot |= (ulong)PteFlags.Pat; // pgprot_large_2_4k(): MakeLeaf moves it back for large sub-leaves
        int sub = level - 1;
        byte* table = Table(t);
        for (int i = 0; i < Ptrs(sub); i++)
            Set(table + ((long)i << TArch.PteShift), MakeLeaf(frame + (ulong)i * EntrySpan(sub), prot, sub));
        Set(p, t | PageProt.PageTable);
        return true;
    }

    /// <summary>
    /// free_pgd_range() for top-level entries [<paramref name="firstTop"/>, <paramref name="endTop"/>): clears every entry
    /// and frees every table below it. Leaves are cleared, not freed: their pages belong to whoever mapped them.
    /// Returns the number of table pages freed.
    /// </summary>
    public int FreeRange(Cpu? cpu, ulong root, int firstTop, int endTop)
    {
        int freed = 0;
        byte* top = Table(root);
        for (int i = firstTop; i < endTop; i++)
        {
            byte* p = top + ((long)i << TArch.PteShift);
            ulong e = Load(p);
            if ((e & P) != 0 && !IsLarge(e, TArch.PagingLevels))
                freed += FreeTree(cpu, NextTable(e), TArch.PagingLevels - 1);
            Clear(p);
        }
        return freed;
    }

    private int FreeTree(Cpu? cpu, ulong table, int level)
    {
        int freed = 0;
        if (level > 1)
        {
            byte* t = Table(table);
            for (int i = 0; i < Ptrs(level); i++)
            {
                ulong e = Load(t + ((long)i << TArch.PteShift));
                if ((e & P) != 0 && !IsLarge(e, level))
                    freed += FreeTree(cpu, NextTable(e), level - 1);
            }
        }
        new Span<byte>(Table(table), PageSize.Int).Clear();
        if (FreeTable(cpu, table))
            freed++;
        return freed;
    }

    /// <summary>Calls <paramref name="visit"/>(va, entry, level) for every present leaf in [start, end) under <paramref name="root"/>.</summary>
    public void ForEachLeaf(ulong root, ulong start, ulong end, Action<ulong, ulong, int> visit)
    {
        ulong va = start;
        while (va < end)
        {
            byte* p = Lookup(root, va, out int level);
            ulong e = Load(p);
            ulong span = EntrySpan(level);
            if ((e & P) != 0)
                visit(va & ~(span - 1), e, level);
            ulong next = (va & ~(span - 1)) + span;
            if (next <= va)
                break; // wrapped past the top of the address space
            va = next;
        }
    }
}
