using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative;

/// <summary>
/// An emulated x86 machine: its RAM (one native arena), the boot-time memory map, the zones and buddy allocator
/// that manage the RAM, and its CPUs. Boot one with <see cref="Boot(MachineConfig)"/>; dispose it to free the arena.
/// </summary>
/// <remarks>
/// <para>The public API is this abstract class: one virtual call per operation. The work happens in
/// <see cref="Machine{TArch}"/>, specialised by the JIT per profile, so nothing per page or per entry is virtual.
/// Callers that know the profile can hold a <see cref="Machine{TArch}"/> and skip even that dispatch.</para>
/// <para>Hot calls take the <see cref="Cpu"/> to run on (the kernel's this_cpu). The overloads without it look up
/// the calling thread's CPU (<see cref="ThisCpu"/>), which costs a thread-static lookup per call.</para>
/// <para>Thread safety: any number of threads may use a machine, each on its own CPU. <see cref="Dispose"/> must not
/// race with other calls.</para>
/// </remarks>
public abstract partial class Machine : IDisposable
{
    [ThreadStatic] private static Machine? t_machine;
    [ThreadStatic] private static Cpu? t_cpu;

    private readonly Lock _cpuLock = new();
    private Cpu[] _cpus = [];
    private bool _disposed;

    private protected Machine(MachineConfig config)
    {
        config.Validate();
        Config = config;
    }

    /// <summary>Boots a machine of the configured profile.</summary>
    /// <exception cref="MachineConfigException">The configuration cannot be booted on this host.</exception>
    public static Machine Boot(MachineConfig config) => Published<Machine>(config.Arch switch
    {
        ArchKind.I386 => new Machine<I386>(config),
        _ => new Machine<X86_64>(config),
    });

    /// <summary>Boots a machine whose profile is known at compile time; its calls are not virtual.</summary>
    /// <exception cref="MachineConfigException">The configuration cannot be booted, or names another profile.</exception>
    public static Machine<TArch> Boot<TArch>(MachineConfig config) where TArch : struct, IArch
    {
        if (config.Arch != TArch.Kind)
            throw new MachineConfigException($"configuration is for {config.Arch}, not {TArch.Name}");
        return Published(new Machine<TArch>(config));
    }

    /// <summary>The configuration the machine booted with.</summary>
    public MachineConfig Config { get; }

    /// <summary>The architecture profile.</summary>
    public ArchKind Arch => Config.Arch;

    /// <summary>The profile's <c>uname -m</c> name.</summary>
    public string ArchName => MachineConfig.ArchName(Arch);

    /// <summary>The RAM.</summary>
    public PhysicalMemory Memory { get; private protected set; } = null!;

    /// <summary>The boot-time memory map and reservations.</summary>
    public Memblock Memblock { get; private protected set; } = null!;

    /// <summary>The e820 map the firmware handed over.</summary>
    public IReadOnlyList<E820.Entry> E820Map { get; private protected set; } = [];

    /// <summary>
    /// Receiver of the kmem tracepoints (kmalloc, kfree, kmem_cache_alloc/free, mm_page_alloc/free), or null (the
    /// default: each tracepoint then costs one null check).
    /// </summary>
    public Trace.IKmemTracer? Tracer { get; set; }

    /// <summary>The kernel log (dmesg).</summary>
    public KernelLog Log { get; } = new();

    /// <summary>The zones in <c>enum zone_type</c> order, populated or not.</summary>
    public abstract IReadOnlyList<Zone> Zones { get; }

    /// <summary>The emulated CPUs.</summary>
    public IReadOnlyList<Cpu> Cpus => _cpus;

    /// <summary>max_pfn: one past the highest RAM page frame.</summary>
    public ulong MaxPfn { get; private protected set; }

    /// <summary>max_low_pfn: end of lowmem (everything on x86-64).</summary>
    public ulong MaxLowPfn { get; private protected set; }

    /// <summary>PAGE_OFFSET.</summary>
    public abstract ulong PageOffset { get; }

    /// <summary>The kernel image's placement.</summary>
    public KernelImage Image { get; private protected set; } = null!;

