using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Paging.MmuTests;

namespace KmemNative.Tests.Paging;

/// <summary>The per-CPU TLB: hits, staleness until invlpg or a CR3 write, global entries, shootdowns, debug mode.</summary>
public class TlbTests
{
    private static MachineConfig Config(ArchKind arch, int cpus = 2) =>
        new() { Arch = arch, MemBytes = 64UL << 20, Cpus = cpus, TlbStatistics = true };

    /// <summary>Rewrites the PTE of <paramref name="va"/> behind the TLB's back (no flush), as buggy kernel code would.</summary>
    private static void PokePte(Machine m, AddressSpace mm, ulong va, ulong value) =>
        Write(m, m.Arch, m.WalkPageTables(va, mm).Steps[^1].EntryPhys, value);

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_miss_walks_and_fills_then_the_same_page_hits(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch, config: Config(arch));
        mm.MapPage(cpu, UserVa, NewPage(m), PageProt.Shared);
        var before = cpu.TlbStatistics;
        m.ReadVirtualUInt(cpu, UserVa, 8, PrivilegeMode.User);
        m.ReadVirtualUInt(cpu, UserVa + 8, 8, PrivilegeMode.User);
        m.ReadVirtualUInt(cpu, UserVa + 16, 4, PrivilegeMode.User);
        var after = cpu.TlbStatistics;
        Assert.Equal(1, after.Misses - before.Misses);
        Assert.Equal(1, after.Walks - before.Walks);
        Assert.Equal(2, after.Hits - before.Hits);
        var entry = Assert.Single(cpu.TlbEntries, e => e.Virtual == UserVa);
        Assert.Equal(PrivilegeMode.User, entry.Mode);
        Assert.True(entry.Readable);
        Assert.False(entry.Writable);          // the page is still clean: the first write must walk to set D
        Assert.False(entry.Global);
        Done(m, cpu, mm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_stale_entry_survives_a_pte_change_until_invlpg(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch, config: Config(arch));
        ulong p1 = NewPage(m), p2 = NewPage(m);
        m.Memory.WriteUInt32(p1, 0x1111);
        m.Memory.WriteUInt32(p2, 0x2222);
        mm.MapPage(cpu, UserVa, p1, PageProt.Shared);
        Assert.Equal(0x1111UL, m.ReadVirtualUInt(cpu, UserVa, 4, PrivilegeMode.User));
        PokePte(m, mm, UserVa, p2 | (PageProt.Shared & 0xfff));
        Assert.Equal(0x1111UL, m.ReadVirtualUInt(cpu, UserVa, 4, PrivilegeMode.User));   // the TLB still says p1
        m.Invlpg(cpu, UserVa);
        Assert.Equal(0x2222UL, m.ReadVirtualUInt(cpu, UserVa, 4, PrivilegeMode.User));
        Done(m, cpu, mm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_cr3_write_drops_non_global_entries_and_keeps_global_ones_with_pge(ArchKind arch)
    {
        using var m = Machine.Boot(Config(arch));
        var cpu = m.GetCpu(0);
        var mm1 = m.CreateAddressSpace(cpu);
        var mm2 = m.CreateAddressSpace(cpu);
        ulong p1 = NewPage(m), p2 = NewPage(m);
        m.Memory.WriteUInt32(p1, 1);
        m.Memory.WriteUInt32(p2, 2);
        mm1.MapPage(cpu, UserVa, p1, PageProt.Shared);
        mm2.MapPage(cpu, UserVa, p2, PageProt.Shared);
        ulong kva = m.PageOffset + 0x10_0000;           // the linear map: GLOBAL
        m.SwitchMm(cpu, mm1);
        Assert.Equal(1UL, m.ReadVirtualUInt(cpu, UserVa, 4, PrivilegeMode.User));
        m.ReadVirtualUInt(cpu, kva, 4);
        Assert.Contains(cpu.TlbEntries, e => e.Virtual == kva && e.Global);
        m.SwitchMm(cpu, mm2);
        Assert.Equal(2UL, m.ReadVirtualUInt(cpu, UserVa, 4, PrivilegeMode.User));   // no stale translation from mm1
        Assert.Contains(cpu.TlbEntries, e => e.Virtual == kva);                      // survived the CR3 write
        long misses = cpu.TlbStatistics.Misses;
        m.ReadVirtualUInt(cpu, kva, 4);
        Assert.Equal(misses, cpu.TlbStatistics.Misses);
        // Without CR4.PGE a CR3 write flushes global entries too.
        m.SetPagingControl(cpu, cpu.EferNxe ? PagingControl.Wp | PagingControl.Pse | PagingControl.Nxe : PagingControl.Wp | PagingControl.Pse);
        m.ReadVirtualUInt(cpu, kva, 4);
        m.SwitchMm(cpu, mm1);
        Assert.DoesNotContain(cpu.TlbEntries, e => e.Virtual == kva);
        m.SwitchMm(cpu, m.InitMm);
        mm1.Dispose();
        mm2.Dispose();
    }

    [Fact]
    public void Invlpg_inside_a_large_page_flushes_the_whole_tlb()
    {
        using var m = Machine.Boot(Config(ArchKind.X86_64) with { MemBytes = 128UL << 20 });
        var cpu = m.GetCpu(0);
        ulong big = m.PageOffset + (8UL << 20);        // a 2 MiB page of the direct map
        ulong small = m.PageOffset + 0x1000;           // a 4 KiB page of the direct map
        m.ReadVirtualUInt(cpu, big + 0x5000, 1);
        m.ReadVirtualUInt(cpu, small, 1);
        Assert.Equal(2, cpu.TlbEntries.Count);
        m.Invlpg(cpu, big + 0x7000);                   // another 4 KiB of the same large page
        Assert.Empty(cpu.TlbEntries);
    }

    [Fact]
    public void Debug_mode_catches_a_stale_hit()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64, config: Config(ArchKind.X86_64));
        m.TlbDebug = true;
        ulong p1 = NewPage(m), p2 = NewPage(m);
        mm.MapPage(cpu, UserVa, p1, PageProt.Shared);
        m.ReadVirtualUInt(cpu, UserVa, 8, PrivilegeMode.User);
        long hits = cpu.TlbStatistics.Hits;
        m.ReadVirtualUInt(cpu, UserVa, 8, PrivilegeMode.User);                 // a checked hit
        Assert.Equal(hits + 1, cpu.TlbStatistics.Hits);
        PokePte(m, mm, UserVa, p2 | 0x67);
        var e = Assert.Throws<TlbCoherenceException>(() => m.ReadVirtualUInt(cpu, UserVa, 8, PrivilegeMode.User));
        Assert.Contains("missing TLB flush", e.Message);
        m.Invlpg(cpu, UserVa);
        Assert.Equal(p2, m.Translate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User));
        m.TlbDebug = false;
        Done(m, cpu, mm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Vfree_shoots_down_the_entry_another_cpu_cached(ArchKind arch)
    {
        using var m = Machine.Boot(Config(arch));
        ulong va = m.Vmalloc(m.GetCpu(0), 4096);
        Cpu? other = null;
        var t = new Thread(() =>
        {
            other = m.GetCpu(1);
            m.WriteVirtualUInt(other, va, 8, 42);
            m.ReleaseCpu(other);
        });
        t.Start();
        t.Join();
        Assert.Contains(other!.TlbEntries, e => e.Virtual == va);
        m.Vfree(m.GetCpu(0), va);
        Assert.DoesNotContain(other.TlbEntries, e => e.Virtual == va);
        Assert.True(other.TlbStatistics.Shootdowns > 0);
        var cpu1 = m.GetCpu(1);
        Assert.False(m.TryTranslate(cpu1, va, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out var f));
        Assert.True(f.NotPresent);
    }

    [Fact]
    public void Statistics_off_by_default_keep_the_hit_path_uncounted()
    {
        using var m = Machines.X64(32);
        var cpu = m.GetCpu(0);
        Assert.False(m.TlbStatistics);
        ulong va = m.PageOffset + 0x20_0000;
        m.ReadVirtualUInt(cpu, va, 8);
        m.ReadVirtualUInt(cpu, va, 8);
        Assert.Equal((0L, 1L), (cpu.TlbStatistics.Hits, cpu.TlbStatistics.Misses));
        m.TlbStatistics = true;
        m.ReadVirtualUInt(cpu, va, 8);
        m.ReadVirtualUInt(cpu, va, 8);
        Assert.Equal((1L, 2L), (cpu.TlbStatistics.Hits, cpu.TlbStatistics.Misses));
    }

    [Fact]
    public void Control_registers_flush_and_refuse_nx_on_2_level()
    {
        using var m = Machines.I386(32);
        var cpu = m.GetCpu(0);
        Assert.Equal((true, true, true, false), (cpu.Cr0Wp, cpu.Cr4Pge, cpu.Cr4Pse, cpu.EferNxe));
        Assert.Throws<ArgumentException>(() => m.SetPagingControl(cpu, PagingControl.Nxe));
        using var m64 = Machines.X64(32);
        Assert.True(m64.GetCpu(0).EferNxe);
        Assert.Equal(m64.InitMm.Pgd, m64.GetCpu(0).Cr3);
        Assert.Throws<PhysicalAddressException>(() => m64.WriteCr3(m64.GetCpu(0), 0xa0000));
    }
}
