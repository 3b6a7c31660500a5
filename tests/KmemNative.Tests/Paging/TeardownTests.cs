using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>Address spaces: the kernel half is shared, page tables are buddy pages typed PGTY_table, teardown returns them all.</summary>
public class TeardownTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Tearing_down_an_address_space_returns_every_page_table(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 128);
        var cpu = m.GetCpu(0);
        long allocated = m.CheckConsistency().Total.Allocated;
        var mm = m.CreateAddressSpace(cpu);
        Assert.Equal(1, mm.PageTablePages);
        Assert.True(m.ReadPage(mm.Pgd >> 12).IsPageTable);
        var frames = Enumerable.Range(0, 4).Select(_ => m.AllocPage(Gfp.HighUser | Gfp.Zero)!.Value).ToList();
        // Pages in three different page tables, one large page, up to the top of user space.
        ulong top = arch == ArchKind.I386 ? 0xbfff_f000UL : X86_64.TaskSizeMax - 4096;
        mm.MapPage(cpu, 0x1000, frames[0].PhysAddr, PageProt.Shared);
        mm.MapPage(cpu, 0x0800_0000, frames[1].PhysAddr, PageProt.ReadOnly);
        mm.MapPage(cpu, top, frames[2].PhysAddr, PageProt.Shared);
        int bigOrder = arch == ArchKind.I386 ? 10 : 9;                    // a 4 MiB / 2 MiB block: naturally aligned
        var big = m.AllocPages(cpu, Gfp.HighUser, bigOrder)!.Value;
        mm.MapPage(cpu, 0x4000_0000, big.PhysAddr, PageProt.ReadOnly, 4096UL << bigOrder);
        mm.MapPage(cpu, 0x4000_0000 + (4096UL << bigOrder), frames[3].PhysAddr, PageProt.ReadOnly);
        Assert.Equal(frames[2].PhysAddr, m.TranslatePgd(mm.Pgd, top, MemoryAccess.Read, PrivilegeMode.User).Physical);
        long tables = m.NodeState(NodeStat.NrPageTablePages);
        Assert.Equal(mm.PageTablePages, tables);
        Assert.True(tables >= (arch == ArchKind.I386 ? 4 : 8));
        Assert.Throws<MappingException>(() => mm.MapPage(cpu, m.PageOffset, frames[0].PhysAddr, PageProt.Shared)); // kernel half
        Assert.Throws<MappingException>(() => mm.MapPage(cpu, 0x1000, frames[1].PhysAddr, PageProt.Shared));     // already mapped
        // The kernel half is shared: kernel addresses translate the same through this pgd.
        Assert.Equal(0x12345UL, m.TranslatePgd(mm.Pgd, m.PageOffset + 0x12345).Physical);
        m.SwitchMm(cpu, mm);
        Assert.Throws<KmemException>(() => mm.Dispose());                 // still loaded
        m.SwitchMm(cpu, m.InitMm);
        mm.Dispose();
        Assert.True(mm.IsDisposed);
        Assert.Equal(0, m.NodeState(NodeStat.NrPageTablePages));
        frames.ForEach(p => m.FreePages(cpu, p, 0));
        m.FreePages(cpu, big, bigOrder);
        Assert.Equal(allocated, m.CheckConsistency().Total.Allocated);
        Assert.Equal(0UL, m.ReadPage(0).Mapping);
    }

    [Fact]
    public void A_fault_handler_can_map_the_page_and_have_the_access_retried()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var mm = m.CreateAddressSpace(cpu);
        var faults = new List<PageFault>();
        var pages = new List<PhysMem.Page>();
        // Demand paging in four lines: allocate a zeroed page, map it, retry.
        mm.FaultHandler = (Cpu c, in PageFault f) =>
        {
            faults.Add(f);
            if (!f.NotPresent || f.Mode != PrivilegeMode.User)
                return FaultResolution.Unhandled;
            var p = m.AllocPage(Gfp.HighUser | Gfp.Zero)!.Value;
            pages.Add(p);
            mm.MapPage(c, f.Address & ~0xfffUL, p.PhysAddr, PageProt.Shared);
            return FaultResolution.Retry;
        };
        m.SwitchMm(cpu, mm);
        m.WriteVirtualUInt(cpu, 0x40_0010, 8, 77, PrivilegeMode.User);
        Assert.Equal(77UL, m.ReadVirtualUInt(cpu, 0x40_0010, 8, PrivilegeMode.User));
        Assert.Single(faults);
        Assert.Equal((PfErrorCode.Write | PfErrorCode.User, 0x40_0010UL), (faults[0].ErrorCode, faults[0].Cr2));
        // A fault the handler does not resolve still raises.
        var e = Assert.Throws<PageFaultException>(() => m.ReadVirtualUInt(cpu, 0x50_0000, 8, PrivilegeMode.Supervisor));
        Assert.Equal(0x50_0000UL, e.Address);
        m.SwitchMm(cpu, m.InitMm);
        mm.Dispose();
        pages.ForEach(p => m.FreePages(cpu, p, 0));
        m.CheckConsistency();
    }
}
