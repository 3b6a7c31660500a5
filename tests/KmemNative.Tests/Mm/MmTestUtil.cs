using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;

namespace KmemNative.Tests.Mm;

/// <summary>Helpers for the process tests.</summary>
internal static class MmTestUtil
{
    public const Prot RW = Prot.Read | Prot.Write;
    public const MapFlags Anon = MapFlags.Private | MapFlags.Anonymous;

    /// <summary>mmap of private anonymous memory that must succeed.</summary>
    public static ulong MapAnon(this Process p, Cpu cpu, ulong len, Prot prot = RW, ulong addr = 0, MapFlags extra = 0) =>
        p.Mmap(cpu, addr, len, prot, Anon | extra).Unwrap();

    /// <summary>A 64-bit value written as the process (asserting no signal).</summary>
    public static void Poke(this Process p, Cpu cpu, ulong va, ulong value)
    {
        var r = p.Write(cpu, va, BitConverter.GetBytes(value));
        Assert.True(r.IsOk, r.Signal?.ToString());
    }

    /// <summary>A 64-bit value read as the process (asserting no signal).</summary>
    public static ulong Peek(this Process p, Cpu cpu, ulong va)
    {
        var b = new byte[8];
        var r = p.Read(cpu, va, b);
        Assert.True(r.IsOk, r.Signal?.ToString());
        return BitConverter.ToUInt64(b);
    }

    /// <summary>The PTE of a user address (0 when none).</summary>
    public static ulong Pte(this Process p, ulong va)
    {
        var (e, level) = p.AddressSpace.LookupPte(va);
        return level == 1 ? e : 0;
    }

    /// <summary>The frame a user address maps (its PTE's address bits).</summary>
    public static ulong Pfn(this Process p, Machine m, ulong va) =>
        (p.Pte(va) & (m.Arch == KmemNative.Arch.ArchKind.X86_64 ? 0x000f_ffff_ffff_f000UL : 0xffff_f000UL)) >> 12;

    /// <summary>kmem_cache_shrink() of every cache: CPU slabs flushed, empty slabs freed.</summary>
    public static void ShrinkAll(Machine m)
    {
        var cpu = m.ThisCpu;
        foreach (var c in m.KmemCaches)
            m.KmemCacheShrink(cpu, c);
        m.DrainAllPages();
    }

    /// <summary>Node counters that only ever grow (events kept in the node's vm_stat): left out of the comparison.</summary>
    private static readonly HashSet<NodeStat> s_cumulative =
    [
        NodeStat.NrDirtied, NodeStat.NrWritten, NodeStat.WorkingsetRefaultAnon, NodeStat.WorkingsetRefaultFile,
        NodeStat.WorkingsetActivateAnon, NodeStat.WorkingsetActivateFile, NodeStat.WorkingsetRestoreAnon,
        NodeStat.WorkingsetRestoreFile, NodeStat.NrVmscanWrite, NodeStat.NrVmscanImmediateReclaim,
    ];

    /// <summary>What the teardown tests compare: allocated pages, active slab objects per cache, the node counters (not the cumulative ones).</summary>
    public static (long Allocated, Dictionary<string, long> Objects, long[] Node) Snapshot(Machine m)
    {
        ShrinkAll(m);
        var report = m.CheckConsistency();
        var objects = m.KmemCaches.ToDictionary(c => c.Name, c => m.Slabinfo(c).ActiveObjs);
        var node = Enum.GetValues<NodeStat>().Where(s => !s_cumulative.Contains(s)).Select(m.NodeState).ToArray();
        return (report.Total.Allocated, objects, node);
    }
}
