using System.Globalization;
using System.Text;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// Swap (mm/swapfile.c, mm/swap_state.c): one emulated swap partition whose slots live in host memory (a 4 KiB
// array per slot in use, allocated when first written), its swap_map of per-slot counts (the PTEs naming the
// slot, plus SWAP_HAS_CACHE while a page holds its data in the swap cache), and the swap cache itself: pages with
// PG_swapcache whose page->private is the swp_entry_t, held by one reference. Reads are synchronous (like zram's
// SWP_SYNCHRONOUS_IO); writes complete with the other emulated I/O.
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>SWAP_HAS_CACHE: the slot's data is (also) in a swap-cache page.</summary>
    private const byte SwapHasCache = 0x40;

    /// <summary>SWAP_MAP_MAX: the most references a slot counts without continuation pages (not emulated).</summary>
    private const byte SwapMapMax = 0x3e;

    private sealed class SwapDevice
    {
        public required string Name;
        public required ulong MaxPages;     // slots, the header page (slot 0) included
        public required byte[] Map;
        public required byte[]?[] Data;
        public long Pages => (long)MaxPages - 1;
        public long InUse;
        public ulong Cursor = 1;
        public short Prio = -2;
    }

    private SwapDevice? _swap;
    private readonly Lock _swapLock = new();
    private readonly Dictionary<ulong, ulong> _swapCache = [];

    /// <summary>get_nr_swap_pages(): free swap slots.</summary>
    internal long NrSwapPages
    {
        get
        {
            var s = _swap;
            return s is null ? 0 : s.Pages - Interlocked.Read(ref s.InUse);
        }
    }

    /// <summary>total_swap_pages.</summary>
    internal long TotalSwapPages => _swap?.Pages ?? 0;

    /// <summary>vm_swap_full(): more than half the swap space used.</summary>
    public bool SwapFull => _swap is { } s && NrSwapPages * 2 < s.Pages;

    /// <summary>total_swapcache_pages().</summary>
    internal long SwapCachePages
    {
        get
        {
            lock (_swapLock)
                return _swapCache.Count;
        }
    }

    /// <summary>
    /// swapon(): an emulated swap partition of <paramref name="bytes"/> (/dev/sda2, priority -2, non-rotational);
    /// the first page is the header, so SwapTotal is one page less. One device only.
    /// </summary>
    internal SysResult Swapon(ulong bytes)
    {
        ulong maxPages = Math.Min(bytes >> PageSize.Shift, SwapPte<TArch>.MaxOffset + 1);
        if (maxPages < 2)
            return SysResult.Fail(Errno.EINVAL);
        if (maxPages > int.MaxValue)
            return SysResult.Fail(Errno.EINVAL);
        lock (_swapLock)
        {
            if (_swap is not null)
                return SysResult.Fail(Errno.EBUSY);
            _swap = new SwapDevice
            {
                Name = "/dev/sda2",
                MaxPages = maxPages,
                Map = new byte[maxPages],
                Data = new byte[]?[maxPages],
            };
        }
        long kb = (long)(maxPages - 1) << (PageSize.Shift - 10);
        _m.Log.Info(string.Create(CultureInfo.InvariantCulture, $"Adding {kb}k swap on /dev/sda2.  Priority:-2 extents:1 across:{kb}k SS"));
        UpdateSwapCounters();
        return SysResult.Ok(0);
    }

    private void UpdateSwapCounters()
    {
        _m.Proc.SwapTotalPages = TotalSwapPages;
        _m.Proc.SwapFreePages = NrSwapPages;
    }

    /// <summary>/proc/swaps.</summary>
    internal string ProcSwaps()
    {
        var sb = new StringBuilder("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        if (_swap is { } s)
        {
            long bytes = s.Pages << (PageSize.Shift - 10);
            long inuse = Interlocked.Read(ref s.InUse) << (PageSize.Shift - 10);
            int len = s.Name.Length;
            sb.Append(s.Name).Append(' ', len < 40 ? 40 - len : 1).Append("partition").Append('\t').Append(bytes.ToString(CultureInfo.InvariantCulture))
              .Append('\t').Append(bytes < 10000000 ? "\t" : "").Append(inuse.ToString(CultureInfo.InvariantCulture))
              .Append('\t').Append(inuse < 10000000 ? "\t" : "").Append(s.Prio.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return sb.ToString();
    }

    private bool ValidEntry(ulong entry, out SwapDevice dev, out ulong offset)
    {
        dev = _swap!;
        offset = SwpEntry.Offset<TArch>(entry);
        return _swap is not null && SwpEntry.Type<TArch>(entry) == 0 && offset != 0 && offset < _swap.MaxPages;
    }

    /// <summary>folio_alloc_swap() + add_to_swap_cache(): a free slot (next fit) with SWAP_HAS_CACHE, the page in the swap cache (a reference, PG_swapcache, private = entry, nr_swapcached) and dirty.</summary>
    private bool AddToSwap(Cpu cpu, ulong pfn, byte* d)
    {
        ulong entry;
        lock (_swapLock)
        {
            var s = _swap;
            if (s is null || s.InUse >= s.Pages)
                return false;
            ulong off = s.Cursor;
            while (s.Map[off] != 0)
            {
                off++;
                if (off >= s.MaxPages)
                    off = 1;
            }
            s.Map[off] = SwapHasCache;
            s.InUse++;
            s.Cursor = off + 1 >= s.MaxPages ? 1 : off + 1;
            entry = SwpEntry.Make<TArch>(0, off);
            _swapCache.Add(entry, pfn);
        }
        Interlocked.Increment(ref MemMap<TArch>.Refcount(d));
        MemMap<TArch>.SetFlag(d, PageFlag.OwnerPriv1);
        MemMap<TArch>.SetPrivate(d, entry);
        NodeStatAdd(NodeStat.NrSwapcached, 1);
        MemMap<TArch>.SetFlag(d, PageFlag.Dirty);
        UpdateSwapCounters();
        return true;
    }

    /// <summary>swap_writeout(): the page's bytes into its slot, PG_reclaim + PG_writeback until completion, pswpout.</summary>
    private bool StartSwapWriteback(Cpu cpu, ulong pfn, byte* d)
    {
        ulong entry = MemMap<TArch>.Private(d);
        if (!ValidEntry(entry, out var s, out ulong off))
            return false;
        MemMap<TArch>.ClearFlag(d, PageFlag.Dirty);   // folio_clear_dirty_for_io()
        var data = s.Data[off] ??= new byte[PageSize.Int];
        new ReadOnlySpan<byte>(_m.Memory.Base + (pfn << PageSize.Shift), PageSize.Int).CopyTo(data);
        MemMap<TArch>.SetFlag(d, PageFlag.Reclaim);
        MemMap<TArch>.SetFlag(d, PageFlag.Writeback);
        NodeStatAdd(NodeStat.NrWriteback, 1);
        ZoneOf(d).ModStat(ZoneStat.NrZoneWritePending, 1);
        Interlocked.Increment(ref MemMap<TArch>.Refcount(d));
        cpu.Events[(int)VmEvent.Pswpout]++;
        cpu.Events[(int)VmEvent.Pgpgout] += PageSize.Int / 512;
        QueueSwapIo(pfn);
        return true;
    }

    /// <summary>put_swap_folio()/swap_entry_free(): drop SWAP_HAS_CACHE (lock held); the slot is free once nothing names it.</summary>
    private void ClearHasCacheLocked(SwapDevice s, ulong off)
    {
        s.Map[off] = (byte)(s.Map[off] & ~SwapHasCache);
        if (s.Map[off] == 0)
            FreeSlotLocked(s, off);
    }

    private static void FreeSlotLocked(SwapDevice s, ulong off)
    {
        s.Data[off] = null;
        s.InUse--;
    }

    /// <summary>__delete_from_swap_cache() (swap lock held): out of the cache, PG_swapcache and private cleared.</summary>
    private void DeleteFromSwapCacheLocked(ulong pfn, byte* d, ulong entry)
    {
        _swapCache.Remove(entry);
        MemMap<TArch>.ClearFlag(d, PageFlag.OwnerPriv1);
        MemMap<TArch>.SetPrivate(d, 0);
        NodeStatAdd(NodeStat.NrSwapcached, -1);
        if (ValidEntry(entry, out var s, out ulong off))
            ClearHasCacheLocked(s, off);
    }

    /// <summary>
    /// __remove_mapping() of a swap-cache page the caller isolated: freeze the references (the cache's and ours),
    /// refuse if dirty, delete it from the swap cache and free it. The slot stays as long as PTEs name it.
    /// </summary>
    private bool RemoveFromSwapCache(Cpu cpu, ulong pfn, byte* d, bool reclaimed)
    {
        ulong entry = MemMap<TArch>.Private(d);
        lock (_swapLock)
        {
            if (!_swapCache.TryGetValue(entry, out ulong cached) || cached != pfn)
                return false;
            if (Interlocked.CompareExchange(ref MemMap<TArch>.Refcount(d), 0, 2) != 2)
                return false;
            if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty) || MemMap<TArch>.TestFlag(d, PageFlag.Writeback) ||
                MemMap<TArch>.PageType(d) != PageBits.NoType)
            {
                MemMap<TArch>.Refcount(d) = 2;
                return false;
            }
            DeleteFromSwapCacheLocked(pfn, d, entry);
        }
        UpdateSwapCounters();
        _mmSub!.FreeFrozenUserPage(cpu, pfn);
        return true;
    }

    /// <summary>folio_free_swap() from reclaim or a fault: the caller holds a reference; the cache's goes.</summary>
    private bool TryFreeSwapLocked(Cpu cpu, ulong pfn, byte* d)
    {
        ulong entry = MemMap<TArch>.Private(d);
        lock (_swapLock)
        {
            if (!MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1) || MemMap<TArch>.TestFlag(d, PageFlag.Writeback))
                return false;
            if (!ValidEntry(entry, out var s, out ulong off) || (s.Map[off] & ~SwapHasCache) != 0)
                return false;     // folio_swapped(): PTEs still name the slot
            if (!_swapCache.TryGetValue(entry, out ulong cached) || cached != pfn)
                return false;
            DeleteFromSwapCacheLocked(pfn, d, entry);
        }
        // The page will have to be written again if it is swapped out again.
        MemMap<TArch>.SetFlag(d, PageFlag.Dirty);
        UpdateSwapCounters();
        _mmSub!.PutPageRef(cpu, pfn);
        return true;
    }

    // ---- ISwapOps --------------------------------------------------------------------------------------

    public ulong LookupSwapCache(ulong entry)
    {
        lock (_swapLock)
        {
            if (!_swapCache.TryGetValue(entry, out ulong pfn))
                return PageAllocator<TArch>.NoPage;
            Interlocked.Increment(ref MemMap<TArch>.Refcount(Desc(pfn)));
            return pfn;
        }
    }

    public ulong SwapIn(Cpu cpu, ulong entry, out bool major)
    {
        major = false;
        ulong pfn = _m.AllocPagesPfn(cpu, Gfp.HighUserMovable, 0);
        if (pfn == PageAllocator<TArch>.NoPage)
            return pfn;
        byte* d = Desc(pfn);
        lock (_swapLock)
        {
            if (_swapCache.TryGetValue(entry, out ulong other))
            {
                // Another fault brought it in while we allocated.
                _m.FreePagesPfn(cpu, pfn, 0);
                Interlocked.Increment(ref MemMap<TArch>.Refcount(Desc(other)));
                return other;
            }
            if (!ValidEntry(entry, out var s, out ulong off) || s.Map[off] == 0)
            {
                _m.FreePagesPfn(cpu, pfn, 0);
                return PageAllocator<TArch>.NoPage;
            }
            // The swap cache's reference is the allocation's; the caller gets one more. Set before the page is
            // visible in the cache.
            MemMap<TArch>.Refcount(d) = 2;
            MemMap<TArch>.SetFlags(d, MemMap<TArch>.Flags(d) | 1UL << (int)PageFlag.Uptodate | 1UL << (int)PageFlag.Swapbacked |
                                      1UL << (int)PageFlag.OwnerPriv1);
            MemMap<TArch>.SetPrivate(d, entry);
            var data = s.Data[off];
            var dst = new Span<byte>(_m.Memory.Base + (pfn << PageSize.Shift), PageSize.Int);
            if (data is null)
                dst.Clear();
            else
                data.CopyTo(dst);
            s.Map[off] |= SwapHasCache;
            _swapCache.Add(entry, pfn);
        }
        NodeStatAdd(NodeStat.NrSwapcached, 1);
        cpu.Events[(int)VmEvent.Pswpin]++;
        cpu.Events[(int)VmEvent.Pgpgin] += PageSize.Int / 512;
        LruAdd(cpu, pfn, file: false);
        major = true;
        return pfn;
    }

    public bool SwapDuplicate(ulong entry)
    {
        lock (_swapLock)
        {
            if (!ValidEntry(entry, out var s, out ulong off) || s.Map[off] == 0)
                return false;
            if ((s.Map[off] & ~SwapHasCache) >= SwapMapMax)
                return false;
            s.Map[off]++;
            return true;
        }
    }

    public void SwapFree(Cpu cpu, ulong entry)
    {
        ulong tryFree = PageAllocator<TArch>.NoPage;
        lock (_swapLock)
        {
            if (!ValidEntry(entry, out var s, out ulong off) || (s.Map[off] & ~SwapHasCache) == 0)
                throw new ConsistencyException($"swap_free(): entry 0x{entry:x} is not in use");
            s.Map[off]--;
            if ((s.Map[off] & ~SwapHasCache) == 0)
            {
                if (s.Map[off] == 0)
                    FreeSlotLocked(s, off);
                else if (_swapCache.TryGetValue(entry, out ulong pfn))
                {
                    // free_swap_and_cache(): an unmapped swap-cache page nobody is writing goes with its last entry.
                    byte* d = Desc(pfn);
                    if (MemMap<TArch>.PageType(d) == PageBits.NoType && !MemMap<TArch>.TestFlag(d, PageFlag.Writeback))
                    {
                        DeleteFromSwapCacheLocked(pfn, d, entry);
                        MemMap<TArch>.SetFlag(d, PageFlag.Dirty);
                        tryFree = pfn;
                    }
                }
            }
        }
        UpdateSwapCounters();
        if (tryFree != PageAllocator<TArch>.NoPage)
            _mmSub!.PutPageRef(cpu, tryFree);
    }

    public int SwapCount(ulong entry)
    {
        lock (_swapLock)
            return ValidEntry(entry, out var s, out ulong off) ? s.Map[off] & ~SwapHasCache : 0;
    }

    public bool TryFreeSwap(Cpu cpu, ulong pfn) => TryFreeSwapLocked(cpu, pfn, Desc(pfn));

    /// <summary>The swap map agrees with the swap cache and the page tables.</summary>
    private void CheckSwapConsistency(List<string> errors)
    {
        CheckWritebackConsistency(errors);
        var ptes = _mmSub?.CountSwapPtes() ?? [];
        lock (_swapLock)
        {
            if (NodeStatRead(NodeStat.NrSwapcached) != _swapCache.Count)
                errors.Add($"nr_swapcached is {NodeStatRead(NodeStat.NrSwapcached)} but the swap cache holds {_swapCache.Count} pages");
            foreach (var (entry, pfn) in _swapCache)
            {
                byte* d = Desc(pfn);
                if (!MemMap<TArch>.TestFlag(d, PageFlag.OwnerPriv1) || MemMap<TArch>.Private(d) != entry)
                    errors.Add($"swap cache entry 0x{entry:x}: pfn 0x{pfn:x} lacks PG_swapcache or private");
                if (!ValidEntry(entry, out var dev, out ulong off) || (dev.Map[off] & SwapHasCache) == 0)
                    errors.Add($"swap cache entry 0x{entry:x} without SWAP_HAS_CACHE");
            }
            if (_swap is not { } s)
            {
                if (ptes.Count > 0)
                    errors.Add($"{ptes.Count} swap entries in page tables without a swap device");
                return;
            }
            long inuse = 0;
            for (ulong off = 1; off < s.MaxPages; off++)
            {
                byte map = s.Map[off];
                if (map == 0)
                    continue;
                inuse++;
                ulong entry = SwpEntry.Make<TArch>(0, off);
                int count = map & ~SwapHasCache;
                int found = ptes.GetValueOrDefault(entry);
                if (count != found)
                    errors.Add($"swap slot {off}: swap_map counts {count} PTEs, page tables hold {found}");
                if ((map & SwapHasCache) != 0 && !_swapCache.ContainsKey(entry))
                    errors.Add($"swap slot {off}: SWAP_HAS_CACHE without a swap-cache page");
            }
            foreach (var entry in ptes.Keys)
                if (!ValidEntry(entry, out var dev, out ulong off) || dev.Map[off] == 0)
                    errors.Add($"a PTE names swap entry 0x{entry:x}, which is not in use");
            if (inuse != s.InUse)
                errors.Add($"swap inuse_pages {s.InUse}, swap_map holds {inuse}");
        }
    }
}
