using System.Globalization;

namespace KmemNative.Mm;

/// <summary>
/// The uapi names of the memory system calls' arguments: <c>PROT_READ|PROT_WRITE</c>,
/// <c>MAP_PRIVATE|MAP_ANONYMOUS</c>, <c>MADV_DONTNEED</c>, in both directions. Numbers (0x22) are accepted too.
/// </summary>
public static class MmFlagsText
{
    private static readonly (string Name, uint Value)[] s_prot =
    [
        ("PROT_NONE", 0), ("PROT_READ", 0x1), ("PROT_WRITE", 0x2), ("PROT_EXEC", 0x4), ("PROT_SEM", 0x8),
        ("PROT_GROWSDOWN", 0x0100_0000), ("PROT_GROWSUP", 0x0200_0000),
    ];

    private static readonly (string Name, uint Value)[] s_map =
    [
        ("MAP_SHARED", 0x01), ("MAP_PRIVATE", 0x02), ("MAP_SHARED_VALIDATE", 0x03), ("MAP_FIXED", 0x10), ("MAP_ANONYMOUS", 0x20),
        ("MAP_ANON", 0x20), ("MAP_32BIT", 0x40), ("MAP_GROWSDOWN", 0x100), ("MAP_DENYWRITE", 0x800), ("MAP_EXECUTABLE", 0x1000),
        ("MAP_LOCKED", 0x2000), ("MAP_NORESERVE", 0x4000), ("MAP_POPULATE", 0x8000), ("MAP_NONBLOCK", 0x10000),
        ("MAP_STACK", 0x20000), ("MAP_HUGETLB", 0x40000), ("MAP_SYNC", 0x80000), ("MAP_FIXED_NOREPLACE", 0x100000),
        ("MAP_FILE", 0),
    ];

    private static readonly (string Name, int Value)[] s_madv =
    [
        ("MADV_NORMAL", 0), ("MADV_RANDOM", 1), ("MADV_SEQUENTIAL", 2), ("MADV_WILLNEED", 3), ("MADV_DONTNEED", 4),
        ("MADV_DONTFORK", 10), ("MADV_DOFORK", 11), ("MADV_WIPEONFORK", 18), ("MADV_KEEPONFORK", 19),
    ];

    /// <summary>Parses <c>PROT_READ|PROT_WRITE</c> or a number.</summary>
    /// <exception cref="FormatException">An unknown name or a bad number.</exception>
    public static Prot ParseProt(string text) => (Prot)Parse(text, s_prot, "PROT_");

    /// <summary>Parses <c>MAP_PRIVATE|MAP_ANONYMOUS</c> or a number.</summary>
    /// <exception cref="FormatException">An unknown name or a bad number.</exception>
    public static MapFlags ParseMapFlags(string text) => (MapFlags)Parse(text, s_map, "MAP_");

    /// <summary>Parses <c>MADV_DONTNEED</c> or a number.</summary>
    /// <exception cref="FormatException">An unknown name or a bad number.</exception>
    public static Madvise ParseMadvise(string text)
    {
        foreach (var (name, value) in s_madv)
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase))
                return (Madvise)value;
        if (TryNumber(text, out ulong n) && n <= int.MaxValue)
            return (Madvise)(int)n;
        throw new FormatException($"'{text}' is not an madvise advice (MADV_DONTNEED, MADV_NORMAL, ... or a number)");
    }

    /// <summary>PROT_* names joined by '|' (PROT_NONE for 0).</summary>
    public static string Format(Prot prot) => Format((uint)prot, s_prot, "PROT_NONE");

    /// <summary>MAP_* names joined by '|'.</summary>
    public static string Format(MapFlags flags)
    {
        uint v = (uint)flags;
        var parts = new List<string>();
        uint type = v & 0xf;
        parts.Add(type switch { 1 => "MAP_SHARED", 2 => "MAP_PRIVATE", 3 => "MAP_SHARED_VALIDATE", 0 => "", _ => $"0x{type:x}" });
        foreach (var (name, value) in s_map)
        {
            if (value <= 0xf || name == "MAP_ANON")
                continue;
            if ((v & value) == value)
            {
                parts.Add(name);
                v &= ~value;
            }
        }
        v &= ~0xfu;
        if (v != 0)
            parts.Add($"0x{v:x}");
        string s = string.Join('|', parts.Where(p => p.Length != 0));
        return s.Length == 0 ? "0" : s;
    }

    /// <summary>The MADV_ name of an advice.</summary>
    public static string Format(Madvise advice)
    {
        foreach (var (name, value) in s_madv)
            if (value == (int)advice)
                return name;
        return ((int)advice).ToString(CultureInfo.InvariantCulture);
    }

    private static string Format(uint v, (string Name, uint Value)[] table, string zero)
    {
        if (v == 0)
            return zero;
        var parts = new List<string>();
        foreach (var (name, value) in table)
        {
            if (value != 0 && (v & value) == value)
            {
                parts.Add(name);
                v &= ~value;
            }
        }
        if (v != 0)
            parts.Add($"0x{v:x}");
        return string.Join('|', parts);
    }

    private static uint Parse(string text, (string Name, uint Value)[] table, string prefix)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new FormatException($"expected {prefix}* names joined by '|', or a number");
        uint result = 0;
        foreach (string raw in text.Split('|'))
        {
            string part = raw.Trim();
            if (TryNumber(part, out ulong n))
            {
                if (n > uint.MaxValue)
                    throw new FormatException($"'{part}' is too large");
                result |= (uint)n;
                continue;
            }
            bool found = false;
            foreach (var (name, value) in table)
            {
                if (string.Equals(name, part, StringComparison.OrdinalIgnoreCase))
                {
                    result |= value;
                    found = true;
                    break;
                }
            }
            if (!found)
                throw new FormatException($"'{part}' is not a {prefix}* name (known: {string.Join(", ", table.Select(t => t.Name))})");
        }
        return result;
    }

    private static bool TryNumber(string text, out ulong value) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
