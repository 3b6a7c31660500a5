using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative;

// The paging subsystem of a machine: the kernel page tables built at boot, the MMU, and the API of
// Machine.PagingApi.cs forwarding to them (one virtual call per operation; Mmu is direct for callers that hold
// a Machine<TArch>).
public sealed unsafe partial class Machine<TArch>
{
    private KernelPaging<TArch> _paging = null!;
    private Mmu<TArch> _mmu = null!;

    /// <summary>The MMU: translation, TLBs, virtual memory access. Its hot methods inline into callers.</summary>
    public Mmu<TArch> Mmu => _mmu;

    internal KernelPaging<TArch> Paging => _paging;

    /// <summary>paging_init(): the kernel page tables, from memblock, before memblock_free_all().</summary>
    private void PagingInit(ulong memmapPhys, ulong lowLimit)
    {
        _paging = new KernelPaging<TArch>(this);
        _paging.Boot(memmapPhys, MaxPfn * (ulong)TArch.StructPageSize, lowLimit);
        _mmu = new Mmu<TArch>(this);
    }

    /// <summary>Every CPU starts on swapper_pg_dir with its own empty TLB; then the boot-time W+X check.</summary>
    private void PagingInitCpus()
    {
        foreach (var cpu in Cpus)
            _mmu.InitCpu(cpu, _paging.SwapperPgDir, _paging.InitMm);
        if (Config.TlbStatistics)
            _mmu.SetTlbModes(debug: false, countHits: true);
        Log.Info(_paging.RodataMessage);
        if (TArch.Kind == ArchKind.X86_64)
        {
            // debug_checkwx() at the end of mark_rodata_ro().
            var (_, wx) = Ptdump(null);
            Log.Info(CheckWxLine(wx)!);
        }
    }

    /// <inheritdoc/>
    private protected override ulong HighmemPageAddress(ulong pfn) => _paging.HighPageAddress(pfn);

    /// <summary>DirectMap4k/2M/4M/1G from the linear map as built (and split) at boot.</summary>
    public override (ulong K4, ulong K2M, ulong K4M, ulong K1G) DirectMapKb()
    {
        var n = _paging.DirectPages;
        return ((ulong)n[0] * 4, (ulong)n[1] * 2048, (ulong)n[2] * 4096, (ulong)n[3] << 20);
    }

    // ---- address spaces --------------------------------------------------------------------------------

    /// <inheritdoc/>
    public override AddressSpace InitMm => _paging.InitMm;

    /// <inheritdoc/>
    public override AddressSpace CreateAddressSpace(Cpu cpu)
    {
        ThrowIfDisposed();
        return UserAddressSpace<TArch>.Create(this, _paging, cpu);
    }

    /// <inheritdoc/>
    public override void SwitchMm(Cpu cpu, AddressSpace mm)
    {
        ThrowIfDisposed();
        if (!ReferenceEquals(mm.Machine, this) || mm.IsDisposed)
            throw new KmemException("switch_mm(): the address space is not live on this machine");
        _mmu.WriteCr3(cpu, mm.Pgd, mm);
    }

    /// <inheritdoc/>
    public override void WriteCr3(Cpu cpu, ulong cr3)
    {
        ThrowIfDisposed();
        ulong pgd = cr3 & TArch.PtePfnMask;
        if (!IsRamPfn(pgd >> PageSize.Shift))
            throw new PhysicalAddressException($"CR3 0x{cr3:x}: the page directory at 0x{pgd:x} is not RAM", pgd);
        AddressSpace? mm = pgd == _paging.SwapperPgDir ? _paging.InitMm
            : ReferenceEquals(cpu.ActiveMm, null) || cpu.ActiveMm.Pgd != pgd ? null : cpu.ActiveMm;
        _mmu.WriteCr3(cpu, cr3, mm);
    }

