using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

// kmap()/kunmap() through the pkmap window and kmap_local_page()/kmap_atomic() through fixmap slots
// (mm/highmem.c, arch/x86/include/asm/highmem.h). Without HIGHMEM (x86-64) every page is in the linear map and
// these return page_address().
internal sealed unsafe partial class KernelPaging<TArch>
{
    private const int LastPkmap = I386Layout.LastPkmap;
    private const int LastPkmapMask = LastPkmap - 1;

    // pkmap_count[]: 0 = free, 1 = unmapped but maybe still in some TLB (flushed when last_pkmap_nr wraps),
    // n > 1 = mapped with n - 1 users. The kernel keeps these arrays in .bss and page_address_htable in a hash.
    private readonly int[] _pkmapCount = new int[LastPkmap];
    private readonly ulong[] _pkmapPfn = new ulong[LastPkmap];
    private readonly Dictionary<ulong, ulong> _pageAddress = [];
    private readonly Lock _kmapLock = new();   // kmap_lock
    private int _lastPkmapNr;

    /// <summary>PKMAP_ADDR(nr).</summary>
    private static ulong PkmapAddr(int nr) => I386Layout.PkmapBase + ((ulong)nr << PageSize.Shift);

    /// <summary>page_address() of a HIGHMEM page: its pkmap address while kmap()ed, else 0.</summary>
    public ulong HighPageAddress(ulong pfn)
    {
        lock (_kmapLock)
            return _pageAddress.GetValueOrDefault(pfn);
    }

    /// <summary>pkmap_count[] of one slot (0 free, 1 waiting for a flush, n + 1 with n users).</summary>
    public int PkmapCount(int nr) => _pkmapCount[nr];

    private bool IsLowmem(ulong pfn) => pfn < _m.MaxLowPfn;

    /// <summary>
    /// kmap(): a kernel address for any page. Lowmem pages have one already (page_address()); a HIGHMEM page gets
    /// a slot of the pkmap window, or reuses the one it has, and its use count goes up.
    /// </summary>
    /// <exception cref="KmemException">Every pkmap slot is in use (the kernel would sleep until a kunmap()).</exception>
    public ulong Kmap(Cpu cpu, ulong pfn)
    {
        if (IsLowmem(pfn) || TArch.Kind != ArchKind.I386)
            return TArch.PageOffset + (pfn << PageSize.Shift);
        lock (_kmapLock)
        {
            if (!_pageAddress.TryGetValue(pfn, out ulong va))
                va = MapNewVirtual(cpu, pfn);
            int nr = (int)((va - I386Layout.PkmapBase) >> PageSize.Shift);
            _pkmapCount[nr]++;
            return va;
        }
    }

    /// <summary>map_new_virtual(): the next free slot after last_pkmap_nr, flushing the unused ones on wrap-around.</summary>
    private ulong MapNewVirtual(Cpu cpu, ulong pfn)
    {
        int count = LastPkmap;
        while (true)
        {
            _lastPkmapNr = (_lastPkmapNr + 1) & LastPkmapMask;
            if (_lastPkmapNr == 0)
            {
                FlushAllZeroPkmaps(cpu);
                count = LastPkmap;
            }
            if (_pkmapCount[_lastPkmapNr] == 0)
                break;
            if (--count == 0)
                throw new KmemException($"kmap(): all {LastPkmap} pkmap slots are in use (the kernel would sleep in kmap() until a kunmap())");
        }
        int nr = _lastPkmapNr;
        ulong vaddr = PkmapAddr(nr);
        lock (_lock)
        {
            byte* pte = Tables.Lookup(SwapperPgDir, vaddr, out _);
            PageTables<TArch>.Set(pte, PageTables<TArch>.MakeLeaf(pfn << PageSize.Shift, PageProt.Kernel, 1));   // kmap_prot
        }
        _pkmapCount[nr] = 1;
        _pkmapPfn[nr] = pfn;
        _pageAddress[pfn] = vaddr;   // set_page_address()
        return vaddr;
    }

    /// <summary>
    /// flush_all_zero_pkmaps(): slots no one uses any more (count 1) are unmapped and freed, then one TLB flush of
    /// the window covers them all. Until this runs a kunmap()ed page stays mapped.
    /// </summary>
    public void FlushAllZeroPkmaps(Cpu cpu)
    {
        bool needFlush = false;
        lock (_lock)
        {
            for (int i = 0; i < LastPkmap; i++)
            {
                if (_pkmapCount[i] != 1)
                    continue;
                _pkmapCount[i] = 0;
                PageTables<TArch>.Clear(Tables.Lookup(SwapperPgDir, PkmapAddr(i), out _));
                _pageAddress.Remove(_pkmapPfn[i]);
                needFlush = true;
            }
        }
        if (needFlush)
            _m.Mmu.FlushRange(null, PkmapAddr(0), PkmapAddr(LastPkmap), cpu);
    }

