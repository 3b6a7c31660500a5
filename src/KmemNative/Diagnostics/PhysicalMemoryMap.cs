using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

/// <summary>Who a physical page belongs to, as the memory map pictures colour it.</summary>
public enum PageOwner : byte
{
    /// <summary>Not RAM (an e820 hole or reserved firmware range past RAM).</summary>
    Hole,
    /// <summary>Free in a buddy block (the block's order is in <see cref="PhysicalMemoryMap.FreeOrder"/>).</summary>
    Free,
    /// <summary>Free on a CPU's per-CPU page list.</summary>
    FreePcp,
    /// <summary>A slab (PageSlab).</summary>
    Slab,
    /// <summary>A large kmalloc allocation (PG_large_kmalloc page type).</summary>
    LargeKmalloc,
    /// <summary>A page table (PageTable), including the boot page tables.</summary>
    PageTable,
    /// <summary>User anonymous memory (mapping with PAGE_MAPPING_ANON).</summary>
    UserAnon,
    /// <summary>Page cache (a file mapping).</summary>
    PageCache,
    /// <summary>Allocated without a page type in a MIGRATE_MOVABLE pageblock (user or page-cache style allocations).</summary>
    AllocatedMovable,
    /// <summary>Allocated without a page type elsewhere (kernel allocations: alloc_pages, vmalloc, ...).</summary>
    AllocatedKernel,
    /// <summary>The kernel image (PG_reserved).</summary>
    KernelImage,
    /// <summary>mem_map, the struct page array (PG_reserved).</summary>
    MemMap,
    /// <summary>Other boot-time reservations: the first MiB, node data, per-CPU areas... (PG_reserved).</summary>
    Reserved,
}

/// <summary>A zone's place in the map.</summary>
/// <param name="Name">Zone name (DMA, DMA32, Normal, HighMem).</param>
/// <param name="StartPfn">First pfn.</param>
/// <param name="EndPfn">One past the last pfn.</param>
/// <param name="Index">The zone's index (zone_idx).</param>
public sealed record ZoneSpan(string Name, ulong StartPfn, ulong EndPfn, int Index);

/// <summary>
/// A snapshot of who owns every physical page: the free lists (with the order of each free block), per-CPU lists,
/// the allocation records, page types, mappings and memblock's named reservations. The pictures are drawn from it;
/// its counts agree with the allocator's (free pages with NR_FREE_PAGES, slab pages with NR_SLAB_*...).
/// </summary>
public sealed class PhysicalMemoryMap
{
    private readonly PageOwner[] _owner;
    private readonly byte[] _freeOrder;
    private readonly long[] _counts = new long[Enum.GetValues<PageOwner>().Length];

    private PhysicalMemoryMap(Machine machine, PageOwner[] owner, byte[] freeOrder, IReadOnlyList<ZoneSpan> zones)
    {
        Machine = machine;
        _owner = owner;
        _freeOrder = freeOrder;
        Zones = zones;
        foreach (var o in owner)
            _counts[(int)o]++;
    }

    /// <summary>The machine scanned.</summary>
    public Machine Machine { get; }

    /// <summary>max_pfn: pages covered.</summary>
    public ulong MaxPfn => (ulong)_owner.Length;

    /// <summary>Populated zones in address order.</summary>
    public IReadOnlyList<ZoneSpan> Zones { get; }

    /// <summary>The owner of a page.</summary>
    public PageOwner Owner(ulong pfn) => _owner[pfn];

    /// <summary>For a <see cref="PageOwner.Free"/> page, the order of the buddy block it is in.</summary>
    public int FreeOrder(ulong pfn) => _freeOrder[pfn];

    /// <summary>Pages of an owner.</summary>
    public long Count(PageOwner owner) => _counts[(int)owner];

    /// <summary>Free pages by the order of the buddy block they are in.</summary>
    public long[] FreePagesByOrder()
    {
        var n = new long[PageSize.NrOrders];
        for (int i = 0; i < _owner.Length; i++)
        {
            if (_owner[i] == PageOwner.Free)
                n[_freeOrder[i]]++;
        }
        return n;
    }

    /// <summary>The short name a picture's legend and data attributes use.</summary>
    public static string Key(PageOwner o) => o switch
    {
        PageOwner.Hole => "hole",
        PageOwner.Free => "free",
        PageOwner.FreePcp => "free-pcp",
        PageOwner.Slab => "slab",
        PageOwner.LargeKmalloc => "kmalloc-large",
        PageOwner.PageTable => "page-table",
        PageOwner.UserAnon => "user-anon",
        PageOwner.PageCache => "page-cache",
        PageOwner.AllocatedMovable => "alloc-movable",
        PageOwner.AllocatedKernel => "alloc-kernel",
        PageOwner.KernelImage => "kernel-image",
        PageOwner.MemMap => "mem_map",
        _ => "reserved",
    };