    /// <summary>Physical address of <c>empty_zero_page</c> (the first page of the image's bss).</summary>
    public ulong ZeroPagePhys => Image.BssStart;

    /// <summary>totalram_pages(): managed pages of every zone.</summary>
    public ulong TotalRamPages => (ulong)Zones.Sum(z => (long)z.Managed);

    /// <summary>totalhigh_pages(): managed pages of HIGHMEM.</summary>
    public ulong TotalHighPages => (ulong)Zones.Where(z => z.IsHighMem).Sum(z => (long)z.Managed);

    /// <summary>Physical pages present (get_num_physpages()).</summary>
    public ulong PresentPages => (ulong)Zones.Sum(z => (long)z.Present);

    /// <summary>True once the machine is shut down.</summary>
    public bool IsDisposed => _disposed;

    // ---- CPUs -------------------------------------------------------------------------------------

    private protected void SetCpus(Cpu[] cpus) => _cpus = cpus;

    /// <summary>
    /// The calling thread's CPU: the one it holds, else any free CPU, which it then holds until
    /// <see cref="ReleaseCpu"/> or until the thread ends.
    /// </summary>
    /// <exception cref="CpuUnavailableException">Every CPU is held by another live thread.</exception>
    public Cpu ThisCpu
    {
        get
        {
            if (ReferenceEquals(t_machine, this))
                return t_cpu!;
            return BindAny();
        }
    }

    /// <summary>Claims CPU <paramref name="id"/> for the calling thread (idempotent) and returns it.</summary>
    /// <exception cref="CpuUnavailableException">Another live thread holds it, or no such CPU.</exception>
    public Cpu GetCpu(int id)
    {
        ThrowIfDisposed();
        if ((uint)id >= (uint)_cpus.Length)
            throw new CpuUnavailableException($"no cpu{id}: the machine has {_cpus.Length} CPUs");
        var cpu = _cpus[id];
        var me = Thread.CurrentThread;
        lock (_cpuLock)
        {
            if (cpu.Owner is { } owner && owner != me && owner.IsAlive)
                throw new CpuUnavailableException($"cpu{id} is held by thread {owner.ManagedThreadId}");
            cpu.Owner = me;
        }
        if (!ReferenceEquals(t_machine, this))
        {
            t_machine = this;
            t_cpu = cpu;
        }
        return cpu;
    }

    /// <summary>Lets go of a CPU the calling thread holds, so another thread may run on it.</summary>
    public void ReleaseCpu(Cpu cpu)
    {
        lock (_cpuLock)
        {
            if (cpu.Owner == Thread.CurrentThread)
                cpu.Owner = null;
        }
        if (ReferenceEquals(t_machine, this) && ReferenceEquals(t_cpu, cpu))
        {
            t_machine = null;
            t_cpu = null;
        }
    }

    private Cpu BindAny()
    {
        ThrowIfDisposed();
        var me = Thread.CurrentThread;
        Cpu? chosen = null;
        lock (_cpuLock)
        {
            foreach (var cpu in _cpus)
            {
                if (cpu.Owner == me)
                {
                    chosen = cpu;
                    break;
                }
            }
            if (chosen is null)
            {
                foreach (var cpu in _cpus)
                {
                    if (cpu.Owner is null || !cpu.Owner.IsAlive)
                    {
                        cpu.Owner = me;
                        chosen = cpu;
                        break;
                    }
                }
            }
        }
        if (chosen is null)
            throw new CpuUnavailableException(
                $"all {_cpus.Length} emulated CPUs are held by other threads; boot with more CPUs or release one");
        t_machine = this;
        t_cpu = chosen;
        return chosen;
    }

    /// <summary>Temporarily takes a CPU no live thread holds (for remote drains). The caller must <see cref="UnclaimCpu"/>.</summary>
    internal bool TryClaimCpu(Cpu cpu, out bool alreadyMine)
    {
        var me = Thread.CurrentThread;
        lock (_cpuLock)
        {
            alreadyMine = cpu.Owner == me;
            if (alreadyMine)
                return true;
            if (cpu.Owner is { } owner && owner.IsAlive)
                return false;
            cpu.Owner = me;
            return true;
        }
    }

