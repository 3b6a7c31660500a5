namespace KmemNative.Paging;

// Control registers and TLB maintenance: CR3 writes, invlpg, the kernel's flush_tlb_*() calls and shootdowns.
public sealed unsafe partial class Mmu<TArch>
{
    /// <summary>Gives a CPU its TLB and its boot-time registers: CR3 = swapper_pg_dir, the default control bits.</summary>
    internal void InitCpu(Cpu cpu, ulong cr3, AddressSpace initMm)
    {
        cpu.Tlb = new Tlb();
        cpu.TlbHot = cpu.Tlb.Hot;
        cpu.MissPath = this;
        cpu.PagingBits = DefaultControl;
        cpu.Cr3 = cr3;
        cpu.ActiveMm = initMm;
    }

    /// <summary>
    /// MOV to CR3: switch page tables. The TLB loses every entry except global ones when CR4.PGE is set.
    /// <paramref name="mm"/> is the address space the CPU now runs (what its fault handler is taken from).
    /// </summary>
    public void WriteCr3(Cpu cpu, ulong cr3, AddressSpace? mm)
    {
        cpu.Cr3 = cr3 & TArch.PtePfnMask;
        cpu.ActiveMm = mm;
        cpu.Tlb.FlushAll(keepGlobal: (cpu.PagingBits & PagingControl.Pge) != 0);
    }

    /// <summary>Changes CR0.WP / CR4.PGE / CR4.PSE / EFER.NXE on <paramref name="cpu"/>; the whole TLB, global entries included, is flushed.</summary>
    /// <exception cref="ArgumentException">NXE on a 2-level profile (no NX bit), or unknown bits.</exception>
    public void SetControl(Cpu cpu, uint bits)
    {
        const uint all = PagingControl.Wp | PagingControl.Pge | PagingControl.Pse | PagingControl.Nxe;
        if ((bits & ~all) != 0)
            throw new ArgumentException($"unknown control bits 0x{bits:x}", nameof(bits));
        if ((bits & PagingControl.Nxe) != 0 && (TArch.SupportedPteMask & Nx) == 0)
            throw new ArgumentException("EFER.NXE needs PAE or 4-level paging: 2-level entries have no NX bit", nameof(bits));
        cpu.PagingBits = bits;
        cpu.Tlb.FlushAll(keepGlobal: false);
    }

    /// <summary>invlpg on <paramref name="cpu"/>: drops the translation of <paramref name="va"/>, global or not.</summary>
    public void Invlpg(Cpu cpu, ulong va) => cpu.Tlb.FlushPage(va);

    /// <summary>Debug mode (every hit cross-checked) and statistics mode (hits counted) for every CPU; the TLBs are flushed.</summary>
    public void SetTlbModes(bool debug, bool countHits)
    {
        foreach (var cpu in _machine.Cpus)
        {
            cpu.Tlb.Debug = debug;
            cpu.Tlb.CountHits = countHits;
            Interlocked.Increment(ref cpu.Tlb.FlushSeq);
            cpu.Tlb.FlushAll(keepGlobal: false, local: false);
        }
    }

    /// <summary>
    /// Flushes [start, end) from the TLB of every CPU (flush_tlb_kernel_range()), or only of the CPUs running
    /// <paramref name="mm"/> (flush_tlb_range()). Another CPU's TLB is invalidated directly as an IPI would:
    /// its flush sequence is bumped first so a fill racing with the flush is dropped.
    /// </summary>
    /// <param name="mm">The address space whose mappings changed; null or init_mm for kernel mappings (every CPU).</param>
    /// <param name="start">First address.</param>
    /// <param name="end">One past the last address.</param>
    /// <param name="from">The CPU doing the flush (its flush is local, the others' are shootdowns).</param>
    public void FlushRange(AddressSpace? mm, ulong start, ulong end, Cpu? from = null)
    {
        foreach (var cpu in _machine.Cpus)
        {
            if (mm is not null && !mm.IsKernel && !ReferenceEquals(cpu.ActiveMm, mm))
                continue;
            bool local = ReferenceEquals(cpu, from);
            Interlocked.Increment(ref cpu.Tlb.FlushSeq);
            if (!local)
                Interlocked.Increment(ref cpu.Tlb.Shootdowns);
            cpu.Tlb.FlushRange(start, end, local);
        }
    }

    /// <summary>flush_tlb_all(): every CPU loses every entry, global ones included.</summary>
    public void FlushAll()
    {
        foreach (var cpu in _machine.Cpus)
        {
            Interlocked.Increment(ref cpu.Tlb.FlushSeq);
            Interlocked.Increment(ref cpu.Tlb.Shootdowns);
            cpu.Tlb.FlushAll(keepGlobal: false, local: false);
        }
    }
}
