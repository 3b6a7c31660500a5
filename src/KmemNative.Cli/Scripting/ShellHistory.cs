namespace KmemNative.Cli.Scripting;

/// <summary>
/// The shell's history: lines in order, browsed with ↑/↓, kept in a file (<c>~/.kmem_history</c> by default) so
/// the next session can recall them. Empty lines and immediate repeats are not recorded; the file keeps the last
/// <see cref="MaxLines"/> lines.
/// </summary>
internal sealed class ShellHistory
{
    /// <summary>Lines kept.</summary>
    public const int MaxLines = 1000;

    private readonly List<string> _lines = [];
    private readonly string? _path;
    private int _cursor;          // index into _lines while browsing; _lines.Count = the line being typed
    private string _draft = "";

    /// <summary>A history kept in <paramref name="path"/> (loaded now, appended to as lines are added), or in memory only when null.</summary>
    public ShellHistory(string? path)
    {
        _path = path;
        if (path is not null && File.Exists(path))
        {
            try
            {
                _lines.AddRange(File.ReadAllLines(path).Where(l => l.Length > 0).TakeLast(MaxLines));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // An unreadable history is not worth failing the shell for.
            }
        }
        _cursor = _lines.Count;
    }

    /// <summary>The default file: <c>$HOME/.kmem_history</c> (null when there is no home directory).</summary>
    public static string? DefaultPath
    {
        get
        {
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return home.Length == 0 ? null : Path.Combine(home, ".kmem_history");
        }
    }

    /// <summary>The lines, oldest first.</summary>
    public IReadOnlyList<string> Lines => _lines;

    /// <summary>Records a line (and appends it to the file).</summary>
    public void Add(string line)
    {
        _cursor = _lines.Count;
        if (line.Trim().Length == 0 || (_lines.Count > 0 && _lines[^1] == line))
            return;
        _lines.Add(line);
        if (_lines.Count > MaxLines)
            _lines.RemoveAt(0);
        _cursor = _lines.Count;
        if (_path is null)
            return;
        try
        {
            File.AppendAllLines(_path, [line]);
            if (_lines.Count == MaxLines)
                File.WriteAllLines(_path, _lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Keep going without persistence.
        }
    }

    /// <summary>Starts browsing from the newest line again (a new line is being typed).</summary>
    public void ResetCursor()
    {
        _cursor = _lines.Count;
        _draft = "";
    }

    /// <summary>↑: the previous line (the typed text is kept as the draft ↓ returns to); null at the oldest.</summary>
    public string? Previous(string current)
    {
        if (_cursor == 0)
            return null;
        if (_cursor == _lines.Count)
            _draft = current;
        return _lines[--_cursor];
    }

    /// <summary>↓: the next line, then the draft; null when already at the draft.</summary>
    public string? Next()
    {
        if (_cursor >= _lines.Count)
            return null;
        _cursor++;
        return _cursor == _lines.Count ? _draft : _lines[_cursor];
    }
}
