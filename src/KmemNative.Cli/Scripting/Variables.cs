using System.Buffers;
using System.Text;

namespace KmemNative.Cli.Scripting;

/// <summary>
/// Script variables: <c>$name = command</c> stores a command's result; <c>$name</c> or <c>${name}</c> anywhere in
/// a later word is replaced by it (<c>proc $p/maps</c>). A <c>$</c> not followed by a name is kept as is.
/// </summary>
internal sealed class Variables
{
    private static readonly SearchValues<char> s_nameChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>The variables set so far.</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>Sets a variable.</summary>
    public void Set(string name, string value) => _values[name] = value;

    /// <summary>If <paramref name="word"/> is exactly <c>$name</c>, the name (an assignment target).</summary>
    public static string? AsTarget(string word) =>
        word.Length > 1 && word[0] == '$' && IsNameStart(word[1]) && !word.AsSpan(2).ContainsAnyExcept(s_nameChars)
            ? word[1..]
            : null;

    /// <summary><paramref name="word"/> with every variable reference replaced.</summary>
    /// <exception cref="UsageException">An undefined variable, or an unclosed <c>${</c>.</exception>
    public string Expand(string word)
    {
        if (!word.Contains('$', StringComparison.Ordinal))
            return word;
        var sb = new StringBuilder(word.Length);
        for (int i = 0; i < word.Length; i++)
        {
            if (word[i] != '$' || i + 1 >= word.Length)
            {
                sb.Append(word[i]);
                continue;
            }
            string name;
            if (word[i + 1] == '{')
            {
                int close = word.IndexOf('}', i + 2);
                if (close < 0)
                    throw new UsageException($"'${{' without a closing '}}' in '{word}'");
                name = word[(i + 2)..close];
                i = close;
            }
            else if (IsNameStart(word[i + 1]))
            {
                int end = i + 2;
                while (end < word.Length && IsNameChar(word[end]))
                    end++;
                name = word[(i + 1)..end];
                i = end - 1;
            }
            else
            {
                sb.Append('$');
                continue;
            }
            sb.Append(_values.TryGetValue(name, out var value) ? value : throw new UsageException($"undefined variable ${name}"));
        }
        return sb.ToString();
    }

    private static bool IsNameStart(char c) => char.IsAsciiLetter(c) || c == '_';

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';
}
