namespace KmemNative.Cli.Commands;

/// <summary>Where a command may be used.</summary>
[Flags]
internal enum CommandScope
{
    /// <summary>As <c>kmem NAME ...</c> (a fresh machine per invocation).</summary>
    Cli = 1,

    /// <summary>As a line of a script (the script's one machine).</summary>
    Script = 2,

    /// <summary>Both: the default.</summary>
    Both = Cli | Script,
}

/// <summary>Runs a parsed command.</summary>
/// <param name="context">The parse result, the machine, the output and the result slot.</param>
internal delegate void CommandAction(CommandContext context);

/// <summary>
/// Declares a command's arguments and options on <paramref name="builder"/> and returns what the command does.
/// Called once per command tree (the CLI's, each script session's): symbols are never shared between trees, and
/// the returned action captures them to read their values.
/// </summary>
internal delegate CommandAction CommandFactory(CommandBuilder builder);

/// <summary>
/// A script command that takes the rest of its line as words, unparsed (<c>echo</c>, <c>try</c>, <c>expect-fail</c>):
/// their words may look like options (<c>echo --mem</c>) or be a whole other command line.
/// </summary>
/// <param name="context">The session context (output, result slot, running another command).</param>
/// <param name="args">The words after the command name, variables already substituted.</param>
internal delegate void RawCommandAction(CommandContext context, IReadOnlyList<string> args);

/// <summary>One registered command.</summary>
/// <param name="Name">The name typed on the command line and in scripts.</param>
/// <param name="Description">One line for help.</param>
/// <param name="Scope">Where it may be used.</param>
/// <param name="Factory">Builds a parsed command (null for raw ones).</param>
/// <param name="Raw">Runs a raw command (null for parsed ones).</param>
/// <param name="Usage">Usage line of a raw command, for <c>help</c>.</param>
internal sealed record CommandSpec(
    string Name, string Description, CommandScope Scope, CommandFactory? Factory, RawCommandAction? Raw, string? Usage);

/// <summary>
/// Every kmem command by name. Modules (<see cref="ICommandModule"/>) fill it; sessions build their
/// System.CommandLine trees from it.
/// </summary>
internal sealed class CommandRegistry
{
    private readonly List<CommandSpec> _commands = [];
    private readonly Dictionary<string, CommandSpec> _byName = new(StringComparer.Ordinal);

    /// <summary>The registry of every module in <see cref="CommandModules.All"/>, built once.</summary>
    public static CommandRegistry Default { get; } = FromModules(CommandModules.All);

    /// <summary>A registry of the given modules' commands.</summary>
    public static CommandRegistry FromModules(IEnumerable<ICommandModule> modules)
    {
        var registry = new CommandRegistry();
        foreach (var module in modules)
            module.Register(registry);
        return registry;
    }

    /// <summary>The commands in registration order.</summary>
    public IReadOnlyList<CommandSpec> Commands => _commands;

    /// <summary>Registers a command parsed with System.CommandLine.</summary>
    /// <param name="name">The command name.</param>
    /// <param name="description">One line for help.</param>
    /// <param name="factory">Declares the arguments and returns the action.</param>
    /// <param name="scope">Where it may be used (default both).</param>
    public void Add(string name, string description, CommandFactory factory, CommandScope scope = CommandScope.Both) =>
        Add(new CommandSpec(name, description, scope, factory, null, null));

    /// <summary>Registers a command that takes the rest of its line unparsed (script-only unless <paramref name="scope"/> says otherwise).</summary>
    /// <param name="name">The command name.</param>
    /// <param name="usage">Usage line for help, e.g. <c>echo TEXT...</c>.</param>
    /// <param name="description">One line for help.</param>
    /// <param name="action">Runs the command.</param>
    /// <param name="scope">Where it may be used.</param>
    public void AddRaw(string name, string usage, string description, RawCommandAction action, CommandScope scope = CommandScope.Script) =>
        Add(new CommandSpec(name, description, scope, null, action, usage));

    /// <summary>The command named <paramref name="name"/>, or null.</summary>
    public CommandSpec? Find(string name) => _byName.GetValueOrDefault(name);

    private void Add(CommandSpec spec)
    {
        // Two modules claiming one name is a programming error, caught by any test that builds the registry.
        if (!_byName.TryAdd(spec.Name, spec))
            throw new InvalidOperationException($"command '{spec.Name}' is registered twice");
        _commands.Add(spec);
    }
}
