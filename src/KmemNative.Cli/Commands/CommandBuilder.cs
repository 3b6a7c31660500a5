using System.CommandLine;
using System.CommandLine.Parsing;

namespace KmemNative.Cli.Commands;

/// <summary>
/// What a <see cref="CommandFactory"/> declares a command with: arguments and options whose values are parsed
/// (and rejected as usage errors) by the command-line parser, and whether the command works on the machine.
/// </summary>
internal sealed class CommandBuilder
{
    internal CommandBuilder(Command command, bool forScript)
    {
        Command = command;
        ForScript = forScript;
    }

    /// <summary>The System.CommandLine command being built, for anything the helpers below do not cover.</summary>
    public Command Command { get; }

    /// <summary>True when the tree being built parses script lines rather than the process's arguments.</summary>
    public bool ForScript { get; }

    /// <summary>The machine options, when the command declared <see cref="UsesMachine"/>.</summary>
    internal MachineOptions? MachineOptions { get; private set; }

    /// <summary>True when a script line may give the machine options (only <c>boot</c>).</summary>
    internal bool ScriptMayConfigureMachine { get; private set; }

    /// <summary>A required string argument, taken as typed.</summary>
    public Argument<string> Argument(string name, string description) =>
        Add(new Argument<string>(name) { Description = description });

    /// <summary>A required argument converted by <paramref name="parse"/>.</summary>
    /// <param name="name">Name shown in usage (upper case by convention: GFP, ORDER, PAGE).</param>
    /// <param name="description">Help text.</param>
    /// <param name="parse">Converts the word; throws <see cref="FormatException"/>, <see cref="UsageException"/> or a
    /// <see cref="KmemException"/> whose message becomes the usage error.</param>
    public Argument<T> Argument<T>(string name, string description, Func<string, T> parse) =>
        // HelpName: without it help spells out every member of an enum type (all the Gfp bits) as the name.
        Add(WithCompletions(new Argument<T>(name) { Description = description, HelpName = name, CustomParser = r => Convert(r, parse) }));

    /// <summary>An optional trailing argument converted by <paramref name="parse"/>; absent reads as <paramref name="defaultValue"/>.</summary>
    /// <param name="name">Name shown in usage.</param>
    /// <param name="description">Help text.</param>
    /// <param name="parse">Converts the word (exceptions as for <see cref="Argument{T}(string, string, Func{string, T})"/>).</param>
    /// <param name="defaultValue">The value when the argument is not given.</param>
    public Argument<T> OptionalArgument<T>(string name, string description, Func<string, T> parse, T defaultValue) =>
        Add(WithCompletions(new Argument<T>(name)
        {
            Description = description,
            HelpName = name,
            Arity = ArgumentArity.ZeroOrOne,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => r.Tokens.Count == 0 ? defaultValue : Convert(r, parse),
        }));

    /// <summary>An option taking a value converted by <paramref name="parse"/>.</summary>
    /// <param name="name">The option, e.g. <c>--arch</c>.</param>
    /// <param name="description">Help text.</param>
    /// <param name="parse">Converts the value (exceptions as for <see cref="Argument{T}(string, string, Func{string, T})"/>).</param>
    /// <param name="helpName">The value's name in help, e.g. <c>SIZE</c>.</param>
    /// <param name="defaultValue">The value when the option is absent; without it an absent option reads as
    /// <c>default(T)</c> (tell the two apart with <see cref="CommandContext.IsGiven"/>).</param>
    /// <remarks>One method with a named default rather than two overloads: with T = string an overload taking
    /// (…, T defaultValue) and one taking (…, string helpName) silently bind the same call differently.</remarks>
    public Option<T> Option<T>(string name, string description, Func<string, T> parse, string? helpName = null, Func<T>? defaultValue = null)
    {
        var option = new Option<T>(name) { Description = description, HelpName = helpName, CustomParser = r => Convert(r, parse) };
        // The shell's Tab completion asks System.CommandLine: an enum-typed value would offer its C# member names.
        option.CompletionSources.Clear();
        if (defaultValue is not null)
            option.DefaultValueFactory = _ => defaultValue();
        Command.Add(option);
        return option;
    }

    /// <summary>A flag: present or not.</summary>
    public Option<bool> Flag(string name, string description)
    {
        var option = new Option<bool>(name) { Description = description };
        Command.Add(option);
        return option;
    }

    /// <summary>
    /// Declares that the command works on a machine: adds <c>--arch</c>, <c>--mem</c>, <c>--cpus</c>. On the CLI they
    /// describe the machine <see cref="CommandContext.Machine"/> boots; in a script the machine is the script's and
    /// the options are refused, unless <paramref name="scriptMayConfigure"/> (the <c>boot</c> line).
    /// </summary>
    public MachineOptions UsesMachine(bool scriptMayConfigure = false)
    {
        MachineOptions ??= new MachineOptions(this);
        ScriptMayConfigureMachine |= scriptMayConfigure;
        // Still parsed in a script (to refuse them with a clear message) but not offered by its help.
        MachineOptions.SetHidden(ForScript && !ScriptMayConfigureMachine);
        return MachineOptions;
    }

    /// <summary>
    /// The completions the shell's Tab offers for an argument: none of System.CommandLine's defaults (for an enum
    /// type they would be C# member names, not the kernel's); GFP arguments offer the kernel's flag names.
    /// </summary>
    private static Argument<T> WithCompletions<T>(Argument<T> argument)
    {
        argument.CompletionSources.Clear();
        if (typeof(T) == typeof(KmemNative.PageAlloc.Gfp))
        {
            var names = new List<string>();
            foreach (var (_, name) in KmemNative.PageAlloc.GfpFlags.PrintTable)
                names.Add(name);
            argument.CompletionSources.Add([.. names.Distinct()]);
        }
        return argument;
    }

    private Argument<T> Add<T>(Argument<T> argument)
    {
        Command.Add(argument);
        return argument;
    }

    /// <summary>Runs a value parser inside System.CommandLine, turning its exceptions into parse errors (exit 2, not a crash).</summary>
    private static T? Convert<T>(ArgumentResult result, Func<string, T> parse)
    {
        if (result.Tokens.Count == 0)
        {
            result.AddError("a value is required");
            return default;
        }
        try
        {
            return parse(result.Tokens[^1].Value);
        }
        catch (Exception e) when (e is FormatException or OverflowException or UsageException or KmemException)
        {
            result.AddError(e.Message);
            return default;
        }
    }
}
