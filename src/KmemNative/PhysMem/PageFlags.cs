namespace KmemNative.PhysMem;

/// <summary>Bit numbers of <c>enum pageflags</c> (include/linux/page-flags.h, Linux 6.18).</summary>
public enum PageFlag
{
    /// <summary>PG_locked.</summary>
    Locked = 0,
    /// <summary>PG_writeback.</summary>
    Writeback = 1,
    /// <summary>PG_referenced.</summary>
    Referenced = 2,
    /// <summary>PG_uptodate.</summary>
    Uptodate = 3,
    /// <summary>PG_dirty.</summary>
    Dirty = 4,
    /// <summary>PG_lru.</summary>
    Lru = 5,
    /// <summary>PG_head: first page of a compound page (must be bit 6).</summary>
    Head = 6,
    /// <summary>PG_waiters.</summary>
    Waiters = 7,
    /// <summary>PG_active.</summary>
    Active = 8,
    /// <summary>PG_workingset.</summary>
    Workingset = 9,
    /// <summary>PG_owner_priv_1 (swapcache, checked, pinned...).</summary>
    OwnerPriv1 = 10,
    /// <summary>PG_owner_2 (anon_exclusive...).</summary>
    Owner2 = 11,
    /// <summary>PG_arch_1.</summary>
    Arch1 = 12,
    /// <summary>PG_reserved: never handed to the buddy allocator (memblock reservations, holes).</summary>
    Reserved = 13,
    /// <summary>PG_private.</summary>
    Private = 14,
    /// <summary>PG_private_2.</summary>
    Private2 = 15,
    /// <summary>PG_reclaim.</summary>
    Reclaim = 16,
    /// <summary>PG_swapbacked.</summary>
    Swapbacked = 17,
    /// <summary>PG_unevictable.</summary>
    Unevictable = 18,
    /// <summary>PG_dropbehind.</summary>
    Dropbehind = 19,
    /// <summary>PG_mlocked.</summary>
    Mlocked = 20,
    /// <summary>PG_hwpoison (x86-64 only: CONFIG_MEMORY_FAILURE).</summary>
    Hwpoison = 21,
}

/// <summary>Page-flag masks and page types used by the allocator.</summary>
public static class PageBits
{
    /// <summary>PAGE_FLAGS_CHECK_AT_FREE: flags a page must not carry when freed to the buddy allocator.</summary>
    public const ulong CheckAtFree =
        1UL << (int)PageFlag.Lru | 1UL << (int)PageFlag.Locked | 1UL << (int)PageFlag.Private |
        1UL << (int)PageFlag.Private2 | 1UL << (int)PageFlag.Writeback | 1UL << (int)PageFlag.Reserved |
        1UL << (int)PageFlag.Active | 1UL << (int)PageFlag.Unevictable | 1UL << (int)PageFlag.Mlocked;

    /// <summary>Bits below the zone/node fields that hold page flags proper (__NR_PAGEFLAGS rounded up).</summary>
    public const int FlagBits = 24;

    /// <summary><c>page_type</c> meaning "no type" (= _mapcount -1).</summary>
    public const uint NoType = 0xffff_ffff;

    /// <summary>PGTY_buddy: free block in the buddy allocator.</summary>
    public const byte PgtyBuddy = 0xf0;
    /// <summary>PGTY_offline.</summary>
    public const byte PgtyOffline = 0xf1;
    /// <summary>PGTY_table: page-table page.</summary>
    public const byte PgtyTable = 0xf2;
    /// <summary>PGTY_guard.</summary>
    public const byte PgtyGuard = 0xf3;
    /// <summary>PGTY_hugetlb.</summary>
    public const byte PgtyHugetlb = 0xf4;
    /// <summary>PGTY_slab: slab page.</summary>
    public const byte PgtySlab = 0xf5;
    /// <summary>PGTY_zsmalloc.</summary>
    public const byte PgtyZsmalloc = 0xf6;
    /// <summary>PGTY_unaccepted.</summary>
    public const byte PgtyUnaccepted = 0xf7;
    /// <summary>PGTY_large_kmalloc: kmalloc above KMALLOC_MAX_CACHE_SIZE.</summary>
    public const byte PgtyLargeKmalloc = 0xf8;

    /// <summary>Name of a page type byte as %pGt prints it (<c>buddy</c>, <c>slab</c>...), or null.</summary>
    public static string? PageTypeName(byte type) => type switch
    {
        PgtyBuddy => "buddy",
        PgtyOffline => "offline",
        PgtyTable => "table",
        PgtyGuard => "guard",
        PgtyHugetlb => "hugetlb",
        PgtySlab => "slab",
        PgtyZsmalloc => "zsmalloc",
        PgtyUnaccepted => "unaccepted",
        PgtyLargeKmalloc => "large_kmalloc",
        _ => null,
    };

    /// <summary>Migratetype names (<c>migratetype_names[]</c>), in enum order, without CMA.</summary>
    public static ReadOnlySpan<string> MigratetypeNames => new[] { "Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate" };
}

/// <summary>Migratetypes (<c>enum migratetype</c>; no CMA configured, as on the reference machine).</summary>
public enum MigrateType
{
    /// <summary>MIGRATE_UNMOVABLE.</summary>
    Unmovable = 0,
    /// <summary>MIGRATE_MOVABLE.</summary>
    Movable = 1,
    /// <summary>MIGRATE_RECLAIMABLE.</summary>
    Reclaimable = 2,
    /// <summary>MIGRATE_HIGHATOMIC (= MIGRATE_PCPTYPES).</summary>
    HighAtomic = 3,
    /// <summary>MIGRATE_ISOLATE.</summary>
    Isolate = 4,
}

/// <summary>Counts tied to <see cref="MigrateType"/>.</summary>
public static class MigrateTypes
{
    /// <summary>MIGRATE_PCPTYPES: the types kept on per-CPU lists.</summary>
    public const int PcpTypes = 3;

    /// <summary>MIGRATE_TYPES.</summary>
    public const int Count = 5;
}
