using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

/// <summary>
/// The paging side of an <c>mm_struct</c>: a page directory (pgd), the page tables below it, the lock that
/// serialises changes to them, and the #PF handler the MMU calls. The kernel's own address space is init_mm
/// (<see cref="Machine.InitMm"/>); every other one shares its kernel half and owns its user half.
/// </summary>
/// <remarks>
/// <para>How a process subsystem builds on this: <see cref="Machine.CreateAddressSpace(Cpu)"/> is pgd_alloc()
/// (a page-table page with the kernel half copied in and linked on pgd_list); <see cref="Machine.SwitchMm"/> loads
/// it into a CPU (CR3); <see cref="FaultHandler"/> receives every #PF the MMU cannot resolve on a CPU running this
/// address space and returns <see cref="FaultResolution.Retry"/> after fixing the tables (demand paging: allocate a
/// page and <see cref="MapPage"/>; copy-on-write: copy and <see cref="SetPte"/> with RW); <see cref="Dispose"/> is
/// free_pgtables() + pgd_free().</para>
/// </remarks>
public abstract class AddressSpace : IDisposable
{
    private protected AddressSpace(Machine machine, ulong pgd, bool isKernel)
    {
        Machine = machine;
        Pgd = pgd;
        IsKernel = isKernel;
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>Physical address of the page directory (what CR3 holds).</summary>
    public ulong Pgd { get; }

    /// <summary>mm->pgd: the page directory's kernel virtual address.</summary>
    public abstract ulong PgdVa { get; }

    /// <summary>True for init_mm.</summary>
    public bool IsKernel { get; }

    /// <summary>True once torn down.</summary>
    public bool IsDisposed { get; private protected set; }

    /// <summary>The #PF handler (handle_mm_fault()); null = every fault stands.</summary>
    public PageFaultHandler? FaultHandler { get; set; }

    /// <summary>Page-table pages this address space owns (its pgd and user-half tables; mm_pgtables_bytes() / PAGE_SIZE).</summary>
    public abstract long PageTablePages { get; }

    /// <summary>
    /// Maps one page of <paramref name="pageSize"/> bytes (4 KiB; 2 MiB or 1 GiB on x86-64; 4 MiB on i386) at user
    /// address <paramref name="va"/> to <paramref name="phys"/> with protection <paramref name="prot"/> (a 4 KiB
    /// pgprot such as <see cref="PageProt.Shared"/>), allocating page tables as needed (set_pte_at()/set_pmd_at()).
    /// </summary>
    /// <exception cref="MappingException">Not a user address, misaligned, already mapped, an unsupported size, or no memory for a table.</exception>
    public abstract void MapPage(Cpu cpu, ulong va, ulong phys, ulong prot, ulong pageSize = PageSize.Bytes);

    /// <summary>Clears the mapping of <paramref name="va"/> and flushes it from the TLBs of the CPUs running this address space; returns the old entry (0 when none).</summary>
    public abstract ulong UnmapPage(Cpu cpu, ulong va);

    /// <summary>
    /// set_pte_at() of a raw 4 KiB entry at <paramref name="va"/> (tables allocated as needed), then a TLB flush of the
    /// page: what copy-on-write and mprotect() do with existing mappings.
    /// </summary>
    /// <exception cref="MappingException">Not a user address, or a large page maps it.</exception>
    public abstract void SetPte(Cpu cpu, ulong va, ulong entry);

    /// <summary>The leaf (or the entry where the walk stops) for <paramref name="va"/>, without side effects.</summary>
    public abstract (ulong Entry, int Level) LookupPte(ulong va);

    /// <summary>free_pgtables() + pgd_free(): frees every user page table and the pgd. Mapped pages are not freed.</summary>
    /// <exception cref="KmemException">init_mm, or the address space is still loaded on a CPU.</exception>
    public abstract void Dispose();
}

/// <summary>init_mm: swapper_pg_dir. Kernel mappings change through vmalloc/vmap/kmap, not through this object.</summary>
internal sealed class KernelAddressSpace<TArch>(Machine<TArch> machine, KernelPaging<TArch> paging)
    : AddressSpace(machine, paging.SwapperPgDir, isKernel: true) where TArch : struct, IArch
{
    public override ulong PgdVa => paging.SwapperVa;

    public override long PageTablePages => paging.Tables.BootTables;

    public override void MapPage(Cpu cpu, ulong va, ulong phys, ulong prot, ulong pageSize = PageSize.Bytes) =>
        throw new MappingException("init_mm: map kernel memory with vmalloc(), vmap() or kmap()", va);

    public override ulong UnmapPage(Cpu cpu, ulong va) =>
        throw new MappingException("init_mm: unmap kernel memory with vfree(), vunmap() or kunmap()", va);

    public override void SetPte(Cpu cpu, ulong va, ulong entry) =>
        throw new MappingException("init_mm: kernel page tables change through vmalloc(), vmap() and kmap()", va);

    public override unsafe (ulong Entry, int Level) LookupPte(ulong va)
    {
        byte* p = paging.Tables.Lookup(Pgd, va, out int level);
        return (PageTables<TArch>.Load(p), level);
    }

    public override void Dispose() => throw new KmemException("init_mm cannot be torn down");
}

/// <summary>A user address space: its own pgd (kernel half shared), its own user page tables.</summary>
internal sealed unsafe partial class UserAddressSpace<TArch> : AddressSpace where TArch : struct, IArch
{
    private readonly Machine<TArch> _m;
    private readonly KernelPaging<TArch> _paging;
    private readonly Lock _lock = new();   // mm->page_table_lock
    private long _tables;

