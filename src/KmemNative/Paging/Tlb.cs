using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KmemNative.Paging;

/// <summary>
/// One TLB entry's hot part, QEMU softmmu style (CPUTLBEntry): a tag per access kind and the addend that turns the
/// virtual address into a host pointer. A hit is <c>tag == va &gt;&gt; PAGE_SHIFT</c> (the virtual page number, which
/// the index is computed from anyway) and <c>va + Addend</c>.
/// </summary>
/// <remarks>
/// <para>One cache line per entry: the three tags, the host addend (loads and stores) and the physical addend
/// (translate), so a hit touches one line and needs nothing from the MMU object.</para>
/// A tag holds the virtual page number when that access is allowed without help from the walker, else
/// <see cref="Tlb.Invalid"/> (no page number is that large, so it never matches). The write tag is valid only when the leaf is
/// already Dirty, so the first write to a clean page misses and the walker sets D, as the CPU does.
/// </remarks>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct TlbEntry
{
    public ulong TagRead;
    public ulong TagWrite;
    public ulong TagExec;
    public long Addend;       // host address - virtual address
    public long PhysAddend;   // physical address - virtual address
}

/// <summary>The cold part of a TLB entry: what diagnostics, invlpg and the debug cross-check need.</summary>
internal struct TlbSide
{
    public ulong Va;        // page-aligned virtual address (valid entries only)
    public ulong Phys;      // physical address of the 4 KiB page
    public ulong Leaf;      // the leaf entry as the walk left it
    public byte Shift;      // log2 of the size of the page the walk found (12, 21, 22 or 30)
    public byte Flags;      // TlbSideFlags
}

/// <summary>Flags of <see cref="TlbSide"/>.</summary>
[Flags]
internal enum TlbSideFlags : byte
{
    Valid = 1,
    Global = 2,
    Writable = 4,
    Executable = 8,
    User = 16,
}

/// <summary>A CPU's TLB counters (<see cref="Cpu.TlbStatistics"/>).</summary>
/// <param name="Hits">Lookups answered by the TLB.</param>
/// <param name="Misses">Lookups that had to walk.</param>
/// <param name="Walks">Page walks done (misses plus fault-handler retries).</param>
/// <param name="Faults">Walks that ended in a fault.</param>
/// <param name="FullFlushes">Whole-TLB flushes (CR3 writes, flush_tlb_all, control-register changes).</param>
/// <param name="PageFlushes">Single-page invalidations (invlpg).</param>
/// <param name="RangeFlushes">flush_tlb_range / flush_tlb_kernel_range calls that reached this CPU.</param>
/// <param name="Shootdowns">Flushes requested by another CPU.</param>
public readonly record struct TlbStatistics(
    long Hits, long Misses, long Walks, long Faults, long FullFlushes, long PageFlushes, long RangeFlushes, long Shootdowns);

/// <summary>One valid TLB entry, for the <c>tlb</c> command.</summary>
/// <param name="Mode">The privilege the entry was filled for.</param>
/// <param name="Index">Its slot.</param>
/// <param name="Virtual">The virtual page.</param>
/// <param name="Physical">The physical page.</param>
/// <param name="PageSize">Size of the page the walk found (4 KiB entries are cached even for large pages).</param>
/// <param name="Readable">Reads hit.</param>
/// <param name="Writable">Writes hit (writable and already dirty).</param>
/// <param name="Executable">Instruction fetches hit.</param>
/// <param name="Global">Survives CR3 writes (G with CR4.PGE).</param>
public readonly record struct TlbEntryInfo(
    PrivilegeMode Mode, int Index, ulong Virtual, ulong Physical, ulong PageSize, bool Readable, bool Writable, bool Executable, bool Global);

/// <summary>
/// A CPU's software TLB: direct-mapped, <see cref="Entries"/> slots per privilege mode, indexed by virtual page
/// number; a hit is one masked compare.
/// </summary>
/// <remarks>
/// <para>Where it lives: host memory on the pinned object heap, not the arena. The TLB is CPU hardware, not kernel
/// data: the emulated kernel must not be able to read it, and its addends are host pointers, which must never be
/// forgeable by writing to emulated RAM (that would let corrupted memory reach outside the arena). Pinned arrays
/// give raw pointers (no bounds checks on the hit path) without a finalizer.</para>
/// <para>The hit path carries no counter (a store per access would cost more than the lookup and stop the JIT from
/// keeping the table pointer in a register). Statistics mode and debug mode keep the hot table empty so every lookup
/// takes the slow path, which finds the entry in the shadow table, counts the hit and, in debug mode, compares it
/// with a fresh walk; the hit path itself never tests a flag. Misses, walks, faults and flushes are always counted.</para>
/// <para>Threads: the owner CPU fills and reads without locks. A flush from another CPU (a shootdown) bumps
/// <see cref="FlushSeq"/> and then overwrites tags with single aligned stores; a fill that raced with it sees the
/// sequence change after publishing its entry and drops it (see <c>Mmu.Fill</c>).</para>
/// </remarks>
internal sealed unsafe class Tlb
{
    /// <summary>log2 of the slots per mode (QEMU's default dynamic TLB starts at 256).</summary>
    public const int Bits = 8;

    /// <summary>Slots per privilege mode.</summary>
    public const int Entries = 1 << Bits;

    /// <summary>A tag that matches no virtual page number.</summary>
    public const ulong Invalid = ulong.MaxValue;

    /// <summary>More pages than this in a range flush flush everything (tlb_single_page_flush_ceiling).</summary>
    public const int SinglePageFlushCeiling = 33;

