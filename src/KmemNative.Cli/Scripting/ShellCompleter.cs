using System.CommandLine;
using KmemNative.Cli.Commands;
using KmemNative.Diagnostics;
using KmemNative.PageAlloc;

namespace KmemNative.Cli.Scripting;

/// <summary>
/// Tab completion for the shell: command names first; then, through System.CommandLine's completion API on the
/// session's command tree, subcommands, option names and argument values (the /proc file names of <c>proc</c>);
/// <c>$variables</c> anywhere; GFP flag names in a GFP word (after <c>|</c> too); file names for words that look like
/// paths (and the FILE of <c>replay</c>/<c>run</c>).
/// </summary>
internal sealed class ShellCompleter(Session session, Variables variables)
{
    private static readonly string[] s_wrappers = ["try", "expect-fail"];
    private static readonly string[] s_fileCommands = ["replay"];

    /// <summary>
    /// Candidates for the word that ends at the end of <paramref name="lineToCursor"/>: where that word starts and
    /// the full words that could replace it, sorted.
    /// </summary>
    public (int Start, IReadOnlyList<string> Candidates) Complete(string lineToCursor)
    {
        int start = WordStart(lineToCursor);
        string word = lineToCursor[start..];
        var before = Tokenize(lineToCursor[..start]);

        // "$x = cmd ...": what follows the '=' is a command line.
        if (before.Count >= 2 && before[1] == "=" && Variables.AsTarget(before[0]) is not null)
            before.RemoveRange(0, 2);
        while (before.Count > 0 && s_wrappers.Contains(before[0]))
            before.RemoveAt(0);

        if (word.StartsWith('$'))
            return (start, Sorted(variables.Values.Keys.Select(k => "$" + k).Where(k => k.StartsWith(word, StringComparison.Ordinal))));
        if (before.Count == 0)
            return (start, Sorted(CommandNames().Where(n => n.StartsWith(word, StringComparison.Ordinal))));
        if (before[0] == "help" && before.Count == 1)
            return (start, Sorted(CommandNames().Where(n => n.StartsWith(word, StringComparison.Ordinal))));

        // A GFP word: complete the flag after the last '|'.
        int bar = word.LastIndexOf('|');
        string flag = bar >= 0 ? word[(bar + 1)..] : word;
        if (flag.StartsWith("GFP", StringComparison.Ordinal) || flag.StartsWith("__GFP", StringComparison.Ordinal) || (bar >= 0 && flag.Length == 0))
            return (start, Sorted(GfpNames().Where(n => n.StartsWith(flag, StringComparison.Ordinal)).Select(n => word[..(bar + 1)] + n)));

        if (!word.StartsWith('-') && (word.Contains('/') || s_fileCommands.Contains(before[0]) || before[^1] is "--svg" or "--trace" or "--frag-svg"))
        {
            var files = Files(word);
            if (files.Count > 0 || word.Contains('/'))
                return (start, files);
        }
        if (before[0] == "proc" && !word.StartsWith('-'))
            return (start, Sorted(ProcFs.Files.Concat(ProcFs.Files.Select(f => "/proc/" + f)).Where(f => f.StartsWith(word, StringComparison.Ordinal))));

        // System.CommandLine: subcommands, options and argument completions at the end of the text.
        string text = string.Join(' ', before.Select(Quote)) + " " + word;
        var parse = session.Root.Parse(text);
        var items = parse.GetCompletions(text.Length)
            .Select(c => c.InsertText ?? c.Label)
            .Where(c => c.StartsWith(word, StringComparison.Ordinal) && c is not ("-h" or "-?" or "/?" or "/h"));
        return (start, Sorted(items));
    }

    private IEnumerable<string> CommandNames() =>
        session.Registry.Commands.Where(c => (c.Scope & session.Scope) != 0).Select(c => c.Name).Append("exit").Append("quit");

    private static IEnumerable<string> GfpNames()
    {
        var names = new List<string>();
        foreach (var (_, name) in GfpFlags.PrintTable)
            names.Add(name);
        return names.Distinct();
    }

    private static IReadOnlyList<string> Files(string word)
    {
        try
        {
            string dir = Path.GetDirectoryName(word) is { Length: > 0 } d ? d : ".";
            string prefix = Path.GetFileName(word);
            string shown = word[..(word.Length - prefix.Length)];
            if (!Directory.Exists(dir))
                return [];
            var list = new List<string>();
            foreach (var entry in Directory.EnumerateFileSystemEntries(dir, prefix + "*"))
            {
                string name = Path.GetFileName(entry);
                if (name.StartsWith('.') && !prefix.StartsWith('.'))
                    continue;
                list.Add(shown + name + (Directory.Exists(entry) ? "/" : ""));
            }
            return Sorted(list);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return [];
        }
    }

    private static string Quote(string w) => w.Contains(' ') ? $"\"{w}\"" : w;

    private static List<string> Sorted(IEnumerable<string> items) => [.. items.Distinct().Order(StringComparer.Ordinal)];

    /// <summary>Where the word being typed starts: after the last space outside quotes.</summary>
    private static int WordStart(string line)
    {
        bool quoted = false;
        int start = 0;
        for (int i = 0; i < line.Length; i++)
        {
            if (line[i] == '"')
                quoted = !quoted;
            else if (!quoted && char.IsWhiteSpace(line[i]))
                start = i + 1;
        }
        return start;
    }

    private static List<string> Tokenize(string text)
    {
        try
        {
            return Tokenizer.Split(text);
        }
        catch (UsageException)
        {
            return [.. text.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        }
    }
}
