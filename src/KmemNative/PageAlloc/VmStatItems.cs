// Item lists of a real Linux 6.18 x86-64 /proc/vmstat (shared/reference/proc-6.18/vmstat), in the order of
// the kernel's enum zone_stat_item, numa_stat_item, node_stat_item, vm_stat_item and vm_event_item, so
// each name table below is that kernel's vmstat_text[].
namespace KmemNative.PageAlloc;

/// <summary>Per-zone counters (<c>enum zone_stat_item</c>), kept in <c>zone-&gt;vm_stat[]</c>.</summary>
public enum ZoneStat
{
    /// <summary><c>nr_free_pages</c></summary>
    NrFreePages = 0,
    /// <summary><c>nr_free_pages_blocks</c></summary>
    NrFreePagesBlocks = 1,
    /// <summary><c>nr_zone_inactive_anon</c></summary>
    NrZoneInactiveAnon = 2,
    /// <summary><c>nr_zone_active_anon</c></summary>
    NrZoneActiveAnon = 3,
    /// <summary><c>nr_zone_inactive_file</c></summary>
    NrZoneInactiveFile = 4,
    /// <summary><c>nr_zone_active_file</c></summary>
    NrZoneActiveFile = 5,
    /// <summary><c>nr_zone_unevictable</c></summary>
    NrZoneUnevictable = 6,
    /// <summary><c>nr_zone_write_pending</c></summary>
    NrZoneWritePending = 7,
    /// <summary><c>nr_mlock</c></summary>
    NrMlock = 8,
    /// <summary><c>nr_zspages</c></summary>
    NrZspages = 9,
    /// <summary><c>nr_free_cma</c></summary>
    NrFreeCma = 10,
}

/// <summary>NUMA allocation events per zone (<c>enum numa_stat_item</c>).</summary>
public enum NumaStat
{
    /// <summary><c>numa_hit</c></summary>
    NumaHit = 0,
    /// <summary><c>numa_miss</c></summary>
    NumaMiss = 1,
    /// <summary><c>numa_foreign</c></summary>
    NumaForeign = 2,
    /// <summary><c>numa_interleave</c></summary>
    NumaInterleave = 3,
    /// <summary><c>numa_local</c></summary>
    NumaLocal = 4,
    /// <summary><c>numa_other</c></summary>
    NumaOther = 5,
}

