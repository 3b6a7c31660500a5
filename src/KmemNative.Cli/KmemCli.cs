using KmemNative.Cli.Commands;
using KmemNative.Cli.Scripting;

namespace KmemNative.Cli;

/// <summary>
/// The kmem command line in-process: parses the arguments with the command tree built from
/// <see cref="CommandModules"/>, runs the command, and turns its errors into messages and exit codes.
/// </summary>
/// <remarks>
/// Exit codes (<see cref="ExitCodes"/>): 0 success; 1 a command failed (<c>kmem: MESSAGE</c>, or
/// <c>FILE:LINE: MESSAGE</c> for a script); 2 bad command line (<c>kmem: error: MESSAGE</c> and a
/// <c>Try 'kmem CMD --help'.</c> hint); 3 an internal error (a bug: printed with its stack trace).
/// </remarks>
internal static class KmemCli
{
    /// <summary>Runs kmem with no standard input (as tests and non-interactive callers need).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) =>
        Run(args, new CliIo(TextReader.Null, stdout, stderr, InteractiveInput: false));

    /// <summary>Runs kmem with <paramref name="stdin"/> as piped standard input (no prompt).</summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr) =>
        Run(args, new CliIo(stdin, stdout, stderr, InteractiveInput: false));

    /// <summary>Runs kmem against <paramref name="io"/> and returns the process exit code.</summary>
    public static int Run(string[] args, CliIo io)
    {
        try
        {
            using var session = new Session(CommandRegistry.Default, io, CommandScope.Cli, new MachineConfig { TlbStatistics = true });
            return session.Execute(args).ExitCode;
        }
        catch (UsageException e)
        {
            io.Err.WriteLine($"kmem: error: {FirstLine(e.Message)}");
            io.Err.WriteLine(e.HelpCommand.Length == 0 ? "Try 'kmem --help'." : $"Try 'kmem {e.HelpCommand} --help'.");
            return ExitCodes.Usage;
        }
        catch (Exception e) when (CliErrors.IsCommandError(e))
        {
            io.Err.WriteLine($"kmem: {CliErrors.Message(e).TrimEnd('\n')}");
            return ExitCodes.Failure;
        }
        catch (Exception e)
        {
            // Not an error any command is meant to raise: a bug. Keep the stack trace for the report.
            io.Err.WriteLine($"kmem: internal error: {e}");
            return ExitCodes.Internal;
        }
        finally
        {
            io.Out.Flush();
            io.Err.Flush();
        }
    }

    // The usage line must stay one line even if a parser message spans several.
    private static string FirstLine(string text)
    {
        int nl = text.IndexOf('\n', StringComparison.Ordinal);
        return (nl < 0 ? text : text[..nl]).TrimEnd('\r');
    }
}
