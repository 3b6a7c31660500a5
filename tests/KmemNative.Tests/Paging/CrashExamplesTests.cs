using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>The crash vtop sessions of the fact sheet (section 5) decode to the values shown there.</summary>
public class CrashExamplesTests
{
    private static int Idx64(ulong va, int level) => PageTables<X86_64>.Index(va, level);

    [Fact]
    public void Example_A_4_level_4_KiB_kernel_page()
    {
        const ulong va = 0xffff_8801_3a17_df88;
        Assert.Equal(0x110, Idx64(va, 4));
        Assert.Equal(4, Idx64(va, 3));
        Assert.Equal(0x1d0, Idx64(va, 2));
        Assert.Equal(0x17d, Idx64(va, 1));
        var pml4e = new Pte64(0x1af5067);
        Assert.Equal(0x1af5000UL + 8 * 4, pml4e.TableAddress + 8UL * (ulong)Idx64(va, 3));   // PUD: 1af5020
        var pud = new Pte64(0x13961c063);
        Assert.Equal(0x13961ce80UL, pud.TableAddress + 8UL * (ulong)Idx64(va, 2));           // PMD: 13961ce80
        var pmd = new Pte64(0x13a073063);
        Assert.Equal(0x13a073be8UL, pmd.TableAddress + 8UL * (ulong)Idx64(va, 1));           // PTE: 13a073be8
        var d = PteDecoder.Decode(ArchKind.X86_64, 0x8000_0001_3a17_d161, 4);
        Assert.Equal(["PRESENT", "ACCESSED", "DIRTY", "GLOBAL", "NX"], d.Flags);
        Assert.Equal(0x13a17dUL, d.Pfn);
        Assert.Equal(0x13a17d000UL, d.Phys);
        Assert.Equal(0x13a17df88UL, d.Phys + (va & 0xfff));
        Assert.True(d.Leaf);
        Assert.Equal(4096UL, d.PageSize);
        Assert.Equal("(PRESENT|RW|USER|ACCESSED|DIRTY)", "(" + string.Join('|', PteDecoder.Decode(ArchKind.X86_64, 0x1af5067, 0).Flags) + ")");
    }

    [Fact]
    public void Example_C_vmalloc_area_and_its_unmapped_neighbour()
    {
        const ulong va = 0xffff_ffff_c1f1_1bd0;
        Assert.Equal(0xe0ba12ff8UL, new Pte64(0xe0ba12067).TableAddress + 8UL * (ulong)Idx64(va, 3));
        Assert.Equal(0xe0ba14078UL, new Pte64(0xe0ba14067).TableAddress + 8UL * (ulong)Idx64(va, 2));
        Assert.Equal(0x40e106888UL, new Pte64(0x40e106067).TableAddress + 8UL * (ulong)Idx64(va, 1));
        var d = PteDecoder.Decode(ArchKind.X86_64, 0x8000_0004_faf3_2063, 4);
        Assert.Equal(["PRESENT", "RW", "ACCESSED", "DIRTY", "NX"], d.Flags);
        Assert.Equal(0x4faf32bd0UL, d.Phys + (va & 0xfff));
        const ulong neighbour = 0xffff_ffff_c1f6_7bd0;
        Assert.Equal(0x40e106b38UL, 0x40e106000UL + 8UL * (ulong)Idx64(neighbour, 1));
        Assert.False(PteDecoder.Decode(ArchKind.X86_64, 0, 4).Leaf);
    }

    [Fact]
    public void Example_D_2_MiB_leaf()
    {
        var d = PteDecoder.Decode(ArchKind.X86_64, 0x8000_008c_1e60_01e3, 3);
        Assert.Equal(["PRESENT", "RW", "ACCESSED", "DIRTY", "PSE", "GLOBAL", "NX"], d.Flags);
        Assert.True(d.Leaf);
        Assert.Equal(2UL << 20, d.PageSize);
        Assert.Equal(0x8c1e600000UL, d.Phys);
        Assert.Equal(0x8c1e7fbc80UL, d.Phys + (0xff35_2c8c_1e7f_bc80UL & 0x1f_ffff));
        Assert.False(new Pte64(0x8000_008c_1e60_01e3).Pat(2));   // PAT_LARGE clear
        Assert.Equal(0xf3, Idx64(0xff35_2c8c_1e7f_bc80, 2));
        Assert.Equal(0x30, Idx64(0xff35_2c8c_1e7f_bc80, 3));
    }

