using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative;

/// <summary>
/// A machine of a profile known at compile time. Every subsystem inside is generic over
/// <typeparamref name="TArch"/>, so the JIT compiles one specialised copy per profile; calls through a variable
/// of this type are direct.
/// </summary>
/// <typeparam name="TArch">The profile: <see cref="I386"/> or <see cref="X86_64"/>.</typeparam>
public sealed unsafe partial class Machine<TArch> : Machine where TArch : struct, IArch
{
    private MemMap<TArch> _memMap;
    private PageAllocator<TArch> _pages = null!;
    private KernelLayouts _layouts = null!;
    private Zone[] _zones = [];

    internal Machine(MachineConfig config) : base(config)
    {
        try
        {
            BootKernel();
        }
        catch
        {
            Memory?.Dispose();
            throw;
        }
    }

    internal MemMap<TArch> MemMap => _memMap;

    internal PageAllocator<TArch> PageAllocator => _pages;

    internal KernelLayouts Layouts => _layouts;

    /// <inheritdoc/>
    public override IReadOnlyList<Zone> Zones => _zones;

    /// <inheritdoc/>
    public override ulong PageOffset => TArch.PageOffset;

    // ---- page allocator ---------------------------------------------------------------------------

    /// <inheritdoc/>
    public override Page? AllocPages(Cpu cpu, Gfp gfp, int order)
    {
        ThrowIfDisposed();
        ulong pfn = _pages.AllocPages(cpu, gfp, order);
        return pfn == PageAllocator<TArch>.NoPage ? null : new Page(this, pfn);
    }

    /// <summary>alloc_pages() returning the PFN, or <see cref="ulong.MaxValue"/>: no handle, for the tightest loops.</summary>
    /// <exception cref="InvalidAllocationException">Bad order, unknown GFP bits, or an impossible zone combination.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong AllocPagesPfn(Cpu cpu, Gfp gfp, int order) => _pages.AllocPages(cpu, gfp, order);

    /// <summary>__free_pages() by PFN: the counterpart of <see cref="AllocPagesPfn"/>.</summary>
    /// <exception cref="BadPageException">Not the head of an allocation of this order; nothing changes.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FreePagesPfn(Cpu cpu, ulong pfn, int order) => _pages.FreePages(cpu, pfn, order);

    /// <inheritdoc/>
    public override void FreePages(Cpu cpu, Page page, int order)
    {
        CheckPage(page);
        _pages.FreePages(cpu, page.Pfn, order);
    }

    /// <inheritdoc/>
    public override ulong AllocPagesExact(Cpu cpu, ulong size, Gfp gfp)
    {
        ThrowIfDisposed();
        if (size == 0)
            return 0;
        if ((gfp & (Gfp.Comp | Gfp.HighMem)) != 0)
            throw new InvalidAllocationException("alloc_pages_exact() takes neither __GFP_COMP nor __GFP_HIGHMEM");
        int order = PageSize.GetOrder(size);
        if (order > PageSize.MaxOrder)
            throw new InvalidAllocationException($"alloc_pages_exact({size}): larger than MAX_PAGE_ORDER");
        ulong pfn = _pages.AllocPages(cpu, gfp, order);
        if (pfn == PageAllocator<TArch>.NoPage)
            return 0;
        // make_alloc_exact(): split the block into order-0 pages and free the ones past the size.
        ulong used = (size + PageSize.Bytes - 1) >> PageSize.Shift;
        ulong total = 1UL << order;
        SplitPage(pfn, order);
        for (ulong i = used; i < total; i++)
            _pages.FreePages(cpu, pfn + i, 0);
        return TArch.PageOffset + (pfn << PageSize.Shift);
    }

    /// <summary>split_page(): an order-N non-compound allocation becomes 2^N order-0 allocations with refcount 1.</summary>
    internal void SplitPage(ulong pfn, int order)
    {
        for (ulong i = 0; i < 1UL << order; i++)
        {
            _memMap.Ext(pfn + i) = PageExt.Head;
            MemMap<TArch>.Refcount(_memMap.Desc(pfn + i)) = 1;
        }
    }

    /// <inheritdoc/>
    public override void GetPage(Page page)
    {
        CheckPage(page);
        _pages.GetPage(ThisCpu, page.Pfn);
    }

    /// <inheritdoc/>
    public override void PutPage(Page page)
    {
        CheckPage(page);
        _pages.PutPage(ThisCpu, page.Pfn);
    }

