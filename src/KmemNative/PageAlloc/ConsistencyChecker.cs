using System.Collections;
using System.Text;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>
/// Walks every buddy free list, every per-CPU list and every descriptor, and checks that they agree:
/// each free block is aligned, typed buddy with its order in private, on the list of its pageblock's migratetype,
/// in its zone, counted in nr_free and NR_FREE_PAGES; each per-CPU page is where pcp-&gt;count says; no page is in
/// two places; and free + per-CPU + allocated + reserved == present in every zone.
/// </summary>
/// <remarks>Meant for a quiescent machine (tests, scripts): it takes each zone lock but reads per-CPU lists unlocked.</remarks>
internal sealed unsafe class ConsistencyChecker<TArch>(Machine<TArch> machine) where TArch : struct, IArch
{
    private readonly MemMap<TArch> _mm = machine.MemMap;
    private readonly PageAllocator<TArch> _pa = machine.PageAllocator;
    private readonly KernelLayouts _l = machine.Layouts;
    private readonly List<string> _errors = [];
    private BitArray _seen = null!;

    public ConsistencyReport Run()
    {
        _seen = new BitArray(checked((int)machine.MaxPfn));
        var counts = new List<ZoneCounts>();
        foreach (var zone in machine.Zones)
        {
            lock (zone.Lock)
            {
                long free = CheckFreeLists(zone);
                long pcp = CheckPcpLists(zone);
                counts.Add(CheckDescriptors(zone, free, pcp));
            }
            if (_errors.Count > 20)
                break;
        }
        if (_errors.Count > 0)
        {
            var sb = new StringBuilder($"allocator inconsistent ({_errors.Count} problem(s)):");
            foreach (var e in _errors.Take(20))
                sb.Append("\n  ").Append(e);
            throw new ConsistencyException(sb.ToString());
        }
        return new ConsistencyReport(counts);
    }

    private void Error(string message) => _errors.Add(message);

