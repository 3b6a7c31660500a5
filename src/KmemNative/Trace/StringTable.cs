using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace KmemNative.Trace;

/// <summary>
/// Interns short ASCII strings (task names, call sites, cache names, flag strings) by id, looking them up by a
/// span of bytes without allocating for strings already seen.
/// </summary>
/// <remarks>
/// The byte lookup is the parser's hot path (three or four per trace line): an open-addressing table keyed by the
/// bytes themselves — a word-at-a-time hash and one <c>SequenceEqual</c> — with no conversion to chars.
/// </remarks>
public sealed class StringTable
{
    private readonly List<string> _strings = [];
    private readonly List<byte[]> _bytes = [];
    private int[] _slots = new int[256];      // id + 1; 0 = empty
    private int[] _hashes = new int[256];     // the hash of the slot's string

    /// <summary>Creates an empty table; id 0 is the empty string.</summary>
    public StringTable() => Intern("");

    /// <summary>Number of strings.</summary>
    public int Count => _strings.Count;

    /// <summary>The string with id <paramref name="id"/>.</summary>
    public string this[int id] => _strings[id];

    /// <summary>The id of <paramref name="s"/>, adding it if new.</summary>
    public int Intern(string s) => Intern(Encoding.Latin1.GetBytes(s));

    /// <summary>The id of the ASCII bytes, adding them if new (allocates only for new strings).</summary>
    // Optimised at its first call: a cold kmem process parses 671,005 lines before tiering would catch up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Intern(ReadOnlySpan<byte> ascii)
    {
        int hash = Hash(ascii);
        int mask = _slots.Length - 1;
        for (int i = hash & mask; ; i = (i + 1) & mask)
        {
            int slot = _slots[i];
            if (slot == 0)
                return Add(ascii, hash);
            if (_hashes[i] == hash && ascii.SequenceEqual(_bytes[slot - 1]))
                return slot - 1;
        }
    }

    /// <summary>The bytes of an interned string (for writers).</summary>
    public byte[] Bytes(int id) => (byte[])_bytes[id].Clone();

    private int Add(ReadOnlySpan<byte> ascii, int hash)
    {
        int id = _strings.Count;
        _strings.Add(Encoding.Latin1.GetString(ascii));
        _bytes.Add(ascii.ToArray());
        if ((id + 1) * 2 > _slots.Length)
            Grow();
        Insert(id, hash);
        return id;
    }

    private void Insert(int id, int hash)
    {
        int mask = _slots.Length - 1;
        int i = hash & mask;
        while (_slots[i] != 0)
            i = (i + 1) & mask;
        _slots[i] = id + 1;
        _hashes[i] = hash;
    }

    private void Grow()
    {
        var oldSlots = _slots;
        var oldHashes = _hashes;
        _slots = new int[oldSlots.Length * 2];
        _hashes = new int[oldSlots.Length * 2];
        for (int i = 0; i < oldSlots.Length; i++)
        {
            if (oldSlots[i] != 0)
                Insert(oldSlots[i] - 1, oldHashes[i]);
        }
    }

    /// <summary>A multiplicative hash eight bytes at a time (the strings are short; quality matters less than speed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Hash(ReadOnlySpan<byte> s)
    {
        ulong h = (ulong)s.Length * 0x9E3779B97F4A7C15UL;
        int i = 0;
        for (; i + 8 <= s.Length; i += 8)
            h = BitOperations.RotateLeft((h ^ BinaryPrimitives.ReadUInt64LittleEndian(s[i..])) * 0xBF58476D1CE4E5B9UL, 27);
        ulong tail = 0;
        for (int shift = 0; i < s.Length; i++, shift += 8)
            tail |= (ulong)s[i] << shift;
        h = (h ^ tail) * 0x94D049BB133111EBUL;
        h ^= h >> 31;
        return (int)h ^ (int)(h >> 32);
    }
}