    /// <inheritdoc/>
    public override PageDescriptor ReadPage(ulong pfn)
    {
        ThrowIfDisposed();
        if (pfn >= MaxPfn)
            throw new PhysicalAddressException($"pfn 0x{pfn:x} is beyond max_pfn 0x{MaxPfn:x}", pfn << PageSize.Shift);
        byte* p = _memMap.Desc(pfn);
        ulong flags = MemMap<TArch>.Flags(p);
        return new PageDescriptor(
            pfn, _memMap.DescVa(pfn), flags,
            MemMap<TArch>.Next(p + TArch.PageLruOffset), MemMap<TArch>.Prev(p + TArch.PageLruOffset),
            MemMap<TArch>.Mapping(p), MemMap<TArch>.Index(p), MemMap<TArch>.Private(p),
            MemMap<TArch>.PageType(p), MemMap<TArch>.Refcount(p), MemMap<TArch>.MemcgData(p),
            MemMap<TArch>.ZoneIdx(p), BadPageReport<TArch>.FormatFlags(flags));
    }

    /// <inheritdoc/>
    public override ulong PageDescriptorAddress(ulong pfn) => _memMap.DescVa(pfn);

    /// <inheritdoc/>
    public override long DrainAllPages()
    {
        ThrowIfDisposed();
        return _pages.DrainAllPages(ThisCpu);
    }

    /// <inheritdoc/>
    public override int PcpCount(Cpu cpu, Zone zone) => zone.IsPopulated ? _pages.PcpCount(cpu, zone) : 0;

    /// <inheritdoc/>
    public override int PcpField(Cpu cpu, Zone zone, string field) => _pages.PcpField(cpu, zone, field);

    /// <inheritdoc/>
    public override ConsistencyReport CheckConsistency()
    {
        ThrowIfDisposed();
        var report = new ConsistencyChecker<TArch>(this).Run();
        _slab.CheckConsistency();
        Reclaim.CheckConsistency();
        return report;
    }

    /// <inheritdoc/>
    public override long NodeState(NodeStat item)
    {
        byte* p = Memory.Base + NodeDataPhys + _layouts.Node.Offset("vm_stat") + (int)item * TArch.PointerSize;
        return TArch.PointerSize == 8 ? *(long*)p : *(int*)p;
    }

    /// <inheritdoc/>
    internal override void ModNodeState(NodeStat item, long delta)
    {
        byte* p = Memory.Base + NodeDataPhys + _layouts.Node.Offset("vm_stat") + (int)item * TArch.PointerSize;
        if (TArch.PointerSize == 8)
            Interlocked.Add(ref *(long*)p, delta);
        else
            Interlocked.Add(ref *(int*)p, (int)delta);
    }

    /// <inheritdoc/>
    public override int PercpuUnitBytes => PercpuUnitSize;

    /// <inheritdoc/>
    public override ulong MemmapBytes => _memMap.MemmapBytes;

    /// <inheritdoc/>
    public override long MinFreeKbytes => _pages.MinFreeKbytes;

    /// <inheritdoc/>
    public override long TotalReservePages => _pages.TotalReservePages();

    /// <inheritdoc/>
    public override bool MobilityGroupingDisabled => _pages.MobilityDisabled;

    /// <inheritdoc/>
    public override int PageblockOrder => TArch.PageblockOrder;

    /// <inheritdoc/>
    public override MigrateType PageblockMigratetype(ulong pfn) =>
        pfn < MaxPfn ? (MigrateType)_pages.PageblockMigratetype(pfn) : throw new PhysicalAddressException($"pfn 0x{pfn:x} beyond max_pfn", pfn << 12);

    /// <inheritdoc/>
    public override long CountFreeBlocks(Zone zone, int order, MigrateType mt)
    {
        if (!zone.IsPopulated)
            return 0;
        ulong head = zone.Va + (ulong)_layouts.FreeListOffset(order, (int)mt);
        long n = 0;
        lock (zone.Lock)
        {
            for (ulong e = MemMap<TArch>.Next(_memMap.ListHost(head)); e != head; e = MemMap<TArch>.Next(_memMap.ListHost(e)))
            {
                if (++n > (long)MaxPfn)
                    throw new ConsistencyException($"free list {zone.Name}/order {order}/{mt} does not come back to its head");
            }
        }
        return n;
    }
}
