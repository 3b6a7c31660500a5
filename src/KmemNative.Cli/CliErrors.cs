namespace KmemNative.Cli;

/// <summary>Process exit codes of <c>kmem</c>.</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>A command ran and failed: a library error, a failed allocation, a script error, an unreadable script.</summary>
    public const int Failure = 1;

    /// <summary>Bad command line: parse error, unknown command, invalid value (a GFP string, --mem, --arch...).</summary>
    public const int Usage = 2;

    /// <summary>A bug in kmem itself (an exception no command is expected to raise); the stack trace is printed.</summary>
    public const int Internal = 3;
}

/// <summary>A command line kmem cannot accept; the CLI prints it with a help hint and exits with <see cref="ExitCodes.Usage"/>.</summary>
/// <param name="message">One line saying what is wrong.</param>
/// <param name="helpCommand">The command whose --help the hint should point to ("" for the top level).</param>
internal class UsageException(string message, string helpCommand = "") : Exception(message)
{
    /// <summary>The command path for the hint <c>Try 'kmem PATH --help'.</c>; empty for the top level.</summary>
    public string HelpCommand { get; } = helpCommand;
}

/// <summary>
/// A command name nobody registered. Kept apart from other usage errors so that <c>expect-fail</c> does not
/// count a typo in a script as the failure it was waiting for.
/// </summary>
internal sealed class UnknownCommandException(string name)
    : UsageException($"unknown command '{name}'")
{
    /// <summary>The name as typed.</summary>
    public string Name { get; } = name;
}

/// <summary>A command that parsed and ran but could not do its job (exit <see cref="ExitCodes.Failure"/>).</summary>
internal sealed class CommandFailedException(string message) : Exception(message);

/// <summary>Classifies exceptions into the errors commands report and the bugs they do not.</summary>
internal static class CliErrors
{
    /// <summary>
    /// True for the errors a command may legitimately end with: the library's <see cref="KmemException"/>s (bad
    /// input never crashes the emulator, it raises one) and the CLI's own usage and failure errors. Anything else
    /// is a bug and keeps its stack trace.
    /// </summary>
    public static bool IsCommandError(Exception e) => e is KmemException or UsageException or CommandFailedException;

    /// <summary>The text to show for a command error: the full kernel-style report for a bad page, else the message.</summary>
    public static string Message(Exception e) => e is BadPageException bad ? bad.Report : e.Message;
}
