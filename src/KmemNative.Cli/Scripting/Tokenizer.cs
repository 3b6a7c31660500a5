using System.Text;

namespace KmemNative.Cli.Scripting;

/// <summary>
/// Splits a script line into words: whitespace separates them, <c>"..."</c> quotes (with <c>\"</c> and <c>\\</c>
/// inside), <c>#</c> outside quotes starts a comment.
/// </summary>
internal static class Tokenizer
{
    /// <summary>The words of <paramref name="line"/>; empty for a blank or comment line.</summary>
    /// <exception cref="UsageException">A quote is not closed.</exception>
    public static List<string> Split(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false, quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"')
                    quoted = false;
                else if (c == '\\' && i + 1 < line.Length && line[i + 1] is '"' or '\\')
                    word.Append(line[++i]);
                else
                    word.Append(c);
                continue;
            }
            if (c == '#')
                break;
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                    words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            // A quote may open mid-word (a"b c"d is one word) and "" is an empty word.
            inWord = true;
            if (c == '"')
                quoted = true;
            else
                word.Append(c);
        }
        if (quoted)
            throw new UsageException("unterminated quoted string");
        if (inWord)
            words.Add(word.ToString());
        return words;
    }
}
