using KmemNative.Arch;

namespace KmemNative.PhysMem;

/// <summary>
/// The firmware memory map the emulated BIOS hands over (e820), shaped like a PC's: RAM from 0 with the legacy
/// 640 KiB-1 MiB hole, and on machines with more than 3 GiB a PCI hole at [3 GiB, 4 GiB) whose RAM is remapped
/// above 4 GiB on x86-64 (a non-PAE i386 cannot address it, so there it is lost, as on real hardware).
/// </summary>
/// <remarks>Page 0 is trimmed from usable memory as the kernel does at boot, so RAM starts at 0x1000.</remarks>
public static class E820
{
    /// <summary>Start of the legacy hole (EBDA, VGA, option ROMs, BIOS): 0x9f000.</summary>
    public const ulong LegacyHoleStart = 0x9f000;

    /// <summary>End of the legacy hole: 1 MiB.</summary>
    public const ulong LegacyHoleEnd = 0x100000;

    /// <summary>Start of the PCI MMIO hole below 4 GiB.</summary>
    public const ulong PciHoleStart = 0xC000_0000;

    /// <summary>4 GiB.</summary>
    public const ulong FourGiB = 1UL << 32;

    /// <summary>One e820 entry.</summary>
    /// <param name="Range">The physical range.</param>
    /// <param name="Type">"usable" or "reserved".</param>
    public readonly record struct Entry(MemoryRange Range, string Type);

    /// <summary>The map for <paramref name="memBytes"/> of installed RAM, and the RAM bytes no address reaches.</summary>
    public static (Entry[] Map, ulong LostBytes) Build(ArchKind arch, ulong memBytes)
    {
        var map = new List<Entry>
        {
            new(new MemoryRange(0, LegacyHoleStart), "usable"),
            new(new MemoryRange(LegacyHoleStart, LegacyHoleEnd), "reserved"),
        };
        ulong low = Math.Min(memBytes, PciHoleStart);
        map.Add(new(new MemoryRange(LegacyHoleEnd, low), "usable"));
        ulong lost = 0;
        if (memBytes > PciHoleStart)
        {
            ulong remapped = memBytes - PciHoleStart;
            if (arch == ArchKind.X86_64)
                map.Add(new(new MemoryRange(FourGiB, FourGiB + remapped), "usable"));
            else
                lost = remapped;
        }
        return ([.. map], lost);
    }

    /// <summary>memblock.memory: the usable entries, with page 0 trimmed.</summary>
    public static MemoryRange[] UsableRam(Entry[] map) =>
        [.. map.Where(e => e.Type == "usable")
               .Select(e => e.Range.Start == 0 ? new MemoryRange(PageSize.Bytes, e.Range.End) : e.Range)
               .Where(r => r.End > r.Start)];
}
