using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

/// <summary>
/// The kernel's address space: swapper_pg_dir / init_top_pgt built at boot (the linear map, and on x86-64 the
/// vmemmap and the kernel text mapping; on i386 the pkmap and fixmap page tables), the areas of the kernel
/// virtual map, and the kernel-half synchronisation into every other page directory.
/// </summary>
/// <remarks>
/// <para>Boot page tables come from memblock, as the kernel's early tables do (brk/memblock in
/// init_mem_mapping() and kernel_physical_mapping_init()): they are reserved pages, not counted in NR_PAGETABLE
/// and never freed. The top-level table itself sits in the kernel image's .bss, right after empty_zero_page,
/// as swapper_pg_dir does; the pgd_list head follows it.</para>
/// <para>Every other page directory copies the kernel half (entries from KERNEL_PGD_BOUNDARY) at pgd_alloc() and
/// joins pgd_list, linked through the lru field of its struct page (ptdesc->pt_list); when a top-level kernel
/// entry changes later (a new page table for vmalloc on i386, a new PUD page on x86-64) the change is copied into
/// every directory on the list (arch_sync_kernel_mappings()).</para>
/// </remarks>
internal sealed unsafe partial class KernelPaging<TArch> where TArch : struct, IArch
{
    private const ulong P = (ulong)PteFlags.Present;

    private readonly Machine<TArch> _m;
    private readonly Lock _lock = new();   // init_mm.page_table_lock

    internal KernelPaging(Machine<TArch> machine)
    {
        _m = machine;
        Tables = new PageTables<TArch>(machine);
    }

    /// <summary>The table operations.</summary>
    public PageTables<TArch> Tables { get; }

    /// <summary>Physical address of swapper_pg_dir (i386) / init_top_pgt (x86-64).</summary>
    public ulong SwapperPgDir { get; private set; }

    /// <summary>Physical address of the pgd_list head.</summary>
    public ulong PgdListPhys { get; private set; }

    /// <summary>init_mm.</summary>
    public AddressSpace InitMm { get; private set; } = null!;

    /// <summary>direct_pages_count[]: linear-map pages by size (4 KiB, 2 MiB, 4 MiB, 1 GiB).</summary>
    public readonly long[] DirectPages = new long[4];

    /// <summary>high_memory: the end of the linear map of lowmem, found by walking the built tables.</summary>
    public ulong HighMemory { get; private set; }

    /// <summary>VMALLOC_START.</summary>
    public ulong VmallocStart { get; private set; }

    /// <summary>VMALLOC_END, exclusive.</summary>
    public ulong VmallocEnd { get; private set; }

    /// <summary>The kernel's virtual map, areas in address order.</summary>
    public IReadOnlyList<KernelArea> Areas { get; private set; } = [];

    /// <summary>ptdump's address_markers[].</summary>
    public IReadOnlyList<AddressMarker> Markers { get; private set; } = [];

    /// <summary>mark_rodata_ro()'s log line, printed late in boot.</summary>
    public string RodataMessage { get; private set; } = "";

    /// <summary>Kernel virtual address of swapper_pg_dir (what crash prints as the page directory).</summary>
    public ulong SwapperVa => KernelImageVa(SwapperPgDir);

    /// <summary>The virtual address through which the kernel reaches a physical address of its image (x86-64: the text mapping).</summary>
    public ulong KernelImageVa(ulong phys) =>
        TArch.Kind == ArchKind.X86_64 ? X86_64Layout.StartKernelMap + phys : TArch.PageOffset + phys;

    // ---- boot -----------------------------------------------------------------------------------------