/// <summary>Per-node counters (<c>enum node_stat_item</c>), kept in <c>pgdat-&gt;vm_stat[]</c>.</summary>
public enum NodeStat
{
    /// <summary><c>nr_inactive_anon</c></summary>
    NrInactiveAnon = 0,
    /// <summary><c>nr_active_anon</c></summary>
    NrActiveAnon = 1,
    /// <summary><c>nr_inactive_file</c></summary>
    NrInactiveFile = 2,
    /// <summary><c>nr_active_file</c></summary>
    NrActiveFile = 3,
    /// <summary><c>nr_unevictable</c></summary>
    NrUnevictable = 4,
    /// <summary><c>nr_slab_reclaimable</c></summary>
    NrSlabReclaimable = 5,
    /// <summary><c>nr_slab_unreclaimable</c></summary>
    NrSlabUnreclaimable = 6,
    /// <summary><c>nr_isolated_anon</c></summary>
    NrIsolatedAnon = 7,
    /// <summary><c>nr_isolated_file</c></summary>
    NrIsolatedFile = 8,
    /// <summary><c>workingset_nodes</c></summary>
    WorkingsetNodes = 9,
    /// <summary><c>workingset_refault_anon</c></summary>
    WorkingsetRefaultAnon = 10,
    /// <summary><c>workingset_refault_file</c></summary>
    WorkingsetRefaultFile = 11,
    /// <summary><c>workingset_activate_anon</c></summary>
    WorkingsetActivateAnon = 12,
    /// <summary><c>workingset_activate_file</c></summary>
    WorkingsetActivateFile = 13,
    /// <summary><c>workingset_restore_anon</c></summary>
    WorkingsetRestoreAnon = 14,
    /// <summary><c>workingset_restore_file</c></summary>
    WorkingsetRestoreFile = 15,
    /// <summary><c>workingset_nodereclaim</c></summary>
    WorkingsetNodereclaim = 16,
    /// <summary><c>nr_anon_pages</c></summary>
    NrAnonPages = 17,
    /// <summary><c>nr_mapped</c></summary>
    NrMapped = 18,
    /// <summary><c>nr_file_pages</c></summary>
    NrFilePages = 19,
    /// <summary><c>nr_dirty</c></summary>
    NrDirty = 20,
    /// <summary><c>nr_writeback</c></summary>
    NrWriteback = 21,
    /// <summary><c>nr_shmem</c></summary>
    NrShmem = 22,
    /// <summary><c>nr_shmem_hugepages</c></summary>
    NrShmemHugepages = 23,
    /// <summary><c>nr_shmem_pmdmapped</c></summary>
    NrShmemPmdmapped = 24,
    /// <summary><c>nr_file_hugepages</c></summary>
    NrFileHugepages = 25,
    /// <summary><c>nr_file_pmdmapped</c></summary>
    NrFilePmdmapped = 26,
    /// <summary><c>nr_anon_transparent_hugepages</c></summary>
    NrAnonTransparentHugepages = 27,
    /// <summary><c>nr_vmscan_write</c></summary>
    NrVmscanWrite = 28,
    /// <summary><c>nr_vmscan_immediate_reclaim</c></summary>
    NrVmscanImmediateReclaim = 29,
    /// <summary><c>nr_dirtied</c></summary>
    NrDirtied = 30,
    /// <summary><c>nr_written</c></summary>
    NrWritten = 31,
    /// <summary><c>nr_throttled_written</c></summary>
    NrThrottledWritten = 32,
    /// <summary><c>nr_kernel_misc_reclaimable</c></summary>
    NrKernelMiscReclaimable = 33,
    /// <summary><c>nr_foll_pin_acquired</c></summary>
    NrFollPinAcquired = 34,
    /// <summary><c>nr_foll_pin_released</c></summary>
    NrFollPinReleased = 35,
    /// <summary><c>nr_kernel_stack</c></summary>
    NrKernelStack = 36,
    /// <summary><c>nr_page_table_pages</c></summary>
    NrPageTablePages = 37,
    /// <summary><c>nr_sec_page_table_pages</c></summary>
    NrSecPageTablePages = 38,
    /// <summary><c>nr_iommu_pages</c></summary>
    NrIommuPages = 39,
    /// <summary><c>nr_swapcached</c></summary>
    NrSwapcached = 40,
    /// <summary><c>pgpromote_success</c></summary>
    PgpromoteSuccess = 41,
    /// <summary><c>pgpromote_candidate</c></summary>
    PgpromoteCandidate = 42,
    /// <summary><c>pgpromote_candidate_nrl</c></summary>
    PgpromoteCandidateNrl = 43,
    /// <summary><c>pgdemote_kswapd</c></summary>
    PgdemoteKswapd = 44,
    /// <summary><c>pgdemote_direct</c></summary>
    PgdemoteDirect = 45,
    /// <summary><c>pgdemote_khugepaged</c></summary>
    PgdemoteKhugepaged = 46,
    /// <summary><c>pgdemote_proactive</c></summary>
    PgdemoteProactive = 47,
    /// <summary><c>nr_hugetlb</c></summary>
    NrHugetlb = 48,
    /// <summary><c>nr_balloon_pages</c></summary>
    NrBalloonPages = 49,
    /// <summary><c>nr_kernel_file_pages</c></summary>
    NrKernelFilePages = 50,
}

/// <summary>System-wide items printed between the node stats and the events (<c>enum vm_stat_item</c>).</summary>
public enum WritebackStat
{
    /// <summary><c>nr_dirty_threshold</c></summary>
    NrDirtyThreshold = 0,
    /// <summary><c>nr_dirty_background_threshold</c></summary>
    NrDirtyBackgroundThreshold = 1,
    /// <summary><c>nr_memmap_pages</c></summary>
    NrMemmapPages = 2,
    /// <summary><c>nr_memmap_boot_pages</c></summary>
    NrMemmapBootPages = 3,
}

