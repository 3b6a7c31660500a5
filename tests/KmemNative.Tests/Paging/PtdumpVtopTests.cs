using System.Text.RegularExpressions;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Paging.MmuTests;

namespace KmemNative.Tests.Paging;

/// <summary>ptdump's format, merging and markers; vtop against translate.</summary>
public partial class PtdumpVtopTests
{
    [GeneratedRegex(@"^0x[0-9a-f]{16}-0x[0-9a-f]{16}   [ 0-9]{8}[0-9][BKMGTPE] ((USR |    )(RW |ro )(PWT |    )(PCD |    )(PSE |    )(PAT |    )(GLB |    )(NX |x  )| {30})(pgd|p4d|pud|pmd|pte)$")]
    private static partial Regex Line64();

    [GeneratedRegex(@"^0x[0-9a-f]{8}-0x[0-9a-f]{8}   [ 0-9]{8}[0-9][BKMGTPE] ((USR |    )(RW |ro )(PWT |    )(PCD |    )(PSE |    )(PAT |    )(GLB |    )(NX |x  )| {30})(pgd|p4d|pud|pmd|pte)$")]
    private static partial Regex Line32();

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Every_line_has_the_kernels_columns_and_markers_come_in_order(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var lines = m.Ptdump().Text.TrimEnd('\n').Split('\n');
        var markers = lines.Where(l => l.StartsWith("---[ ", StringComparison.Ordinal)).Select(l => l[5..^5]).ToList();
        var known = m.PtdumpMarkers.Select(x => x.Name).ToList();
        Assert.Equal(known.Where(markers.Contains), markers);              // a subsequence, in address order
        Assert.Equal(known[0], markers[0]);
        var line = arch == ArchKind.I386 ? Line32() : Line64();
        foreach (var l in lines.Where(l => !l.StartsWith("---[ ", StringComparison.Ordinal)))
            Assert.Matches(line, l);
        // Consecutive lines tile the address space: each run starts where the previous one ended.
        ulong expect = 0;
        foreach (var l in lines.Where(l => l.StartsWith("0x", StringComparison.Ordinal)))
        {
            var parts = l.Split('-', 2);
            ulong start = Convert.ToUInt64(parts[0][2..], 16);
            Assert.True(start == expect || (arch == ArchKind.X86_64 && start == X86_64Layout.GuardHoleEnd), l);
            expect = Convert.ToUInt64(parts[1][2..l.IndexOf(' ', StringComparison.Ordinal)].Split(' ')[0], 16);
        }
        Assert.Equal(0UL, expect);                                            // the last run ends at the top (0 modulo 2^N)
    }

