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

    /// <summary>FOLIO_BATCH_SIZE: pages a CPU's lru_add batch holds before they are moved to the lists.</summary>
    internal const int FolioBatchSize = 31;

    /// <summary>cpu_fbatches.lru_add of each CPU (host-side; guarded by the lru lock so another CPU may drain it).</summary>
    private List<ulong>[] _lruAddBatch = null!;

    /// <summary>The CPU whose batch holds each batched page.</summary>
    private readonly Dictionary<ulong, int> _inBatch = [];

    private int _batched;

    private void InitLruBatches()
    {
        _lruAddBatch = new List<ulong>[_m.Cpus.Count];
        for (int i = 0; i < _lruAddBatch.Length; i++)
            _lruAddBatch[i] = new List<ulong>(FolioBatchSize);
    }

    /// <summary>
    /// folio_add_lru(): the page joins this CPU's lru_add batch; when the batch is full, lru_add moves all of it
    /// to the lists (folio_batch_move_lru()). Until then the page has no PG_lru and is on no list, as in the
    /// kernel (reclaim drains the batches first: lru_add_drain()). Unlike the kernel the batch holds no reference.
    /// </summary>
    public void LruAdd(Cpu cpu, ulong pfn, bool file)
    {
        byte* d = Desc(pfn);
        lock (_lruLock)
        {
            if (MemMap<TArch>.TestFlag(d, PageFlag.Lru) || _inBatch.ContainsKey(pfn))
                throw new ConsistencyException($"folio_add_lru(): pfn 0x{pfn:x} is already on an LRU list");
            var batch = _lruAddBatch[cpu.Id];
            batch.Add(pfn);
            _inBatch[pfn] = cpu.Id;
            _batched++;
            if (batch.Count >= FolioBatchSize)
                MoveBatchToLruLocked(cpu, batch);
        }
    }

    /// <summary>
    /// lru_add(): PG_lru and the head of the inactive (with PG_active, the active) list of its type. Shmem pages are
    /// made unevictable (the emulator has no shmem swap; counted in unevictable_pgs_culled).
    /// </summary>
    private void MoveBatchToLruLocked(Cpu cpu, List<ulong> batch)
    {
        foreach (ulong pfn in batch)
        {
            _inBatch.Remove(pfn);
            _batched--;
            byte* d = Desc(pfn);
            ulong mapping = MemMap<TArch>.Mapping(d);
            bool shmem = MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked) && mapping != 0 && (mapping & 1) == 0;
            if (shmem)
            {
                MemMap<TArch>.ClearFlag(d, PageFlag.Active);
                MemMap<TArch>.SetFlag(d, PageFlag.Unevictable);
                cpu.Events[(int)VmEvent.UnevictablePgsCulled]++;
            }
            MemMap<TArch>.SetFlag(d, PageFlag.Lru);
            AddToLru(pfn, d);
        }
        batch.Clear();
    }

    /// <summary>lru_add_drain_all(): every CPU's lru_add batch goes to the lists now.</summary>
    internal void LruAddDrainAll(Cpu cpu)
    {
        lock (_lruLock)
        {
            if (_batched == 0)
                return;
            foreach (var batch in _lruAddBatch)
                if (batch.Count != 0)
                    MoveBatchToLruLocked(cpu, batch);
        }
    }

    /// <summary>Pages waiting in lru_add batches.</summary>
    internal int LruBatched
    {
        get
        {
            lock (_lruLock)
                return _batched;
        }
    }

    /// <summary>The last reference is going (__folio_put → lruvec_del_folio + __folio_clear_lru_flags()), or the page leaves its lru_add batch.</summary>
    public void LruDel(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        if (!MemMap<TArch>.TestFlag(d, PageFlag.Lru) && Volatile.Read(ref _batched) == 0)
            return;
        lock (_lruLock)
        {
            if (_inBatch.Remove(pfn, out int owner))
            {
                _lruAddBatch[owner].Remove(pfn);
                _batched--;
                return;
            }
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
    /// <summary>The delegate __remove_mapping() is handed, made once (a method group would allocate one per page).</summary>
    private Func<ulong, ulong>? _workingsetEviction;

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