    /// <summary>
    /// paging_init(): builds the kernel page tables from memblock pages. Called after the early memblock
    /// allocations (the mem_map must exist to be mapped) and before memblock_free_all().
    /// </summary>
    public void Boot(ulong memmapPhys, ulong memmapBytes, ulong lowLimit)
    {
        var image = _m.Image;
        SwapperPgDir = image.BssStart + PageSize.Bytes;   // after empty_zero_page
        PgdListPhys = image.BssStart + 2 * PageSize.Bytes;
        new Span<byte>(Tables.Table(SwapperPgDir), PageSize.Int).Clear();
        Tables.BootAlloc = () => _m.Memblock.Alloc(PageSize.Bytes, PageSize.Bytes, lowLimit, "page tables");

        bool pse = _m.Config.Pse || TArch.Kind == ArchKind.X86_64;
        ulong lowmemEnd = _m.MaxLowPfn << PageSize.Shift;
        if (TArch.Kind == ArchKind.I386)
        {
            // kernel_physical_mapping_init(): the first 4 MiB with 4 KiB pages (fixed-size MTRRs live there),
            // then 4 MiB pages where alignment allows, the tail with 4 KiB pages.
            ulong head = Math.Min(4UL << 20, lowmemEnd);
            MapKernelRange(TArch.PageOffset, 0, head, PageProt.Kernel, 1, directMap: true);
            MapKernelRange(TArch.PageOffset + head, head, lowmemEnd - head, PageProt.Kernel, pse ? 2 : 1, directMap: true);
            // page_table_range_init(): the fixmap and pkmap page tables exist from boot on.
            EnsurePteTables(I386Layout.FixaddrTotStart & I386Layout.PmdMask, I386Layout.FixaddrTop);
            EnsurePteTables(I386Layout.PkmapBase, I386Layout.PkmapBase + (ulong)I386Layout.LastPkmap * PageSize.Bytes);
            MarkRodataRo32();
        }
        else
        {
            // init_mem_mapping(): the ISA range, then every RAM range with the largest pages alignment allows.
            MapKernelRange(TArch.PageOffset, 0, E820.LegacyHoleEnd, PageProt.Kernel, 1, directMap: true);
            foreach (var r in _m.Memory.Ram)
            {
                ulong s = Math.Max(r.Start, E820.LegacyHoleEnd), e = r.End & ~(PageSize.Bytes - 1);
                if (e > s)
                    MapKernelRange(TArch.PageOffset + s, s, e - s, PageProt.Kernel, 3, directMap: true);
            }
            // vmemmap_populate(): the struct pages, 2 MiB pages where the mem_map allocation covers them.
            ulong memmapSize = (memmapBytes + PageSize.Bytes - 1) & ~(PageSize.Bytes - 1);
            MapKernelRange(X86_64Layout.VmemmapStart, memmapPhys, memmapSize, PageProt.Kernel, 2, directMap: false);
            MapKernelImage64();
            PreallocateVmallocPages();
            // level2_fixmap_pgt / level1_fixmap_pgt: the fixmap's page tables exist from boot (its slots stay empty here).
            EnsurePteTables(X86_64Layout.FixaddrStart, X86_64Layout.FixaddrTop + PageSize.Bytes);
        }
        Tables.BootAlloc = null;
        _m.MemMap.InitListHead(TArch.PageOffset + PgdListPhys);
        HighMemory = LinearMapEnd();
        SetLayout();
        InitMm = new KernelAddressSpace<TArch>(_m, this);
    }

    /// <summary>Maps [va, va + size) to [phys, ...) with the largest pages up to <paramref name="maxLevel"/> alignment allows.</summary>
    private void MapKernelRange(ulong va, ulong phys, ulong size, ulong prot, int maxLevel, bool directMap)
    {
        bool top = false;
        while (size > 0)
        {
            int level = 1;
            for (int l = maxLevel; l > 1; l--)
            {
                ulong span = PageTables<TArch>.EntrySpan(l);
                if (PageTables<TArch>.LargeAllowed(l) && ((va | phys) & (span - 1)) == 0 && size >= span)
                {
                    level = l;
                    break;
                }
            }
            if (!Tables.MapLeaf(null, SwapperPgDir, va, phys, prot, level, user: false, ref top))
                throw new MachineConfigException("out of memory for the kernel page tables");
            if (directMap)
                CountDirect(level, 1);
            ulong step = PageTables<TArch>.EntrySpan(level);
            va += step;
            phys += step;
            size -= step;
        }
    }

    /// <summary>update_page_count(): the linear map's page-size histogram.</summary>
    private void CountDirect(int level, long delta)
    {
        int bucket = level switch { 1 => 0, 2 => TArch.Kind == ArchKind.I386 ? 2 : 1, _ => 3 };
        DirectPages[bucket] += delta;
    }

    /// <summary>Allocates the PTE tables covering [start, end) so later set_pte() calls there never allocate.</summary>
    private void EnsurePteTables(ulong start, ulong end)
    {
        bool top = false;
        ulong pmdSpan = PageTables<TArch>.EntrySpan(2);
        for (ulong va = start & ~(pmdSpan - 1); va < end; va += pmdSpan)
        {
            if (Tables.WalkAlloc(null, SwapperPgDir, va, 1, user: false, ref top) == null)
                throw new MachineConfigException("out of memory for the kernel page tables");
        }
    }

