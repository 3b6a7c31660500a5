using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

/// <summary>One vmalloc/vmap area (struct vm_struct + vmap_area).</summary>
/// <param name="Address">First address.</param>
/// <param name="Size">Bytes mapped (without the guard page).</param>
/// <param name="Pfns">The page frames, in virtual order.</param>
/// <param name="Kind">"vmalloc" (pages owned and freed by vfree) or "vmap" (pages owned by the caller).</param>
public sealed record VmArea(ulong Address, ulong Size, IReadOnlyList<ulong> Pfns, string Kind)
{
    /// <summary>One past the mapped bytes.</summary>
    public ulong End => Address + Size;
}

// vmalloc(), vfree(), vmap(), vunmap(), vmalloc_to_page() (mm/vmalloc.c).
internal sealed unsafe partial class KernelPaging<TArch>
{
    // The kernel keeps vmap_areas in an rb-tree of slab objects; until this emulator has a slab allocator they are
    // managed objects ordered by address. The page tables they describe are real.
    private readonly SortedList<ulong, VmArea> _areas = [];

    /// <summary>Pages currently mapped by vmalloc() (vmalloc_nr_pages()).</summary>
    public long VmallocPages { get; private set; }

    /// <summary>The busy areas in address order.</summary>
    public IReadOnlyList<VmArea> VmAreas
    {
        get
        {
            lock (_lock)
                return [.. _areas.Values];
        }
    }

    /// <summary>alloc_vmap_area(): the lowest free range of <paramref name="bytes"/> plus a guard page; 0 when the area is full.</summary>
    private ulong FindFree(ulong bytes)
    {
        ulong candidate = VmallocStart;
        foreach (var a in _areas.Values)
        {
            if (a.Address >= candidate && a.Address - candidate >= bytes)
                return candidate;
            candidate = Math.Max(candidate, a.End + PageSize.Bytes);
        }
        return VmallocEnd > candidate && VmallocEnd - candidate >= bytes ? candidate : 0;
    }

    /// <summary>
    /// vmalloc(): <paramref name="size"/> bytes of virtually contiguous memory from order-0 pages wherever the
    /// allocator finds them (HIGHMEM first on i386: __vmalloc_area_node() adds __GFP_HIGHMEM), mapped PAGE_KERNEL
    /// in the vmalloc area with a guard page after. Returns 0 on failure, as the kernel returns NULL.
    /// </summary>
    public ulong Vmalloc(Cpu cpu, ulong size, Gfp gfp = Gfp.Kernel)
    {
        if (size == 0 || size > VmallocEnd - VmallocStart)
        {
            _m.Log.Warn($"{cpu.Comm}: vmalloc error: size {size}, invalid size, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)");
            return 0;
        }
        ulong npages = (size + PageSize.Bytes - 1) >> PageSize.Shift;
        ulong addr;
        var reserved = new VmArea(0, npages << PageSize.Shift, [], "vmalloc");
        lock (_lock)
        {
            addr = FindFree((npages + 1) << PageSize.Shift);
            if (addr == 0)
            {
                _m.Log.Warn($"{cpu.Comm}: vmalloc error: size {size}, vm_struct allocation failed, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)");
                return 0;
            }
            reserved = reserved with { Address = addr };
            _areas.Add(addr, reserved);
        }
        var pageGfp = gfp | ((gfp & (Gfp.Dma | Gfp.Dma32)) == 0 ? Gfp.HighMem : Gfp.None);
        var pfns = new ulong[npages];
        ulong got = 0;
        for (; got < npages; got++)
        {
            ulong pfn = _m.PageAllocator.AllocPages(cpu, pageGfp | Gfp.NoWarn, 0);
            if (pfn == PageAllocator<TArch>.NoPage)
                break;
            pfns[got] = pfn;
        }
        if (got < npages || !MapPages(cpu, addr, pfns, PageProt.Kernel))
        {
            for (ulong i = 0; i < got; i++)
                _m.PageAllocator.FreePages(cpu, pfns[i], 0);
            lock (_lock)
                _areas.Remove(addr);
            _m.Log.Warn($"{cpu.Comm}: vmalloc error: size {size}, page order 0, failed to allocate pages, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)");
            return 0;
        }
        lock (_lock)
        {
            _areas[addr] = reserved with { Pfns = pfns };
            VmallocPages += (long)npages;
            _m.Proc.VmallocUsedPages = VmallocPages;
        }
        return addr;
    }

