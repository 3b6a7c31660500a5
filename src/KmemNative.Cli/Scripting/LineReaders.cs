namespace KmemNative.Cli.Scripting;

/// <summary>
/// Where the interpreter gets its lines. The shell's reader is chosen in one place (<see cref="LineReaders.ForShell"/>),
/// so a line editor with history and completion can replace it without touching the interpreter.
/// </summary>
internal interface ILineReader
{
    /// <summary>The next line without its terminator, or null at the end of input.</summary>
    string? ReadLine();
}

/// <summary>Reads lines from a <see cref="TextReader"/>, writing a prompt before each when given one.</summary>
/// <param name="input">The lines.</param>
/// <param name="prompt">Where to write <paramref name="promptText"/>, or null for no prompt.</param>
/// <param name="promptText">The prompt.</param>
internal sealed class TextLineReader(TextReader input, TextWriter? prompt = null, string promptText = "kmem> ") : ILineReader
{
    /// <inheritdoc/>
    public string? ReadLine()
    {
        if (prompt is not null)
        {
            prompt.Write(promptText);
            prompt.Flush();
        }
        var line = input.ReadLine();
        if (line is null && prompt is not null)
            prompt.WriteLine(); // leave the terminal on a fresh line after ^D
        return line;
    }
}

/// <summary>Chooses line readers.</summary>
internal static class LineReaders
{
    /// <summary>The shell's reader: a prompt only when standard input is a terminal, so piped input gives clean output.</summary>
    public static ILineReader ForShell(CliIo io) => new TextLineReader(io.In, io.InteractiveInput ? io.Out : null);

    /// <summary>
    /// The interactive shell's reader: on a terminal (<see cref="CliIo.Terminal"/>) the line editor with history in
    /// <paramref name="historyFile"/> (null: in memory only) and Tab completion; otherwise (pipes, tests) plain lines.
    /// </summary>
    public static ILineReader ForShell(CliIo io, ScriptInterpreter interpreter, Session session, string? historyFile)
    {
        if (io.Terminal is not { } terminal)
            return ForShell(io);
        return new LineEditor(terminal, "kmem> ", new ShellHistory(historyFile), new ShellCompleter(session, interpreter.Variables));
    }

    /// <summary>The lines of a script's text.</summary>
    public static ILineReader ForText(string text) => new TextLineReader(new StringReader(text));
}
