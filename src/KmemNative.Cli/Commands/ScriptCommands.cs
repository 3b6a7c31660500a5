using System.CommandLine;
using KmemNative.Cli.Scripting;

namespace KmemNative.Cli.Commands;

/// <summary>
/// The script language's own commands: <c>kmem run</c> and <c>kmem shell</c> on the CLI; <c>echo</c>,
/// <c>try</c>, <c>expect-fail</c> and <c>help</c> inside scripts (raw: they take the rest of the line as words).
/// </summary>
internal sealed class ScriptCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("run", "Run a script: one command per line against one machine; stops at the first error", b =>
        {
            var script = b.Argument("SCRIPT", "The script file ('-' reads standard input)");
            var trace = b.Option("--trace", "Write the machine's kmem events (kmalloc, kfree, kmem_cache_alloc/free, mm_page_alloc/free) to FILE in ftrace format; kmem replay FILE rebuilds the same buddyinfo and slabinfo", s => s, "FILE");
            b.UsesMachine();
            return ctx =>
            {
                string path = ctx.GetValue(script);
                string text = ReadScript(ctx.Io, path);
                using var session = ctx.NewScriptSession();
                using var traceFile = ctx.GetValue(trace) is { } tracePath ? ReplayCommands.OpenOutput(tracePath) : null;
                if (traceFile is not null)
                {
                    session.MachineBooted = m =>
                    {
                        var writer = new KmemNative.Trace.FtraceWriter(traceFile, m);
                        writer.WriteHeader();
                        writer.Attach();
                    };
                }
                bool ok = new ScriptInterpreter(session).Run(path, LineReaders.ForText(text), stopOnError: true);
                if (session.Machine is { } machine)
                    machine.Tracer = null;
                ctx.ExitCode = ok ? ExitCodes.Ok : ExitCodes.Failure;
            };
        }, CommandScope.Cli);

        registry.Add("shell", "Read script commands from standard input; on a terminal: prompt 'kmem> ', line editing, Tab completion, history (~/.kmem_history); errors do not end it", b =>
        {
            var history = b.Option("--history", "Keep the history in FILE [default: ~/.kmem_history]", s => s, "FILE");
            var noHistory = b.Flag("--no-history", "Keep no history file (the session still has ↑/↓ history)");
            b.UsesMachine();
            return ctx =>
            {
                using var session = ctx.NewScriptSession();
                var interpreter = new ScriptInterpreter(session);
                string? file = ctx.GetValue(noHistory) ? null : ctx.GetValue(history) ?? ShellHistory.DefaultPath;
                interpreter.Run("<stdin>", LineReaders.ForShell(ctx.Io, interpreter, session, file), stopOnError: false);
            };
        }, CommandScope.Cli);

        registry.AddRaw("echo", "echo TEXT...", "Print the words, variables substituted",
            (ctx, args) => ctx.Out.WriteLine(string.Join(' ', args)));

        registry.AddRaw("expect-fail", "expect-fail COMMAND...", "Run COMMAND and succeed only if it fails (prints 'expected failure: MESSAGE')", (ctx, args) =>
        {
            try
            {
                ctx.Execute(NeedCommand("expect-fail", args));
            }
            catch (Exception e) when (CliErrors.IsCommandError(e) && e is not UnknownCommandException)
            {
                // A misspelt command is a broken script, not the failure the line is waiting for.
                ctx.Out.WriteLine($"expected failure: {CliErrors.Message(e).TrimEnd('\n')}");
                return;
            }
            throw new CommandFailedException($"expected '{string.Join(' ', args)}' to fail, but it succeeded");
        });

        registry.AddRaw("try", "try COMMAND...", "Run COMMAND; if it fails print 'error: MESSAGE' and go on", (ctx, args) =>
        {
            try
            {
                if (ctx.Execute(NeedCommand("try", args)).Result is { } result)
                    ctx.SetResult(result);
            }
            catch (Exception e) when (CliErrors.IsCommandError(e) && e is not UnknownCommandException)
            {
                ctx.Out.WriteLine($"error: {CliErrors.Message(e).TrimEnd('\n')}");
            }
        });

        registry.AddRaw("help", "help [COMMAND]", "List the commands, or show one command's arguments", (ctx, args) =>
        {
            if (args.Count == 0 && ctx.InScript)
                ListCommands(ctx);
            else if (args.Count == 0)
                ctx.Execute(["--help"]); // the CLI's own help already lists its commands
            else if (ctx.Session.Registry.Find(args[0]) is { Raw: not null } raw)
                ctx.Out.WriteLine($"{raw.Usage}\n  {raw.Description}");
            else if (!ctx.InScript && ctx.Session.Registry.Find(args[0]) is { Scope: CommandScope.Script })
                HelpFromScriptTree(ctx, args[0]);
            else
                ctx.Execute([args[0], "--help"]);
        }, CommandScope.Both);
    }

    /// <summary>`kmem help alloc_pages`: script-only commands are documented by a script session's tree (nothing boots for --help).</summary>
    private static void HelpFromScriptTree(CommandContext ctx, string name)
    {
        using var session = ctx.NewScriptSession();
        session.Execute([name, "--help"]);
    }

    private static IReadOnlyList<string> NeedCommand(string wrapper, IReadOnlyList<string> args) =>
        args.Count > 0 ? args : throw new UsageException($"{wrapper} needs a command to run");

    /// <summary>A script's text; an unreadable file is a failure of the run (exit 1), not a usage error.</summary>
    private static string ReadScript(CliIo io, string path)
    {
        try
        {
            return path == "-" ? io.In.ReadToEnd() : File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new CommandFailedException($"cannot read {path}: {e.Message}");
        }
    }

    private static void ListCommands(CommandContext ctx)
    {
        var specs = ctx.Session.Registry.Commands.Where(s => (s.Scope & CommandScope.Script) != 0).ToList();
        int width = specs.Max(s => s.Name.Length) + 2;
        ctx.Out.WriteLine("Commands (help COMMAND for its arguments):");
        foreach (var spec in specs)
            ctx.Out.WriteLine($"  {spec.Name.PadRight(width)}{spec.Description}");
        ctx.Out.WriteLine();
        ctx.Out.WriteLine("  $name = COMMAND ...  store the command's result; $name or ${name} in a later line is replaced by it");
        ctx.Out.WriteLine("  # comment            to the end of the line (not inside \"quotes\")");
        ctx.Out.WriteLine("  exit, quit           end the script or shell (exit PID: that process exits)");
    }
}
