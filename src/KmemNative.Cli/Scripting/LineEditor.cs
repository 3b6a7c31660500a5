using System.Text;

namespace KmemNative.Cli.Scripting;

/// <summary>The terminal a <see cref="LineEditor"/> drives: keys in, text (with ANSI cursor controls) out.</summary>
internal interface ILineEditorConsole
{
    /// <summary>The next key, not echoed.</summary>
    ConsoleKeyInfo ReadKey();

    /// <summary>Writes text (ANSI escapes included) and flushes.</summary>
    void Write(string text);
}

/// <summary>The process's console.</summary>
internal sealed class SystemConsole : ILineEditorConsole
{
    /// <inheritdoc/>
    public ConsoleKeyInfo ReadKey() => Console.ReadKey(intercept: true);

    /// <inheritdoc/>
    public void Write(string text)
    {
        Console.Out.Write(text);
        Console.Out.Flush();
    }
}

/// <summary>
/// A small line editor for the interactive shell: editing keys (←/→, Home/End, Ctrl-A/E/B/F, Backspace/Delete,
/// Ctrl-U/K/W), history (↑/↓ or Ctrl-P/N through <see cref="ShellHistory"/>), Tab completion through a
/// <see cref="ShellCompleter"/> (one candidate is inserted; several insert their common prefix or are listed), Ctrl-C
/// drops the line, Ctrl-D on an empty line ends the input. Redraws the line with <c>\r</c> and ANSI
/// erase-to-end-of-line, so any VT100-style terminal works; lines wider than the terminal are not handled specially.
/// </summary>
internal sealed class LineEditor(ILineEditorConsole console, string prompt, ShellHistory history, ShellCompleter? completer) : ILineReader
{
    private readonly StringBuilder _line = new();
    private int _cursor;

    /// <inheritdoc/>
    public string? ReadLine()
    {
        _line.Clear();
        _cursor = 0;
        history.ResetCursor();
        console.Write(prompt);
        while (true)
        {
            var key = console.ReadKey();
            bool ctrl = (key.Modifiers & ConsoleModifiers.Control) != 0;
            switch (key.Key)
            {
                case ConsoleKey.Enter:
                    console.Write("\r\n");
                    string done = _line.ToString();
                    history.Add(done);
                    return done;
                case ConsoleKey.Backspace:
                    if (_cursor > 0)
                    {
                        _line.Remove(--_cursor, 1);
                        Redraw();
                    }
                    continue;
                case ConsoleKey.Delete:
                    DeleteAtCursor();
                    continue;
                case ConsoleKey.LeftArrow:
                    Move(-1);
                    continue;
                case ConsoleKey.RightArrow:
                    Move(+1);
                    continue;
                case ConsoleKey.Home:
                    Move(-_cursor);
                    continue;
                case ConsoleKey.End:
                    Move(_line.Length - _cursor);
                    continue;
                case ConsoleKey.UpArrow:
                    Recall(history.Previous(_line.ToString()));
                    continue;
                case ConsoleKey.DownArrow:
                    Recall(history.Next());
                    continue;
                case ConsoleKey.Tab:
                    Complete();
                    continue;
            }
            if (ctrl)
            {
                switch (key.Key)
                {
                    case ConsoleKey.A: Move(-_cursor); continue;
                    case ConsoleKey.E: Move(_line.Length - _cursor); continue;
                    case ConsoleKey.B: Move(-1); continue;
                    case ConsoleKey.F: Move(+1); continue;
                    case ConsoleKey.P: Recall(history.Previous(_line.ToString())); continue;
                    case ConsoleKey.N: Recall(history.Next()); continue;
                    case ConsoleKey.U:
                        _line.Remove(0, _cursor);
                        _cursor = 0;
                        Redraw();
                        continue;
                    case ConsoleKey.K:
                        _line.Length = _cursor;
                        Redraw();
                        continue;
                    case ConsoleKey.W:
                        KillWord();
                        continue;
                    case ConsoleKey.C:
                        console.Write("^C\r\n");
                        return "";
                    case ConsoleKey.D:
                        if (_line.Length == 0)
                        {
                            console.Write("\r\n");
                            return null;
                        }
                        DeleteAtCursor();
                        continue;
                }
                continue;
            }
            if (key.KeyChar >= ' ' && key.KeyChar != '\u007f')
            {
                _line.Insert(_cursor++, key.KeyChar);
                if (_cursor == _line.Length)
                    console.Write(key.KeyChar.ToString());
                else
                    Redraw();
            }
        }
    }

    private void DeleteAtCursor()
    {
        if (_cursor < _line.Length)
        {
            _line.Remove(_cursor, 1);
            Redraw();
        }
    }

    private void Move(int delta)
    {
        int to = Math.Clamp(_cursor + delta, 0, _line.Length);
        if (to == _cursor)
            return;
        console.Write(to < _cursor ? $"\u001b[{_cursor - to}D" : $"\u001b[{to - _cursor}C");
        _cursor = to;
    }

    private void KillWord()
    {
        int start = _cursor;
        while (start > 0 && _line[start - 1] == ' ')
            start--;
        while (start > 0 && _line[start - 1] != ' ')
            start--;
        _line.Remove(start, _cursor - start);
        _cursor = start;
        Redraw();
    }

    private void Recall(string? text)
    {
        if (text is null)
            return;
        _line.Clear().Append(text);
        _cursor = _line.Length;
        Redraw();
    }

    /// <summary>Prompt, line, erase the rest, put the cursor back where it belongs.</summary>
    private void Redraw()
    {
        var sb = new StringBuilder("\r").Append(prompt).Append(_line).Append("\u001b[K");
        if (_cursor < _line.Length)
            sb.Append("\u001b[").Append(_line.Length - _cursor).Append('D');
        console.Write(sb.ToString());
    }

    private void Complete()
    {
        if (completer is null)
            return;
        var (start, candidates) = completer.Complete(_line.ToString(0, _cursor));
        if (candidates.Count == 0)
        {
            console.Write("\a");
            return;
        }
        string typed = _line.ToString(start, _cursor - start);
        string insert;
        if (candidates.Count == 1)
        {
            insert = candidates[0];
            if (!insert.EndsWith('/'))
                insert += " ";
        }
        else
        {
            insert = CommonPrefix(candidates);
            if (insert.Length <= typed.Length)
            {
                // Nothing more to insert: show the choices and redraw the line below them.
                console.Write("\r\n" + Columns(candidates) + "\r\n");
                Redraw();
                return;
            }
        }
        _line.Remove(start, _cursor - start).Insert(start, insert);
        _cursor = start + insert.Length;
        Redraw();
    }

    private static string CommonPrefix(IReadOnlyList<string> words)
    {
        string prefix = words[0];
        foreach (var w in words.Skip(1))
        {
            int n = 0;
            while (n < prefix.Length && n < w.Length && prefix[n] == w[n])
                n++;
            prefix = prefix[..n];
        }
        return prefix;
    }

    private static string Columns(IReadOnlyList<string> words)
    {
        int width = words.Max(w => w.Length) + 2;
        int perRow = Math.Max(1, 80 / width);
        var sb = new StringBuilder();
        for (int i = 0; i < words.Count; i++)
        {
            if (i > 0 && i % perRow == 0)
                sb.Append("\r\n");
            sb.Append(words[i].PadRight(width));
        }
        return sb.ToString().TrimEnd();
    }
}
