using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Paging;

/// <summary>What a successful walk found.</summary>
/// <param name="Physical">The physical address <see cref="Virtual"/> translates to.</param>
/// <param name="Virtual">The translated address.</param>
/// <param name="Level">Level of the leaf: 1 (4 KiB), 2 (2 MiB / 4 MiB) or 3 (1 GiB).</param>
/// <param name="PageSize">Size of the page the leaf maps.</param>
/// <param name="Entry">The leaf entry, with the Accessed/Dirty bits the walk set.</param>
/// <param name="Effective">The permissions the hardware applies: USER and RW as the AND over all levels, NX as the OR.</param>
public readonly record struct Translation(ulong Physical, ulong Virtual, int Level, ulong PageSize, ulong Entry, PteFlags Effective);

/// <summary>
/// The software MMU of a machine: the x86 page walker over the page tables in the arena, each CPU's TLB in front
/// of it, and memory access at virtual addresses.
/// </summary>
/// <remarks>
/// <para>The walker does what the hardware does (Intel SDM Vol. 3A sections 4.5-4.8): it reads each level's entry
/// from RAM, stops with #PF at a non-present entry or a reserved bit, honours PSE (CR4.PSE on 2-level), computes
/// the effective U/S and R/W (AND over the levels) and NX (OR, with EFER.NXE), applies CR0.WP to supervisor
/// writes, then sets Accessed in every entry it used and Dirty in the leaf on a write with atomic
/// compare-and-exchange (a changed entry restarts the walk). Accessed/Dirty are set only for accesses that are
/// allowed. An entry leading outside RAM raises #MC; a non-canonical address #GP.</para>
/// <para>Not modelled: SMEP/SMAP, protection keys (CR4.PKE off), PCID, paging-structure caches (only leaf
/// translations are cached, so freeing a table needs no flush beyond the leaves').</para>
/// </remarks>
public sealed unsafe partial class Mmu<TArch> : IMmuMissPath where TArch : struct, IArch
{
    private const ulong P = (ulong)PteFlags.Present;
    private const ulong Rw = (ulong)PteFlags.Rw;
    private const ulong Us = (ulong)PteFlags.User;
    private const ulong A = (ulong)PteFlags.Accessed;
    private const ulong D = (ulong)PteFlags.Dirty;
    private const ulong Ps = (ulong)PteFlags.Pse;
    private const ulong G = (ulong)PteFlags.Global;
    private const ulong Nx = (ulong)PteFlags.Nx;
    private const ulong PageMask = ~0xfffUL;

    /// <summary>How often a fault handler may ask for a retry of one access before the fault stands.</summary>
    public const int MaxFaultRetries = 8;

    private readonly Machine<TArch> _machine;
    private readonly byte* _base;
    private readonly ulong _maxPfn;
    private readonly ulong _arenaSize;
    private readonly ulong[] _ramBitmap;   // one bit per page frame: installed RAM
    private readonly ulong* _ram;

