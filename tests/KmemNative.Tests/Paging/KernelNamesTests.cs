using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>pgd_offset() ... pte_offset_kernel(), set_pte(), pmd_populate(): folded levels as the kernel folds them.</summary>
public unsafe class KernelNamesTests
{
    [Fact]
    public void Two_level_paging_folds_p4d_pud_and_pmd_into_the_pgd_entry()
    {
        using var m = Machines.I386(64);
        var t = ((Machine<I386>)m).Paging.Tables;
        ulong va = m.PageOffset + 0x1234;
        byte* pgd = t.PgdOffset(m.InitMm.Pgd, va);
        byte* p4d = t.P4dOffset(pgd, va);
        byte* pud = t.PudOffset(p4d, va);
        byte* pmd = t.PmdOffset(pud, va);
        Assert.True(pgd == p4d && p4d == pud && pud == pmd);
        byte* pte = t.PteOffsetKernel(pmd, va);
        Assert.Equal(0x1163UL, PageTables<I386>.Load(pte));                 // __PAGE_KERNEL of physical 0x1000
        Assert.Equal(m.WalkPageTables(va).Steps[^1].EntryPhys, t.PhysOf(pte));
    }

    [Fact]
    public void Four_level_paging_folds_only_p4d_and_builds_a_mapping_by_the_kernels_steps()
    {
        using var m = Machines.X64(64);
        var t = ((Machine<X86_64>)m).Paging.Tables;
        var cpu = m.GetCpu(0);
        var mm = m.CreateAddressSpace(cpu);
        const ulong va = 0x7f00_0000_0000;
        byte* pgd = t.PgdOffset(mm.Pgd, va);
        byte* p4d = t.P4dOffset(pgd, va);
        Assert.True(pgd == p4d);
        Assert.True(t.PudOffset(p4d, va) == null);                          // nothing below yet
        // pud_alloc / pmd_alloc / pte_alloc by hand, as __pud_alloc() and friends do.
        ulong pud = t.AllocTable(cpu, user: true), pmd = t.AllocTable(cpu, user: true), pte = t.AllocTable(cpu, user: true);
        PageTables<X86_64>.P4dPopulate(p4d, pud);
        byte* pudp = t.PudOffset(p4d, va);
        PageTables<X86_64>.PudPopulate(pudp, pmd);
        byte* pmdp = t.PmdOffset(pudp, va);
        PageTables<X86_64>.PmdPopulate(pmdp, pte);
        byte* ptep = t.PteOffsetKernel(pmdp, va);
        ulong frame = m.AllocPage(Gfp.HighUser)!.Value.PhysAddr;
        PageTables<X86_64>.SetPte(ptep, frame | PageProt.Shared);
        Assert.Equal(frame + 5, m.TranslatePgd(mm.Pgd, va + 5, MemoryAccess.Write, PrivilegeMode.User).Physical);
        Assert.Equal(0x67UL, PageTables<X86_64>.Load(pmdp) & 0xfff);       // _PAGE_TABLE
        PageTables<X86_64>.PteClear(ptep);
        Assert.True(PageTables<X86_64>.None(ptep));
        PageTables<X86_64>.SetPte(ptep, PageProt.None);                    // PROT_NONE: not P, yet pte_present()
        Assert.True(PageTables<X86_64>.Present(ptep));
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out _));
        mm.Dispose();                                                       // frees the three tables and the pgd
        m.FreePages(cpu, m.PfnToPage(frame >> 12), 0);
        Assert.Equal(0, m.NodeState(NodeStat.NrPageTablePages));
        m.CheckConsistency();
    }
}
