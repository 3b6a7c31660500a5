namespace KmemNative.PhysMem;

/// <summary>
/// Field offsets of a C struct the emulator lays out in the arena, computed with the C rules (each field at the
/// next multiple of its alignment, the size rounded to the largest alignment). Used to place <c>struct zone</c>,
/// <c>struct per_cpu_pages</c> and friends with the profile's widths, and to label hex dumps.
/// </summary>
internal sealed class KStructLayout
{
    private readonly List<(string Name, int Offset, int Size)> _fields = [];
    private int _size;
    private int _align = 1;

    /// <summary>Creates an empty layout for <c>struct <paramref name="name"/></c>.</summary>
    public KStructLayout(string name) => Name = name;

    /// <summary>The struct's name.</summary>
    public string Name { get; }

    /// <summary>sizeof(struct).</summary>
    public int Size => (_size + _align - 1) / _align * _align;

    /// <summary>The fields in order.</summary>
    public IReadOnlyList<(string Name, int Offset, int Size)> Fields => _fields;

    /// <summary>Appends a field of <paramref name="size"/> bytes aligned to <paramref name="align"/> (default: its size, at most 8).</summary>
    public KStructLayout Add(string name, int size, int align = 0)
    {
        if (align == 0)
            align = Math.Min(size, 8);
        _size = (_size + align - 1) / align * align;
        _fields.Add((name, _size, size));
        _size += size;
        _align = Math.Max(_align, align);
        return this;
    }

    /// <summary>Pads the struct to a multiple of <paramref name="align"/> (____cacheline_aligned).</summary>
    public KStructLayout AlignTo(int align)
    {
        _align = Math.Max(_align, align);
        _size = (_size + align - 1) / align * align;
        return this;
    }

    /// <summary>Offset of a field.</summary>
    /// <exception cref="KeyNotFoundException">No such field.</exception>
    public int Offset(string name)
    {
        foreach (var f in _fields)
            if (f.Name == name)
                return f.Offset;
        throw new KeyNotFoundException($"struct {Name} has no field {name}");
    }

    /// <summary>The field covering byte <paramref name="offset"/>, or null in padding.</summary>
    public string? FieldAt(int offset)
    {
        foreach (var f in _fields)
            if (offset >= f.Offset && offset < f.Offset + f.Size)
                return f.Name;
        return null;
    }
}