/// <summary>VM event counters (<c>enum vm_event_item</c>), per CPU and summed on read. Zone groups list every zone type in <see cref="Arch.ZoneType"/> order (<c>PgallocDma + (int)type</c>); a profile prints only its configured zones.</summary>
public enum VmEvent
{
    /// <summary><c>pgpgin</c></summary>
    Pgpgin = 0,
    /// <summary><c>pgpgout</c></summary>
    Pgpgout = 1,
    /// <summary><c>pswpin</c></summary>
    Pswpin = 2,
    /// <summary><c>pswpout</c></summary>
    Pswpout = 3,
    /// <summary><c>pgalloc_dma</c></summary>
    PgallocDma = 4,
    /// <summary><c>pgalloc_dma32</c></summary>
    PgallocDma32 = 5,
    /// <summary><c>pgalloc_normal</c></summary>
    PgallocNormal = 6,
    /// <summary><c>pgalloc_high</c></summary>
    PgallocHigh = 7,
    /// <summary><c>pgalloc_movable</c></summary>
    PgallocMovable = 8,
    /// <summary><c>pgalloc_device</c></summary>
    PgallocDevice = 9,
    /// <summary><c>allocstall_dma</c></summary>
    AllocstallDma = 10,
    /// <summary><c>allocstall_dma32</c></summary>
    AllocstallDma32 = 11,
    /// <summary><c>allocstall_normal</c></summary>
    AllocstallNormal = 12,
    /// <summary><c>allocstall_high</c></summary>
    AllocstallHigh = 13,
    /// <summary><c>allocstall_movable</c></summary>
    AllocstallMovable = 14,
    /// <summary><c>allocstall_device</c></summary>
    AllocstallDevice = 15,
    /// <summary><c>pgskip_dma</c></summary>
    PgskipDma = 16,
    /// <summary><c>pgskip_dma32</c></summary>
    PgskipDma32 = 17,
    /// <summary><c>pgskip_normal</c></summary>
    PgskipNormal = 18,
    /// <summary><c>pgskip_high</c></summary>
    PgskipHigh = 19,
    /// <summary><c>pgskip_movable</c></summary>
    PgskipMovable = 20,
    /// <summary><c>pgskip_device</c></summary>
    PgskipDevice = 21,
    /// <summary><c>pgfree</c></summary>
    Pgfree = 22,
    /// <summary><c>pgactivate</c></summary>
    Pgactivate = 23,
    /// <summary><c>pgdeactivate</c></summary>
    Pgdeactivate = 24,
    /// <summary><c>pglazyfree</c></summary>
    Pglazyfree = 25,
    /// <summary><c>pgfault</c></summary>
    Pgfault = 26,
    /// <summary><c>pgmajfault</c></summary>
    Pgmajfault = 27,
    /// <summary><c>pglazyfreed</c></summary>
    Pglazyfreed = 28,
    /// <summary><c>pgrefill</c></summary>
    Pgrefill = 29,
    /// <summary><c>pgreuse</c></summary>
    Pgreuse = 30,
    /// <summary><c>pgsteal_kswapd</c></summary>
    PgstealKswapd = 31,
    /// <summary><c>pgsteal_direct</c></summary>
    PgstealDirect = 32,
    /// <summary><c>pgsteal_khugepaged</c></summary>
    PgstealKhugepaged = 33,
    /// <summary><c>pgsteal_proactive</c></summary>
    PgstealProactive = 34,
    /// <summary><c>pgscan_kswapd</c></summary>
    PgscanKswapd = 35,
    /// <summary><c>pgscan_direct</c></summary>
    PgscanDirect = 36,
    /// <summary><c>pgscan_khugepaged</c></summary>
    PgscanKhugepaged = 37,
    /// <summary><c>pgscan_proactive</c></summary>
    PgscanProactive = 38,
    /// <summary><c>pgscan_direct_throttle</c></summary>
    PgscanDirectThrottle = 39,
    /// <summary><c>pgscan_anon</c></summary>
    PgscanAnon = 40,
    /// <summary><c>pgscan_file</c></summary>
    PgscanFile = 41,
    /// <summary><c>pgsteal_anon</c></summary>
    PgstealAnon = 42,
    /// <summary><c>pgsteal_file</c></summary>
    PgstealFile = 43,
    /// <summary><c>zone_reclaim_success</c></summary>
    ZoneReclaimSuccess = 44,
    /// <summary><c>zone_reclaim_failed</c></summary>
    ZoneReclaimFailed = 45,
    /// <summary><c>pginodesteal</c></summary>
    Pginodesteal = 46,
    /// <summary><c>slabs_scanned</c></summary>
    SlabsScanned = 47,
    /// <summary><c>kswapd_inodesteal</c></summary>
    KswapdInodesteal = 48,
    /// <summary><c>kswapd_low_wmark_hit_quickly</c></summary>
    KswapdLowWmarkHitQuickly = 49,
    /// <summary><c>kswapd_high_wmark_hit_quickly</c></summary>
    KswapdHighWmarkHitQuickly = 50,
    /// <summary><c>pageoutrun</c></summary>
    Pageoutrun = 51,
    /// <summary><c>pgrotated</c></summary>
    Pgrotated = 52,
    /// <summary><c>drop_pagecache</c></summary>
    DropPagecache = 53,
    /// <summary><c>drop_slab</c></summary>
    DropSlab = 54,
    /// <summary><c>oom_kill</c></summary>
    OomKill = 55,
    /// <summary><c>numa_pte_updates</c></summary>
    NumaPteUpdates = 56,
    /// <summary><c>numa_huge_pte_updates</c></summary>
    NumaHugePteUpdates = 57,
    /// <summary><c>numa_hint_faults</c></summary>
    NumaHintFaults = 58,
    /// <summary><c>numa_hint_faults_local</c></summary>
    NumaHintFaultsLocal = 59,
    /// <summary><c>numa_pages_migrated</c></summary>
    NumaPagesMigrated = 60,
    /// <summary><c>pgmigrate_success</c></summary>
    PgmigrateSuccess = 61,
    /// <summary><c>pgmigrate_fail</c></summary>
    PgmigrateFail = 62,
    /// <summary><c>thp_migration_success</c></summary>
    ThpMigrationSuccess = 63,
    /// <summary><c>thp_migration_fail</c></summary>
    ThpMigrationFail = 64,
    /// <summary><c>thp_migration_split</c></summary>
    ThpMigrationSplit = 65,
    /// <summary><c>compact_migrate_scanned</c></summary>
    CompactMigrateScanned = 66,
    /// <summary><c>compact_free_scanned</c></summary>
    CompactFreeScanned = 67,
    /// <summary><c>compact_isolated</c></summary>
    CompactIsolated = 68,
    /// <summary><c>compact_stall</c></summary>
    CompactStall = 69,
    /// <summary><c>compact_fail</c></summary>
    CompactFail = 70,
    /// <summary><c>compact_success</c></summary>
    CompactSuccess = 71,
    /// <summary><c>compact_daemon_wake</c></summary>
    CompactDaemonWake = 72,
    /// <summary><c>compact_daemon_migrate_scanned</c></summary>
    CompactDaemonMigrateScanned = 73,
    /// <summary><c>compact_daemon_free_scanned</c></summary>
    CompactDaemonFreeScanned = 74,
    /// <summary><c>htlb_buddy_alloc_success</c></summary>
    HtlbBuddyAllocSuccess = 75,
    /// <summary><c>htlb_buddy_alloc_fail</c></summary>
    HtlbBuddyAllocFail = 76,
    /// <summary><c>unevictable_pgs_culled</c></summary>
    UnevictablePgsCulled = 77,
    /// <summary><c>unevictable_pgs_scanned</c></summary>
    UnevictablePgsScanned = 78,
    /// <summary><c>unevictable_pgs_rescued</c></summary>
    UnevictablePgsRescued = 79,
    /// <summary><c>unevictable_pgs_mlocked</c></summary>
    UnevictablePgsMlocked = 80,
    /// <summary><c>unevictable_pgs_munlocked</c></summary>
    UnevictablePgsMunlocked = 81,
    /// <summary><c>unevictable_pgs_cleared</c></summary>
    UnevictablePgsCleared = 82,
    /// <summary><c>unevictable_pgs_stranded</c></summary>
    UnevictablePgsStranded = 83,
    /// <summary><c>thp_fault_alloc</c></summary>
    ThpFaultAlloc = 84,
    /// <summary><c>thp_fault_fallback</c></summary>
    ThpFaultFallback = 85,
    /// <summary><c>thp_fault_fallback_charge</c></summary>
    ThpFaultFallbackCharge = 86,
    /// <summary><c>thp_collapse_alloc</c></summary>
    ThpCollapseAlloc = 87,
    /// <summary><c>thp_collapse_alloc_failed</c></summary>
    ThpCollapseAllocFailed = 88,
    /// <summary><c>thp_file_alloc</c></summary>
    ThpFileAlloc = 89,
    /// <summary><c>thp_file_fallback</c></summary>
    ThpFileFallback = 90,
    /// <summary><c>thp_file_fallback_charge</c></summary>
    ThpFileFallbackCharge = 91,
    /// <summary><c>thp_file_mapped</c></summary>
    ThpFileMapped = 92,
    /// <summary><c>thp_split_page</c></summary>
    ThpSplitPage = 93,
    /// <summary><c>thp_split_page_failed</c></summary>
    ThpSplitPageFailed = 94,
    /// <summary><c>thp_deferred_split_page</c></summary>
    ThpDeferredSplitPage = 95,
    /// <summary><c>thp_underused_split_page</c></summary>
    ThpUnderusedSplitPage = 96,
    /// <summary><c>thp_split_pmd</c></summary>
    ThpSplitPmd = 97,
    /// <summary><c>thp_scan_exceed_none_pte</c></summary>
    ThpScanExceedNonePte = 98,
    /// <summary><c>thp_scan_exceed_swap_pte</c></summary>
    ThpScanExceedSwapPte = 99,
    /// <summary><c>thp_scan_exceed_share_pte</c></summary>
    ThpScanExceedSharePte = 100,
    /// <summary><c>thp_split_pud</c></summary>
    ThpSplitPud = 101,
    /// <summary><c>thp_zero_page_alloc</c></summary>
    ThpZeroPageAlloc = 102,
    /// <summary><c>thp_zero_page_alloc_failed</c></summary>
    ThpZeroPageAllocFailed = 103,
    /// <summary><c>thp_swpout</c></summary>
    ThpSwpout = 104,
    /// <summary><c>thp_swpout_fallback</c></summary>
    ThpSwpoutFallback = 105,
    /// <summary><c>balloon_inflate</c></summary>
    BalloonInflate = 106,
    /// <summary><c>balloon_deflate</c></summary>
    BalloonDeflate = 107,
    /// <summary><c>balloon_migrate</c></summary>
    BalloonMigrate = 108,
    /// <summary><c>swap_ra</c></summary>
    SwapRa = 109,
    /// <summary><c>swap_ra_hit</c></summary>
    SwapRaHit = 110,
    /// <summary><c>swpin_zero</c></summary>
    SwpinZero = 111,
    /// <summary><c>swpout_zero</c></summary>
    SwpoutZero = 112,
    /// <summary><c>ksm_swpin_copy</c></summary>
    KsmSwpinCopy = 113,
    /// <summary><c>cow_ksm</c></summary>
    CowKsm = 114,
    /// <summary><c>zswpin</c></summary>
    Zswpin = 115,
    /// <summary><c>zswpout</c></summary>
    Zswpout = 116,
    /// <summary><c>zswpwb</c></summary>
    Zswpwb = 117,
    /// <summary><c>direct_map_level2_splits</c></summary>
    DirectMapLevel2Splits = 118,
    /// <summary><c>direct_map_level3_splits</c></summary>
    DirectMapLevel3Splits = 119,
    /// <summary><c>direct_map_level2_collapses</c></summary>
    DirectMapLevel2Collapses = 120,
    /// <summary><c>direct_map_level3_collapses</c></summary>
    DirectMapLevel3Collapses = 121,
}

