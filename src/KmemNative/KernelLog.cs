namespace KmemNative;

/// <summary>Kernel log levels (KERN_*).</summary>
public enum LogLevel
{
    /// <summary>KERN_ALERT.</summary>
    Alert = 1,
    /// <summary>KERN_ERR.</summary>
    Err = 3,
    /// <summary>KERN_WARNING.</summary>
    Warning = 4,
    /// <summary>KERN_NOTICE.</summary>
    Notice = 5,
    /// <summary>KERN_INFO.</summary>
    Info = 6,
}

/// <summary>The machine's kernel ring buffer (what <c>dmesg</c> shows): boot messages and later reports.</summary>
public sealed class KernelLog
{
    private readonly List<(LogLevel Level, string Text)> _lines = [];
    private readonly Lock _lock = new();

    /// <summary>Adds a line (or several, split at newlines).</summary>
    public void Print(LogLevel level, string text)
    {
        lock (_lock)
        {
            foreach (var line in text.Split('\n'))
                _lines.Add((level, line));
        }
    }

    /// <summary>pr_info().</summary>
    public void Info(string text) => Print(LogLevel.Info, text);

    /// <summary>pr_notice().</summary>
    public void Notice(string text) => Print(LogLevel.Notice, text);

    /// <summary>pr_warn().</summary>
    public void Warn(string text) => Print(LogLevel.Warning, text);

    /// <summary>pr_err().</summary>
    public void Err(string text) => Print(LogLevel.Err, text);

    /// <summary>A snapshot of every line.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lock)
                return [.. _lines.Select(l => l.Text)];
        }
    }

    /// <summary>Lines added after the first <paramref name="count"/>.</summary>
    public IReadOnlyList<string> Since(int count)
    {
        lock (_lock)
            return [.. _lines.Skip(count).Select(l => l.Text)];
    }

    /// <summary>Number of lines so far.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _lines.Count;
        }
    }
}