    private readonly TlbEntry[] _hot = GC.AllocateArray<TlbEntry>(2 * Entries, pinned: true);
    private readonly TlbEntry[] _shadow = GC.AllocateArray<TlbEntry>(2 * Entries, pinned: true);
    private readonly TlbSide[] _side = GC.AllocateArray<TlbSide>(2 * Entries, pinned: true);

    public Tlb()
    {
        Hot = (TlbEntry*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_hot));
        Shadow = (TlbEntry*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_shadow));
        Side = (TlbSide*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_side));
        for (int i = 0; i < 2 * Entries; i++)
            Invalidate(i);
    }

    /// <summary>The table the hit path reads (all invalid in debug mode).</summary>
    public readonly TlbEntry* Hot;

    /// <summary>The table debug mode fills instead.</summary>
    public readonly TlbEntry* Shadow;

    /// <summary>Per-slot side data.</summary>
    public readonly TlbSide* Side;

    /// <summary>Debug mode: every hit is checked against a fresh walk.</summary>
    public bool Debug;

    /// <summary>Statistics mode: hits are counted (on the slow path, so the hit path carries no counter).</summary>
    public bool CountHits;

    /// <summary>True when fills go to the shadow table and the hot table stays empty.</summary>
    public bool Shadowed => Debug || CountHits;

    /// <summary>Bumped by every flush from another CPU, before it invalidates (see remarks).</summary>
    public int FlushSeq;

    // Owner-only counters, except Shootdowns (incremented atomically by the CPU that flushes this TLB).
    public long Misses, Walks, Faults, FullFlushes, PageFlushes, RangeFlushes, Shootdowns;

    /// <summary>QEMU's large-page tracking: the region covered by every large-page entry, or all ones when none.</summary>
    public ulong LargeAddr = ulong.MaxValue, LargeMask;

    /// <summary>Slot of <paramref name="va"/> for <paramref name="mode"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(ulong va, PrivilegeMode mode) => (int)((va >> 12) & (Entries - 1)) | ((int)mode << Bits);

    /// <summary>Empties slot <paramref name="i"/> in both tables.</summary>
    public void Invalidate(int i)
    {
        Volatile.Write(ref Hot[i].TagRead, Invalid);
        Volatile.Write(ref Hot[i].TagWrite, Invalid);
        Volatile.Write(ref Hot[i].TagExec, Invalid);
        Volatile.Write(ref Shadow[i].TagRead, Invalid);
        Volatile.Write(ref Shadow[i].TagWrite, Invalid);
        Volatile.Write(ref Shadow[i].TagExec, Invalid);
        Side[i].Flags = 0;
    }

    /// <summary>
    /// Flushes every slot, or every non-global slot when <paramref name="keepGlobal"/>. <paramref name="local"/> is
    /// false for a flush another CPU does (a shootdown): only the owner updates the flush counters.
    /// </summary>
    public void FlushAll(bool keepGlobal, bool local = true)
    {
        for (int i = 0; i < 2 * Entries; i++)
        {
            if (!keepGlobal || (Side[i].Flags & (byte)TlbSideFlags.Global) == 0)
                Invalidate(i);
        }
        if (!keepGlobal)
        {
            LargeAddr = ulong.MaxValue;
            LargeMask = 0;
        }
        if (local)
            FullFlushes++;
    }

    /// <summary>invlpg: drops the page of <paramref name="va"/> (global or not); everything when a large page covers it.</summary>
    public void FlushPage(ulong va, bool local = true)
    {
        if (local)
            PageFlushes++;
        if (LargeAddr != ulong.MaxValue && (va & LargeMask) == LargeAddr)
        {
            // As QEMU: a large page is cached as 4 KiB entries, so invalidating it means flushing everything.
            FlushAll(keepGlobal: false, local);
            return;
        }
        ulong page = va & ~0xfffUL;
        for (int mode = 0; mode < 2; mode++)
        {
            int i = Index(va, (PrivilegeMode)mode);
            if ((Side[i].Flags & (byte)TlbSideFlags.Valid) != 0 && Side[i].Va == page)
                Invalidate(i);
        }
    }

    /// <summary>Drops every page of [start, end) (a full flush above the ceiling).</summary>
    public void FlushRange(ulong start, ulong end, bool local = true)
    {
        if (local)
            RangeFlushes++;
        ulong pages = (end - start + 0xfff) >> 12;
        if (end <= start || pages > SinglePageFlushCeiling)
        {
            FlushAll(keepGlobal: false, local: false);
            return;
        }
        for (ulong va = start & ~0xfffUL; va < end; va += 4096)
            FlushPage(va, local: false);
    }

    /// <summary>Records a large page in the region invlpg must treat as "flush everything" (tlb_add_large_page()).</summary>
    public void AddLargePage(ulong va, ulong size)
    {
        ulong mask = ~(size - 1);
        if (LargeAddr == ulong.MaxValue)
        {
            LargeAddr = va & mask;
            LargeMask = mask;
            return;
        }
        LargeMask &= mask;
        while (((LargeAddr ^ va) & LargeMask) != 0)
            LargeMask <<= 1;
        LargeAddr &= LargeMask;
    }

    /// <summary>The valid entries, for diagnostics.</summary>
    public List<TlbEntryInfo> List()
    {
        var list = new List<TlbEntryInfo>();
        for (int i = 0; i < 2 * Entries; i++)
        {
            var s = Side[i];
            if ((s.Flags & (byte)TlbSideFlags.Valid) == 0)
                continue;
            var f = (TlbSideFlags)s.Flags;
            list.Add(new TlbEntryInfo((PrivilegeMode)(i >> Bits), i & (Entries - 1), s.Va, s.Phys, 1UL << s.Shift,
                true, (f & TlbSideFlags.Writable) != 0, (f & TlbSideFlags.Executable) != 0, (f & TlbSideFlags.Global) != 0));
        }
        return list;
    }
}
