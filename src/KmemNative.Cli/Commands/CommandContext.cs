using System.CommandLine;
using KmemNative.Cli.Scripting;

namespace KmemNative.Cli.Commands;

/// <summary>
/// What a running command gets: its parsed values, the machine (booted on first use), where to write, and the
/// slot for its primary result (what <c>$name = command</c> stores).
/// </summary>
internal sealed class CommandContext
{
    private ParseResult? _parse;
    private MachineOptions? _machineOptions;

    internal CommandContext(Session session) => Session = session;

    /// <summary>The session the command runs in.</summary>
    internal Session Session { get; }

    /// <summary>Where the command writes its output.</summary>
    public TextWriter Out => Session.Out;

    /// <summary>The process streams (standard input for the shell).</summary>
    public CliIo Io => Session.Io;

    /// <summary>True when the command is a script line (one machine for the whole script).</summary>
    public bool InScript => Session.InScript;

    /// <summary>The parsed command line (not available to raw commands).</summary>
    public ParseResult ParseResult => _parse ?? throw new InvalidOperationException("a raw command has no parse result");

    /// <summary>An argument's value.</summary>
    public T GetValue<T>(Argument<T> argument) => ParseResult.GetValue(argument)!;

    /// <summary>An option's value (its default when not given).</summary>
    public T GetValue<T>(Option<T> option) => ParseResult.GetValue(option)!;

    /// <summary>True when the option was typed, not defaulted.</summary>
    public bool IsGiven(Option option) => ParseResult.GetResult(option) is { Implicit: false };

    /// <summary>The machine configuration: this command's machine options over the session's defaults.</summary>
    public MachineConfig MachineConfig =>
        _parse is not null && _machineOptions is not null ? _machineOptions.Read(_parse, Session.Defaults) : Session.Defaults;

    /// <summary>
    /// The machine to work on: on the CLI one booted from this command's options; in a script the script's
    /// machine, booted with the run/shell options the first time a line needs it.
    /// </summary>
    public Machine Machine => Session.GetMachine(this);

    /// <summary>The machine if one is booted, without booting it.</summary>
    public Machine? BootedMachine => Session.Machine;

    /// <summary>Boots the session's machine from <see cref="MachineConfig"/>; fails if it is already booted.</summary>
    public Machine BootMachine() => Session.Boot(MachineConfig);

    /// <summary>Boots the session's machine from <paramref name="config"/>; fails if it is already booted.</summary>
    public Machine BootMachine(MachineConfig config) => Session.Boot(config);

    /// <summary>The primary result (an address, a page, a pid) as text, or null.</summary>
    public string? Result { get; private set; }

    /// <summary>Records the primary result: what <c>$name = command ...</c> stores in <c>$name</c>.</summary>
    public void SetResult(string value) => Result = value;

    /// <summary>The process exit code the command asks for (a script that stopped on an error sets 1).</summary>
    public int ExitCode { get; set; }

    /// <summary>Runs another command line in the same session (what <c>try</c> and <c>expect-fail</c> wrap).</summary>
    public CommandContext Execute(IReadOnlyList<string> commandLine) => Session.Execute(commandLine);

    /// <summary>A new script session on the same streams, its machine defaulting to <paramref name="defaults"/> or this command's options.</summary>
    public Session NewScriptSession(MachineConfig? defaults = null) =>
        new(Session.Registry, Session.Io, CommandScope.Script, defaults ?? MachineConfig);

    /// <summary>True when the command declared machine options.</summary>
    internal bool DeclaresMachine => _machineOptions is not null;

    internal void Bind(ParseResult parse, MachineOptions? machineOptions)
    {
        _parse = parse;
        _machineOptions = machineOptions;
    }
}