    /// <summary>
    /// mark_rodata_ro() on i386: kernel text and rodata become read-only; the 4 MiB pages covering them are split
    /// into 4 KiB page tables (as set_pages_ro()'s change_page_attr does).
    /// </summary>
    private void MarkRodataRo32()
    {
        var image = _m.Image;
        ulong start = TArch.PageOffset + image.Start;
        ulong size = image.TextBytes + image.RodataBytes;
        for (ulong va = start; va < start + size; va += PageSize.Bytes)
        {
            byte* p = Tables.Lookup(SwapperPgDir, va, out int level);
            if (level > 1)
            {
                if (!Tables.SplitLarge(null, SwapperPgDir, va, user: false))
                    throw new MachineConfigException("out of memory splitting a kernel large page");
                CountDirect(level, -1);
                CountDirect(level - 1, PageTables<TArch>.Ptrs(level - 1));
                p = Tables.Lookup(SwapperPgDir, va, out _);
            }
            PageTables<TArch>.Set(p, PageTables<TArch>.Load(p) & ~(ulong)PteFlags.Rw);
        }
        RodataMessage = $"Write protecting kernel text and read-only data: {size >> 10}k";
    }

    /// <summary>
    /// The x86-64 kernel text mapping as it stands after mark_rodata_ro(): text read-only and executable, rodata
    /// read-only NX, data/init/bss read-write NX; 2 MiB pages where a section covers them whole.
    /// </summary>
    private void MapKernelImage64()
    {
        var image = _m.Image;
        ulong Va(ulong phys) => X86_64Layout.StartKernelMap + phys;
        MapKernelRange(Va(image.Start), image.Start, image.TextBytes, PageProt.KernelRx, 2, directMap: false);
        MapKernelRange(Va(image.RodataStart), image.RodataStart, image.RodataBytes, PageProt.KernelRo, 2, directMap: false);
        ulong rw = image.End - image.DataStart;
        MapKernelRange(Va(image.DataStart), image.DataStart, rw, PageProt.Kernel, 2, directMap: false);
        ulong end = (image.RodataStart + image.RodataBytes + (2UL << 20) - 1) & ~((2UL << 20) - 1);
        RodataMessage = $"Write protecting the kernel read-only data: {(end - image.Start) >> 10}k";
    }

    /// <summary>
    /// preallocate_vmalloc_pages(): the second-level (PUD) tables of the whole vmalloc area exist from boot, so the
    /// top-level entries every page directory copies never change afterwards.
    /// </summary>
    private void PreallocateVmallocPages()
    {
        bool top = false;
        ulong pgdSpan = PageTables<TArch>.EntrySpan(TArch.PagingLevels);
        for (ulong va = X86_64Layout.VmallocStart; va <= X86_64Layout.VmallocEnd; va += pgdSpan)
        {
            if (Tables.WalkAlloc(null, SwapperPgDir, va, TArch.PagingLevels - 1, user: false, ref top) == null)
                throw new MachineConfigException("out of memory for the vmalloc page tables");
        }
    }

    /// <summary>The first address above PAGE_OFFSET the linear map does not cover (high_memory), found by walking.</summary>
    private ulong LinearMapEnd()
    {
        ulong va = TArch.PageOffset;
        ulong limit = TArch.Kind == ArchKind.I386 ? 0xffff_ffffUL : TArch.PageOffset + _m.Memory.Size;
        while (va < limit)
        {
            byte* p = Tables.Lookup(SwapperPgDir, va, out int level);
            ulong e = PageTables<TArch>.Load(p);
            if ((e & P) == 0)
                break;
            ulong span = PageTables<TArch>.EntrySpan(level);
            if (PageTables<TArch>.LeafFrame(e, level) != ((va - TArch.PageOffset) & ~(span - 1)))
                break;
            va = (va & ~(span - 1)) + span;
        }
        return TArch.Kind == ArchKind.I386 ? va : TArch.PageOffset + (_m.MaxLowPfn << PageSize.Shift);
    }

    private void SetLayout()
    {
        BuildLayout();
        // Gaps between neighbouring areas can be empty (the pkmap window ends where the LDT remap starts).
        Areas = [.. Areas.Where(a => a.End == 0 || a.End > a.Start)];
    }