    internal void UnclaimCpu(Cpu cpu)
    {
        lock (_cpuLock)
        {
            if (cpu.Owner == Thread.CurrentThread)
                cpu.Owner = null;
        }
    }

    /// <summary>current-&gt;comm of the calling thread's CPU, for reports.</summary>
    internal string CurrentComm => ReferenceEquals(t_machine, this) ? t_cpu!.Comm : "kmem";

    // ---- page allocator ---------------------------------------------------------------------------

    /// <summary>alloc_pages(): 2^order contiguous pages, or null when the request cannot be met.</summary>
    /// <param name="cpu">The CPU to run on.</param>
    /// <param name="gfp">GFP flags: zone, mobility, reserves, zeroing, compound.</param>
    /// <param name="order">0..10.</param>
    /// <exception cref="InvalidAllocationException">Bad order, unknown GFP bits, or an impossible zone combination.</exception>
    public abstract Page? AllocPages(Cpu cpu, Gfp gfp, int order);

    /// <summary>alloc_pages() on the calling thread's CPU.</summary>
    /// <exception cref="InvalidAllocationException">Bad order, unknown GFP bits, or an impossible zone combination.</exception>
    public Page? AllocPages(Gfp gfp, int order) => AllocPages(ThisCpu, gfp, order);

    /// <summary>alloc_page(): one page.</summary>
    public Page? AllocPage(Gfp gfp) => AllocPages(ThisCpu, gfp, 0);

    /// <summary>__free_pages(): drop a reference to a block from <see cref="AllocPages(Cpu, Gfp, int)"/>; the last one frees it.</summary>
    /// <exception cref="BadPageException">Not the head of an allocation of this order, or in a bad state. Nothing changes.</exception>
    public abstract void FreePages(Cpu cpu, Page page, int order);

    /// <summary>__free_pages() on the calling thread's CPU.</summary>
    /// <exception cref="BadPageException">Not the head of an allocation of this order, or in a bad state. Nothing changes.</exception>
    public void FreePages(Page page, int order) => FreePages(ThisCpu, page, order);

    /// <summary>__get_free_pages(): like alloc_pages() but returns the block's kernel virtual address (0 on failure). HIGHMEM is refused.</summary>
    /// <exception cref="InvalidAllocationException">__GFP_HIGHMEM (such pages have no permanent address), or a bad request.</exception>
    public ulong GetFreePages(Cpu cpu, Gfp gfp, int order)
    {
        if ((gfp & Gfp.HighMem) != 0)
            throw new InvalidAllocationException("__get_free_pages() cannot return __GFP_HIGHMEM pages: they have no permanent kernel address");
        var page = AllocPages(cpu, gfp, order);
        return page is { } p ? PageAddress(p) : 0;
    }

    /// <summary>__get_free_pages() on the calling thread's CPU.</summary>
    public ulong GetFreePages(Gfp gfp, int order) => GetFreePages(ThisCpu, gfp, order);

    /// <summary>get_zeroed_page().</summary>
    public ulong GetZeroedPage(Gfp gfp) => GetFreePages(ThisCpu, gfp | Gfp.Zero, 0);

    /// <summary>free_pages(): free by kernel virtual address (0 is ignored, as in the kernel).</summary>
    /// <exception cref="VirtualAddressException">Not a linear-map address.</exception>
    /// <exception cref="BadPageException">Not the head of an allocation of this order.</exception>
    public void FreePages(Cpu cpu, ulong addr, int order)
    {
        if (addr == 0)
            return;
        FreePages(cpu, VirtToPage(addr), order);
    }

    /// <summary>free_pages() on the calling thread's CPU.</summary>
    public void FreePages(ulong addr, int order) => FreePages(ThisCpu, addr, order);

    /// <summary>
    /// alloc_pages_exact(): exactly ceil(size / PAGE_SIZE) pages: allocates the covering order, then frees the
    /// unused tail pages. Returns the kernel virtual address, or 0.
    /// </summary>
    public abstract ulong AllocPagesExact(Cpu cpu, ulong size, Gfp gfp);

