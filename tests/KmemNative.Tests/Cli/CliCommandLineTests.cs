using System.Text.RegularExpressions;

namespace KmemNative.Tests.Cli;

/// <summary>The top-level commands: output shapes, usage errors (exit 2) and run-time errors (exit 1).</summary>
public sealed class CliCommandLineTests
{
    [Theory]
    [InlineData("0xdc0")]
    [InlineData("GFP_KERNEL|__GFP_ZERO")]
    [InlineData("__GFP_ZERO|GFP_KERNEL")]
    [InlineData("3520")]
    public void Gfp_prints_hex_and_kernel_names(string value)
    {
        var r = CliRunner.Run("gfp", value);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("0xdc0 GFP_KERNEL|__GFP_ZERO\n", r.Out);
        Assert.Equal("", r.Err);
    }

    [Fact]
    public void Gfp_zone_depends_on_the_profile()
    {
        Assert.Equal("0x100cc2 GFP_HIGHUSER zone HighMem migratetype Unmovable\n", CliRunner.Run("gfp", "GFP_HIGHUSER", "--zone").Out);
        Assert.Equal("0x100cc2 GFP_HIGHUSER zone Normal migratetype Unmovable\n", CliRunner.Run("gfp", "GFP_HIGHUSER", "--zone", "--arch", "x86_64").Out);
        Assert.Contains("zone invalid", CliRunner.Run("gfp", "__GFP_DMA|__GFP_HIGHMEM", "--zone").Out);
    }

    [Theory]
    [InlineData("gfp", new[] { "gfp", "GFP_BOGUS" }, "unknown GFP flag 'GFP_BOGUS'")]
    [InlineData("gfp", new[] { "gfp" }, "Required argument missing")]
    [InlineData("gfp", new[] { "gfp", "0xcc0", "extra" }, "'extra'")]
    [InlineData("", new[] { "frobnicate" }, "unknown command 'frobnicate'")]
    [InlineData("", new string[0], "Required command")]
    [InlineData("", new[] { "alloc_pages", "GFP_KERNEL", "0" }, "only works in a script")]
    [InlineData("boot", new[] { "boot", "--mem", "lots" }, "'lots' is not a size")]
    [InlineData("boot", new[] { "boot", "--mem", "1M" }, "too small")]
    [InlineData("boot", new[] { "boot", "--arch", "sparc" }, "unknown architecture 'sparc'")]
    [InlineData("boot", new[] { "boot", "--arch", "i386", "--mem", "8G" }, "4 GiB")]
    [InlineData("boot", new[] { "boot", "--cpus", "0" }, "--cpus 0")]
    [InlineData("proc", new[] { "proc", "buddyinfo", "--mem" }, null)]
    [InlineData("run", new[] { "run" }, "Required argument missing")]
    public void Bad_arguments_print_one_error_line_and_a_hint_and_exit_2(string hint, string[] args, string? message)
    {
        var r = CliRunner.Run(args);
        CliRunner.AssertUsageError(r, hint, message);
        Assert.DoesNotContain("   at ", r.Err);
    }

    [Fact]
    public void Proc_buddyinfo_has_one_line_per_populated_zone_with_eleven_orders()
    {
        var r = CliRunner.Run("proc", "buddyinfo", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Err);
        Assert.EndsWith("\n", r.Out);
        Assert.Equal(["DMA", "DMA32"], r.OutLines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]));
        Assert.All(r.OutLines, line => Assert.Matches(new Regex(@"^Node 0, zone +\w+( +\d+){11} $"), line));
    }

    [Fact]
    public void Proc_output_is_verbatim_and_accepts_a_proc_prefix()
    {
        var plain = CliRunner.Run("proc", "meminfo", "--mem", "64M");
        var prefixed = CliRunner.Run("proc", "/proc/meminfo", "--mem", "64M");
        Assert.Equal(0, plain.ExitCode);
        Assert.StartsWith("MemTotal:", plain.Out);
        Assert.Equal(plain.Out, prefixed.Out);
    }

    [Fact]
    public void Unknown_proc_file_is_a_usage_error_listing_the_files()
    {
        var r = CliRunner.Run("proc", "nosuchfile", "--mem", "64M");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Out);
        Assert.StartsWith("kmem: error: no such /proc file 'nosuchfile'", r.Err);
        Assert.Contains("Try 'kmem proc --help'.", r.Err);
        Assert.Contains("buddyinfo", r.Err);
    }

    [Fact]
    public void Boot_prints_the_boot_log()
    {
        var r = CliRunner.Run("boot", "--arch", "i386", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Zone ranges:", r.OutLines);
        Assert.StartsWith("Linux version", r.OutLines[0]);
        Assert.Equal(r.Out, CliRunner.Run("dmesg", "--mem", "64M").Out);
    }

    [Fact]
    public void Page_and_check_work_on_a_fresh_machine()
    {
        var page = CliRunner.Run("page", "pfn:0", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(0, page.ExitCode);
        Assert.Equal("page 0xffffea0000000000 pfn 0x0 zone DMA", page.OutLines[0]);
        Assert.Contains(page.OutLines, l => l.Contains("reserved", StringComparison.Ordinal));

        var check = CliRunner.Run("check", "--mem", "64M");
        Assert.Equal(0, check.ExitCode);
        Assert.Matches(@"^total +free +\d+ \+ pcp +0 \+ allocated +0 \+ reserved +\d+ == present +\d+$", check.OutLines[^2]);
        Assert.StartsWith("consistent", check.OutLines[^1]);
    }

    [Fact]
    public void A_page_address_that_is_not_a_descriptor_fails_with_exit_1()
    {
        var r = CliRunner.Run("page", "0xffffea0000000001", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("inside a struct page", r.Err);
        Assert.Equal(1, CliRunner.Run("page", "pfn:0x999999", "--mem", "64M").ExitCode);
    }

    [Fact]
    public void Help_goes_to_stdout_and_exits_0()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("boot", r.Out);
        Assert.Contains("alloc_pages", r.Out); // named as script-only
        var gfp = CliRunner.Run("gfp", "--help");
        Assert.Equal(0, gfp.ExitCode);
        Assert.Contains("<VALUE>", gfp.Out);
    }

    [Fact]
    public void Help_command_on_the_command_line()
    {
        Assert.Equal(CliRunner.Run("--help").Out, CliRunner.Run("help").Out);
        Assert.Equal(CliRunner.Run("gfp", "--help").Out, CliRunner.Run("help", "gfp").Out);
        var alloc = CliRunner.Run("help", "alloc_pages");
        Assert.Equal(0, alloc.ExitCode);
        Assert.Contains("<GFP>", alloc.Out);
        CliRunner.AssertUsageError(CliRunner.Run("help", "nosuchcommand"), "", "unknown command 'nosuchcommand'");
    }

    [Fact]
    public void Missing_script_file_is_exit_1()
    {
        var r = CliRunner.Run("run", "/nonexistent/script.kmem");
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("kmem: cannot read /nonexistent/script.kmem: ", r.Err);
    }
}