    /// <summary>kmap_flush_unused().</summary>
    public void KmapFlushUnused(Cpu cpu)
    {
        if (TArch.Kind != ArchKind.I386)
            return;
        lock (_kmapLock)
            FlushAllZeroPkmaps(cpu);
    }

    /// <summary>kunmap(): drops a use of a HIGHMEM page's pkmap slot; the mapping stays until the slots are flushed.</summary>
    /// <exception cref="KmemException">The page is not kmap()ed (the kernel BUG()s).</exception>
    public void Kunmap(ulong pfn)
    {
        if (IsLowmem(pfn) || TArch.Kind != ArchKind.I386)
            return;
        lock (_kmapLock)
        {
            if (!_pageAddress.TryGetValue(pfn, out ulong va))
                throw new KmemException($"kunmap(): pfn 0x{pfn:x} is not kmap()ed");
            int nr = (int)((va - I386Layout.PkmapBase) >> PageSize.Shift);
            if (_pkmapCount[nr] < 2)
                throw new KmemException($"kunmap(): pfn 0x{pfn:x} has no kmap() users left (pkmap_count {_pkmapCount[nr]})");
            _pkmapCount[nr]--;
        }
    }

    /// <summary>The fixmap slot kmap_local uses for stack index <paramref name="idx"/> on CPU <paramref name="cpu"/>.</summary>
    private static ulong KmapLocalVaddr(int cpu, int idx) =>
        I386Layout.FixToVirt(I386Layout.FixKmapBegin + idx + I386Layout.KmMaxIdx * cpu);

    /// <summary>
    /// kmap_local_page(): a CPU-local, strictly nested mapping. Lowmem pages return page_address(); a HIGHMEM page
    /// gets the next fixmap slot of this CPU (FIX_KMAP_BEGIN + idx + KM_MAX_IDX * cpu).
    /// </summary>
    /// <exception cref="KmemException">All KM_MAX_IDX slots of the CPU are in use, or the CPU is beyond NR_CPUS.</exception>
    public ulong KmapLocal(Cpu cpu, ulong pfn)
    {
        if (IsLowmem(pfn) || TArch.Kind != ArchKind.I386)
            return TArch.PageOffset + (pfn << PageSize.Shift);
        if (cpu.Id >= I386Layout.NrCpus)
            throw new KmemException($"kmap_local_page() on cpu{cpu.Id}: the i386 kernel is built with NR_CPUS {I386Layout.NrCpus}, so it has fixmap slots for cpu0-cpu{I386Layout.NrCpus - 1} only");
        int idx = cpu.KmapLocalIdx;
        if (idx >= I386Layout.KmMaxIdx)
            throw new KmemException($"kmap_local_page(): all {I386Layout.KmMaxIdx} kmap_local slots of cpu{cpu.Id} are in use");
        ulong vaddr = KmapLocalVaddr(cpu.Id, idx);
        lock (_lock)
        {
            byte* pte = Tables.Lookup(SwapperPgDir, vaddr, out _);
            PageTables<TArch>.Set(pte, PageTables<TArch>.MakeLeaf(pfn << PageSize.Shift, PageProt.Kernel, 1));
        }
        cpu.KmapLocalPfn[idx] = pfn;
        cpu.KmapLocalIdx = idx + 1;
        return vaddr;
    }

    /// <summary>
    /// kunmap_local(): undoes the most recent kmap_local_page() of this CPU: clears the slot's PTE and flushes it
    /// from the local TLB (arch_kmap_local_post_unmap()). Addresses outside the kmap slots (lowmem) are ignored.
    /// </summary>
    /// <exception cref="KmemException">Not the innermost mapping (kmap_local is a stack).</exception>
    public void KunmapLocal(Cpu cpu, ulong vaddr)
    {
        if (TArch.Kind != ArchKind.I386)
            return;
        ulong lowest = KmapLocalVaddr(I386Layout.NrCpus - 1, I386Layout.KmMaxIdx - 1);
        ulong highest = KmapLocalVaddr(0, 0);
        vaddr &= ~(PageSize.Bytes - 1);
        if (vaddr < lowest || vaddr > highest)
            return;
        int idx = cpu.KmapLocalIdx - 1;
        if (idx < 0 || KmapLocalVaddr(cpu.Id, idx) != vaddr)
            throw new KmemException($"kunmap_local(0x{vaddr:x}) on cpu{cpu.Id}: not the innermost kmap_local mapping of this CPU");
        lock (_lock)
            PageTables<TArch>.Clear(Tables.Lookup(SwapperPgDir, vaddr, out _));
        _m.Mmu.Invlpg(cpu, vaddr);
        cpu.KmapLocalIdx = idx;
    }
}
