using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class BadPageTests
{
    /// <summary>Runs <paramref name="bad"/> and checks it raised a bad-page report and changed nothing.</summary>
    private static BadPageException AssertRefusedAndUnchanged(Machine m, Action bad)
    {
        var before = Machines.FreeAreas(m);
        var countsBefore = m.CheckConsistency();
        var e = Assert.Throws<BadPageException>(bad);
        Assert.StartsWith("BUG: Bad page state in process ", e.Report);
        Assert.Contains("page dumped because: " + e.Reason, e.Report);
        Assert.Equal(before, Machines.FreeAreas(m));
        var countsAfter = m.CheckConsistency();
        Assert.Equal(countsBefore.Total, countsAfter.Total);
        return e;
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Double_free_of_an_order0_page_is_caught_on_the_pcp_list(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        m.FreePages(page, 0);
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(page, 0));
        Assert.Contains("already free", e.Reason);
        Assert.Equal(page.Pfn, e.Pfn);
        Assert.Contains($"pfn:{page.Pfn:x5}", e.Report);
        Assert.Contains("page: refcount:0 mapcount:0", e.Report);
        Assert.Contains("raw: ", e.Report);
    }

    [Fact]
    public void Double_free_of_a_merged_block_is_caught()
    {
        using var m = Machines.X64(64);
        var page = m.AllocPages(Gfp.Kernel, 5)!.Value;
        m.FreePages(page, 5);
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(page, 5));
        Assert.Contains("already free", e.Reason);
        Assert.Contains("page_type: f0(buddy)", e.Report);
    }

    [Fact]
    public void Freeing_with_the_wrong_order_is_refused_and_the_right_order_still_works()
    {
        using var m = Machines.X64(64);
        var page = m.AllocPages(Gfp.Kernel, 2)!.Value;
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(page, 1));
        Assert.Equal("freed with order 1, but allocated with order 2", e.Reason);
        m.FreePages(page, 2);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
    }

    [Fact]
    public void Freeing_a_tail_page_is_refused()
    {
        using var m = Machines.I386(32);
        var page = m.AllocPages(Gfp.Kernel, 3)!.Value;
        var tail = m.PfnToPage(page.Pfn + 3);
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(tail, 0));
        Assert.Equal("freeing a tail page of an allocation", e.Reason);
        m.FreePages(page, 3);
    }

    [Fact]
    public void Freeing_a_reserved_page_is_refused()
    {
        using var m = Machines.X64(64);
        var kernel = m.PfnToPage(m.Image.Start >> 12);
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(kernel, 0));
        Assert.Contains("PG_reserved", e.Reason);
        Assert.Contains("reserved", e.Report);                       // %pGp shows the flag by name
        var hole = m.PfnToPage(0xa0);                                 // inside the legacy 640K-1M hole
        Assert.Contains("memory hole", AssertRefusedAndUnchanged(m, () => m.FreePages(hole, 0)).Reason);
    }

    [Fact]
    public void Pfn_outside_ram_is_refused_by_every_entry_point()
    {
        using var m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 32UL << 20 });
        var cpu = m.ThisCpu;
        var e = AssertRefusedAndUnchanged(m, () => m.FreePagesPfn(cpu, m.MaxPfn + 5, 0));
        Assert.Equal("pfn outside RAM", e.Reason);
        Assert.Throws<PhysicalAddressException>(() => m.PfnToPage(m.MaxPfn));
        Assert.Throws<VirtualAddressException>(() => m.FreePages(m.PageOffset + (m.MaxPfn << 12), 0));
        Assert.Throws<PhysicalAddressException>(() => m.Memory.ReadUInt64(m.Memory.Size));
        Assert.Throws<PhysicalAddressException>(() => m.Memory.ReadByte(0xa0000));   // hole: not RAM
    }

    [Fact]
    public void Freeing_a_page_with_state_left_behind_reports_the_kernels_reason()
    {
        using var m = Machine.Boot<I386>(new MachineConfig { Arch = ArchKind.I386, MemBytes = 32UL << 20 });
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        // Leave a mapping behind, as a buggy user of the page would.
        unsafe
        {
            var desc = m.MemMap.Desc(page.Pfn);
            MemMap<I386>.SetMapping(desc, 0xc1234560);
        }
        var e = AssertRefusedAndUnchanged(m, () => m.FreePages(page, 0));
        Assert.Equal("non-NULL mapping", e.Reason);
        Assert.Contains("mapping:c1234560", e.Report);
        unsafe { MemMap<I386>.SetMapping(m.MemMap.Desc(page.Pfn), 0); }
        m.FreePages(page, 0);
    }

    [Fact]
    public void Page_of_another_machine_is_refused()
    {
        using var a = Machines.I386(16);
        using var b = Machines.I386(16);
        var page = a.AllocPages(Gfp.Kernel, 0)!.Value;
        Assert.Throws<KmemException>(() => b.FreePages(page, 0));
        a.FreePages(page, 0);
    }

    [Fact]
    public void Corrupted_free_list_link_raises_instead_of_leaving_the_arena()
    {
        using var m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 32UL << 20 });
        var cpu = m.ThisCpu;
        var page = m.AllocPages(cpu, Gfp.Kernel, 0)!.Value;
        m.FreePages(cpu, page, 0);
        // Scribble a wild pointer over the free page's pcp_list.next, as a use-after-free would.
        unsafe { MemMap<X86_64>.SetCompoundHeadWord(m.MemMap.Desc(page.Pfn), 0x4141414141414141); }
        Assert.ThrowsAny<KmemException>(() =>
        {
            for (int i = 0; i < 100; i++)
                m.AllocPages(cpu, Gfp.Kernel, 0);
        });
        Assert.Throws<ConsistencyException>(() => m.CheckConsistency());
    }

    [Fact]
    public void Disposed_machine_refuses_calls()
    {
        var m = Machines.I386(16);
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        m.Dispose();
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.AllocPages(Gfp.Kernel, 0));
        Assert.Throws<ObjectDisposedException>(() => m.FreePages(page, 0));
        Assert.Throws<ObjectDisposedException>(() => m.ReadPage(1));
    }
}
