using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using KmemNative.Cli.Commands;

namespace KmemNative.Cli.Scripting;

/// <summary>
/// One place commands run: the System.CommandLine tree built from the registry for a scope, the streams, and the
/// machine. The CLI makes one per process (its command boots a fresh machine); <c>kmem run</c> and
/// <c>kmem shell</c> make one per script, whose machine lives until the script ends.
/// </summary>
internal sealed class Session : IDisposable
{
    // Scripts are plain text: '@word' is a word, not a response file to read.
    private static readonly ParserConfiguration s_parser = new() { ResponseFileTokenReplacer = null };

    private readonly Command _root;
    private readonly InvocationConfiguration _invocation;
    private CommandContext? _running;
    private Machine? _machine;

    /// <summary>Builds the session's command tree from the <paramref name="scope"/> commands of <paramref name="registry"/>.</summary>
    public Session(CommandRegistry registry, CliIo io, CommandScope scope, MachineConfig defaults)
    {
        Registry = registry;
        Io = io;
        Scope = scope;
        Defaults = defaults;
        // Exceptions must reach the caller: it alone knows whether they end a process, a script or one shell line.
        _invocation = new InvocationConfiguration
        {
            Output = io.Out,
            Error = io.Err,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
        };
        _root = BuildTree();
    }

    /// <summary>The commands.</summary>
    public CommandRegistry Registry { get; }

    /// <summary>The streams.</summary>
    public CliIo Io { get; }

    /// <summary>Command output.</summary>
    public TextWriter Out => Io.Out;

    /// <summary>Error messages.</summary>
    public TextWriter Err => Io.Err;

    /// <summary><see cref="CommandScope.Cli"/> or <see cref="CommandScope.Script"/>.</summary>
    public CommandScope Scope { get; }

    /// <summary>True for a script session.</summary>
    public bool InScript => Scope == CommandScope.Script;

    /// <summary>What the machine boots with when no command says otherwise.</summary>
    public MachineConfig Defaults { get; internal set; }

    /// <summary>Where <c>dmesg</c> starts: the log lines before it were cleared by <c>dmesg -c</c>.</summary>
    public int DmesgMark { get; set; }

    /// <summary>The booted machine, or null.</summary>
    public Machine? Machine => _machine;

    /// <summary>Called once the session's machine has booted (kmem run --trace attaches its trace writer here).</summary>
    public Action<Machine>? MachineBooted { get; set; }

    /// <summary>The root of the command tree (for help).</summary>
    internal Command Root => _root;

    /// <summary>Runs one command line (name and arguments, variables already substituted).</summary>
    /// <returns>The command's context: its result and exit code.</returns>
    /// <exception cref="UsageException">The line does not parse, or names an unknown command.</exception>
    /// <exception cref="KmemException">The library refused the operation.</exception>
    /// <exception cref="CommandFailedException">The command could not do its job.</exception>
    public CommandContext Execute(IReadOnlyList<string> args)
    {
        var context = new CommandContext(this);
        if (args.Count > 0 && !args[0].StartsWith('-'))
        {
            // Checked before parsing: the parser would report "Required command was not provided" first.
            var spec = Registry.Find(args[0]) ?? throw new UnknownCommandException(args[0]);
            if ((spec.Scope & Scope) == 0)
                throw new UsageException(InScript
                    ? $"'{spec.Name}' cannot be used inside a script"
                    : $"'{spec.Name}' only works in a script: write it in a file for 'kmem run FILE' or type it in 'kmem shell'");
            if (spec.Raw is { } raw)
            {
                raw(context, [.. args.Skip(1)]);
                return context;
            }
        }

        var parse = _root.Parse(args, s_parser);
        if (parse.Errors.Count > 0)
            throw new UsageException(parse.Errors[0].Message, HelpPath(parse.CommandResult));

        var outer = _running;
        _running = context;
        try
        {
            parse.Invoke(_invocation);
        }
        finally
        {
            _running = outer;
        }
        return context;
    }

    /// <summary>The machine for a command: the one booted, else booted now.</summary>
    internal Machine GetMachine(CommandContext context)
    {
        if (_machine is not null)
            return _machine;
        if (!InScript && !context.DeclaresMachine)
            throw new InvalidOperationException("the command uses the machine but did not declare UsesMachine()");
        _machine = Machine.Boot(context.MachineConfig);
        MachineBooted?.Invoke(_machine);
        return _machine;
    }

    /// <summary>Boots the machine (the <c>boot</c> command).</summary>
    internal Machine Boot(MachineConfig config)
    {
        if (_machine is not null)
            throw new CommandFailedException("the machine is already booted: boot must come before any command that uses the machine");
        _machine = Machine.Boot(config);
        MachineBooted?.Invoke(_machine);
        return _machine;
    }

    /// <summary>Shuts the machine down.</summary>
    public void Dispose()
    {
        _machine?.Dispose();
        _machine = null;
    }

    private Command BuildTree()
    {
        var root = new Command("kmem", InScript ? "kmem script commands (one per line; $name = COMMAND stores its result)" : CliDescription())
        {
            new HelpOption(),
        };
        if (!InScript)
            root.Add(new VersionOption());
        foreach (var spec in Registry.Commands)
        {
            if ((spec.Scope & Scope) == 0 || spec.Factory is null)
                continue;
            var command = new Command(spec.Name, spec.Description);
            var builder = new CommandBuilder(command, InScript);
            var action = spec.Factory(builder);
            command.SetAction(parse => RunAction(builder, action, parse));
            root.Add(command);
        }
        return root;
    }

    // The top-level help also names the script-only commands, which would otherwise appear nowhere in it.
    private string CliDescription()
    {
        var scriptOnly = Registry.Commands.Where(s => s.Scope == CommandScope.Script).Select(s => s.Name);
        return "Emulate the Linux kernel memory manager on a native arena.\n" +
               $"Script-only commands (kmem run FILE, kmem shell; 'help' there): {string.Join(", ", scriptOnly)}";
    }

    private void RunAction(CommandBuilder builder, CommandAction action, ParseResult parse)
    {
        var context = _running ?? throw new InvalidOperationException("command invoked outside Session.Execute");
        context.Bind(parse, builder.MachineOptions);
        if (builder.MachineOptions is { } options)
        {
            // The script has one machine, configured once: a per-line --mem would silently mean nothing.
            if (InScript && !builder.ScriptMayConfigureMachine && options.AnyGiven(parse))
                throw new UsageException("machine options go on kmem run or on a first boot line");
            // On the CLI a configuration that cannot boot (--mem 1M, 8G on i386) is a bad argument: exit 2, not 1.
            // Checked here rather than in a parser validator: only now are all three values known to have parsed.
            if (!InScript)
                ValidateMachineConfig(context.MachineConfig, parse);
        }
        action(context);
    }

    private static void ValidateMachineConfig(MachineConfig config, ParseResult parse)
    {
        try
        {
            config.Validate();
        }
        catch (MachineConfigException e)
        {
            throw new UsageException(e.Message, HelpPath(parse.CommandResult));
        }
    }

    // "gfp", or "slab info" for nested commands: what the usage hint's "kmem ... --help" needs.
    private static string HelpPath(CommandResult result)
    {
        var names = new List<string>();
        for (var r = result; r.Parent is CommandResult parent; r = parent)
            names.Add(r.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }
}