    [Fact]
    public void Identical_neighbours_merge_and_a_different_one_breaks_the_run()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        ulong va = m.Vmalloc(cpu, 3 * 4096);
        string dump = m.Ptdump().Text;
        Assert.Contains("0xffffc90000000000-0xffffc90000003000          12K     RW                 GLB NX pte\n" +
                        "0xffffc90000003000-0xffffc90000200000        2036K                               pte\n", dump);
        // Make the middle page read-only: three runs.
        ulong pte = m.WalkPageTables(va + 4096).Steps[^1].EntryPhys;
        m.Memory.WriteUInt64(pte, m.Memory.ReadUInt64(pte) & ~2UL);
        dump = m.Ptdump().Text;
        Assert.Contains("0xffffc90000000000-0xffffc90000001000           4K     RW                 GLB NX pte\n" +
                        "0xffffc90000001000-0xffffc90000002000           4K     ro                 GLB NX pte\n" +
                        "0xffffc90000002000-0xffffc90000003000           4K     RW                 GLB NX pte\n", dump);
        m.Memory.WriteUInt64(pte, m.Memory.ReadUInt64(pte) | 2UL);
        m.Vfree(cpu, va);
    }

    [Fact]
    public void The_size_column_steps_through_units_and_user_pages_show_usr()
    {
        var (m, cpu, mm) = UserSpace(ArchKind.X86_64);
        ulong phys = NewPage(m);
        for (ulong i = 0; i < 420; i++)                                       // 0x1a4000 bytes = 1680K
            mm.MapPage(cpu, 0x40_0000 + i * 4096, phys, PageProt.ReadOnlyExec);
        var (text, wx) = m.Ptdump(mm);
        Assert.Contains("0x0000000000400000-0x00000000005a4000        1680K USR ro                     x  pte\n", text);
        // The two empty PMD entries below 4 MiB are one run at the pmd level; the rest of the PTE table one at pte level.
        Assert.Contains("---[ User Space ]---\n0x0000000000000000-0x0000000000400000           4M                               pmd\n", text);
        Assert.Contains("0x00000000005a4000-0x0000000000600000         368K                               pte\n", text);
        Assert.Equal(0, wx);
        mm.MapPage(cpu, 0x80_0000, phys, PageProt.SharedExec);                // writable and executable
        (_, wx) = m.Ptdump(mm);
        Assert.Equal(1, wx);
        Assert.Equal("x86/mm: Checked W+X mappings: FAILED, 1 W+X pages found.", m.CheckWxLine(wx));
        Done(m, cpu, mm);
    }

    [Fact]
    public void I386_dump_shows_pse_lowmem_the_split_text_and_ends_at_the_top()
    {
        using var m = Machines.I386(64);
        string dump = m.Ptdump().Text;
        Assert.StartsWith("---[ User Space ]---\n0x00000000-0xc0000000           3G                               pmd\n---[ Kernel Mapping ]---\n", dump);
        Assert.Contains("0xc0000000-0xc0400000           4M     RW                 GLB x  pte\n", dump);
        Assert.Contains("0xc0400000-0xc1000000          12M     RW         PSE     GLB x  pmd\n", dump);
        Assert.Contains("0xc1000000-0xc1280000        2560K     ro                 GLB x  pte\n", dump);  // text + rodata
        Assert.EndsWith("---[ Fixmap area ]---\n0xfff3a000-0x00000000         792K                               pte\n", dump);
        Assert.Null(m.CheckWxLine(0));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Vtop_agrees_with_translate_everywhere_the_kernel_maps(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 96);
        var cpu = m.GetCpu(0);
        ulong v = m.Vmalloc(cpu, 8 * 4096);
        var rnd = new Random(3);
        var addrs = new List<ulong> { m.PageOffset + 0x1234, v + 0x5678, m.Image.VirtualBase + 0x42, m.HighMemory - 8 };
        if (arch == ArchKind.X86_64)
            addrs.Add(m.PageDescriptorAddress(1000) + 8);
        for (int i = 0; i < 100; i++)
            addrs.Add(m.PageOffset + (ulong)rnd.NextInt64(0, (long)(m.MaxLowPfn << 12)));
        foreach (ulong va in addrs)
        {
            var w = m.WalkPageTables(va);
            Assert.Equal(m.Translate(cpu, va), w.Physical);
            string text = m.Vtop(va);
            Assert.Contains($"{va:x}  {w.Physical:x}", text);
            Assert.Contains($"{w.LastEntry:x}", text);
        }
        m.Vfree(cpu, v);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Vtop_of_an_unmapped_address_stops_where_the_walk_stops(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        ulong v = m.Vmalloc(cpu, 4096);
        ulong guard = v + 4096;
        string text = m.Vtop(guard);
        Assert.Contains($"{guard:x}  (not mapped)", text);
        Assert.DoesNotContain("PAGE:", text);
        Assert.Contains("PTE: ", text);
        Assert.EndsWith("=> 0\n", text);
        var w = m.WalkPageTables(guard);
        Assert.False(m.TryTranslate(cpu, guard, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out var f));
        Assert.Equal(f.Level, w.Steps[^1].Level);
        string top = arch == ArchKind.I386 ? $"PAGE DIRECTORY: {m.InitMm.PgdVa:x}" : $"PML4 DIRECTORY: {m.InitMm.PgdVa:x}";
        Assert.Contains(top, text);
        Assert.Contains("is not a canonical address)", m.Vtop(arch == ArchKind.I386 ? 0x1_0000_0000UL : 0x8000_0000_0000UL));
        m.Vfree(cpu, v);
    }

    [Fact]
    public void Vtop_shows_the_struct_page_of_the_frame()
    {
        using var m = Machines.X64(64);
        var page = m.AllocPage(Gfp.Kernel)!.Value;
        string text = m.Vtop(m.PageAddress(page));
        Assert.Contains("      PAGE       PHYSICAL      MAPPING       INDEX CNT FLAGS\n", text);
        Assert.Contains($"{page.DescriptorAddress:x} ", text);
        m.FreePages(page, 0);
    }
}