/// <summary>The kernel's names for the items, in enum order.</summary>
public static class VmStatNames
{
    /// <summary>Names of <see cref="ZoneStat"/>.</summary>
    public static readonly string[] Zone =
    [
        "nr_free_pages", "nr_free_pages_blocks", "nr_zone_inactive_anon", "nr_zone_active_anon",
        "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock",
        "nr_zspages", "nr_free_cma",
    ];

    /// <summary>Names of <see cref="NumaStat"/>.</summary>
    public static readonly string[] Numa =
    [
        "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
    ];

    /// <summary>Names of <see cref="NodeStat"/>.</summary>
    public static readonly string[] Node =
    [
        "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
        "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file", "workingset_nodes",
        "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon", "workingset_activate_file",
        "workingset_restore_anon", "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages", "nr_mapped",
        "nr_file_pages", "nr_dirty", "nr_writeback", "nr_shmem", "nr_shmem_hugepages", "nr_shmem_pmdmapped",
        "nr_file_hugepages", "nr_file_pmdmapped", "nr_anon_transparent_hugepages", "nr_vmscan_write",
        "nr_vmscan_immediate_reclaim", "nr_dirtied", "nr_written", "nr_throttled_written",
        "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired", "nr_foll_pin_released", "nr_kernel_stack",
        "nr_page_table_pages", "nr_sec_page_table_pages", "nr_iommu_pages", "nr_swapcached", "pgpromote_success",
        "pgpromote_candidate", "pgpromote_candidate_nrl", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
        "pgdemote_proactive", "nr_hugetlb", "nr_balloon_pages", "nr_kernel_file_pages",
    ];

