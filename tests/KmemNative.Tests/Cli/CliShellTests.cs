namespace KmemNative.Tests.Cli;

/// <summary>kmem shell: same interpreter, but errors do not end it; no prompt when input is piped.</summary>
public sealed class CliShellTests
{
    [Fact]
    public void Shell_prints_errors_and_continues_without_a_prompt_when_piped()
    {
        var r = CliRunner.RunWithInput("echo one\nfrobnicate\n$p = alloc_pages GFP_KERNEL 0\n__free_pages $p 0\necho two\n", "shell", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("kmem> ", r.Out);
        Assert.Equal("one", r.OutLines[0]);
        Assert.Equal("two", r.OutLines[^1]);
        Assert.Equal(["<stdin>:2: unknown command 'frobnicate'"], r.ErrLines);
    }

    [Fact]
    public void Quit_ends_the_shell()
    {
        var r = CliRunner.RunWithInput("echo a\nquit\necho b\n", "shell");
        Assert.Equal(["a"], r.OutLines);
    }

    [Fact]
    public void Shell_help_lists_script_commands()
    {
        var r = CliRunner.RunWithInput("help\nhelp alloc_pages\nhelp echo\n", "shell");
        Assert.Equal("", r.Err);
        Assert.Contains(r.OutLines, l => l.TrimStart().StartsWith("alloc_pages", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.TrimStart().StartsWith("expect-fail", StringComparison.Ordinal));
        Assert.Contains("<GFP>", r.Out);
        Assert.DoesNotContain("--mem", r.Out); // refused on script lines, so not offered there
        Assert.Contains("echo TEXT...", r.OutLines);
    }

    [Fact]
    public void Interactive_shell_shows_the_prompt()
    {
        var stdout = new StringWriter();
        var io = new KmemNative.Cli.CliIo(new StringReader("echo hi\n"), stdout, new StringWriter(), InteractiveInput: true);
        Assert.Equal(0, KmemNative.Cli.KmemCli.Run(["shell"], io));
        Assert.StartsWith("kmem> hi", stdout.ToString().ReplaceLineEndings("\n"));
    }
}