    private void BuildLayout()
    {
        if (TArch.Kind == ArchKind.I386)
        {
            VmallocStart = HighMemory + I386Layout.VmallocOffset;
            VmallocEnd = I386Layout.VmallocEnd;
            Areas =
            [
                new(AddressKind.User, 0, TArch.PageOffset),
                new(AddressKind.Logical, TArch.PageOffset, HighMemory),
                new(AddressKind.Unused, HighMemory, VmallocStart),
                new(AddressKind.Vmalloc, VmallocStart, VmallocEnd),
                new(AddressKind.Unused, VmallocEnd, I386Layout.PkmapBase),
                new(AddressKind.Pkmap, I386Layout.PkmapBase, I386Layout.PkmapBase + (ulong)I386Layout.LastPkmap * PageSize.Bytes),
                new(AddressKind.Unused, I386Layout.PkmapBase + (ulong)I386Layout.LastPkmap * PageSize.Bytes, I386Layout.LdtBaseAddr),
                new(AddressKind.LdtRemap, I386Layout.LdtBaseAddr, I386Layout.LdtBaseAddr + I386Layout.PmdSize),
                new(AddressKind.Unused, I386Layout.LdtBaseAddr + I386Layout.PmdSize, I386Layout.CpuEntryAreaBase),
                new(AddressKind.CpuEntryArea, I386Layout.CpuEntryAreaBase, I386Layout.CpuEntryAreaBase + I386Layout.CpuEntryAreaMapSize),
                new(AddressKind.Unused, I386Layout.CpuEntryAreaBase + I386Layout.CpuEntryAreaMapSize, I386Layout.FixaddrTotStart),
                new(AddressKind.Fixmap, I386Layout.FixaddrTotStart, I386Layout.FixaddrTop),
                new(AddressKind.Unused, I386Layout.FixaddrTop, 1UL << 32),
            ];
            Markers =
            [
                new(0, "User Space"),
                new(TArch.PageOffset, "Kernel Mapping"),
                new(VmallocStart, "vmalloc() Area"),
                new(VmallocEnd, "vmalloc() End"),
                new(I386Layout.PkmapBase, "Persistent kmap() Area"),
                new(I386Layout.LdtBaseAddr, "LDT remap"),
                new(I386Layout.CpuEntryAreaBase, "CPU entry area"),
                new(I386Layout.FixaddrStart, "Fixmap area"),
                new(ulong.MaxValue, ""),
            ];
            return;
        }
        VmallocStart = X86_64Layout.VmallocStart;
        VmallocEnd = X86_64Layout.VmallocEnd + 1;
        ulong directEnd = TArch.PageOffset + (64UL << 40);
        Areas =
        [
            new(AddressKind.User, 0, 1UL << 47),
            new(AddressKind.NonCanonical, 1UL << 47, X86_64Layout.GuardHoleBase),
            new(AddressKind.GuardHole, X86_64Layout.GuardHoleBase, X86_64Layout.GuardHoleEnd),
            new(AddressKind.LdtRemap, X86_64Layout.LdtBaseAddr, TArch.PageOffset),
            new(AddressKind.Logical, TArch.PageOffset, HighMemory),
            new(AddressKind.Unused, HighMemory, directEnd),
            new(AddressKind.Unused, directEnd, VmallocStart),
            new(AddressKind.Vmalloc, VmallocStart, VmallocEnd),
            new(AddressKind.Unused, VmallocEnd, X86_64Layout.VmemmapStart),
            new(AddressKind.Vmemmap, X86_64Layout.VmemmapStart, X86_64Layout.VmemmapStart + (1UL << 40)),
            new(AddressKind.Unused, X86_64Layout.VmemmapStart + (1UL << 40), X86_64Layout.CpuEntryAreaBase),
            new(AddressKind.CpuEntryArea, X86_64Layout.CpuEntryAreaBase, X86_64Layout.CpuEntryAreaBase + (1UL << 39)),
            new(AddressKind.Unused, X86_64Layout.CpuEntryAreaBase + (1UL << 39), X86_64Layout.EspfixBaseAddr),
            new(AddressKind.Espfix, X86_64Layout.EspfixBaseAddr, X86_64Layout.EspfixBaseAddr + (1UL << 39)),
            new(AddressKind.Unused, X86_64Layout.EspfixBaseAddr + (1UL << 39), X86_64Layout.EfiVaEnd),
            new(AddressKind.Efi, X86_64Layout.EfiVaEnd, X86_64Layout.EfiVaEnd + (64UL << 30)),
            new(AddressKind.Unused, X86_64Layout.EfiVaEnd + (64UL << 30), X86_64Layout.StartKernelMap),
            new(AddressKind.KernelText, X86_64Layout.StartKernelMap, X86_64Layout.ModulesVaddr),
            new(AddressKind.Modules, X86_64Layout.ModulesVaddr, X86_64Layout.ModulesEnd),
            new(AddressKind.Unused, X86_64Layout.ModulesEnd, X86_64Layout.FixaddrStart),
            new(AddressKind.Fixmap, X86_64Layout.FixaddrStart, X86_64Layout.FixaddrTop + PageSize.Bytes),
            new(AddressKind.Unused, X86_64Layout.FixaddrTop + PageSize.Bytes, 0),
        ];
        Markers =
        [
            new(0, "User Space"),
            new(1UL << 63, "Kernel Space"),
            new(X86_64Layout.LdtBaseAddr, "LDT remap"),
            new(TArch.PageOffset, "Low Kernel Mapping"),
            new(VmallocStart, "vmalloc() Area"),
            new(X86_64Layout.VmemmapStart, "Vmemmap"),
            new(X86_64Layout.CpuEntryAreaBase, "CPU entry Area"),
            new(X86_64Layout.EspfixBaseAddr, "ESPfix Area", 16),
            new(X86_64Layout.EfiVaEnd, "EFI Runtime Services"),
            new(X86_64Layout.StartKernelMap, "High Kernel Mapping"),
            new(X86_64Layout.ModulesVaddr, "Modules"),
            new(X86_64Layout.ModulesEnd, "End Modules"),
            new(X86_64Layout.FixaddrStart, "Fixmap Area"),
            new(ulong.MaxValue, ""),
        ];
    }

