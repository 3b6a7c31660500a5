using System.Text;

namespace KmemNative.Trace;

/// <summary>
/// Interns short ASCII strings (task names, call sites, cache names, flag strings) by id, looking them up by a
/// span of bytes without allocating for strings already seen.
/// </summary>
public sealed class StringTable
{
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly List<string> _strings = [];

    /// <summary>Creates an empty table; id 0 is the empty string.</summary>
    public StringTable()
    {
        _lookup = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        Intern("");
    }

    /// <summary>Number of strings.</summary>
    public int Count => _strings.Count;

    /// <summary>The string with id <paramref name="id"/>.</summary>
    public string this[int id] => _strings[id];

    /// <summary>The id of <paramref name="s"/>, adding it if new.</summary>
    public int Intern(string s)
    {
        if (_ids.TryGetValue(s, out int id))
            return id;
        id = _strings.Count;
        _strings.Add(s);
        _ids.Add(s, id);
        return id;
    }

    /// <summary>The id of the ASCII bytes, adding them if new (allocates only for new strings).</summary>
    public int Intern(ReadOnlySpan<byte> ascii)
    {
        Span<char> chars = ascii.Length <= 512 ? stackalloc char[ascii.Length] : new char[ascii.Length];
        for (int i = 0; i < ascii.Length; i++)
            chars[i] = (char)ascii[i];
        if (_lookup.TryGetValue(chars, out int id))
            return id;
        return Intern(new string(chars));
    }

    /// <summary>The bytes of an interned string (for writers).</summary>
    public byte[] Bytes(int id) => Encoding.ASCII.GetBytes(_strings[id]);
}