    [Fact]
    public void Example_E_i386_decodes_with_virtual_entry_addresses()
    {
        Assert.Equal(0x320, PageTables<I386>.Index(0xc806e000, 2));
        Assert.Equal(0x6e, PageTables<I386>.Index(0xc806e000, 1));
        Assert.Equal(0xc0101c80UL, 0xc0101000UL + 4UL * 0x320);
        Assert.Equal(0xc00941b8UL, I386.PageOffset + new Pte32(0x94063).TableAddress + 4UL * 0x6e);
        var d = PteDecoder.Decode(ArchKind.I386, 0x2216063);
        Assert.Equal(["PRESENT", "RW", "ACCESSED", "DIRTY"], d.Flags);
        Assert.Equal(0x2216000UL, d.Phys);
        var u = PteDecoder.Decode(ArchKind.I386, 0x660f067);
        Assert.Equal(["PRESENT", "RW", "USER", "ACCESSED", "DIRTY"], u.Flags);
        Assert.Equal(0x660fUL, u.Pfn);
        Assert.Equal(0xc37f0080UL, 0xc37f0000UL + 4UL * (ulong)PageTables<I386>.Index(0x80b4000, 2));
        Assert.Equal(0xc0e0d2d0UL, I386.PageOffset + 0xe0d000 + 4UL * (ulong)PageTables<I386>.Index(0x80b4000, 1));
    }

    /// <summary>Example E rebuilt in an i386 machine's RAM at the same physical addresses: the walker and vtop reproduce crash.</summary>
    [Fact]
    public void Example_E_replayed_through_the_walker_prints_what_crash_printed()
    {
        using var m = Machines.I386(128);
        const ulong pgd = 0x101000, pte = 0x94000;
        m.Memory.WriteUInt32(pgd + 4 * 0x320, 0x94063);
        m.Memory.WriteUInt32(pte + 4 * 0x6e, 0x2216063);
        Assert.Equal(0x2216000UL, m.TranslatePgd(pgd, 0xc806e000).Physical);
        var mi = (Machine<I386>)m;
        var walk = Vtop<I386>.Walk(mi, mi.Paging.Tables, pgd, I386.PageOffset + pgd, 0xc806e000);
        string text = Vtop<I386>.Format(m, walk);
        var lines = text.Split('\n');
        Assert.Equal("VIRTUAL   PHYSICAL", lines[0]);
        Assert.Equal("c806e000  2216000", lines[1]);
        Assert.Equal("", lines[2]);
        Assert.Equal("PAGE DIRECTORY: c0101000", lines[3]);
        Assert.Equal("  PGD: c0101c80 => 94063", lines[4]);
        Assert.Equal("  PMD: c0101c80 => 94063", lines[5]);
        Assert.Equal("  PTE: c00941b8 => 2216063", lines[6]);
        Assert.Equal(" PAGE: 2216000", lines[7]);
        Assert.Equal("", lines[8]);
        Assert.Equal("  PTE    PHYSICAL  FLAGS", lines[9]);
        Assert.Equal("2216063   2216000  (PRESENT|RW|ACCESSED|DIRTY)", lines[10]);
    }

    /// <summary>Example B (the vsyscall page) rebuilt at its physical addresses in an x86-64 machine.</summary>
    [Fact]
    public void Example_B_replayed_through_the_walker_prints_what_crash_printed()
    {
        using var m = Machines.X64(1024);
        const ulong pml4 = 0x1a85000;
        const ulong va = 0xffff_ffff_ff60_0000;
        m.Memory.WriteUInt64(pml4 + 8 * 511, 0x1a87067);
        m.Memory.WriteUInt64(0x1a87000 + 8 * 511, 0x1a88067);
        m.Memory.WriteUInt64(0x1a88000 + 8 * 0x1fb, 0x28049067);
        m.Memory.WriteUInt64(0x28049000, 0x1c08165);
        Assert.Equal(0x1c08000UL, m.TranslatePgd(pml4, va).Physical);
        var mi = (Machine<X86_64>)m;
        var walk = Vtop<X86_64>.Walk(mi, mi.Paging.Tables, pml4, X86_64Layout.StartKernelMap + pml4, va);
        var lines = Vtop<X86_64>.Format(m, walk).Split('\n');
        Assert.Equal("VIRTUAL           PHYSICAL", lines[0]);
        Assert.Equal("ffffffffff600000  1c08000", lines[1]);
        Assert.Equal("PML4 DIRECTORY: ffffffff81a85000", lines[3]);
        Assert.Equal("PAGE DIRECTORY: 1a87067", lines[4]);
        Assert.Equal("   PUD: 1a87ff8 => 1a88067", lines[5]);
        Assert.Equal("   PMD: 1a88fd8 => 28049067", lines[6]);
        Assert.Equal("   PTE: 28049000 => 1c08165", lines[7]);
        Assert.Equal("  PAGE: 1c08000", lines[8]);
        Assert.Equal("  PTE    PHYSICAL  FLAGS", lines[10]);
        Assert.Equal("1c08165   1c08000  (PRESENT|USER|ACCESSED|DIRTY|GLOBAL)", lines[11]);
        // The user-mode read of this page is allowed (PAGE_KERNEL_VSYSCALL has USER at every level).
        Assert.Equal(0x1c08000UL, m.TranslatePgd(pml4, va, MemoryAccess.Read, PrivilegeMode.User).Physical);
    }