    /// <inheritdoc/>
    public override void SetPagingControl(Cpu cpu, uint bits)
    {
        ThrowIfDisposed();
        _mmu.SetControl(cpu, bits);
    }

    /// <inheritdoc/>
    public override bool TlbDebug
    {
        get => Cpus.Count > 0 && Cpus[0].TlbDebug;
        set => _mmu.SetTlbModes(value, TlbStatistics);
    }

    /// <inheritdoc/>
    public override bool TlbStatistics
    {
        get => Cpus.Count > 0 && Cpus[0].Tlb.CountHits;
        set => _mmu.SetTlbModes(TlbDebug, value);
    }

    // ---- the MMU ---------------------------------------------------------------------------------------

    /// <inheritdoc/>
    public override ulong Translate(Cpu cpu, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor) =>
        _mmu.Translate(cpu, va, access, mode);

    /// <inheritdoc/>
    public override bool TryTranslate(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode, out ulong phys, out PageFault fault) =>
        _mmu.TryTranslate(cpu, va, access, mode, out phys, out fault);

    /// <inheritdoc/>
    public override Translation TranslatePgd(ulong cr3, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        ThrowIfDisposed();
        return _mmu.TryTranslate(cr3, va, access, mode, out var t, out var f) ? t : throw new PageFaultException(f);
    }

    /// <inheritdoc/>
    public override void ReadVirtual(Cpu cpu, ulong va, Span<byte> destination, PrivilegeMode mode = PrivilegeMode.Supervisor) =>
        _mmu.Read(cpu, va, destination, mode);

    /// <inheritdoc/>
    public override void WriteVirtual(Cpu cpu, ulong va, ReadOnlySpan<byte> source, PrivilegeMode mode = PrivilegeMode.Supervisor) =>
        _mmu.Write(cpu, va, source, mode);

    /// <inheritdoc/>
    public override ulong ReadVirtualUInt(Cpu cpu, ulong va, int size, PrivilegeMode mode = PrivilegeMode.Supervisor) => size switch
    {
        1 => _mmu.ReadU8(cpu, va, mode),
        2 => _mmu.ReadU16(cpu, va, mode),
        4 => _mmu.ReadU32(cpu, va, mode),
        8 => _mmu.ReadU64(cpu, va, mode),
        _ => throw new ArgumentException($"size {size}: loads are 1, 2, 4 or 8 bytes", nameof(size)),
    };

    /// <inheritdoc/>
    public override void WriteVirtualUInt(Cpu cpu, ulong va, int size, ulong value, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        switch (size)
        {
            case 1: _mmu.WriteU8(cpu, va, (byte)value, mode); break;
            case 2: _mmu.WriteU16(cpu, va, (ushort)value, mode); break;
            case 4: _mmu.WriteU32(cpu, va, (uint)value, mode); break;
            case 8: _mmu.WriteU64(cpu, va, value, mode); break;
            default: throw new ArgumentException($"size {size}: stores are 1, 2, 4 or 8 bytes", nameof(size));
        }
    }

    /// <inheritdoc/>
    public override ulong CopyFromUser(Cpu cpu, Span<byte> to, ulong from, out ulong faultAddress) =>
        _mmu.CopyFromUser(cpu, to, from, out faultAddress);

    /// <inheritdoc/>
    public override ulong CopyToUser(Cpu cpu, ulong to, ReadOnlySpan<byte> from, out ulong faultAddress) =>
        _mmu.CopyToUser(cpu, to, from, out faultAddress);

    /// <inheritdoc/>
    public override void Invlpg(Cpu cpu, ulong va) => _mmu.Invlpg(cpu, va);

    /// <inheritdoc/>
    public override void FlushTlbAll() => _mmu.FlushAll();

    /// <inheritdoc/>
    public override void FlushTlbKernelRange(ulong start, ulong end) => _mmu.FlushRange(null, start, end);

    // ---- kernel virtual mappings -----------------------------------------------------------------------