    /// <summary>What an owner means, for the legend.</summary>
    public static string Describe(PageOwner o) => o switch
    {
        PageOwner.Hole => "not RAM (hole)",
        PageOwner.Free => "free (buddy; darker = higher order)",
        PageOwner.FreePcp => "free on a per-CPU list",
        PageOwner.Slab => "slab",
        PageOwner.LargeKmalloc => "large kmalloc",
        PageOwner.PageTable => "page table",
        PageOwner.UserAnon => "user anonymous",
        PageOwner.PageCache => "page cache",
        PageOwner.AllocatedMovable => "allocated, movable pageblock",
        PageOwner.AllocatedKernel => "allocated by the kernel (alloc_pages, vmalloc...)",
        PageOwner.KernelImage => "kernel image (reserved)",
        PageOwner.MemMap => "mem_map: struct page array (reserved)",
        _ => "other boot reservations",
    };

    /// <summary>Scans the machine (the caller must not change it concurrently).</summary>
    public static PhysicalMemoryMap Scan(Machine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        return machine switch
        {
            Machine<X86_64> x => Scanner<X86_64>.Run(x),
            Machine<I386> i => Scanner<I386>.Run(i),
            _ => throw new ArgumentException($"unknown machine type {machine.GetType().Name}", nameof(machine)),
        };
    }

    private static unsafe class Scanner<TArch> where TArch : struct, IArch
    {
        public static PhysicalMemoryMap Run(Machine<TArch> m)
        {
            var mm = m.MemMap;
            ulong max = m.MaxPfn;
            var owner = new PageOwner[max];
            var order = new byte[max];
            var reserved = m.Memblock.Reserved;
            const ulong anonBit = 1; // PAGE_MAPPING_ANON
            for (ulong pfn = 0; pfn < max;)
            {
                if (!m.IsRamPfn(pfn))
                {
                    owner[pfn++] = PageOwner.Hole;
                    continue;
                }
                byte* d = mm.Desc(pfn);
                if (MemMap<TArch>.TestFlag(d, PageFlag.Reserved))
                {
                    owner[pfn] = ReservedOwner(reserved, pfn);
                    pfn++;
                    continue;
                }
                if (MemMap<TArch>.IsBuddy(d))
                {
                    int o = (int)MemMap<TArch>.Private(d);
                    ulong n = Math.Min(1UL << o, max - pfn);
                    for (ulong i = 0; i < n; i++)
                    {
                        owner[pfn + i] = PageOwner.Free;
                        order[pfn + i] = (byte)o;
                    }
                    pfn += n;
                    continue;
                }
                byte ext = mm.Ext(pfn);
                if ((ext & PageExt.Pcp) != 0)
                {
                    owner[pfn++] = PageOwner.FreePcp;
                    continue;
                }
                if ((ext & PageExt.Head) != 0)
                {
                    ulong n = Math.Min(1UL << (ext & PageExt.OrderMask), max - pfn);
                    var what = AllocatedOwner(m, d, pfn, anonBit);
                    for (ulong i = 0; i < n; i++)
                        owner[pfn + i] = what;
                    pfn += n;
                    continue;
                }
                // A tail reached without its head (cannot happen for a consistent machine), or an unrecorded page.
                owner[pfn] = AllocatedOwner(m, d, pfn, anonBit);
                pfn++;
            }
            var zones = m.Zones.Where(z => z.IsPopulated).Select(z => new ZoneSpan(z.Name, z.StartPfn, z.EndPfn, z.Index)).ToList();
            return new PhysicalMemoryMap(m, owner, order, zones);
        }

        private static PageOwner AllocatedOwner(Machine<TArch> m, byte* d, ulong pfn, ulong anonBit)
        {
            uint type = MemMap<TArch>.PageType(d) >> 24;
            if (type == PageBits.PgtySlab)
                return PageOwner.Slab;
            if (type == PageBits.PgtyLargeKmalloc)
                return PageOwner.LargeKmalloc;
            if (type == PageBits.PgtyTable)
                return PageOwner.PageTable;
            ulong mapping = MemMap<TArch>.Mapping(d);
            if (mapping != 0)
                return (mapping & anonBit) != 0 ? PageOwner.UserAnon : PageOwner.PageCache;
            return m.PageblockMigratetype(pfn) == MigrateType.Movable ? PageOwner.AllocatedMovable : PageOwner.AllocatedKernel;
        }

        private static PageOwner ReservedOwner(IReadOnlyList<(MemoryRange Range, string Name)> reserved, ulong pfn)
        {
            ulong pa = pfn << PageSize.Shift;
            foreach (var (r, name) in reserved)
            {
                if (r.Start < pa + PageSize.Bytes && r.End > pa)
                {
                    return name switch
                    {
                        "mem_map" => PageOwner.MemMap,
                        "kernel image" => PageOwner.KernelImage,
                        "page tables" => PageOwner.PageTable,
                        _ => PageOwner.Reserved,
                    };
                }
            }
            return PageOwner.Reserved;
        }
    }
}
