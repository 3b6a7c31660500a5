using System.Runtime.CompilerServices;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

// Per-CPU page lists (struct per_cpu_pages): orders 0..PAGE_ALLOC_COSTLY_ORDER for the three PCP migratetypes,
// list index order_to_pindex(mt, order) = 3 * order + mt. Refilled from and drained to the buddy lists in
// batches under zone->lock; the lists themselves belong to the CPU and take no lock (see Cpu).
internal sealed unsafe partial class PageAllocator<TArch>
{
    private const int PcpBatchScaleMax = 5;          // CONFIG_PCP_BATCH_SCALE_MAX
    private const byte PcpfPrevFreeHighOrder = 1;    // PCPF_PREV_FREE_HIGH_ORDER
    private const byte PcpfFreeHighBatch = 2;        // PCPF_FREE_HIGH_BATCH

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int OrderToPindex(int mt, int order) => MigrateTypes.PcpTypes * order + mt;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int PcpInt(byte* pcp, int offset) => ref *(int*)(pcp + offset);

    /// <summary>Host address of <paramref name="cpu"/>'s per_cpu_pages for <paramref name="zone"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static byte* Pcp(Cpu cpu, Zone zone) => cpu.Percpu + zone.PcpOffset;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong PcpListVa(Cpu cpu, Zone zone, int pindex) =>
        cpu.PercpuVa + (ulong)zone.PcpOffset + (ulong)HotLayout<TArch>.PcpListsOff + (ulong)(pindex * 2 * TArch.PointerSize);

    /// <summary>rmqueue_pcplist(): pop the first page of the CPU's list, refilling it with a batch when empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong RmqueuePcplist(Cpu cpu, Zone zone, int order, int mt, int allocFlags)
    {
        byte* pcp = Pcp(cpu, zone);
        *(short*)(pcp + HotLayout<TArch>.PcpFreeCountOff) >>= 1;
        int listOff = HotLayout<TArch>.PcpListsOff + OrderToPindex(mt, order) * 2 * TArch.PointerSize;
        ulong headVa = cpu.PercpuVa + (ulong)(zone.PcpOffset + listOff);
        byte* head = pcp + listOff;
        ulong first = _mm.PopFirstPage(headVa, head);
        if (first == headVa)
        {
            if (!RefillPcp(cpu, zone, pcp, order, mt, allocFlags, headVa))
                return NoPage;
            first = _mm.PopFirstPage(headVa, head);
        }
        PcpInt(pcp, HotLayout<TArch>.PcpCountOff) -= 1 << order;
        return _mm.PfnOfLru(first);
    }