    /// <summary>alloc_pages_exact() on the calling thread's CPU.</summary>
    public ulong AllocPagesExact(ulong size, Gfp gfp) => AllocPagesExact(ThisCpu, size, gfp);

    /// <summary>free_pages_exact(): frees what alloc_pages_exact() returned, page by page.</summary>
    public void FreePagesExact(Cpu cpu, ulong addr, ulong size)
    {
        ulong pages = (size + PageSize.Bytes - 1) >> PageSize.Shift;
        for (ulong i = 0; i < pages; i++)
            FreePages(cpu, addr + (i << PageSize.Shift), 0);
    }

    /// <summary>free_pages_exact() on the calling thread's CPU.</summary>
    public void FreePagesExact(ulong addr, ulong size) => FreePagesExact(ThisCpu, addr, size);

    /// <summary>get_page(): take a reference.</summary>
    /// <exception cref="BadPageException">The page is not allocated.</exception>
    public abstract void GetPage(Page page);

    /// <summary>put_page(): drop a reference; the last frees the page (whole compound page for __GFP_COMP blocks).</summary>
    /// <exception cref="BadPageException">The page is not allocated, or is a non-compound block of order &gt; 0.</exception>
    public abstract void PutPage(Page page);

    /// <summary>pfn_to_page().</summary>
    /// <exception cref="PhysicalAddressException">The pfn is beyond max_pfn.</exception>
    public Page PfnToPage(ulong pfn)
    {
        ThrowIfDisposed();
        if (pfn >= MaxPfn)
            throw new PhysicalAddressException($"pfn 0x{pfn:x} is beyond max_pfn 0x{MaxPfn:x}", pfn << PageSize.Shift);
        return new Page(this, pfn);
    }

    /// <summary>page_address(): the page's kernel virtual address in the linear map, or 0 for HIGHMEM.</summary>
    public ulong PageAddress(Page page)
    {
        CheckPage(page);
        return page.Pfn < MaxLowPfn ? PageOffset + (page.Pfn << PageSize.Shift) : HighmemPageAddress(page.Pfn);
    }

    /// <summary>page_address() of a HIGHMEM page: its kmap() address while it has one, else 0.</summary>
    private protected virtual ulong HighmemPageAddress(ulong pfn) => 0;

    /// <summary>
    /// virt_addr_valid(): a linear-map (logical) address of RAM, or on x86-64 an address of the kernel image in the
    /// text mapping (__virt_addr_valid()).
    /// </summary>
    public bool VirtAddrValid(ulong va)
    {
        if (KernelTextPa(va) is { } textPa)
            return Memory.IsRam(textPa);
        ulong pa = va - PageOffset;
        return va >= PageOffset && pa < (MaxLowPfn << PageSize.Shift) && Memory.IsRam(pa);
    }

    /// <summary>__pa(): physical address of a linear-map address (or, on x86-64, of the kernel text mapping: __phys_addr()).</summary>
    /// <exception cref="VirtualAddressException">Not a linear-map address.</exception>
    public ulong Pa(ulong va)
    {
        if (KernelTextPa(va) is { } textPa)
            return textPa;
        ulong pa = va - PageOffset;
        if (va < PageOffset || pa >= MaxLowPfn << PageSize.Shift)
            throw new VirtualAddressException($"0x{va:x} is not a linear-map (lowmem) address", va);
        return pa;
    }

    /// <summary>x86-64 __phys_addr() of an address in the kernel image mapping (phys_base 0), else null.</summary>
    private ulong? KernelTextPa(ulong va)
    {
        if (Arch != ArchKind.X86_64 || va < X86_64Layout.StartKernelMap)
            return null;
        ulong y = va - X86_64Layout.StartKernelMap;
        return y < Image.End ? y : null;
    }

    /// <summary>__va(): linear-map address of a lowmem physical address.</summary>
    /// <exception cref="PhysicalAddressException">HIGHMEM or beyond RAM: no permanent mapping.</exception>
    public ulong Va(ulong pa)
    {
        if (pa >= MaxLowPfn << PageSize.Shift)
            throw new PhysicalAddressException($"physical 0x{pa:x} is not lowmem: it has no linear-map address", pa);
        return PageOffset + pa;
    }