    private long CheckFreeLists(Zone zone)
    {
        long freePages = 0, blockPages = 0;
        for (int order = 0; order < PageSize.NrOrders; order++)
        {
            long blocks = 0;
            for (int mt = 0; mt < MigrateTypes.Count; mt++)
            {
                ulong head = zone.Va + (ulong)_l.FreeListOffset(order, mt);
                ulong prev = head;
                long guard = 0;
                for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head; e = MemMap<TArch>.Next(_mm.ListHost(e)))
                {
                    if (++guard > (long)machine.MaxPfn)
                    {
                        Error($"{zone.Name} free_area[{order}].free_list[{mt}] does not return to its head");
                        break;
                    }
                    if (MemMap<TArch>.Prev(_mm.ListHost(e)) != prev)
                        Error($"{zone.Name} free_area[{order}] list [{mt}]: entry 0x{e:x} prev does not point back");
                    prev = e;
                    ulong pfn = _mm.PfnOfLru(e);
                    CheckFreeBlock(zone, pfn, order, mt);
                    blocks++;
                    if (mt != (int)MigrateType.Isolate)
                    {
                        freePages += 1L << order;
                        if (order >= TArch.PageblockOrder)
                            blockPages += 1L << order;
                    }
                }
            }
            if (blocks != zone.NrFree(order))
                Error($"{zone.Name} free_area[{order}].nr_free = {zone.NrFree(order)} but {blocks} blocks are listed");
        }
        if (freePages != zone.FreePages)
            Error($"{zone.Name} NR_FREE_PAGES = {zone.FreePages} but the free lists hold {freePages} pages");
        if (blockPages != zone.Stat(ZoneStat.NrFreePagesBlocks))
            Error($"{zone.Name} nr_free_pages_blocks = {zone.Stat(ZoneStat.NrFreePagesBlocks)} but blocks of order >= pageblock hold {blockPages} pages");
        return freePages;
    }

    private void CheckFreeBlock(Zone zone, ulong pfn, int order, int mt)
    {
        byte* p = _mm.Desc(pfn);
        ulong n = 1UL << order;
        if ((pfn & (n - 1)) != 0)
            Error($"free block pfn 0x{pfn:x} order {order} is not aligned");
        if (pfn < zone.StartPfn || pfn + n > zone.EndPfn)
            Error($"free block pfn 0x{pfn:x} order {order} is outside zone {zone.Name}");
        if (!MemMap<TArch>.IsBuddy(p))
            Error($"free block pfn 0x{pfn:x} is not PageBuddy (page_type 0x{MemMap<TArch>.PageType(p):x})");
        if (MemMap<TArch>.Private(p) != (ulong)order)
            Error($"free block pfn 0x{pfn:x} on the order-{order} list has private {MemMap<TArch>.Private(p)}");
        if (MemMap<TArch>.Refcount(p) != 0)
            Error($"free block pfn 0x{pfn:x} has refcount {MemMap<TArch>.Refcount(p)}");
        if (MemMap<TArch>.ZoneIdx(p) != zone.Index)
            Error($"free block pfn 0x{pfn:x} has zone {MemMap<TArch>.ZoneIdx(p)} in its flags, listed in {zone.Name}");
        for (ulong b = pfn; b < pfn + n; b += 1UL << TArch.PageblockOrder)
        {
            if (_pa.PageblockMigratetype(b) != mt)
            {
                Error($"free block pfn 0x{pfn:x} is on the {PageBits.MigratetypeNames[mt]} list but its pageblock is {PageBits.MigratetypeNames[_pa.PageblockMigratetype(b)]}");
                break;
            }
            if (n < 1UL << TArch.PageblockOrder)
                break;
        }
        MarkSeen(pfn, n, "free block");
        for (ulong i = 0; i < n; i++)
        {
            byte* q = _mm.Desc(pfn + i);
            if (_mm.Ext(pfn + i) != PageExt.None)
                Error($"pfn 0x{pfn + i:x} in a free block is recorded as allocated");
            if (MemMap<TArch>.TestFlag(q, PageFlag.Reserved))
                Error($"pfn 0x{pfn + i:x} in a free block is PG_reserved");
            if (i != 0 && MemMap<TArch>.IsBuddy(q))
                Error($"pfn 0x{pfn + i:x} inside a free order-{order} block is itself PageBuddy");
        }
    }

    private long CheckPcpLists(Zone zone)
    {
        if (!zone.IsPopulated)
            return 0;
        long total = 0;
        foreach (var cpu in machine.Cpus)
        {
            byte* pcp = cpu.Percpu + zone.PcpOffset;
            ulong pcpVa = cpu.PercpuVa + (ulong)zone.PcpOffset;
            long pages = 0;
            for (int pindex = 0; pindex < _l.NrPcpLists; pindex++)
            {
                int order = pindex / MigrateTypes.PcpTypes;
                ulong head = pcpVa + (ulong)_l.PcpListsOff + (ulong)(pindex * 2 * TArch.PointerSize);
                long guard = 0;
                for (ulong e = MemMap<TArch>.Next(_mm.ListHost(head)); e != head; e = MemMap<TArch>.Next(_mm.ListHost(e)))
                {
                    if (++guard > (long)machine.MaxPfn)
                    {
                        Error($"cpu{cpu.Id} {zone.Name} pcp list {pindex} does not return to its head");
                        break;
                    }
                    if (pindex >= MigrateTypes.PcpTypes * (PageSize.CostlyOrder + 1))
                    {
                        Error($"cpu{cpu.Id} {zone.Name} pcp THP list {pindex} is not empty");
                        break;
                    }
                    ulong pfn = _mm.PfnOfLru(e);
                    ulong n = 1UL << order;
                    if (!zone.Spans(pfn))
                        Error($"cpu{cpu.Id} pcp page pfn 0x{pfn:x} is not in zone {zone.Name}");
                    if (MemMap<TArch>.Refcount(_mm.Desc(pfn)) != 0 || MemMap<TArch>.IsBuddy(_mm.Desc(pfn)))
                        Error($"cpu{cpu.Id} pcp page pfn 0x{pfn:x} has refcount {MemMap<TArch>.Refcount(_mm.Desc(pfn))} or is PageBuddy");
                    for (ulong i = 0; i < n; i++)
                        if (_mm.Ext(pfn + i) != PageExt.Pcp)
                            Error($"cpu{cpu.Id} pcp page pfn 0x{pfn + i:x} is not recorded as per-CPU");
                    MarkSeen(pfn, n, $"cpu{cpu.Id} pcp page");
                    pages += (long)n;
                }
            }
            int count = *(int*)(pcp + _l.PcpCountOff);
            if (count != pages)
                Error($"cpu{cpu.Id} {zone.Name} pcp->count = {count} but its lists hold {pages} pages");
            total += pages;
        }
        return total;
    }

    private ZoneCounts CheckDescriptors(Zone zone, long free, long pcp)
    {
        long present = 0, reserved = 0, allocated = 0;
        for (ulong pfn = zone.StartPfn; pfn < zone.EndPfn; pfn++)
        {
            bool ram = machine.Memory.IsRam(pfn << PageSize.Shift);
            byte* p = _mm.Desc(pfn);
            if (MemMap<TArch>.ZoneIdx(p) != zone.Index)
                Error($"pfn 0x{pfn:x} in zone {zone.Name}'s span has zone {MemMap<TArch>.ZoneIdx(p)} in its flags");
            if (!ram)
            {
                if (!MemMap<TArch>.TestFlag(p, PageFlag.Reserved) || _seen[(int)pfn])
                    Error($"hole pfn 0x{pfn:x} is not a reserved, unused descriptor");
                continue;
            }
            present++;
            if (_seen[(int)pfn])
                continue;
            byte ext = _mm.Ext(pfn);
            if ((ext & (PageExt.Head | PageExt.Tail)) != 0)
            {
                allocated++;
                if ((ext & PageExt.Head) != 0 && MemMap<TArch>.Refcount(p) <= 0)
                    Error($"allocated pfn 0x{pfn:x} has refcount {MemMap<TArch>.Refcount(p)}");
            }
            else if (MemMap<TArch>.TestFlag(p, PageFlag.Reserved))
            {
                reserved++;
            }
            else
            {
                Error($"pfn 0x{pfn:x} is neither free, on a per-CPU list, allocated nor reserved (lost)");
            }
        }
        if (present != (long)zone.Present)
            Error($"{zone.Name} present_pages = {zone.Present} but {present} RAM pages are spanned");
        if (free + pcp + allocated + reserved != present)
            Error($"{zone.Name}: free {free} + pcp {pcp} + allocated {allocated} + reserved {reserved} != present {present}");
        if (reserved != (long)(zone.Present - zone.Managed))
            Error($"{zone.Name}: {reserved} reserved pages but present - managed = {zone.Present - zone.Managed}");
        return new ZoneCounts(zone.Name, present, free, pcp, allocated, reserved);
    }

    private void MarkSeen(ulong pfn, ulong n, string what)
    {
        for (ulong i = 0; i < n; i++)
        {
            int idx = (int)(pfn + i);
            if (_seen[idx])
                Error($"pfn 0x{pfn + i:x} ({what}) is also on another list");
            _seen[idx] = true;
        }
    }
}
