using System.Text.RegularExpressions;

namespace KmemNative.Tests.Cli;

/// <summary>kmem run: the script language and its errors.</summary>
public sealed class CliScriptTests
{
    [Fact]
    public void Echo_comments_blank_lines_and_quotes()
    {
        var r = CliRunner.RunScript("""
            # a comment line

            echo hello   world   # trailing comment
            echo "two  spaces" "# not a comment" a"b c"d ""
            """);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Err);
        Assert.Equal(["hello world", "two  spaces # not a comment ab cd "], r.OutLines);
    }

    [Fact]
    public void Variables_store_results_and_expand_inside_words()
    {
        var r = CliRunner.RunScript("""
            $g = gfp GFP_KERNEL|__GFP_ZERO
            echo value=$g braces=${g}x "quoted $g" cost $5
            $h = gfp $g
            echo $h/maps
            """);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["0xdc0 GFP_KERNEL|__GFP_ZERO", "value=0xdc0 braces=0xdc0x quoted 0xdc0 cost $5", "0xdc0 GFP_KERNEL|__GFP_ZERO", "0xdc0/maps"], r.OutLines);
    }

    [Fact]
    public void An_error_stops_the_script_with_file_line_and_exit_1()
    {
        var r = CliRunner.RunScript("echo one\n\ngfp NOT_A_FLAG\necho never\n", out var path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(["one"], r.OutLines);
        Assert.Equal([$"{path}:3: unknown GFP flag 'NOT_A_FLAG' (expected names like GFP_KERNEL or __GFP_ZERO, or a number like 0xcc0)"], r.ErrLines);
    }

    [Fact]
    public void Undefined_variable_is_an_error_with_its_line_number()
    {
        var r = CliRunner.RunScript("echo ok\necho $missing\n", out var path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal([$"{path}:2: undefined variable $missing"], r.ErrLines);
    }

    [Fact]
    public void Unknown_command_is_an_error()
    {
        var r = CliRunner.RunScript("frobnicate 1 2\n", out var path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal([$"{path}:1: unknown command 'frobnicate'"], r.ErrLines);
    }

    [Fact]
    public void Alloc_free_and_check()
    {
        var r = CliRunner.RunScript("""
            $p = alloc_pages GFP_KERNEL 0
            echo got $p
            __free_pages $p 0
            check
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var m = Regex.Match(r.OutLines[0], @"^page (0xffffea[0-9a-f]+) pfn (0x[0-9a-f]+) order 0 zone (DMA32|DMA)$");
        Assert.True(m.Success, r.OutLines[0]);
        Assert.Equal($"got {m.Groups[1].Value}", r.OutLines[1]);
        ulong pfn = Convert.ToUInt64(m.Groups[2].Value, 16);
        Assert.Equal(0xffffea0000000000UL + pfn * 64, Convert.ToUInt64(m.Groups[1].Value[2..], 16));
        Assert.Matches(@"allocated +0 ", r.OutLines[^2]);
        Assert.StartsWith("consistent", r.OutLines[^1]);
    }

    [Fact]
    public void Double_free_inside_expect_fail_passes_and_try_goes_on()
    {
        var r = CliRunner.RunScript("""
            $p = alloc_pages GFP_KERNEL 0
            __free_pages $p 0
            expect-fail __free_pages $p 0
            try __free_pages $p 0
            echo still running
            check
            """);
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(r.OutLines, l => l.StartsWith("expected failure: BUG: Bad page state", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.StartsWith("error: BUG: Bad page state", StringComparison.Ordinal));
        Assert.Contains("page dumped because:", r.Out);
        Assert.Contains("still running", r.OutLines);
    }

    [Fact]
    public void Expect_fail_of_a_command_that_succeeds_is_an_error()
    {
        var r = CliRunner.RunScript("expect-fail gfp 0xcc0\necho never\n", out var path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(["0xcc0 GFP_KERNEL"], r.OutLines);
        Assert.Equal([$"{path}:1: expected 'gfp 0xcc0' to fail, but it succeeded"], r.ErrLines);
    }

    [Fact]
    public void Expect_fail_does_not_swallow_a_misspelt_command()
    {
        var r = CliRunner.RunScript("expect-fail alloc_pagez GFP_KERNEL 0\n");
        Assert.Equal(1, r.ExitCode);
        Assert.EndsWith(":1: unknown command 'alloc_pagez'", r.Err.TrimEnd());
    }

    [Fact]
    public void Try_passes_the_result_through()
    {
        var r = CliRunner.RunScript("$a = try __get_free_pages GFP_KERNEL 1\nfree_pages $a 1\ncheck\n");
        Assert.Equal("", r.Err);
        Assert.Matches(@"^addr 0xc[0-9a-f]+ pfn 0x[0-9a-f]+ order 1 zone (Normal|DMA)$", r.OutLines[0]);
    }

    [Fact]
    public void Allocation_failure_reports_the_warn_alloc_line()
    {
        // The 16 MiB DMA zone holds at most three free order-10 blocks: the later requests must fail.
        var r = CliRunner.RunScript(string.Concat(Enumerable.Repeat("try alloc_pages GFP_DMA 10\n", 5)) + "try alloc_pages GFP_DMA|__GFP_NOWARN 10\n");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("error: alloc_pages(GFP_DMA, 10) failed: kmem: page allocation failure: order:10, mode:0x1(GFP_DMA), nodemask=(null)", r.OutLines);
        Assert.Equal("error: alloc_pages(GFP_DMA|__GFP_NOWARN, 10) failed", r.OutLines[^1]);
    }

    [Fact]
    public void Machine_options_belong_on_run_or_a_first_boot_line()
    {
        var r = CliRunner.RunScript("proc buddyinfo --mem 128M\n");
        Assert.Equal(1, r.ExitCode);
        Assert.EndsWith(":1: machine options go on kmem run or on a first boot line", r.Err.TrimEnd());

        var boot = CliRunner.RunScript("gfp 0x1 --zone --arch x86_64\nboot --arch x86_64 --mem 64M\nproc buddyinfo\n");
        Assert.Equal(0, boot.ExitCode);
        Assert.Contains("Zone ranges:", boot.OutLines);
        Assert.Contains(boot.OutLines, l => l.StartsWith("Node 0, zone    DMA32", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("boot\nboot\n", 2)]
    [InlineData("check\nboot\n", 2)]
    public void Boot_after_the_machine_exists_is_an_error(string script, int line)
    {
        var r = CliRunner.RunScript(script);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($":{line}: the machine is already booted", r.Err);
    }

    [Fact]
    public void Script_lines_use_the_run_options_and_one_machine()
    {
        var r = CliRunner.RunScript("$p = alloc_pages GFP_KERNEL 0\npage $p\ndmesg\n", "--arch", "x86_64", "--mem", "64M", "--cpus", "1");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^page 0xffffea[0-9a-f]+ pfn 0x[0-9a-f]+ zone DMA32$", r.OutLines[1]);
        Assert.Contains("  refcount:    1", r.OutLines);
        Assert.Contains(r.OutLines, l => l.Contains("(x86_64)", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("$x = echo hi\n", "'echo' has no result to store in $x")]
    [InlineData("echo \"open\n", "unterminated quoted string")]
    [InlineData("run other.kmem\n", "'run' cannot be used inside a script")]
    [InlineData("alloc_pages GFP_KERNEL 11\n", "order 11 is outside 0..10")]
    [InlineData("page pfn:zz\n", "'zz' is not a valid pfn")]
    [InlineData("__free_pages 0x1 0\n", "not a struct page address")]
    [InlineData("__get_free_pages GFP_HIGHUSER 0\n", "__GFP_HIGHMEM")]
    public void Script_errors(string script, string message)
    {
        var r = CliRunner.RunScript(script);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrLines);
        Assert.Contains(".kmem:1: ", r.Err);
        Assert.Contains(message, r.Err);
    }

    [Fact]
    public void Exit_ends_the_script()
    {
        var r = CliRunner.RunScript("echo a\nexit\necho b\n");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["a"], r.OutLines);
    }

    [Fact]
    public void Run_reads_standard_input_for_dash()
    {
        var r = CliRunner.RunWithInput("gfp 0xcc0\necho $nope\n", "run", "-");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(["0xcc0 GFP_KERNEL"], r.OutLines);
        Assert.Equal(["-:2: undefined variable $nope"], r.ErrLines);
    }
}
