using KmemNative.Paging;

namespace KmemNative;

// The paging state of a CPU: the control registers the MMU obeys, the loaded address space, the TLB, and the
// kmap_local slot stack of the task running on it.
public sealed unsafe partial class Cpu
{
    /// <summary>Control-register bits the walker reads, packed (see <see cref="PagingControl"/>).</summary>
    internal uint PagingBits;

    /// <summary>The hot TLB table (<see cref="Tlb.Hot"/>), one load away on the hit path.</summary>
    internal TlbEntry* TlbHot;

    /// <summary>TLB hits, counted in statistics or debug mode (owner CPU only).</summary>
    internal long TlbHits;

    /// <summary>The TLB.</summary>
    internal Tlb Tlb = null!;

    /// <summary>The MMU's miss path (a walk with the profile's layout): the only virtual call, taken on a miss.</summary>
    internal IMmuMissPath MissPath = null!;

    /// <summary>
    /// Translates <paramref name="va"/> on this CPU: a TLB hit costs one masked compare and an add; a miss walks
    /// the page tables (with the address space's fault handler) and fills the TLB.
    /// </summary>
    /// <exception cref="PageFaultException">The access faulted and no handler resolved it.</exception>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ulong Translate(ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = TlbHot + Tlb.Index(va, mode);
        if (*((ulong*)e + (int)access) == va >> 12)
            return (ulong)((long)va + e->PhysAddend);
        return MissPath.TranslateMiss(this, va, access, mode);
    }

    /// <summary>CR3: physical address of the top-level page table in use.</summary>
    public ulong Cr3 { get; internal set; }

    /// <summary>The address space whose page tables CR3 points at (init_mm for the kernel's own tables).</summary>
    public AddressSpace? ActiveMm { get; internal set; }

    /// <summary>CR0.WP: supervisor writes honour read-only pages.</summary>
    public bool Cr0Wp => (PagingBits & PagingControl.Wp) != 0;

    /// <summary>CR4.PGE: global pages survive CR3 writes.</summary>
    public bool Cr4Pge => (PagingBits & PagingControl.Pge) != 0;

    /// <summary>CR4.PSE: 4 MiB pages on 2-level paging (IA-32e always has large pages).</summary>
    public bool Cr4Pse => (PagingBits & PagingControl.Pse) != 0;

    /// <summary>EFER.NXE: the NX bit is honoured (and reserved when clear). Always false on 2-level paging.</summary>
    public bool EferNxe => (PagingBits & PagingControl.Nxe) != 0;

    /// <summary>A snapshot of this CPU's TLB counters (hits only in statistics or debug mode: see <see cref="Machine.TlbStatistics"/>).</summary>
    public TlbStatistics TlbStatistics =>
        new(TlbHits, Tlb.Misses, Tlb.Walks, Tlb.Faults, Tlb.FullFlushes, Tlb.PageFlushes, Tlb.RangeFlushes, Tlb.Shootdowns);

    /// <summary>The valid TLB entries.</summary>
    public IReadOnlyList<TlbEntryInfo> TlbEntries => Tlb.List();

    /// <summary>True when every TLB hit is cross-checked against a fresh walk.</summary>
    public bool TlbDebug => Tlb.Debug;

    /// <summary>kmap_local/kmap_atomic slots in use on this CPU (the kernel keeps them per task: kmap_ctrl).</summary>
    internal int KmapLocalIdx;

    /// <summary>The pfn mapped in each kmap_local slot.</summary>
    internal readonly ulong[] KmapLocalPfn = new ulong[Arch.I386Layout.KmMaxIdx];
}

/// <summary>The MMU's slow path as a CPU sees it.</summary>
internal interface IMmuMissPath
{
    /// <summary>A TLB miss: walk, fault handler, fill; throws <see cref="PageFaultException"/> when the access faults.</summary>
    ulong TranslateMiss(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode);
}

/// <summary>The control-register bits that change how the MMU translates.</summary>
public static class PagingControl
{
    /// <summary>CR0.WP.</summary>
    public const uint Wp = 1;
    /// <summary>CR4.PGE.</summary>
    public const uint Pge = 2;
    /// <summary>CR4.PSE.</summary>
    public const uint Pse = 4;
    /// <summary>EFER.NXE.</summary>
    public const uint Nxe = 8;
}