    /// <summary>virt_to_page().</summary>
    /// <exception cref="VirtualAddressException">Not a linear-map address.</exception>
    public Page VirtToPage(ulong va) => new(this, Pa(va) >> PageSize.Shift);

    /// <summary>A snapshot of a page descriptor.</summary>
    /// <exception cref="PhysicalAddressException">The pfn is beyond max_pfn.</exception>
    public abstract PageDescriptor ReadPage(ulong pfn);

    /// <summary>Kernel virtual address of pfn's <c>struct page</c>.</summary>
    public abstract ulong PageDescriptorAddress(ulong pfn);

    /// <summary>drain_all_pages(): return per-CPU list pages to the buddy lists; returns the pages drained now.</summary>
    public abstract long DrainAllPages();

    /// <summary>Pages on a CPU's per-CPU lists for a zone.</summary>
    public abstract int PcpCount(Cpu cpu, Zone zone);

    /// <summary>Reads a field of a CPU's <c>struct per_cpu_pages</c> for a zone ("count", "high", "batch", ...).</summary>
    public abstract int PcpField(Cpu cpu, Zone zone, string field);

    /// <summary>
    /// Walks every free list and descriptor and checks that the allocator's structures agree and that pages are
    /// conserved; then the slab caches, and the reclaim structures: the LRU lists against PG_lru and the nr_*
    /// counters, the pages under emulated I/O against nr_writeback, the swap map against the swap cache and the swap
    /// PTEs of every process.
    /// </summary>
    /// <exception cref="ConsistencyException">Something disagrees; the message lists what.</exception>
    public abstract ConsistencyReport CheckConsistency();

    /// <summary>min_free_kbytes in effect.</summary>
    public abstract long MinFreeKbytes { get; }

    /// <summary>totalreserve_pages.</summary>
    public abstract long TotalReservePages { get; }

    /// <summary>True when mobility grouping is off (too little memory).</summary>
    public abstract bool MobilityGroupingDisabled { get; }

    /// <summary>pageblock_order.</summary>
    public abstract int PageblockOrder { get; }

    /// <summary>Migratetype of the pageblock containing <paramref name="pfn"/>.</summary>
    public abstract MigrateType PageblockMigratetype(ulong pfn);

    /// <summary>Free blocks of one order and migratetype in a zone (walks the list).</summary>
    public abstract long CountFreeBlocks(Zone zone, int order, MigrateType mt);

    /// <summary>node_page_state(): a counter of the (only) node.</summary>
    public abstract long NodeState(NodeStat item);

    /// <summary>mod_node_page_state(): atomic add to a node counter.</summary>
    internal abstract void ModNodeState(NodeStat item, long delta);

    /// <summary>Bytes of per-CPU area set up per CPU.</summary>
    public abstract int PercpuUnitBytes { get; }

    /// <summary>Bytes of mem_map (struct page array).</summary>
    public abstract ulong MemmapBytes { get; }

    /// <summary>The /proc views of this machine.</summary>
    public Diagnostics.ProcFs Proc => _proc ??= new Diagnostics.ProcFs(this);

    private Diagnostics.ProcFs? _proc;

    /// <summary>
    /// Kilobytes of the direct map by page size (DirectMap4k/2M/4M/1G in /proc/meminfo). The paging subsystem
    /// overrides this with the page sizes of the linear map it built; this base version is the mapping the kernel
    /// would make (the largest pages alignment allows).
    /// </summary>
    public virtual (ulong K4, ulong K2M, ulong K4M, ulong K1G) DirectMapKb()
    {
        ulong lowmem = MaxLowPfn << PageSize.Shift;
        if (Arch == ArchKind.I386)
        {
            ulong big = lowmem & ~((4UL << 20) - 1);
            return ((lowmem - big) >> 10, 0, big >> 10, 0);
        }
        ulong k4 = 0, k2 = 0, k1g = 0;
        foreach (var r in Memory.Ram)
        {
            ulong s = r.Start & ~(PageSize.Bytes - 1), e = r.End;
            while (s < e)
            {
                if ((s & ((1UL << 30) - 1)) == 0 && e - s >= 1UL << 30) { k1g += 1UL << 20; s += 1UL << 30; }
                else if ((s & ((2UL << 20) - 1)) == 0 && e - s >= 2UL << 20) { k2 += 2UL << 10; s += 2UL << 20; }
                else { k4 += 4; s += PageSize.Bytes; }
            }
        }
        return (k4, k2, 0, k1g);
    }