    private UserAddressSpace(Machine<TArch> machine, KernelPaging<TArch> paging, ulong pgd)
        : base(machine, pgd, isKernel: false)
    {
        _m = machine;
        _paging = paging;
        _tables = 1;
    }

    /// <summary>pgd_alloc(): a zeroed page-table page, the kernel half copied from swapper_pg_dir, on pgd_list.</summary>
    /// <exception cref="KmemException">No memory for the pgd.</exception>
    public static UserAddressSpace<TArch> Create(Machine<TArch> machine, KernelPaging<TArch> paging, Cpu cpu)
    {
        ulong pgd = paging.Tables.AllocTable(cpu, user: true);
        if (pgd == PageTables<TArch>.NoTable)
            throw new KmemException("pgd_alloc(): out of memory");
        paging.PgdCtor(pgd);
        return new UserAddressSpace<TArch>(machine, paging, pgd);
    }

    public override ulong PgdVa => TArch.PageOffset + Pgd;

    public override long PageTablePages => Interlocked.Read(ref _tables);

    private void CheckUser(ulong va, ulong size)
    {
        if (IsDisposed)
            throw new KmemException("the address space has been torn down");
        if (size > TArch.TaskSizeMax || va > TArch.TaskSizeMax - size)
            throw new MappingException($"0x{va:x} is not a user address (user space ends at 0x{TArch.TaskSizeMax:x})", va);
    }

    public override void MapPage(Cpu cpu, ulong va, ulong phys, ulong prot, ulong pageSize = PageSize.Bytes)
    {
        CheckUser(va, pageSize);
        int level = pageSize switch
        {
            PageSize.Bytes => 1,
            _ when pageSize == PageTables<TArch>.EntrySpan(2) => 2,
            _ when pageSize == PageTables<TArch>.EntrySpan(3) && TArch.PagingLevels >= 3 => 3,
            _ => throw new MappingException($"{TArch.Name} has no {pageSize >> 10} KiB pages", va),
        };
        if (level > 1 && !PageTables<TArch>.LargeAllowed(level))
            throw new MappingException($"{TArch.Name} has no {pageSize >> 10} KiB pages", va);
        if (level > 1 && TArch.PseNeedsCr4 && !_m.Config.Pse)
            throw new MappingException("4 MiB pages need CR4.PSE, and this machine boots without it", va);
        if (!_m.Memory.IsRam(phys, pageSize))
            throw new MappingException($"physical 0x{phys:x}+0x{pageSize:x} is not RAM", va);
        lock (_lock)
        {
            long before = PageTables<TArch>.AllocatedByThisThread;
            bool top = false;
            try
            {
                if (!_paging.Tables.MapLeaf(cpu, Pgd, va, phys, prot, level, user: true, ref top))
                    throw new MappingException($"0x{va:x}: out of memory for a page table", va);
            }
            finally
            {
                _tables += PageTables<TArch>.AllocatedByThisThread - before;
            }
        }
    }

    public override ulong UnmapPage(Cpu cpu, ulong va)
    {
        CheckUser(va, 1);
        ulong old;
        int level;
        lock (_lock)
            old = _paging.Tables.ClearLeaf(Pgd, va, out level);
        if (old != 0)
        {
            ulong span = PageTables<TArch>.EntrySpan(level);
            ulong start = va & ~(span - 1);
            _m.Mmu.FlushRange(this, start, start + span, cpu);
        }
        return old;
    }

    public override void SetPte(Cpu cpu, ulong va, ulong entry)
    {
        CheckUser(va, PageSize.Bytes);
        lock (_lock)
        {
            long before = PageTables<TArch>.AllocatedByThisThread;
            bool top = false;
            byte* p = _paging.Tables.WalkAlloc(cpu, Pgd, va, 1, user: true, ref top);
            _tables += PageTables<TArch>.AllocatedByThisThread - before;
            if (p == null)
                throw new MappingException($"0x{va:x}: out of memory for a page table", va);
            PageTables<TArch>.Set(p, entry);
        }
        _m.Mmu.FlushRange(this, va & ~(PageSize.Bytes - 1), (va & ~(PageSize.Bytes - 1)) + PageSize.Bytes, cpu);
    }

    public override (ulong Entry, int Level) LookupPte(ulong va)
    {
        byte* p = _paging.Tables.Lookup(Pgd, va, out int level);
        return (PageTables<TArch>.Load(p), level);
    }

    public override void Dispose()
    {
        if (IsDisposed)
            return;
        foreach (var c in _m.Cpus)
            if (ReferenceEquals(c.ActiveMm, this))
                throw new KmemException($"the address space is loaded on cpu{c.Id}: switch that CPU to another mm first");
        var cpu = _m.ThisCpu;
        lock (_lock)
        {
            // free_pgtables() over the user half, then pgd_dtor() + pgd_free().
            _paging.Tables.FreeRange(cpu, Pgd, 0, TArch.KernelPgdBoundary);
            _paging.PgdDtor(Pgd);
            new Span<byte>(_paging.Tables.Table(Pgd), PageSize.Int).Clear();
            _paging.Tables.FreeTable(cpu, Pgd);
            _tables = 0;
            IsDisposed = true;
        }
    }
}
