using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// The node's lruvec (mm/swap.c, include/linux/mm_inline.h): five list_heads in pglist_data.__lruvec threaded
// through struct page lru, PG_lru/PG_active/PG_referenced/PG_workingset/PG_unevictable, the node's nr_<lru> and the
// zones' nr_zone_<lru> counters, lru_add, folio_mark_accessed()'s two-step aging, folio_activate(), and the
// workingset shadow entries left by evicted page-cache pages (mm/workingset.c).
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>enum lru_list: LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE, LRU_UNEVICTABLE.</summary>
    internal const int InactiveAnon = 0, ActiveAnon = 1, InactiveFile = 2, ActiveFile = 3, Unevictable = 4, NrLruLists = 5;

    internal static readonly string[] LruNames = ["inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable"];

    /// <summary>lruvec-&gt;lru_lock.</summary>
    private readonly Lock _lruLock = new();

    private ulong LruHead(int lru) => _lruVa + (ulong)(lru * 2 * TArch.PointerSize);

    private static ulong LruField(ulong descVa) => descVa + (ulong)TArch.PageLruOffset;

    /// <summary>folio_is_file_lru(): page cache that is not swap-backed.</summary>
    private static bool IsFileLru(byte* d) => !MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked);

    /// <summary>folio_lru_list(): the list a page's flags say it belongs on.</summary>
    private static int FolioLruList(byte* d)
    {
        if (MemMap<TArch>.TestFlag(d, PageFlag.Unevictable))
            return Unevictable;
        int lru = IsFileLru(d) ? InactiveFile : InactiveAnon;
        if (MemMap<TArch>.TestFlag(d, PageFlag.Active))
            lru++;
        return lru;
    }

    /// <summary>update_lru_size(): the node's NR_&lt;lru&gt; and the page's zone's NR_ZONE_&lt;lru&gt;.</summary>
    private void UpdateLruSize(byte* d, int lru, long delta)
    {
        NodeStatAdd((NodeStat)lru, delta);
        ZoneOf(d).ModStat(ZoneStat.NrZoneInactiveAnon + lru, delta);
    }

    /// <summary>lruvec_add_folio() (lru_lock held): at the head of its list.</summary>
    private void AddToLru(ulong pfn, byte* d)
    {
        int lru = FolioLruList(d);
        _mm.ListAdd(LruField(_mm.DescVa(pfn)), LruHead(lru));
        UpdateLruSize(d, lru, 1);
    }

    /// <summary>lruvec_add_folio_tail() (lru_lock held).</summary>
    private void AddToLruTail(ulong pfn, byte* d)
    {
        int lru = FolioLruList(d);
        _mm.ListAddTail(LruField(_mm.DescVa(pfn)), LruHead(lru));
        UpdateLruSize(d, lru, 1);
    }

    /// <summary>lruvec_del_folio() (lru_lock held).</summary>
    private void DelFromLru(ulong pfn, byte* d)
    {
        int lru = FolioLruList(d);
        _mm.ListDel(LruField(_mm.DescVa(pfn)));
        UpdateLruSize(d, lru, -1);
    }

    // ---- IPageLruHooks ------------------------------------------------------------------------------------

    /// <summary>
    /// folio_add_lru() → lru_add(): PG_lru and the head of the inactive (or, with PG_active, the active) list of its
    /// type. The per-CPU folio_batch is drained at once (as with lru_cache_disabled()). Shmem pages are kept
    /// unevictable: the emulator has no shmem swap (they count in unevictable_pgs_culled).
    /// </summary>
    public void LruAdd(Cpu cpu, ulong pfn, bool file)
    {
        byte* d = Desc(pfn);
        bool shmem = !file && (MemMap<TArch>.Mapping(d) & 1) == 0 && MemMap<TArch>.Mapping(d) != 0;
        lock (_lruLock)
        {
            if (MemMap<TArch>.TestFlag(d, PageFlag.Lru))
                throw new ConsistencyException($"folio_add_lru(): pfn 0x{pfn:x} is already on an LRU list");
            if (shmem)
            {
                MemMap<TArch>.ClearFlag(d, PageFlag.Active);
                MemMap<TArch>.SetFlag(d, PageFlag.Unevictable);
                cpu.Events[(int)VmEvent.UnevictablePgsCulled]++;
            }
            MemMap<TArch>.SetFlag(d, PageFlag.Lru);
            AddToLru(pfn, d);
        }
    }

    /// <summary>The last reference is going (__folio_put → lruvec_del_folio + __folio_clear_lru_flags()).</summary>
    public void LruDel(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        lock (_lruLock)
        {
            if (!MemMap<TArch>.TestFlag(d, PageFlag.Lru))
                return;
            DelFromLru(pfn, d);
            MemMap<TArch>.ClearFlag(d, PageFlag.Lru);
            MemMap<TArch>.ClearFlag(d, PageFlag.Active);
            MemMap<TArch>.ClearFlag(d, PageFlag.Unevictable);
        }
    }

    /// <summary>
    /// folio_mark_accessed(): a first access sets PG_referenced; a second (while referenced) activates the page,
    /// clears PG_referenced and counts pgactivate (workingset_activation()). Unevictable pages do not age.
    /// </summary>
    public void MarkAccessed(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        lock (_lruLock)
        {
            if (!MemMap<TArch>.TestFlag(d, PageFlag.Referenced))
            {
                MemMap<TArch>.SetFlag(d, PageFlag.Referenced);
                return;
            }
            if (MemMap<TArch>.TestFlag(d, PageFlag.Unevictable) || MemMap<TArch>.TestFlag(d, PageFlag.Active))
                return;
            if (MemMap<TArch>.TestFlag(d, PageFlag.Lru))
            {
                // folio_activate() → folio_activate_fn().
                DelFromLru(pfn, d);
                MemMap<TArch>.SetFlag(d, PageFlag.Active);
                AddToLru(pfn, d);
                cpu.Events[(int)VmEvent.Pgactivate]++;
            }
            else
            {
                MemMap<TArch>.SetFlag(d, PageFlag.Active);
            }
            MemMap<TArch>.ClearFlag(d, PageFlag.Referenced);
            WorkingsetAgeNonresident(1);
        }
    }

    /// <summary>folio_rotate_reclaimable(): a page whose writeback completed with PG_reclaim goes to the inactive tail (pgrotated).</summary>
    private void RotateReclaimable(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        lock (_lruLock)
        {
            if (!MemMap<TArch>.TestFlag(d, PageFlag.Lru) || MemMap<TArch>.TestFlag(d, PageFlag.Dirty) ||
                MemMap<TArch>.TestFlag(d, PageFlag.Unevictable))
                return;
            DelFromLru(pfn, d);
            MemMap<TArch>.ClearFlag(d, PageFlag.Active);
            AddToLruTail(pfn, d);
            cpu.Events[(int)VmEvent.Pgrotated]++;
        }
    }

    // ---- workingset (mm/workingset.c) ------------------------------------------------------------------------

    /// <summary>WORKINGSET_SHIFT + NODES_SHIFT + MEM_CGROUP_ID_SHIFT: the bits below the eviction timestamp in a shadow.</summary>
    private static int ShadowShift => 1 + (TArch.Kind == Arch.ArchKind.X86_64 ? 6 : 0) + 16;

    /// <summary>lruvec-&gt;nonresident_age: ticks with every eviction and activation.</summary>
    private long NonresidentAge => Interlocked.Read(ref *(long*)(_node + _ageOff));

    private void WorkingsetAgeNonresident(long pages)
    {
        if (TArch.PointerSize == 8)
            Interlocked.Add(ref *(long*)(_node + _ageOff), pages);
        else
            Interlocked.Add(ref *(int*)(_node + _ageOff), (int)pages);
    }

    /// <summary>
    /// workingset_eviction(): ages the node and packs the eviction timestamp (pack_shadow(): eviction, memcg id 0,
    /// node 0, the PG_workingset bit) into an xarray value entry for the page's slot.
    /// </summary>
    private ulong WorkingsetEviction(ulong pfn)
    {
        byte* d = Desc(pfn);
        WorkingsetAgeNonresident(1);
        ulong eviction = (ulong)NonresidentAge;
        int bits = TArch.PointerSize * 8 - 1 - ShadowShift;
        eviction &= (1UL << bits) - 1;
        ulong packed = (eviction << ShadowShift) | (MemMap<TArch>.TestFlag(d, PageFlag.Workingset) ? 1UL : 0);
        return (packed << 1) | 1;
    }

    /// <summary>
    /// workingset_refault(): the refault distance (evictions and activations since this page's eviction) against
    /// the workingset (the active file list, plus the anonymous lists while swap is usable): a page that would
    /// have stayed had it been active starts active (workingset_activate_file); one that was active before its
    /// eviction is also marked PG_workingset (workingset_restore_file).
    /// </summary>
    public void WorkingsetRefault(Cpu cpu, ulong pfn, ulong shadow)
    {
        byte* d = Desc(pfn);
        ulong packed = shadow >> 1;
        bool workingset = (packed & 1) != 0;
        int bits = TArch.PointerSize * 8 - 1 - ShadowShift;
        ulong mask = (1UL << bits) - 1;
        ulong eviction = (packed >> ShadowShift) & mask;
        ulong refault = (ulong)NonresidentAge & mask;
        ulong distance = (refault - eviction) & mask;
        NodeStatAdd(NodeStat.WorkingsetRefaultFile, 1);
        long workingsetSize = NodeStatRead(NodeStat.NrActiveFile);
        if (NrSwapPages > 0)
            workingsetSize += NodeStatRead(NodeStat.NrActiveAnon) + NodeStatRead(NodeStat.NrInactiveAnon);
        if ((long)distance > workingsetSize)
            return;
        MemMap<TArch>.SetFlag(d, PageFlag.Active);
        WorkingsetAgeNonresident(1);
        NodeStatAdd(NodeStat.WorkingsetActivateFile, 1);
        if (workingset)
        {
            MemMap<TArch>.SetFlag(d, PageFlag.Workingset);
            NodeStatAdd(NodeStat.WorkingsetRestoreFile, 1);
        }
    }

    /// <summary>The number of pages on each LRU list (the node counters).</summary>
    internal long[] LruSizes() => [.. Enumerable.Range(0, NrLruLists).Select(l => NodeStatRead((NodeStat)l))];

    /// <summary>The pages of one list, head first (for views and tests).</summary>
    internal List<ulong> LruPages(int lru)
    {
        var list = new List<ulong>();
        lock (_lruLock)
        {
            ulong head = LruHead(lru);
            for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head; e = MemMap<TArch>.Next(_mm.ListHost(e)))
                list.Add(_mm.PfnOfLru(e));
        }
        return list;
    }
}
