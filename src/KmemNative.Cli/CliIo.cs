namespace KmemNative.Cli;

/// <summary>The streams a kmem invocation talks to: commands never touch <see cref="Console"/> directly, so tests can capture them.</summary>
/// <param name="In">Standard input (what <c>kmem shell</c> and <c>kmem run -</c> read).</param>
/// <param name="Out">Standard output: command output.</param>
/// <param name="Err">Standard error: error messages.</param>
/// <param name="InteractiveInput">True when <paramref name="In"/> is a terminal: the shell then shows its prompt.</param>
internal sealed record CliIo(TextReader In, TextWriter Out, TextWriter Err, bool InteractiveInput)
{
    /// <summary>Standard input as bytes (a gzip trace on <c>kmem replay -</c>); null when only <see cref="In"/> exists.</summary>
    public Stream? InStream { get; init; }

    /// <summary>
    /// True when progress bars may be drawn on <see cref="Err"/>: both output streams are a terminal and no CI
    /// environment variable is set. Never in tests.
    /// </summary>
    public bool ShowProgress { get; init; }

    /// <summary>The line editor of the interactive shell (history, completion); null uses plain line reading.</summary>
    public Scripting.ILineEditorConsole? Terminal { get; init; }
}