    /// <summary>Names of <see cref="WritebackStat"/>.</summary>
    public static readonly string[] Writeback =
    [
        "nr_dirty_threshold", "nr_dirty_background_threshold", "nr_memmap_pages", "nr_memmap_boot_pages",
    ];

    /// <summary>Names of <see cref="VmEvent"/>.</summary>
    public static readonly string[] Event =
    [
        "pgpgin", "pgpgout", "pswpin", "pswpout", "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_high",
        "pgalloc_movable", "pgalloc_device", "allocstall_dma", "allocstall_dma32", "allocstall_normal",
        "allocstall_high", "allocstall_movable", "allocstall_device", "pgskip_dma", "pgskip_dma32", "pgskip_normal",
        "pgskip_high", "pgskip_movable", "pgskip_device", "pgfree", "pgactivate", "pgdeactivate", "pglazyfree",
        "pgfault", "pgmajfault", "pglazyfreed", "pgrefill", "pgreuse", "pgsteal_kswapd", "pgsteal_direct",
        "pgsteal_khugepaged", "pgsteal_proactive", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged",
        "pgscan_proactive", "pgscan_direct_throttle", "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file",
        "zone_reclaim_success", "zone_reclaim_failed", "pginodesteal", "slabs_scanned", "kswapd_inodesteal",
        "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "pageoutrun", "pgrotated", "drop_pagecache",
        "drop_slab", "oom_kill", "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
        "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success", "pgmigrate_fail",
        "thp_migration_success", "thp_migration_fail", "thp_migration_split", "compact_migrate_scanned",
        "compact_free_scanned", "compact_isolated", "compact_stall", "compact_fail", "compact_success",
        "compact_daemon_wake", "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
        "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail", "unevictable_pgs_culled", "unevictable_pgs_scanned",
        "unevictable_pgs_rescued", "unevictable_pgs_mlocked", "unevictable_pgs_munlocked", "unevictable_pgs_cleared",
        "unevictable_pgs_stranded", "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
        "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc", "thp_file_fallback",
        "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page", "thp_split_page_failed",
        "thp_deferred_split_page", "thp_underused_split_page", "thp_split_pmd", "thp_scan_exceed_none_pte",
        "thp_scan_exceed_swap_pte", "thp_scan_exceed_share_pte", "thp_split_pud", "thp_zero_page_alloc",
        "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback", "balloon_inflate", "balloon_deflate",
        "balloon_migrate", "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero", "ksm_swpin_copy", "cow_ksm",
        "zswpin", "zswpout", "zswpwb", "direct_map_level2_splits", "direct_map_level3_splits",
        "direct_map_level2_collapses", "direct_map_level3_collapses",
    ];
}