    /// <summary>vmap(): maps the given pages contiguously in the vmalloc area; 0 when there is no room.</summary>
    /// <exception cref="MappingException">No pages, or a pfn beyond RAM.</exception>
    public ulong Vmap(Cpu cpu, IReadOnlyList<ulong> pfns, ulong prot)
    {
        if (pfns.Count == 0)
            throw new MappingException("vmap() of no pages", 0);
        foreach (ulong pfn in pfns)
            if (!_m.IsRamPfn(pfn))
                throw new MappingException($"vmap(): pfn 0x{pfn:x} is not RAM", 0);
        ulong size = (ulong)pfns.Count << PageSize.Shift;
        ulong addr;
        lock (_lock)
        {
            addr = FindFree(size + PageSize.Bytes);
            if (addr == 0)
                return 0;
            _areas.Add(addr, new VmArea(addr, size, [.. pfns], "vmap"));
        }
        if (!MapPages(cpu, addr, [.. pfns], prot))
        {
            lock (_lock)
                _areas.Remove(addr);
            return 0;
        }
        return addr;
    }

    /// <summary>vmap_pages_range(): PTEs for every page; unwinds and returns false when a page table cannot be allocated.</summary>
    private bool MapPages(Cpu cpu, ulong addr, ulong[] pfns, ulong prot)
    {
        lock (_lock)
        {
            bool top = false;
            for (int i = 0; i < pfns.Length; i++)
            {
                ulong va = addr + ((ulong)i << PageSize.Shift);
                if (!Tables.MapLeaf(cpu, SwapperPgDir, va, pfns[i] << PageSize.Shift, prot, 1, user: false, ref top))
                {
                    UnmapPagesLocked(cpu, addr, (ulong)i << PageSize.Shift, ref top);
                    if (top)
                        SyncKernelMappings();
                    return false;
                }
            }
            if (top)
                SyncKernelMappings();
            return true;
        }
    }

    /// <summary>vunmap_range(): clears the PTEs and frees the page tables that became empty. Call under the lock.</summary>
    private void UnmapPagesLocked(Cpu cpu, ulong addr, ulong size, ref bool top)
    {
        for (ulong off = 0; off < size; off += PageSize.Bytes)
            Tables.ClearLeaf(SwapperPgDir, addr + off, out _);
        // The kernel keeps vmalloc page tables for good; freeing the empty ones here returns every page vfree()
        // can return. Tables referenced from the top level stay on x86-64, so other directories need no sync
        // there; on i386 the PDE is cleared everywhere by the sync the caller runs.
        int keep = TArch.Kind == ArchKind.X86_64 ? TArch.PagingLevels : TArch.PagingLevels + 1;
        ulong pmdSpan = PageTables<TArch>.EntrySpan(2);
        for (ulong va = addr & ~(pmdSpan - 1); va < addr + size; va += pmdSpan)
            Tables.FreeEmptyTables(cpu, SwapperPgDir, Math.Max(va, addr), keep, ref top);
    }

    /// <summary>
    /// vfree(): unmaps a vmalloc() area, flushes the TLBs, frees its pages. 0 is ignored. A vmap() area is only
    /// unmapped (its pages belong to the caller).
    /// </summary>
    /// <exception cref="VirtualAddressException">Not the start of an area ("Trying to vfree() nonexistent vm area").</exception>
    public void Vfree(Cpu cpu, ulong addr) => Release(cpu, addr, "vfree");

    /// <summary>vunmap(): unmaps a vmap() area (its pages are left alone).</summary>
    /// <exception cref="VirtualAddressException">Not the start of an area.</exception>
    public void Vunmap(Cpu cpu, ulong addr) => Release(cpu, addr, "vunmap");

    private void Release(Cpu cpu, ulong addr, string who)
    {
        if (addr == 0)
            return;
        VmArea area;
        lock (_lock)
        {
            if (!_areas.TryGetValue(addr, out area!))
                throw new VirtualAddressException($"Trying to {who}() nonexistent vm area (0x{addr:x})", addr);
            if (who == "vunmap" && area.Kind == "vmalloc")
                throw new VirtualAddressException($"vunmap() of the vmalloc() area at 0x{addr:x} would leak its pages: use vfree()", addr);
            bool top = false;
            UnmapPagesLocked(cpu, addr, area.Size, ref top);
            if (top)
                SyncKernelMappings();
            _areas.Remove(addr);
            if (area.Kind == "vmalloc" && who == "vfree")
            {
                VmallocPages -= area.Pfns.Count;
                _m.Proc.VmallocUsedPages = VmallocPages;
            }
        }
        _m.Mmu.FlushRange(null, addr, area.End, cpu);
        if (area.Kind == "vmalloc")
            foreach (ulong pfn in area.Pfns)
                _m.PageAllocator.FreePages(cpu, pfn, 0);
    }

    /// <summary>vmalloc_to_pfn(): the frame behind a vmalloc-area address, or null when nothing maps it.</summary>
    public ulong? VmallocToPfn(ulong addr)
    {
        byte* p = Tables.Lookup(SwapperPgDir, addr, out int level);
        ulong e = PageTables<TArch>.Load(p);
        if ((e & P) == 0)
            return null;
        ulong span = PageTables<TArch>.EntrySpan(level);
        return (PageTables<TArch>.LeafFrame(e, level) + (addr & (span - 1))) >> PageSize.Shift;
    }
}
