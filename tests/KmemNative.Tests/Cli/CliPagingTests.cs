using KmemNative.Cli.Commands;

namespace KmemNative.Tests.Cli;

/// <summary>kmem ptdump, vtop, pte, hexdump, layout, classify and the paging script commands.</summary>
public sealed class CliPagingTests
{
    [Fact]
    public void Paging_commands_are_registered()
    {
        var names = CommandRegistry.Default.Commands.Select(c => c.Name).ToList();
        foreach (var name in new[] { "ptdump", "vtop", "pte", "hexdump", "layout", "classify", "vmalloc", "vfree", "kmap", "kunmap",
                     "kmap_local_page", "kunmap_local", "kmap_flush_unused", "read", "write", "invlpg", "tlb" })
            Assert.Contains(name, names);
    }

    [Theory]
    [InlineData("{\"flags\":[\"PRESENT\",\"ACCESSED\",\"DIRTY\",\"GLOBAL\",\"NX\"],\"pfn\":1286525,\"phys\":5269606400,\"leaf\":true,\"page_size\":4096}", "0x800000013a17d161", "--arch", "x86_64")]
    [InlineData("{\"flags\":[\"PRESENT\",\"RW\",\"ACCESSED\",\"DIRTY\",\"PSE\",\"GLOBAL\",\"NX\"],\"pfn\":146925056,\"phys\":601805029376,\"leaf\":true,\"page_size\":2097152}", "0x8000008c1e6001e3", "--level", "pmd", "--arch", "x86_64")]
    [InlineData("{\"flags\":[\"PRESENT\",\"RW\",\"USER\",\"ACCESSED\",\"DIRTY\"],\"pfn\":26127,\"phys\":107016192,\"leaf\":true,\"page_size\":4096}", "0x660f067")]
    [InlineData("{\"flags\":[],\"pfn\":0,\"phys\":0,\"leaf\":false,\"page_size\":0}", "0")]
    public void Pte_json_is_exactly_the_documented_object(string json, params string[] args)
    {
        var r = CliRunner.Run(["pte", .. args, "--json"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Err);
        Assert.Equal([json], r.OutLines);
    }

    [Fact]
    public void Pte_text_explains_every_bit()
    {
        var r = CliRunner.Run("pte", "0x8000000000000163", "--arch", "x86_64");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("pte 0x8000000000000163 (x86_64, level 1)", r.OutLines[0]);
        Assert.Contains("    flags                          (PRESENT|RW|ACCESSED|DIRTY|GLOBAL|NX)", r.OutLines);
        Assert.Contains(r.OutLines, l => l.StartsWith("    bit  63         execute disable", StringComparison.Ordinal) && l.EndsWith("True", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.StartsWith("    bit  2          user access allowed", StringComparison.Ordinal) && l.EndsWith("False", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("pte", "unknown level 'pml4'", "pte", "0x63", "--level", "pml4")]
    [InlineData("pte", "'0xzz' is not a valid entry value", "pte", "0xzz")]
    [InlineData("pte", "does not fit a 32-bit i386 entry", "pte", "0x100000000")]
    [InlineData("vtop", "not a canonical address", "vtop", "0x800000000000", "--arch", "x86_64", "--mem", "32M")]
    [InlineData("vtop", "not a 32-bit address", "vtop", "0x100000000", "--mem", "32M")]
    [InlineData("vtop", "'12g4' is not a valid address", "vtop", "12g4")]
    [InlineData("hexdump", "is not a length", "hexdump", "0x100000", "12Q", "--phys")]
    [InlineData("hexdump", "not a canonical address", "hexdump", "0x123456789abcdef", "--arch", "x86_64", "--mem", "32M")]
    public void Bad_input_is_a_one_line_usage_error(string command, string message, params string[] args)
    {
        var r = CliRunner.Run(args);
        CliRunner.AssertUsageError(r, command, message);
    }

    [Theory]
    [InlineData("not-present page", "hexdump", "0xc2800000", "--mem", "32M")]
    [InlineData("is not RAM", "hexdump", "0x3000000", "16", "--phys", "--mem", "32M")]
    [InlineData("is not RAM", "hexdump", "0x1000000", "64M", "--phys", "--mem", "32M")]
    public void A_well_formed_address_that_is_not_mapped_fails_the_command(string message, params string[] args)
    {
        // Exit code 1 (the command failed on this machine's state), not 2: the same address may be valid after a
        // vmalloc or on a larger machine, as with rd and page.
        var r = CliRunner.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Out);
        Assert.StartsWith("kmem: ", r.Err);
        Assert.Contains(message, r.Err);
        Assert.DoesNotContain("Try 'kmem", r.Err);
    }

    [Fact]
    public void Vtop_and_hexdump_on_a_fresh_machine()
    {
        var r = CliRunner.Run("vtop", "0xc0100010", "--mem", "32M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["VIRTUAL   PHYSICAL", "c0100010  100010", "", "PAGE DIRECTORY: " + r.OutLines[3][16..]], r.OutLines[..4]);
        Assert.Contains("  PTE: ", r.Out);
        r = CliRunner.Run("hexdump", "0x100000", "20", "--phys", "--mem", "32M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["00100000: 0000 0000 0000 0000 0000 0000 0000 0000  ................",
                      "00100010: 0000 0000                                ...."], r.OutLines);
    }

    [Fact]
    public void Ptdump_ends_with_the_wx_check()
    {
        var r = CliRunner.Run("ptdump", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("---[ User Space ]---", r.OutLines[0]);
        Assert.Contains("---[ Low Kernel Mapping ]---", r.OutLines);
        Assert.Contains("---[ High Kernel Mapping ]---", r.OutLines);
        Assert.Equal("x86/mm: Checked W+X mappings: passed, no W+X pages found.", r.OutLines[^1]);
        r = CliRunner.Run("ptdump", "--mem", "64M");
        Assert.Contains("---[ Persistent kmap() Area ]---", r.OutLines);
        Assert.StartsWith("(W+X check skipped", r.OutLines[^1]);
        r = CliRunner.Run("ptdump", "--mem", "64M", "--no-pse");
        Assert.DoesNotContain(r.OutLines, l => l.Contains("PSE", StringComparison.Ordinal));
    }

    [Fact]
    public void Script_commands_map_read_write_and_flush()
    {
        var r = CliRunner.RunScript("""
            $v = vmalloc 8K
            write $v 0x11223344
            $x = read $v 4
            echo x=$x
            write $v str:hello
            write $v hex:deadbeef
            read $v 4
            hexdump $v 8 --relative
            classify $v
            invlpg $v
            tlb
            vfree $v
            expect-fail vfree $v
            expect-fail read $v 4
            check
            """);
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("x=0x11223344", r.OutLines);
        Assert.Contains(r.OutLines, l => l.EndsWith(": 0xefbeadde", StringComparison.Ordinal));
        Assert.Contains("00000000: dead beef 6f00 0000                      ....o...", r.OutLines);
        Assert.Contains(r.OutLines, l => l.StartsWith("cpu0: CR3 0x", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.StartsWith("  hits ", StringComparison.Ordinal) && !l.Contains("not counted", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.Contains("Trying to vfree() nonexistent vm area", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.Contains("error_code(0x0000) - not-present page", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.StartsWith("consistent", StringComparison.Ordinal));
    }

    [Fact]
    public void The_lowmem_highmem_kmap_study_script_shows_lazy_pkmap_unmapping()
    {
        string text = StudyScripts.Get("04-lowmem-highmem-kmap.kmem")!;
        var r = CliRunner.RunScript(text, "--mem", "1G");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines;
        Assert.Contains(lines, l => l.EndsWith(": logical address (linear map): __pa() = 0x1400000, pfn 0x1400", StringComparison.Ordinal)
                                    || l.Contains("logical address (linear map): __pa()", StringComparison.Ordinal));
        Assert.Contains("kmap pfn 0x37000 -> 0xff001000 (virtual address (persistent kmap window))", lines);
        int kunmapped = Array.FindIndex(lines, l => l == "ff001000  37000000");      // vtop after kunmap: still mapped
        int flushed = Array.FindIndex(lines, l => l == "ff001000  (not mapped)");    // vtop after kmap_flush_unused
        Assert.True(kunmapped >= 0 && flushed > kunmapped);
        Assert.Equal(2, lines.Count(l => l.EndsWith(": 0xcafef00d", StringComparison.Ordinal) && !l.Contains("bytes", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("kmap_local_page pfn 0x37000 -> 0xfff", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("consistent", StringComparison.Ordinal));
    }
}
