using KmemNative.Cli;

namespace KmemNative.Tests.Cli;

/// <summary>What one in-process kmem invocation produced.</summary>
internal sealed record CliResult(int ExitCode, string Out, string Err)
{
    /// <summary>Standard output split into lines (no trailing empty line).</summary>
    public string[] OutLines => Lines(Out);

    /// <summary>Standard error split into lines (no trailing empty line).</summary>
    public string[] ErrLines => Lines(Err);

    private static string[] Lines(string text) => text.Length == 0 ? [] : text.TrimEnd('\n').Split('\n');
}

/// <summary>Runs kmem in-process with captured streams, and scripts from temporary files.</summary>
internal static class CliRunner
{
    public static CliResult Run(params string[] args) => RunWithInput("", args);

    public static CliResult RunWithInput(string stdin, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = KmemCli.Run(args, new StringReader(stdin), stdout, stderr);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Writes <paramref name="script"/> to a temporary file and runs <c>kmem run FILE OPTIONS...</c>.</summary>
    public static CliResult RunScript(string script, out string path, params string[] options)
    {
        path = Path.Combine(Path.GetTempPath(), $"kmem-test-{Guid.NewGuid():N}.kmem");
        File.WriteAllText(path, script);
        try
        {
            return Run(["run", path, .. options]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Runs a script on a small i386 machine (64 MiB keeps the tests fast).</summary>
    public static CliResult RunScript(string script, params string[] options) =>
        RunScript(script, out _, options.Length == 0 ? ["--mem", "64M"] : options);

    /// <summary>Asserts the usage-error shape: exit 2, nothing on stdout, one error line and one hint line on stderr.</summary>
    public static void AssertUsageError(CliResult result, string hintCommand, string? messagePart = null)
    {
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.Out);
        Assert.Equal(2, result.ErrLines.Length);
        Assert.StartsWith("kmem: error: ", result.ErrLines[0]);
        if (messagePart is not null)
            Assert.Contains(messagePart, result.ErrLines[0]);
        Assert.Equal(hintCommand.Length == 0 ? "Try 'kmem --help'." : $"Try 'kmem {hintCommand} --help'.", result.ErrLines[1]);
    }
}