    /// <summary>What <paramref name="va"/> is.</summary>
    public AddressKind Classify(ulong va)
    {
        if (!TArch.IsCanonical(va))
            return AddressKind.NonCanonical;
        foreach (var a in Areas)
            if (a.Contains(va))
                return a.Kind;
        return AddressKind.Unused;
    }

    // ---- the kernel half of other page directories --------------------------------------------------

    /// <summary>The lock for changes to the kernel's page tables (init_mm.page_table_lock).</summary>
    public Lock Lock => _lock;

    /// <summary>Kernel virtual address of the pgd_list head.</summary>
    private ulong PgdListVa => TArch.PageOffset + PgdListPhys;

    /// <summary>pgd_ctor(): copies the kernel half of swapper_pg_dir into <paramref name="pgd"/> and adds it to pgd_list.</summary>
    public void PgdCtor(ulong pgd)
    {
        lock (_lock)
        {
            CloneKernelHalf(pgd);
            ulong pfn = pgd >> PageSize.Shift;
            _m.MemMap.ListAdd(_m.MemMap.DescVa(pfn) + (ulong)TArch.PageLruOffset, PgdListVa);
        }
    }

    /// <summary>pgd_dtor(): takes <paramref name="pgd"/> off pgd_list.</summary>
    public void PgdDtor(ulong pgd)
    {
        lock (_lock)
        {
            ulong lru = _m.MemMap.DescVa(pgd >> PageSize.Shift) + (ulong)TArch.PageLruOffset;
            _m.MemMap.ListDel(lru);
            // pt_list overlays lru: leave it as an empty list head, not LIST_POISON, for the buddy allocator.
            _m.MemMap.InitListHead(lru);
        }
    }

    private void CloneKernelHalf(ulong pgd)
    {
        int n = PageTables<TArch>.Ptrs(TArch.PagingLevels) - TArch.KernelPgdBoundary;
        int off = TArch.KernelPgdBoundary << TArch.PteShift;
        new ReadOnlySpan<byte>(Tables.Table(SwapperPgDir) + off, n << TArch.PteShift)
            .CopyTo(new Span<byte>(Tables.Table(pgd) + off, n << TArch.PteShift));
    }

    /// <summary>The page directories on pgd_list.</summary>
    public List<ulong> PgdList()
    {
        var list = new List<ulong>();
        ulong head = PgdListVa;
        ulong n = PhysMem.MemMap<TArch>.Next(_m.MemMap.ListHost(head));
        while (n != head)
        {
            list.Add(_m.MemMap.PfnOfLru(n) << PageSize.Shift);
            if (list.Count > (int)_m.MaxPfn)
                throw new ConsistencyException("pgd_list does not come back to its head");
            n = PhysMem.MemMap<TArch>.Next(_m.MemMap.ListHost(n));
        }
        return list;
    }

    /// <summary>arch_sync_kernel_mappings(): copy the kernel half of swapper_pg_dir into every page directory. Call under <see cref="Lock"/>.</summary>
    public void SyncKernelMappings()
    {
        foreach (ulong pgd in PgdList())
            CloneKernelHalf(pgd);
    }
}