    private bool RefillPcp(Cpu cpu, Zone zone, byte* pcp, int order, int mt, int allocFlags, ulong head)
    {
        if (cpu.DrainRequested)
            DrainLocal(cpu);
        int batch = NrPcpAlloc(pcp, zone, order);
        int got = 0;
        lock (zone.Lock)
        {
            // rmqueue_bulk(): pages go to the tail so the list stays in physical order.
            for (; got < batch; got++)
            {
                ulong pfn = Rmqueue(zone, order, mt, allocFlags);
                if (pfn == NoPage)
                    break;
                _mm.ListAddTail(LruVa(pfn), head);
                MarkPcp(pfn, order);
            }
        }
        PcpInt(pcp, HotLayout<TArch>.PcpCountOff) += got << order;
        return got != 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MarkPcp(ulong pfn, int order)
    {
        if (order == 0)
            _mm.Ext(pfn) = PageExt.Pcp;
        else
            _mm.SetExtRange(pfn, 1UL << order, PageExt.Pcp);
    }

    /// <summary>nr_pcp_alloc(): how many blocks a refill takes; grows with alloc_factor while the CPU keeps allocating.</summary>
    private int NrPcpAlloc(byte* pcp, Zone zone, int order)
    {
        int baseBatch = PcpInt(pcp, HotLayout<TArch>.PcpBatchOff);
        int highMin = PcpInt(pcp, HotLayout<TArch>.PcpHighMinOff), highMax = PcpInt(pcp, HotLayout<TArch>.PcpHighMaxOff);
        int high = PcpInt(pcp, HotLayout<TArch>.PcpHighOff) = Math.Min(Math.Max(PcpInt(pcp, HotLayout<TArch>.PcpHighOff), highMin), highMax);
        if (high < baseBatch)
            return 1;
        ref byte allocFactor = ref *(pcp + HotLayout<TArch>.PcpAllocFactorOff);
        int batch = order != 0 ? baseBatch : baseBatch << allocFactor;
        if (highMin != highMax && !zone.BelowHigh)
            high = PcpInt(pcp, HotLayout<TArch>.PcpHighOff) = Math.Min(high + batch, highMax);
        if (order == 0)
        {
            int maxNrAlloc = Math.Max(high - PcpInt(pcp, HotLayout<TArch>.PcpCountOff) - baseBatch, baseBatch);
            if (batch <= maxNrAlloc && allocFactor < PcpBatchScaleMax)
                allocFactor++;
            batch = Math.Min(batch, maxNrAlloc);
        }
        if (batch > 1)
            batch = Math.Max(batch >> order, 2);
        return batch;
    }

    /// <summary>
    /// free_frozen_page_commit(): push the page on the CPU's list; when the list reaches its high mark, return a
    /// batch of the coldest pages to the buddy lists.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FreeToPcp(Cpu cpu, Zone zone, ulong pfn, int order, int mt)
    {
        byte* pcp = Pcp(cpu, zone);
        *(pcp + HotLayout<TArch>.PcpAllocFactorOff) >>= 1;
        int pindex = OrderToPindex(mt, order);
        int listOff = HotLayout<TArch>.PcpListsOff + pindex * 2 * TArch.PointerSize;
        _mm.PushFrontPage(cpu.PercpuVa + (ulong)(zone.PcpOffset + listOff), pcp + listOff, LruVa(pfn));
        MarkPcp(pfn, order);
        ref int count = ref PcpInt(pcp, HotLayout<TArch>.PcpCountOff);
        count += 1 << order;

        int batch = PcpInt(pcp, HotLayout<TArch>.PcpBatchOff);
        ref short freeCount = ref *(short*)(pcp + HotLayout<TArch>.PcpFreeCountOff);
        ref byte flags = ref *(pcp + HotLayout<TArch>.PcpFlagsOff);
        bool freeHigh = false;
        if (order != 0)
        {
            freeHigh = freeCount >= batch + PcpInt(pcp, HotLayout<TArch>.PcpHighMinOff) / 2 &&
                       (flags & PcpfPrevFreeHighOrder) != 0 &&
                       ((flags & PcpfFreeHighBatch) == 0 || count >= batch);
            flags |= PcpfPrevFreeHighOrder;
        }
        else if ((flags & PcpfPrevFreeHighOrder) != 0)
        {
            flags &= unchecked((byte)~PcpfPrevFreeHighOrder);
        }
        if (freeCount < batch << PcpBatchScaleMax)
            freeCount = (short)Math.Min(freeCount + (1 << order), short.MaxValue);

        int high = NrPcpHigh(pcp, zone, batch, freeHigh);
        if (count < high)
            return;
        FreeToPcpOverHigh(cpu, zone, pcp, batch, high, freeHigh, pindex);
    }

    /// <summary>The list reached its high mark: return a batch of its coldest pages to the buddy lists (free_pcppages_bulk).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FreeToPcpOverHigh(Cpu cpu, Zone zone, byte* pcp, int batch, int high, bool freeHigh, int pindex)
    {
        if (cpu.DrainRequested)
        {
            DrainLocal(cpu);
            return;
        }
        int toFree = NrPcpFree(pcp, batch, high, freeHigh);
        FreePcppagesBulk(cpu, zone, pcp, toFree, pindex);
    }

    /// <summary>nr_pcp_high(): the (self-tuning) high mark between high_min and high_max.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int NrPcpHigh(byte* pcp, Zone zone, int batch, bool freeHigh)
    {
        int highMin = PcpInt(pcp, HotLayout<TArch>.PcpHighMinOff), highMax = PcpInt(pcp, HotLayout<TArch>.PcpHighMaxOff);
        ref int pcpHigh = ref PcpInt(pcp, HotLayout<TArch>.PcpHighOff);
        int high = pcpHigh = Math.Min(Math.Max(pcpHigh, highMin), highMax);   // clamp (high_min <= high_max by construction)
        if (high == 0)
            return 0;
        short freeCount = *(short*)(pcp + HotLayout<TArch>.PcpFreeCountOff);
        if (freeHigh)
        {
            pcpHigh = Math.Max(high - (batch << PcpBatchScaleMax), highMin);
            return 0;
        }
        if (highMin == highMax)
            return high;
        int count = PcpInt(pcp, HotLayout<TArch>.PcpCountOff);
        if (zone.BelowHigh)
        {
            int fc = Math.Max(freeCount, batch);
            pcpHigh = Math.Max(high - fc, highMin);
            high = Math.Max(count, highMin);
        }
        else if (count >= high)
        {
            int need = freeCount + batch;
            if (pcpHigh < need)
                pcpHigh = Math.Clamp(need, highMin, highMax);
        }
        return high;
    }

    /// <summary>nr_pcp_free(): how many pages to return once the list is over its high mark.</summary>
    private int NrPcpFree(byte* pcp, int batch, int high, bool freeHigh)
    {
        int count = PcpInt(pcp, HotLayout<TArch>.PcpCountOff);
        if (freeHigh)
            return Math.Min(count, batch << PcpBatchScaleMax);
        if (high < batch)
            return 1;
        short freeCount = *(short*)(pcp + HotLayout<TArch>.PcpFreeCountOff);
        return Math.Clamp((int)freeCount, batch, Math.Max(high - batch, batch));
    }

    /// <summary>
    /// free_pcppages_bulk(): return <paramref name="count"/> pages to the buddy lists, round-robin over the lists
    /// starting with the one just used, coldest (tail) pages first.
    /// </summary>
    private void FreePcppagesBulk(Cpu cpu, Zone zone, byte* pcp, int count, int pindex)
    {
        ref int pcpCount = ref PcpInt(pcp, HotLayout<TArch>.PcpCountOff);
        count = Math.Min(pcpCount, count);
        int lists = MigrateTypes.PcpTypes * (PageSize.CostlyOrder + 1);
        pindex--;
        lock (zone.Lock)
        {
            while (count > 0)
            {
                ulong head;
                do
                {
                    if (++pindex >= lists)
                        pindex = 0;
                    head = PcpListVa(cpu, zone, pindex);
                }
                while (_mm.ListEmpty(head));
                int order = pindex / MigrateTypes.PcpTypes;
                int nr = 1 << order;
                do
                {
                    ulong last = MemMap<TArch>.Prev(_mm.ListHost(head));
                    ulong pfn = _mm.PfnOfLru(last);
                    _mm.ListDel(last);
                    if (order == 0)
                        _mm.Ext(pfn) = PageExt.None;
                    else
                        _mm.SetExtRange(pfn, (ulong)nr, PageExt.None);
                    count -= nr;
                    pcpCount -= nr;
                    FreeOneBlock(zone, pfn, order, PageblockMigratetype(pfn), toTail: false);
                }
                while (count > 0 && !_mm.ListEmpty(head));
            }
        }
    }

    /// <summary>drain_pages(): empty every per-CPU list of <paramref name="cpu"/> (called on the owning thread or on an unbound CPU).</summary>
    internal long DrainLocal(Cpu cpu)
    {
        cpu.DrainRequested = false;
        long drained = 0;
        foreach (var zone in _zones)
        {
            if (!zone.IsPopulated)
                continue;
            byte* pcp = Pcp(cpu, zone);
            int count = PcpInt(pcp, HotLayout<TArch>.PcpCountOff);
            if (count == 0)
                continue;
            FreePcppagesBulk(cpu, zone, pcp, count, 0);
            drained += count;
        }
        return drained;
    }

    /// <summary>
    /// drain_all_pages(): drain the caller's CPU and every CPU no other thread holds; CPUs bound to other live
    /// threads get a request their owner honours at its next refill or overflow. Returns the pages drained now.
    /// </summary>
    internal long DrainAllPages(Cpu self)
    {
        long drained = DrainLocal(self);
        foreach (var cpu in _machine.Cpus)
        {
            if (ReferenceEquals(cpu, self))
                continue;
            if (_machine.TryClaimCpu(cpu, out bool wasOwned))
            {
                try { drained += DrainLocal(cpu); }
                finally { if (!wasOwned) _machine.UnclaimCpu(cpu); }
            }
            else
            {
                cpu.DrainRequested = true;
            }
        }
        return drained;
    }

    /// <summary>Pages on <paramref name="cpu"/>'s lists for <paramref name="zone"/> (pcp-&gt;count).</summary>
    internal int PcpCount(Cpu cpu, Zone zone) => PcpInt(Pcp(cpu, zone), HotLayout<TArch>.PcpCountOff);

    /// <summary>Reads a per_cpu_pages field (for /proc/zoneinfo).</summary>
    internal int PcpField(Cpu cpu, Zone zone, string field) => PcpInt(Pcp(cpu, zone), _l.Pcp.Offset(field));

    /// <summary>per_cpu_pages_init() + pageset_update(): empty lists, high 0, the zone's batch and high bounds.</summary>
    internal void InitPcp(Cpu cpu, Zone zone)
    {
        byte* pcp = Pcp(cpu, zone);
        new Span<byte>(pcp, _l.Pcp.Size).Clear();
        for (int i = 0; i < _l.NrPcpLists; i++)
            _mm.InitListHead(PcpListVa(cpu, zone, i));
        PcpInt(pcp, HotLayout<TArch>.PcpBatchOff) = zone.PcpBatch;
        PcpInt(pcp, HotLayout<TArch>.PcpHighMinOff) = zone.PcpHighMin;
        PcpInt(pcp, HotLayout<TArch>.PcpHighMaxOff) = zone.PcpHighMax;
    }

    /// <summary>pageset_update() for every CPU after the zone's bounds changed.</summary>
    internal void UpdatePcpBounds(Zone zone)
    {
        foreach (var cpu in _machine.Cpus)
        {
            byte* pcp = Pcp(cpu, zone);
            PcpInt(pcp, HotLayout<TArch>.PcpBatchOff) = zone.PcpBatch;
            PcpInt(pcp, HotLayout<TArch>.PcpHighMinOff) = zone.PcpHighMin;
            PcpInt(pcp, HotLayout<TArch>.PcpHighMaxOff) = zone.PcpHighMax;
        }
    }
}