    [Fact]
    public void Json_of_the_quick_vectors()
    {
        Assert.Equal("{\"flags\":[\"PRESENT\",\"ACCESSED\",\"DIRTY\",\"GLOBAL\",\"NX\"],\"pfn\":1286525,\"phys\":5269606400,\"leaf\":true,\"page_size\":4096}",
            PteDecoder.Decode(ArchKind.X86_64, 0x800000013a17d161).ToJson());
        Assert.Equal("{\"flags\":[\"PRESENT\",\"RW\",\"ACCESSED\",\"DIRTY\",\"PSE\",\"GLOBAL\",\"NX\"],\"pfn\":146925056,\"phys\":601805029376,\"leaf\":true,\"page_size\":2097152}",
            PteDecoder.Decode(ArchKind.X86_64, 0x8000008c1e6001e3, PteDecoder.ParseLevel("pmd")).ToJson());
        Assert.Equal("{\"flags\":[\"PRESENT\",\"RW\",\"USER\",\"ACCESSED\",\"DIRTY\"],\"pfn\":26127,\"phys\":107016192,\"leaf\":true,\"page_size\":4096}",
            PteDecoder.Decode(ArchKind.I386, 0x660f067).ToJson());
        // A table entry is no leaf; a PML4E with PS is not a page either (PS is reserved there).
        Assert.Equal("{\"flags\":[\"PRESENT\",\"RW\",\"USER\",\"ACCESSED\",\"DIRTY\"],\"pfn\":6901,\"phys\":28266496,\"leaf\":false,\"page_size\":0}",
            PteDecoder.Decode(ArchKind.X86_64, 0x1af5067, PteDecoder.ParseLevel("pgd")).ToJson());
        Assert.False(PteDecoder.Decode(ArchKind.X86_64, 0x1e3, PteDecoder.ParseLevel("p4d")).Leaf);
        Assert.True(PteDecoder.Decode(ArchKind.I386, 0xc04001e3, PteDecoder.ParseLevel("pmd")).Leaf);
        Assert.Equal(4UL << 20, PteDecoder.Decode(ArchKind.I386, 0xc04001e3, PteDecoder.ParseLevel("pgd")).PageSize);
        Assert.Throws<ArgumentException>(() => PteDecoder.ParseLevel("pml4"));
        Assert.Throws<ArgumentException>(() => PteDecoder.Decode(ArchKind.I386, 0x1_0000_0000));
    }

    [Fact]
    public void The_per_bit_explanation_names_each_bit_by_level()
    {
        var pte = PteDecoder.Decode(ArchKind.X86_64, 0x8000_0000_0000_0080 | 0x1000, 4);
        Assert.Contains(pte.Bits, b => b.Bits == "7" && b.Name == "PAT" && b.Value == 1);
        Assert.DoesNotContain(pte.Bits, b => b.Bits == "12");
        var pmd = PteDecoder.Decode(ArchKind.X86_64, 0x2000_1083, 3);
        Assert.Contains(pmd.Bits, b => b.Bits == "7" && b.Name == "PSE" && b.Value == 1);
        Assert.Contains(pmd.Bits, b => b.Bits == "12" && b.Name == "PAT_LARGE" && b.Value == 1);
        Assert.Equal(0x2000_0000UL, pmd.Phys);
        var pde = PteDecoder.Decode(ArchKind.I386, 0xc042_4083, 3);
        Assert.Contains(pde.Bits, b => b.Bits == "13-20" && b.Value == 0x12);
        Assert.Equal(0x12_c040_0000UL, pde.Phys);
        Assert.Contains("bit  63         execute disable", pte.ToString());
    }
}