    internal Mmu(Machine<TArch> machine)
    {
        _machine = machine;
        _base = machine.Memory.Base;
        _maxPfn = machine.Memory.Size >> PhysMem.PageSize.Shift;
        _arenaSize = machine.Memory.Size;
        _ramBitmap = GC.AllocateArray<ulong>((int)((_maxPfn + 63) / 64) + 1, pinned: true);
        foreach (var r in machine.Memory.Ram)
            for (ulong pfn = r.StartPfn; pfn < r.EndPfn; pfn++)
                _ramBitmap[pfn >> 6] |= 1UL << (int)(pfn & 63);
        _ram = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_ramBitmap));
        _defaultControl = PagingControl.Wp | PagingControl.Pge
            | (machine.Config.Pse || TArch.Mode != PagingMode.TwoLevel ? PagingControl.Pse : 0)
            | ((TArch.SupportedPteMask & Nx) != 0 ? PagingControl.Nxe : 0);
        _rsvdTable = GC.AllocateArray<ulong>(2 * (TArch.PagingLevels + 1), pinned: true);
        for (int level = 1; level <= TArch.PagingLevels; level++)
            for (int large = 0; large < 2; large++)
                _rsvdTable[(level << 1) | large] = TArch.ReservedBits(level, large != 0, nxe: true);
        _rsvd = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_rsvdTable));
    }

    /// <summary>The machine.</summary>
    public Machine<TArch> Machine => _machine;

    /// <summary>True when the 4 KiB frame at <paramref name="phys"/> is installed RAM (never reads outside the bitmap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool IsRamPage(ulong phys)
    {
        ulong pfn = phys >> 12;
        return pfn < _maxPfn && (_ram[pfn >> 6] & (1UL << (int)(pfn & 63))) != 0;
    }

    /// <summary>The control bits a CPU has right after boot (WP, PGE, NXE where it exists, PSE as configured).</summary>
    internal uint DefaultControl => _defaultControl;

    private readonly uint _defaultControl;

    // ReservedBits() per (level, large leaf) with NXE on, so the walk does one load per level; NX is added when NXE is off.
    private readonly ulong[] _rsvdTable;
    private readonly ulong* _rsvd;

    // ---- the walker -----------------------------------------------------------------------------------

    // Outcomes of one level of the walk.
    private const int StepNext = 0, StepLeaf = 1, StepNotPresent = 2, StepReserved = 3, StepBadTable = 4;

    /// <summary>
    /// One level of the walk. Always inlined with a constant <paramref name="level"/>, so the shift, the index mask,
    /// the reserved-bit masks and whether PS makes a leaf here fold to constants: the walk is unrolled per profile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Step(int level, byte* arena, ulong va, bool pse, ulong nxOff, ref ulong table, ref ulong and, ref ulong or, ref ulong allA, out ulong e)
    {
        // Only the arena bound on the hot path: a table in a RAM hole reads as zeros (holes are never written), so
        // its entry is "not present" and the cold check turns that into #MC.
        if (table >= _arenaSize)
        {
            e = 0;
            return StepBadTable;
        }
        int shift = 12 + (level - 1) * TArch.IndexBits;
        int bits = level == TArch.PagingLevels ? TArch.TopLevelIndexBits : TArch.IndexBits;
        // arena + index does not depend on the previous level: only "+ table" and the load are on the chain.
        byte* slot = arena + (((va >> shift) & ((1UL << bits) - 1)) << TArch.PteShift);
        e = TArch.LoadPte(slot + table);
        if ((e & P) == 0)
            return IsRamPage(table) ? StepNotPresent : StepBadTable;
        if (level > 1 && ((TArch.LargeLeafLevels >> level) & 1) != 0 && (e & Ps) != 0 && pse)
        {
            if ((e & (TArch.ReservedBits(level, true, true) | nxOff)) != 0)
                return StepReserved;
            and &= e;
            or |= e;
            allA &= e;
            return StepLeaf;
        }
        if ((e & (TArch.ReservedBits(level, false, true) | nxOff)) != 0)
            return StepReserved;
        and &= e;
        or |= e;
        allA &= e;
        if (level == 1)
            return StepLeaf;
        table = e & TArch.PtePfnMask;
        return StepNext;
    }

    /// <summary>
    /// The page walk: translates <paramref name="va"/> under <paramref name="cr3"/> for one access, with the control
    /// bits <paramref name="ctl"/>; sets Accessed/Dirty unless <paramref name="peek"/>. False with the fault otherwise.
    /// </summary>
    [SkipLocalsInit]
    internal bool Walk(ulong cr3, ulong va, MemoryAccess access, PrivilegeMode mode, uint ctl, bool peek, out Translation result, out PageFault fault)
    {
        Unsafe.SkipInit(out result);
        Unsafe.SkipInit(out fault);
        if (!TArch.IsCanonical(va))
        {
            fault = MakeFault(FaultKind.GeneralProtection, va, access, mode, false, 0, 0, 0, 0);
            return false;
        }
        bool nxe = (TArch.SupportedPteMask & Nx) != 0 && (ctl & PagingControl.Nxe) != 0;
        bool pse = !TArch.PseNeedsCr4 || (ctl & PagingControl.Pse) != 0;
        ulong nxOff = (TArch.SupportedPteMask & Nx) != 0 && !nxe ? Nx : 0;
        byte* arena = _base;
    restart:
        ulong table = cr3 & TArch.PtePfnMask;
        ulong and = Us | Rw, or = 0, allA = A, e, up = cr3;
        int level, st;
        if (TArch.PagingLevels >= 5)
        {
            level = 5;
            if ((st = Step(5, arena, va, pse, nxOff, ref table, ref and, ref or, ref allA, out e)) != StepNext)
                goto stop;
            up = e;
        }
        if (TArch.PagingLevels >= 4)
        {
            level = 4;
            if ((st = Step(4, arena, va, pse, nxOff, ref table, ref and, ref or, ref allA, out e)) != StepNext)
                goto stop;
            up = e;
        }
        if (TArch.PagingLevels >= 3)
        {
            level = 3;
            if ((st = Step(3, arena, va, pse, nxOff, ref table, ref and, ref or, ref allA, out e)) != StepNext)
                goto stop;
            up = e;
        }
        level = 2;
        if ((st = Step(2, arena, va, pse, nxOff, ref table, ref and, ref or, ref allA, out e)) != StepNext)
            goto stop;
        up = e;
        level = 1;
        st = Step(1, arena, va, pse, nxOff, ref table, ref and, ref or, ref allA, out e);
    stop:
        if (st != StepLeaf)
        {
            fault = st switch
            {
                StepNotPresent => MakeFault(FaultKind.PageFault, va, access, mode, nxe, PfErrorCode.None, level, e, 0),
                StepReserved => MakeFault(FaultKind.PageFault, va, access, mode, nxe, PfErrorCode.Prot | PfErrorCode.Rsvd, level, e, 0),
                _ => MakeFault(FaultKind.MachineCheck, va, access, mode, nxe, 0, level == TArch.PagingLevels ? 0 : level + 1, up, table),
            };
            return false;
        }

        int shift = 12 + (level - 1) * TArch.IndexBits;
        ulong frame = level == 1 ? e & TArch.PtePfnMask : TArch.LargePageFrame(e, level) + (va & ((1UL << shift) - 1) & PageMask);
        if (!IsRamPage(frame))
        {
            fault = MakeFault(FaultKind.MachineCheck, va, access, mode, nxe, 0, level, e, frame);
            return false;
        }
        bool user = mode == PrivilegeMode.User;
        if ((user && (and & Us) == 0)
            || (access == MemoryAccess.Write && (and & Rw) == 0 && (user || (ctl & PagingControl.Wp) != 0))
            || (access == MemoryAccess.Execute && nxe && (or & Nx) != 0))
        {
            fault = MakeFault(FaultKind.PageFault, va, access, mode, nxe, PfErrorCode.Prot, level, e, 0);
            return false;
        }
        bool needDirty = access == MemoryAccess.Write && (e & D) == 0;
        if (!peek && (allA == 0 || needDirty))
        {
            if (!SetAccessedDirty(cr3, va, level, e, needDirty))
                goto restart;
            e |= A | (needDirty ? D : 0);
        }
        ulong effective = (and & (Us | Rw)) | (nxe ? or & Nx : 0);
        result = new Translation(frame | (va & 0xfff), va, level, 1UL << shift, e, (PteFlags)effective);
        return true;
    }

    /// <summary>
    /// Sets Accessed on every level down to the leaf and Dirty on the leaf, atomically (lock cmpxchg, as the CPU
    /// does). Walks again from CR3: false when any entry is not what it was (the walk restarts).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool SetAccessedDirty(ulong cr3, ulong va, int leafLevel, ulong leaf, bool dirty)
    {
        ulong table = cr3 & TArch.PtePfnMask;
        for (int level = TArch.PagingLevels; level >= leafLevel; level--)
        {
            if (table >= _arenaSize)
                return false;
            int shift = 12 + (level - 1) * TArch.IndexBits;
            int bits = level == TArch.PagingLevels ? TArch.TopLevelIndexBits : TArch.IndexBits;
            byte* p = _base + table + (((va >> shift) & ((1UL << bits) - 1)) << TArch.PteShift);
            ulong seen = TArch.LoadPte(p);
            if ((seen & P) == 0 || (level == leafLevel && (seen | A | D) != (leaf | A | D)))
                return false;
            ulong want = seen | A | (level == leafLevel && dirty ? D : 0);
            if (want != seen && !TArch.CmpXchgPte(p, seen, want))
                return false;
            table = seen & TArch.PtePfnMask;
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static PageFault MakeFault(FaultKind kind, ulong va, MemoryAccess access, PrivilegeMode mode, bool nxe, PfErrorCode code, int level, ulong entry, ulong phys)
    {
        if (kind != FaultKind.PageFault)
            return new PageFault(kind, va, 0, access, mode, level, entry, phys);
        if (access == MemoryAccess.Write)
            code |= PfErrorCode.Write;
        if (mode == PrivilegeMode.User)
            code |= PfErrorCode.User;
        if (access == MemoryAccess.Execute && nxe)
            code |= PfErrorCode.Instr; // reported only with PAE/4-level paging and EFER.NXE (no SMEP here)
        return new PageFault(FaultKind.PageFault, va, code, access, mode, level, entry, 0);
    }

    // ---- translate without a TLB ----------------------------------------------------------------------

    /// <summary>
    /// translate(cr3, va, access, mode): walks the page tables at <paramref name="cr3"/> as a CPU with WP, PGE and
    /// (where it exists) NXE set would, setting Accessed/Dirty; no TLB. Returns the physical address.
    /// </summary>
    /// <exception cref="PageFaultException">The walk faulted (#PF, #GP or #MC).</exception>
    public ulong Translate(ulong cr3, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        if (!Walk(cr3, va, access, mode, DefaultControl, peek: false, out var r, out var f))
            throw new PageFaultException(f);
        return r.Physical;
    }

    /// <summary>Non-throwing <see cref="Translate(ulong, ulong, MemoryAccess, PrivilegeMode)"/>, returning the whole translation.</summary>
    public bool TryTranslate(ulong cr3, ulong va, MemoryAccess access, PrivilegeMode mode, out Translation translation, out PageFault fault) =>
        Walk(cr3, va, access, mode, DefaultControl, peek: false, out translation, out fault);

    /// <summary>Like <see cref="TryTranslate(ulong, ulong, MemoryAccess, PrivilegeMode, out Translation, out PageFault)"/> but changes nothing (no Accessed/Dirty).</summary>
    public bool Peek(ulong cr3, ulong va, MemoryAccess access, PrivilegeMode mode, out Translation translation, out PageFault fault) =>
        Walk(cr3, va, access, mode, DefaultControl, peek: true, out translation, out fault);

    // ---- translate through a CPU's TLB ----------------------------------------------------------------

    /// <summary>
    /// Translates <paramref name="va"/> on <paramref name="cpu"/>: its TLB, else a walk of CR3's tables with its
    /// control registers, the address space's fault handler on a #PF (retrying when it fixes the tables), and a TLB
    /// fill. The hit path is one masked compare.
    /// </summary>
    /// <exception cref="PageFaultException">The access faulted and no handler resolved it.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Translate(Cpu cpu, ulong va, MemoryAccess access = MemoryAccess.Read, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (*((ulong*)e + (int)access) == va >> 12)
            return (ulong)((long)va + e->PhysAddend);
        return TranslateSlow(cpu, va, access, mode);
    }

    ulong IMmuMissPath.TranslateMiss(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode) => TranslateSlow(cpu, va, access, mode);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong TranslateSlow(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode)
    {
        if (!Miss(cpu, va, access, mode, out ulong phys, out var fault))
            throw new PageFaultException(fault);
        return phys;
    }

    /// <summary>Non-throwing <see cref="Translate(Cpu, ulong, MemoryAccess, PrivilegeMode)"/>.</summary>
    public bool TryTranslate(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode, out ulong phys, out PageFault fault)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (*((ulong*)e + (int)access) == va >> 12)
        {
            phys = (ulong)((long)va + e->PhysAddend);
            Unsafe.SkipInit(out fault);
            return true;
        }
        return Miss(cpu, va, access, mode, out phys, out fault);
    }

    /// <summary>The slow path: debug-mode shadow lookup, walk, fault handler, fill.</summary>
    private bool Miss(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode, out ulong phys, out PageFault fault)
    {
        var tlb = cpu.Tlb;
        int idx = Tlb.Index(va, mode);
        if (tlb.Shadowed)
        {
            // Statistics or debug mode: the hot table stays empty, the real entries are in the shadow table.
            TlbEntry* s = tlb.Shadow + idx;
            if (*((ulong*)s + (int)access) == va >> 12)
            {
                cpu.TlbHits++;
                phys = (ulong)((long)va + s->PhysAddend);
                if (tlb.Debug)
                    CrossCheck(cpu, va, access, mode, phys);
                Unsafe.SkipInit(out fault);
                return true;
            }
        }
        tlb.Misses++;
        for (int attempt = 0; ; attempt++)
        {
            int seq = Volatile.Read(ref tlb.FlushSeq);
            tlb.Walks++;
            if (Walk(cpu.Cr3, va, access, mode, cpu.PagingBits, peek: false, out var r, out fault))
            {
                Fill(cpu, mode, r, seq);
                phys = r.Physical;
                return true;
            }
            tlb.Faults++;
            if (fault.Kind == FaultKind.PageFault && attempt < MaxFaultRetries
                && cpu.ActiveMm?.FaultHandler is { } handler && handler(cpu, fault) == FaultResolution.Retry)
                continue;
            phys = 0;
            return false;
        }
    }

    /// <summary>Debug mode: a TLB hit must agree with what the page tables say now.</summary>
    private void CrossCheck(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode, ulong phys)
    {
        if (!Walk(cpu.Cr3, va, access, mode, cpu.PagingBits, peek: true, out var r, out var f))
            throw new TlbCoherenceException(
                $"stale TLB entry on cpu{cpu.Id}: 0x{va:x} hits the TLB (-> 0x{phys:x}) but the page tables now fault: {f} (missing TLB flush?)", va);
        if (r.Physical != phys)
            throw new TlbCoherenceException(
                $"stale TLB entry on cpu{cpu.Id}: 0x{va:x} hits the TLB -> 0x{phys:x} but the page tables now map it to 0x{r.Physical:x} (missing TLB flush?)", va);
    }

    /// <summary>Caches a translation in the CPU's TLB (hot table, or the shadow table in debug mode).</summary>
    private void Fill(Cpu cpu, PrivilegeMode mode, in Translation r, int seq)
    {
        var tlb = cpu.Tlb;
        ulong va = r.Virtual;
        int idx = Tlb.Index(va, mode);
        ulong page = va & PageMask;
        TlbEntry* e = (tlb.Shadowed ? tlb.Shadow : tlb.Hot) + idx;
        ulong eff = (ulong)r.Effective;
        bool user = mode == PrivilegeMode.User;
        bool writable = ((eff & Rw) != 0 || (!user && (cpu.PagingBits & PagingControl.Wp) == 0)) && (r.Entry & D) != 0;
        bool exec = (eff & Nx) == 0;
        bool global = (r.Entry & G) != 0 && (cpu.PagingBits & PagingControl.Pge) != 0;
        // Invalidate first so the slot never pairs a new tag with an old addend.
        tlb.Invalidate(idx);
        e->Addend = (long)(_base + (r.Physical & PageMask)) - (long)page;
        e->PhysAddend = (long)(r.Physical & PageMask) - (long)page;
        ulong vpn = page >> 12;
        e->TagExec = exec ? vpn : Tlb.Invalid;
        e->TagWrite = writable ? vpn : Tlb.Invalid;
        Volatile.Write(ref e->TagRead, vpn);
        ref var side = ref tlb.Side[idx];
        side.Va = page;
        side.Phys = r.Physical & PageMask;
        side.Leaf = r.Entry;
        side.Shift = (byte)System.Numerics.BitOperations.Log2(r.PageSize);
        side.Flags = (byte)(TlbSideFlags.Valid | (global ? TlbSideFlags.Global : 0) | (writable ? TlbSideFlags.Writable : 0)
                            | (exec ? TlbSideFlags.Executable : 0) | (user ? TlbSideFlags.User : 0));
        if (r.Level > 1)
            tlb.AddLargePage(va, 1UL << side.Shift);
        // A flush from another CPU that ran while we walked may have missed this slot: drop what we cached.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref tlb.FlushSeq) != seq)
            tlb.Invalidate(idx);
    }
}
