namespace KmemNative.PhysMem;

/// <summary>
/// The boot-time memory allocator (mm/memblock.c): the firmware's memory ranges, the reservations made before
/// the buddy allocator exists, and top-down allocation of early structures (mem_map, page_ext, per-CPU areas).
/// </summary>
/// <remarks>Used only during boot, from one thread. After boot, the reserved list documents where things went.</remarks>
public sealed class Memblock
{
    private readonly List<MemoryRange> _memory;
    private readonly List<(MemoryRange Range, string Name)> _reserved = [];

    internal Memblock(IEnumerable<MemoryRange> memory) => _memory = [.. memory.OrderBy(r => r.Start)];

    /// <summary>memblock.memory: the RAM ranges.</summary>
    public IReadOnlyList<MemoryRange> Memory => _memory;

    /// <summary>memblock.reserved with the name of each reservation's owner, in address order.</summary>
    public IReadOnlyList<(MemoryRange Range, string Name)> Reserved => [.. _reserved.OrderBy(r => r.Range.Start)];

    /// <summary>memblock_reserve(): marks [start, start + size) as taken.</summary>
    internal void Reserve(ulong start, ulong size, string name) => _reserved.Add((new MemoryRange(start, start + size), name));

    /// <summary>
    /// memblock_alloc_range(): the highest free, <paramref name="align"/>-aligned range of <paramref name="size"/> bytes
    /// below <paramref name="limit"/> (memblock allocates top-down by default), reserved under <paramref name="name"/>.
    /// </summary>
    internal ulong Alloc(ulong size, ulong align, ulong limit, string name)
    {
        size = (size + PageSize.Bytes - 1) & ~(PageSize.Bytes - 1);
        for (int i = _memory.Count - 1; i >= 0; i--)
        {
            var region = _memory[i];
            ulong top = Math.Min(region.End, limit);
            while (top >= region.Start + size)
            {
                ulong start = (top - size) & ~(align - 1);
                if (start < region.Start)
                    break;
                var overlap = _reserved.Where(r => r.Range.Start < start + size && r.Range.End > start)
                                       .Select(r => r.Range.Start).DefaultIfEmpty(ulong.MaxValue).Min();
                if (overlap == ulong.MaxValue)
                {
                    Reserve(start, size, name);
                    return start;
                }
                top = overlap; // slide below the lowest reservation in the way
            }
        }
        throw new MachineConfigException($"memblock: cannot allocate {size} bytes for {name} below 0x{limit:x}: memory too small");
    }

    /// <summary>True when the page frame is in memblock.memory (pfn_valid and present).</summary>
    public bool IsMemory(ulong pfn)
    {
        ulong phys = pfn << PageSize.Shift;
        foreach (var r in _memory)
            if (r.Contains(phys))
                return true;
        return false;
    }

    /// <summary>True when the page frame overlaps a reservation.</summary>
    public bool IsReserved(ulong pfn)
    {
        ulong phys = pfn << PageSize.Shift;
        foreach (var (r, _) in _reserved)
            if (r.Start < phys + PageSize.Bytes && r.End > phys)
                return true;
        return false;
    }

    /// <summary>
    /// for_each_free_mem_range(): memory minus reservations, in address order, page aligned inwards.
    /// This is what memblock_free_all() hands to the buddy allocator.
    /// </summary>
    public IEnumerable<MemoryRange> FreeRanges()
    {
        var reserved = _reserved.Select(r => r.Range).OrderBy(r => r.Start).ToList();
        foreach (var m in _memory)
        {
            ulong cursor = m.Start;
            foreach (var r in reserved)
            {
                if (r.End <= cursor || r.Start >= m.End)
                    continue;
                if (r.Start > cursor)
                    yield return Aligned(cursor, r.Start);
                cursor = Math.Max(cursor, r.End);
            }
            if (cursor < m.End)
                yield return Aligned(cursor, m.End);
        }

        static MemoryRange Aligned(ulong s, ulong e) =>
            new((s + PageSize.Bytes - 1) & ~(PageSize.Bytes - 1), e & ~(PageSize.Bytes - 1));
    }
}
