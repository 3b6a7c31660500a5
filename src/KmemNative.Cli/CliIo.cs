namespace KmemNative.Cli;

/// <summary>The streams a kmem invocation talks to: commands never touch <see cref="Console"/> directly, so tests can capture them.</summary>
/// <param name="In">Standard input (what <c>kmem shell</c> and <c>kmem run -</c> read).</param>
/// <param name="Out">Standard output: command output.</param>
/// <param name="Err">Standard error: error messages.</param>
/// <param name="InteractiveInput">True when <paramref name="In"/> is a terminal: the shell then shows its prompt.</param>
internal sealed record CliIo(TextReader In, TextWriter Out, TextWriter Err, bool InteractiveInput);