    /// <inheritdoc/>
    public override ulong Vmalloc(Cpu cpu, ulong size)
    {
        ThrowIfDisposed();
        return _paging.Vmalloc(cpu, size);
    }

    /// <inheritdoc/>
    public override void Vfree(Cpu cpu, ulong addr)
    {
        ThrowIfDisposed();
        _paging.Vfree(cpu, addr);
    }

    /// <inheritdoc/>
    public override ulong Vmap(Cpu cpu, IReadOnlyList<Page> pages, ulong prot)
    {
        ThrowIfDisposed();
        foreach (var p in pages)
            CheckPage(p);
        return _paging.Vmap(cpu, [.. pages.Select(p => p.Pfn)], prot);
    }

    /// <inheritdoc/>
    public override void Vunmap(Cpu cpu, ulong addr)
    {
        ThrowIfDisposed();
        _paging.Vunmap(cpu, addr);
    }

    /// <inheritdoc/>
    public override Page? VmallocToPage(ulong addr)
    {
        ThrowIfDisposed();
        if (ClassifyAddress(addr) != AddressKind.Vmalloc)
            return null;
        return _paging.VmallocToPfn(addr) is { } pfn ? new Page(this, pfn) : null;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<VmArea> VmallocAreas => _paging.VmAreas;

    /// <inheritdoc/>
    public override ulong Kmap(Cpu cpu, Page page)
    {
        CheckPage(page);
        return _paging.Kmap(cpu, page.Pfn);
    }

    /// <inheritdoc/>
    public override void Kunmap(Cpu cpu, Page page)
    {
        CheckPage(page);
        _paging.Kunmap(page.Pfn);
    }

    /// <inheritdoc/>
    public override void KmapFlushUnused(Cpu cpu)
    {
        ThrowIfDisposed();
        _paging.KmapFlushUnused(cpu);
    }

    /// <inheritdoc/>
    public override ulong KmapLocalPage(Cpu cpu, Page page)
    {
        CheckPage(page);
        return _paging.KmapLocal(cpu, page.Pfn);
    }

    /// <inheritdoc/>
    public override void KunmapLocal(Cpu cpu, ulong addr)
    {
        ThrowIfDisposed();
        _paging.KunmapLocal(cpu, addr);
    }

    // ---- layout and diagnostics -----------------------------------------------------------------------

    /// <inheritdoc/>
    public override ulong HighMemory => _paging.HighMemory;

    /// <inheritdoc/>
    public override ulong VmallocStart => _paging.VmallocStart;

    /// <inheritdoc/>
    public override ulong VmallocEnd => _paging.VmallocEnd;

    /// <inheritdoc/>
    public override ulong TaskSize => TArch.TaskSizeMax;

    /// <inheritdoc/>
    public override IReadOnlyList<KernelArea> KernelAreas => _paging.Areas;

    /// <inheritdoc/>
    public override IReadOnlyList<AddressMarker> PtdumpMarkers => _paging.Markers;

    /// <inheritdoc/>
    public override AddressKind ClassifyAddress(ulong va) => _paging.Classify(va);

    /// <inheritdoc/>
    public override PageWalk WalkPageTables(ulong va, AddressSpace? mm = null)
    {
        ThrowIfDisposed();
        mm ??= _paging.InitMm;
        return Vtop<TArch>.Walk(this, _paging.Tables, mm.Pgd, mm.PgdVa, va);
    }

    /// <inheritdoc/>
    public override string Vtop(ulong va, AddressSpace? mm = null) => Vtop<TArch>.Format(this, WalkPageTables(va, mm));

    /// <inheritdoc/>
    public override (string Text, long WxPages) Ptdump(AddressSpace? mm = null)
    {
        ThrowIfDisposed();
        mm ??= _paging.InitMm;
        return Ptdump<TArch>.Dump(_paging.Tables, mm.Pgd, _paging.Markers, checkWx: TArch.Kind == ArchKind.X86_64);
    }
}
