using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>The software MMU: round trips at every page size, the fault table, Accessed/Dirty.</summary>
public class MmuTests
{
    internal const ulong UserVa = 0x0804_8000;

    internal static ulong NewPage(Machine m) => m.AllocPage(Gfp.Kernel | Gfp.Zero)!.Value.PhysAddr;

    /// <summary>A user address space loaded on CPU 0.</summary>
    internal static (Machine M, Cpu Cpu, AddressSpace Mm) UserSpace(ArchKind arch, ulong mib = 64, MachineConfig? config = null)
    {
        var m = config is null ? Machines.Boot(arch, mib) : Machine.Boot(config);
        var cpu = m.GetCpu(0);
        var mm = m.CreateAddressSpace(cpu);
        m.SwitchMm(cpu, mm);
        return (m, cpu, mm);
    }

    internal static void Done(Machine m, Cpu cpu, AddressSpace mm)
    {
        m.SwitchMm(cpu, m.InitMm);
        mm.Dispose();
        m.Dispose();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Map_translate_unmap_a_4K_page(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch);
        ulong phys = NewPage(m);
        mm.MapPage(cpu, UserVa, phys, PageProt.Shared);
        Assert.Equal(phys + 0x123, m.Translate(cpu, UserVa + 0x123, MemoryAccess.Read, PrivilegeMode.User));
        Assert.Equal(phys + 0xff8, m.Translate(cpu, UserVa + 0xff8, MemoryAccess.Write, PrivilegeMode.User));
        Assert.Equal(phys + 8, m.TranslatePgd(mm.Pgd, UserVa + 8).Physical);
        ulong old = mm.UnmapPage(cpu, UserVa);
        Assert.Equal(phys, old & ~0xfffUL & (arch == ArchKind.I386 ? 0xffff_f000UL : Pte64.FrameMask));
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out var f));
        Assert.True(f.NotPresent);
        Assert.Equal(UserVa, f.Cr2);
        Done(m, cpu, mm);
    }

    [Fact]
    public void Map_translate_unmap_a_2M_page_on_x86_64()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64, 128);
        var block = m.AllocPages(cpu, Gfp.Kernel, 9)!.Value;   // 2 MiB aligned by the buddy allocator
        ulong va = 0x4000_0000;
        mm.MapPage(cpu, va, block.PhysAddr, PageProt.Shared, 2UL << 20);
        var t = m.TranslatePgd(mm.Pgd, va + 0x1f_fff8, MemoryAccess.Write, PrivilegeMode.User);
        Assert.Equal(block.PhysAddr + 0x1f_fff8, t.Physical);
        Assert.Equal(2, t.Level);
        Assert.Equal(2UL << 20, t.PageSize);
        Assert.Equal(2, mm.LookupPte(va).Level);
        Assert.NotEqual(0UL, mm.UnmapPage(cpu, va));
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Read, PrivilegeMode.User, out _, out _));
        m.FreePages(cpu, block, 9);
        Done(m, cpu, mm);
    }

    [Fact]
    public void Map_translate_unmap_a_1G_page_on_x86_64()
    {
        // RAM [1 GiB, 2 GiB) exists on a 2304 MiB machine; the page is only mapped, never allocated.
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64, 2304);
        ulong va = 0x80_0000_0000;
        mm.MapPage(cpu, va, 1UL << 30, PageProt.ReadOnly, 1UL << 30);
        var t = m.TranslatePgd(mm.Pgd, va + 0x3fff_fff0, MemoryAccess.Read, PrivilegeMode.User);
        Assert.Equal((1UL << 30) + 0x3fff_fff0, t.Physical);
        Assert.Equal(3, t.Level);
        Assert.Equal(1UL << 30, t.PageSize);
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Write, PrivilegeMode.User, out _, out var f));
        Assert.Equal(PfErrorCode.Prot | PfErrorCode.Write | PfErrorCode.User, f.ErrorCode);
        mm.UnmapPage(cpu, va);
        Assert.Throws<MappingException>(() => mm.MapPage(cpu, va + 4096, 1UL << 30, PageProt.ReadOnly, 1UL << 30)); // misaligned
        Done(m, cpu, mm);
    }

    [Fact]
    public void Map_translate_unmap_a_4M_page_on_i386()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.I386, 128);
        var block = m.AllocPages(cpu, Gfp.Kernel, 10)!.Value;
        mm.MapPage(cpu, 0x4000_0000, block.PhysAddr, PageProt.Shared, 4UL << 20);
        var t = m.TranslatePgd(mm.Pgd, 0x403f_f000, MemoryAccess.Read, PrivilegeMode.User);
        Assert.Equal(block.PhysAddr + 0x3f_f000, t.Physical);
        Assert.Equal((2, 4UL << 20), (t.Level, t.PageSize));
        Assert.Throws<MappingException>(() => mm.MapPage(cpu, 0x8000_0000, block.PhysAddr, PageProt.Shared, 2UL << 20)); // no 2 MiB pages
        mm.UnmapPage(cpu, 0x4000_0000);
        m.FreePages(cpu, block, 10);
        Done(m, cpu, mm);
    }

    [Fact]
    public void Without_cr4_pse_the_ps_bit_of_a_pde_is_ignored()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.I386, 64);
        ulong phys = NewPage(m);
        mm.MapPage(cpu, UserVa, phys, PageProt.Shared);
        // Set PS in the PDE that points to the page table: with PSE it is a 4 MiB page, without it a table.
        var walk = m.WalkPageTables(UserVa, mm);
        ulong pdePhys = walk.Steps[0].EntryPhys;
        m.Memory.WriteUInt32(pdePhys, m.Memory.ReadUInt32(pdePhys) | 0x80);
        m.FlushTlbAll();
        // With PSE the entry is a 4 MiB leaf: the table address bits now read as bit 21 (reserved), PSE-36 bits 20:13
        // and address bits 31:22.
        var pde = new Pte32(m.Memory.ReadUInt32(pdePhys));
        bool ok = m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out ulong withPse, out var f);
        if ((pde.Value & Pte32.LargeReservedMask) != 0)
            Assert.Equal((false, PfErrorCode.Prot | PfErrorCode.User | PfErrorCode.Rsvd), (ok, f.ErrorCode));
        else if (!m.Memory.IsRam(pde.FrameAddress(2) + (UserVa & 0x3f_f000)))
            Assert.Equal((false, FaultKind.MachineCheck), (ok, f.Kind));
        else
            Assert.Equal(pde.FrameAddress(2) + (UserVa & 0x3f_ffff), withPse);
        m.SetPagingControl(cpu, PagingControl.Wp | PagingControl.Pge);    // CR4.PSE off
        Assert.Equal(phys, m.Translate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User));
        m.SetPagingControl(cpu, PagingControl.Wp | PagingControl.Pge | PagingControl.Pse);
        m.Memory.WriteUInt32(pdePhys, m.Memory.ReadUInt32(pdePhys) & ~0x80u);
        Done(m, cpu, mm);
    }

    public static TheoryData<string, ArchKind, MemoryAccess, PrivilegeMode, ulong, bool, uint> FaultCases => new()
    {
        // name, arch, access, mode, leaf protection, CR0.WP, expected error code (0xffff = no fault)
        { "user read of a supervisor page", ArchKind.X86_64, MemoryAccess.Read, PrivilegeMode.User, PageProt.Kernel, true, 0x5 },
        { "user read of a supervisor page", ArchKind.I386, MemoryAccess.Read, PrivilegeMode.User, PageProt.Kernel, true, 0x5 },
        { "user write of a supervisor page", ArchKind.X86_64, MemoryAccess.Write, PrivilegeMode.User, PageProt.Kernel, true, 0x7 },
        { "kernel write to read-only with WP", ArchKind.X86_64, MemoryAccess.Write, PrivilegeMode.Supervisor, PageProt.ReadOnly, true, 0x3 },
        { "kernel write to read-only with WP", ArchKind.I386, MemoryAccess.Write, PrivilegeMode.Supervisor, PageProt.ReadOnly, true, 0x3 },
        { "kernel write to read-only without WP", ArchKind.X86_64, MemoryAccess.Write, PrivilegeMode.Supervisor, PageProt.ReadOnly, false, 0xffff },
        { "kernel write to read-only without WP", ArchKind.I386, MemoryAccess.Write, PrivilegeMode.Supervisor, PageProt.ReadOnly, false, 0xffff },
        { "user write to read-only without WP", ArchKind.X86_64, MemoryAccess.Write, PrivilegeMode.User, PageProt.ReadOnly, false, 0x7 },
        { "user write to read-only with WP", ArchKind.I386, MemoryAccess.Write, PrivilegeMode.User, PageProt.ReadOnly, true, 0x7 },
        { "user exec of an NX page", ArchKind.X86_64, MemoryAccess.Execute, PrivilegeMode.User, PageProt.Shared, true, 0x15 },
        { "kernel exec of an NX page", ArchKind.X86_64, MemoryAccess.Execute, PrivilegeMode.Supervisor, PageProt.Kernel, true, 0x11 },
        { "user exec of an executable page", ArchKind.X86_64, MemoryAccess.Execute, PrivilegeMode.User, PageProt.SharedExec, true, 0xffff },
        { "exec on 2-level paging (no NX)", ArchKind.I386, MemoryAccess.Execute, PrivilegeMode.User, PageProt.Shared, true, 0xffff },
        { "user read of a user page", ArchKind.I386, MemoryAccess.Read, PrivilegeMode.User, PageProt.ReadOnly, true, 0xffff },
    };

    [Theory]
    [MemberData(nameof(FaultCases))]
    public void Protection_faults_carry_the_x86_error_code(string name, ArchKind arch, MemoryAccess access, PrivilegeMode mode, ulong prot, bool wp, uint code)
    {
        var (m, cpu, mm) = UserSpace(arch);
        ulong phys = NewPage(m);
        mm.MapPage(cpu, UserVa, phys, prot);
        uint ctl = PagingControl.Pge | (wp ? PagingControl.Wp : 0) | PagingControl.Pse | (arch == ArchKind.X86_64 ? PagingControl.Nxe : 0);
        m.SetPagingControl(cpu, ctl);
        bool ok = m.TryTranslate(cpu, UserVa + 0x10, access, mode, out ulong pa, out var f);
        if (code == 0xffff)
        {
            Assert.True(ok, name);
            Assert.Equal(phys + 0x10, pa);
        }
        else
        {
            Assert.False(ok, name);
            Assert.Equal(FaultKind.PageFault, f.Kind);
            Assert.Equal(code, (uint)f.ErrorCode);
            Assert.Equal(UserVa + 0x10, f.Cr2);
            Assert.Equal(1, f.Level);
        }
        Done(m, cpu, mm);
    }

    [Fact]
    public void Not_present_at_each_level_of_4_level_paging()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64);
        const ulong va = 0x0000_1000_0000_0000; // PML4 slot 32
        void Expect(ulong a, int level, MemoryAccess access, PrivilegeMode mode, uint code)
        {
            Assert.False(m.TryTranslate(cpu, a, access, mode, out _, out var f));
            Assert.Equal((FaultKind.PageFault, level, code, a), (f.Kind, f.Level, (uint)f.ErrorCode, f.Cr2));
        }
        Expect(va, 4, MemoryAccess.Read, PrivilegeMode.Supervisor, 0x0);
        mm.MapPage(cpu, va, NewPage(m), PageProt.Shared);
        Expect(va + (1UL << 30), 3, MemoryAccess.Write, PrivilegeMode.User, 0x6);   // another PUD entry
        Expect(va + (2UL << 20), 2, MemoryAccess.Read, PrivilegeMode.User, 0x4);    // another PMD entry
        Expect(va + 4096, 1, MemoryAccess.Write, PrivilegeMode.Supervisor, 0x2);    // another PTE
        Expect(va + 4096, 1, MemoryAccess.Execute, PrivilegeMode.User, 0x14);       // I/D with NXE
        Done(m, cpu, mm);
    }

    [Fact]
    public void Not_present_at_each_level_of_2_level_paging()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.I386);
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Write, PrivilegeMode.User, out _, out var f));
        Assert.Equal((2, 0x6u), (f.Level, (uint)f.ErrorCode));
        mm.MapPage(cpu, UserVa, NewPage(m), PageProt.Shared);
        Assert.False(m.TryTranslate(cpu, UserVa + 4096, MemoryAccess.Execute, PrivilegeMode.User, out _, out f));
        Assert.Equal((1, 0x4u), (f.Level, (uint)f.ErrorCode));     // no I/D bit without NX
        Done(m, cpu, mm);
    }

    [Fact]
    public void Reserved_bits_raise_rsvd_faults()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64);
        ulong phys = NewPage(m);
        mm.SetPte(cpu, UserVa, phys | 0x67 | (1UL << 50));           // above MAXPHYADDR 46
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out var f));
        Assert.Equal(0xdu, (uint)f.ErrorCode);                          // P | U | RSVD
        mm.SetPte(cpu, UserVa, phys | 0x67 | (1UL << 63));             // NX while EFER.NXE is clear
        m.SetPagingControl(cpu, PagingControl.Wp | PagingControl.Pge | PagingControl.Pse);
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out f));
        Assert.Equal(0xbu, (uint)f.ErrorCode);                          // P | W | RSVD
        m.SetPagingControl(cpu, PagingControl.Wp | PagingControl.Pge | PagingControl.Pse | PagingControl.Nxe);
        Assert.True(m.TryTranslate(cpu, UserVa, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out _));
        // PS in a PML4E is reserved.
        var walk = m.WalkPageTables(UserVa, mm);
        ulong pml4e = walk.Steps[0].EntryPhys;
        m.Memory.WriteUInt64(pml4e, m.Memory.ReadUInt64(pml4e) | 0x80);
        m.FlushTlbAll();
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out f));
        Assert.Equal((0x9u, 4), ((uint)f.ErrorCode, f.Level));
        m.Memory.WriteUInt64(pml4e, m.Memory.ReadUInt64(pml4e) & ~0x80UL);
        // Bits 20:13 of a 2 MiB leaf are reserved.
        ulong pmde = m.WalkPageTables(UserVa, mm).Steps[2].EntryPhys;
        ulong saved = m.Memory.ReadUInt64(pmde);
        m.Memory.WriteUInt64(pmde, 0x20_0000 | 0xe7 | (1UL << 13));
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out f));
        Assert.Equal((0xdu, 2), ((uint)f.ErrorCode, f.Level));
        m.Memory.WriteUInt64(pmde, saved);
        Done(m, cpu, mm);
    }

    [Fact]
    public void A_reserved_bit_in_a_4M_pde_faults_on_i386()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.I386);
        mm.MapPage(cpu, UserVa, NewPage(m), PageProt.Shared);
        ulong pde = m.WalkPageTables(UserVa, mm).Steps[0].EntryPhys;
        uint saved = m.Memory.ReadUInt32(pde);
        m.Memory.WriteUInt32(pde, 0x0040_00e7 | (1u << 21));
        m.FlushTlbAll();
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out var f));
        Assert.Equal((0xdu, 2), ((uint)f.ErrorCode, f.Level));
        m.Memory.WriteUInt32(pde, 0x0040_00e7);
        Assert.Equal(0x0040_0000UL + (UserVa & 0x3f_ffff), m.Translate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User));
        m.Memory.WriteUInt32(pde, saved);
        Done(m, cpu, mm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Non_canonical_addresses_raise_general_protection(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var cpu = m.GetCpu(0);
        ulong bad = arch == ArchKind.I386 ? 0x1_0000_0000UL : 0x0000_8000_0000_0000UL;
        Assert.False(m.TryTranslate(cpu, bad, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out var f));
        Assert.Equal(FaultKind.GeneralProtection, f.Kind);
        Assert.Equal(0UL, f.Cr2);
        var e = Assert.Throws<PageFaultException>(() => m.ReadVirtualUInt(cpu, bad, 8));
        Assert.StartsWith("general protection fault, probably for non-canonical address", e.Message);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Entries_pointing_outside_ram_raise_a_machine_check(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch, 32);
        ulong beyond = m.Memory.Size + 0x10_0000;
        mm.SetPte(cpu, UserVa, beyond | 0x67);
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out var f));
        Assert.Equal((FaultKind.MachineCheck, beyond), (f.Kind, f.Physical));
        mm.SetPte(cpu, UserVa, 0xa0000 | 0x67);                       // the legacy VGA hole is no RAM either
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out f));
        Assert.Equal(FaultKind.MachineCheck, f.Kind);
        // A table pointer outside RAM: the level-2 entry now points past the arena, and into a hole.
        ulong pde = m.WalkPageTables(UserVa, mm).Steps[^2].EntryPhys;
        ulong saved = arch == ArchKind.I386 ? m.Memory.ReadUInt32(pde) : m.Memory.ReadUInt64(pde);
        void Put(ulong v) { if (arch == ArchKind.I386) m.Memory.WriteUInt32(pde, (uint)v); else m.Memory.WriteUInt64(pde, v); }
        Put((arch == ArchKind.I386 ? 0xfff0_0000UL : 1UL << 45) | 0x67);
        m.FlushTlbAll();
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out f));
        Assert.Equal((FaultKind.MachineCheck, 2), (f.Kind, f.Level));
        Put(0xa0000 | 0x67);
        Assert.False(m.TryTranslate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User, out _, out f));
        Assert.Equal((FaultKind.MachineCheck, 0xa0000UL), (f.Kind, f.Physical));
        Put(saved);
        Done(m, cpu, mm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Accessed_is_set_on_every_level_and_dirty_on_the_leaf_on_write(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch);
        ulong phys = NewPage(m);
        ulong prot = PageProt.Shared & ~(ulong)(PteFlags.Accessed);
        mm.SetPte(cpu, UserVa, phys | prot);
        // Clear A in the upper levels too, so the walk has to set them.
        var steps = m.WalkPageTables(UserVa, mm).Steps;
        foreach (var s in steps.Take(steps.Count - 1))
            Write(m, arch, s.EntryPhys, s.Value & ~(ulong)PteFlags.Accessed);
        Assert.True(m.Peek(mm, UserVa).IsMapped);
        Assert.All(m.WalkPageTables(UserVa, mm).Steps, s => Assert.Equal(0UL, s.Value & (ulong)PteFlags.Accessed)); // peek changes nothing
        m.Translate(cpu, UserVa, MemoryAccess.Read, PrivilegeMode.User);
        var after = m.WalkPageTables(UserVa, mm).Steps;
        Assert.All(after, s => Assert.NotEqual(0UL, s.Value & (ulong)PteFlags.Accessed));
        Assert.Equal(0UL, after[^1].Value & (ulong)PteFlags.Dirty);
        // The read filled the TLB without write permission (the page is clean): the write misses and sets D.
        m.WriteVirtualUInt(cpu, UserVa, 4, 0xdeadbeef, PrivilegeMode.User);
        Assert.NotEqual(0UL, m.WalkPageTables(UserVa, mm).Steps[^1].Value & (ulong)PteFlags.Dirty);
        Assert.Equal(0xdeadbeefu, m.Memory.ReadUInt32(phys));
        // A faulting access sets nothing: write to a read-only clean page.
        mm.SetPte(cpu, UserVa + 4096, NewPage(m) | (PageProt.ReadOnly & ~(ulong)PteFlags.Accessed));
        Assert.False(m.TryTranslate(cpu, UserVa + 4096, MemoryAccess.Write, PrivilegeMode.User, out _, out _));
        Assert.Equal(0UL, mm.LookupPte(UserVa + 4096).Entry & (ulong)(PteFlags.Accessed | PteFlags.Dirty));
        Done(m, cpu, mm);
    }

    internal static void Write(Machine m, ArchKind arch, ulong phys, ulong value)
    {
        if (arch == ArchKind.I386)
            m.Memory.WriteUInt32(phys, (uint)value);
        else
            m.Memory.WriteUInt64(phys, value);
    }

    [Fact]
    public void Accessed_and_dirty_updates_from_many_cpus_lose_nothing()
    {
        using var m = Machines.X64(64, cpus: 4);
        var mm = m.CreateAddressSpace(m.GetCpu(0));
        const int pages = 64;
        for (int i = 0; i < pages; i++)
            mm.SetPte(m.GetCpu(0), UserVa + (ulong)i * 4096, NewPage(m) | 0x8000_0000_0000_0007UL); // P|RW|U|NX, A and D clear
        m.ReleaseCpu(m.GetCpu(0));
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var threads = Enumerable.Range(0, 4).Select(c => new Thread(() =>
        {
          try
          {
            var cpu = m.GetCpu(c);
            for (int round = 0; round < 50; round++)
            {
                m.FlushTlbAll();
                for (int i = 0; i < pages; i++)
                    m.TranslatePgd(mm.Pgd, UserVa + (ulong)i * 4096, c % 2 == 0 ? MemoryAccess.Write : MemoryAccess.Read, PrivilegeMode.User);
            }
            m.ReleaseCpu(cpu);
          }
          catch (Exception e)
          {
              errors.Enqueue(e);
          }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
        for (int i = 0; i < pages; i++)
        {
            ulong e = mm.LookupPte(UserVa + (ulong)i * 4096).Entry;
            Assert.Equal(0x8000_0000_0000_0067UL, e & 0xfff0_0000_0000_0fffUL);   // every other bit intact
        }
        mm.Dispose();
    }
}

/// <summary>Test helpers on the machine.</summary>
internal static class PagingTestExtensions
{
    /// <summary>A side-effect-free walk of <paramref name="va"/> in <paramref name="mm"/>.</summary>
    public static PageWalk Peek(this Machine m, AddressSpace mm, ulong va) => m.WalkPageTables(va, mm);
}