    /// <summary>Sum of a VM event over all CPUs.</summary>
    public long Event(VmEvent item) => Cpus.Sum(c => c.Event(item));

    /// <summary>True when pfn is installed RAM (not a hole).</summary>
    public bool IsRamPfn(ulong pfn) => pfn < MaxPfn && Memblock.IsMemory(pfn);

    private protected void CheckPage(Page page)
    {
        ThrowIfDisposed();
        if (!ReferenceEquals(page.Machine, this))
            ThrowHelper.ThrowForeignPage();
    }

    private protected void ThrowIfDisposed()
    {
        if (_disposed)
            ThrowHelper.ThrowDisposed();
    }

    /// <summary>Stops the machine's own host threads (kswapd) before its memory goes away.</summary>
    private protected virtual void StopBackgroundThreads()
    {
    }

    /// <summary>Shuts the machine down and frees the arena. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Diagnostics.KmemMetrics.Unregister(this);
        StopBackgroundThreads();
        if (ReferenceEquals(t_machine, this))
        {
            t_machine = null;
            t_cpu = null;
        }
        Memory?.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Where the kernel image sits in physical memory, and its section sizes.</summary>
/// <param name="Start">Physical load address (CONFIG_PHYSICAL_START).</param>
/// <param name="TextBytes">.text.</param>
/// <param name="RodataBytes">.rodata.</param>
/// <param name="DataBytes">.data (rwdata).</param>
/// <param name="InitBytes">.init.</param>
/// <param name="BssBytes">.bss (starts with empty_zero_page).</param>
/// <param name="VirtualBase">Virtual address of physical Start (_text).</param>
public sealed record KernelImage(ulong Start, ulong TextBytes, ulong RodataBytes, ulong DataBytes, ulong InitBytes, ulong BssBytes, ulong VirtualBase)
{
    /// <summary>Total image size.</summary>
    public ulong Size => TextBytes + RodataBytes + DataBytes + InitBytes + BssBytes;

    /// <summary>One past the image.</summary>
    public ulong End => Start + Size;

    /// <summary>Physical start of .rodata.</summary>
    public ulong RodataStart => Start + TextBytes;

    /// <summary>Physical start of .data.</summary>
    public ulong DataStart => RodataStart + RodataBytes;

    /// <summary>Physical start of .init.</summary>
    public ulong InitStart => DataStart + DataBytes;

    /// <summary>Physical start of .bss.</summary>
    public ulong BssStart => InitStart + InitBytes;
}

/// <summary>What the consistency checker counted.</summary>
/// <param name="Zones">Per-zone page counts.</param>
public sealed record ConsistencyReport(IReadOnlyList<ZoneCounts> Zones)
{
    /// <summary>Sum over zones.</summary>
    public ZoneCounts Total => new("total",
        Zones.Sum(z => z.Present), Zones.Sum(z => z.Free), Zones.Sum(z => z.PerCpu),
        Zones.Sum(z => z.Allocated), Zones.Sum(z => z.Reserved));
}

/// <summary>Page counts of one zone: free + per-CPU + allocated + reserved == present.</summary>
/// <param name="Zone">Zone name.</param>
/// <param name="Present">present_pages.</param>
/// <param name="Free">Pages in free buddy blocks.</param>
/// <param name="PerCpu">Pages on per-CPU lists.</param>
/// <param name="Allocated">Pages handed out.</param>
/// <param name="Reserved">PG_reserved RAM pages.</param>
public sealed record ZoneCounts(string Zone, long Present, long Free, long PerCpu, long Allocated, long Reserved);
