using KmemNative.Cli.Commands;

namespace KmemNative.Cli.Scripting;

/// <summary>
/// The kmem script language over a <see cref="Session"/>: one command per line, <c>#</c> comments, quoted words,
/// <c>$name = command</c> assignments and <c>$name</c> substitution, <c>exit</c>/<c>quit</c>. Every line is a
/// registered command, run by the same definitions as the CLI. Shared by <c>kmem run</c> and <c>kmem shell</c>.
/// </summary>
internal sealed class ScriptInterpreter(Session session)
{
    /// <summary>The script's variables.</summary>
    public Variables Variables { get; } = new();

    /// <summary>
    /// Runs every line of <paramref name="reader"/>. An error prints <c>SOURCE:LINE: MESSAGE</c> to standard error
    /// and, with <paramref name="stopOnError"/> (kmem run), ends the script; otherwise (the shell) the next line runs.
    /// </summary>
    /// <returns>True when no line failed.</returns>
    public bool Run(string source, ILineReader reader, bool stopOnError)
    {
        bool ok = true;
        int number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            try
            {
                if (!Execute(line))
                    break;
            }
            catch (Exception e) when (CliErrors.IsCommandError(e))
            {
                ok = false;
                session.Err.WriteLine($"{source}:{number}: {CliErrors.Message(e).TrimEnd('\n')}");
                session.Err.Flush();
                if (stopOnError)
                    break;
            }
            session.Out.Flush();
        }
        return ok;
    }

    /// <summary>Runs one line.</summary>
    /// <returns>False when the line ends the script (<c>exit</c>, <c>quit</c>).</returns>
    /// <exception cref="UsageException">Bad syntax, undefined variable, unknown command, parse error.</exception>
    /// <exception cref="KmemException">The library refused the operation.</exception>
    /// <exception cref="CommandFailedException">The command failed, or has no result to assign.</exception>
    public bool Execute(string line)
    {
        var words = Tokenizer.Split(line);
        if (words.Count == 0)
            return true;

        string? target = null;
        if (words.Count >= 2 && words[1] == "=" && Variables.AsTarget(words[0]) is { } name)
        {
            target = name;
            words.RemoveRange(0, 2);
            if (words.Count == 0)
                throw new UsageException($"nothing to assign to ${name}: expected '${name} = COMMAND ...'");
        }
        if (words.Count == 1 && words[0] is "exit" or "quit" && target is null)
            return false;

        var expanded = words.ConvertAll(Variables.Expand);
        var context = session.Execute(expanded);
        if (target is not null)
            Variables.Set(target, context.Result ?? throw new CommandFailedException($"'{expanded[0]}' has no result to store in ${target}"));
        return true;
    }
}
