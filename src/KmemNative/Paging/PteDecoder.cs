using System.Globalization;
using System.Text;
using KmemNative.Arch;

namespace KmemNative.Paging;

/// <summary>One bit (or field) of an entry with its meaning at that level.</summary>
/// <param name="Bits">"0", "7", "59-62"...</param>
/// <param name="Name">Short name (crash's where it has one).</param>
/// <param name="Meaning">What the bit does at this level.</param>
/// <param name="Value">The bit's value (the field's value for multi-bit fields).</param>
public readonly record struct PteBit(string Bits, string Name, string Meaning, ulong Value);

/// <summary>A decoded page-table entry (the <c>pte</c> command).</summary>
/// <param name="Value">The raw entry.</param>
/// <param name="Arch">The profile whose layout was used.</param>
/// <param name="Level">Hardware level (1 = PTE ... 4 = PML4E).</param>
/// <param name="LevelName">The Linux name it was given as (pgd, p4d, pud, pmd, pte).</param>
/// <param name="Flags">The set flags as crash names them, in crash's order.</param>
/// <param name="Pfn">The page frame the entry points at (the first of a large page).</param>
/// <param name="Phys">Its physical address.</param>
/// <param name="Leaf">True when the entry maps a page (a present PTE or a present PS entry where PS means "leaf").</param>
/// <param name="PageSize">Size of the page a leaf maps, else 0.</param>
/// <param name="Bits">Per-bit explanation, in bit order.</param>
public sealed record PteDecoding(
    ulong Value, ArchKind Arch, int Level, string LevelName, IReadOnlyList<string> Flags, ulong Pfn, ulong Phys, bool Leaf, ulong PageSize,
    IReadOnlyList<PteBit> Bits)
{
    /// <summary><c>{"flags":[...],"pfn":N,"phys":N,"leaf":bool,"page_size":N}</c>, exactly.</summary>
    public string ToJson()
    {
        var sb = new StringBuilder("{\"flags\":[");
        for (int i = 0; i < Flags.Count; i++)
            sb.Append(i == 0 ? "" : ",").Append('"').Append(Flags[i]).Append('"');
        sb.Append(CultureInfo.InvariantCulture, $"],\"pfn\":{Pfn},\"phys\":{Phys},\"leaf\":{(Leaf ? "true" : "false")},\"page_size\":{PageSize}}}");
        return sb.ToString();
    }

    /// <summary>The text form: value, flags, frame, page size, then the bits like the kernel's gdb <c>translate-vm</c>.</summary>
    public override string ToString()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        string width = Arch == ArchKind.I386 ? "x8" : "x16";
        sb.Append(ci, $"{LevelName} 0x{Value.ToString(width, ci)} ({MachineConfig.ArchName(Arch)}, level {Level})\n");
        string flagText = Flags.Count > 0 ? string.Join('|', Flags) : Value == 0 ? "no mapping" : "";
        string addrLabel = Leaf ? "page physical address" : (Value & 1) != 0 ? "next table physical address" : "physical address field";
        string sizeText = Leaf ? SizeText(PageSize) : "- (not a leaf)";
        sb.Append(ci, $"    {"flags",-30} ({flagText})\n");
        sb.Append(ci, $"    {addrLabel,-30} 0x{Phys:x}\n");
        sb.Append(ci, $"    {"pfn",-30} 0x{Pfn:x}\n");
        sb.Append(ci, $"    {"page size",-30} {sizeText}\n");
        sb.Append("    ---\n");
        foreach (var b in Bits)
        {
            bool field = b.Bits.Contains('-', StringComparison.Ordinal);
            string value = field ? "0x" + b.Value.ToString("x", ci) : b.Value != 0 ? "True" : "False";
            sb.Append(ci, $"    {(field ? "bits" : "bit"),-4} {b.Bits,-10} {b.Meaning,-40} {value}\n");
        }
        return sb.ToString();
    }

    private static string SizeText(ulong size) => size switch
    {
        >= 1UL << 30 => $"{size >> 30}GB",
        >= 1UL << 20 => $"{size >> 20}MB",
        _ => $"{size >> 10}KB",
    };
}

/// <summary>Decodes raw entries with a profile's layout.</summary>
public static class PteDecoder
{
    /// <summary>Linux level names, by ptdump index.</summary>
    public static IReadOnlyList<string> LevelNames { get; } = ["pgd", "p4d", "pud", "pmd", "pte"];

    /// <summary>Parses a level name (pgd, p4d, pud, pmd, pte).</summary>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static int ParseLevel(string name)
    {
        int i = LevelNames.ToList().IndexOf(name.Trim().ToLowerInvariant());
        return i >= 0 ? i : throw new ArgumentException($"unknown level '{name}' (expected pgd, p4d, pud, pmd or pte)", nameof(name));
    }

    /// <summary>Decodes <paramref name="value"/> as an entry of Linux level <paramref name="linuxLevel"/> (0 pgd .. 4 pte) on <paramref name="arch"/>.</summary>
    /// <exception cref="ArgumentException">A 2-level entry wider than 32 bits, or a bad level.</exception>
    public static PteDecoding Decode(ArchKind arch, ulong value, int linuxLevel = 4) => arch == ArchKind.I386
        ? Decode<I386>(value, linuxLevel)
        : Decode<X86_64>(value, linuxLevel);

    internal static PteDecoding Decode<TArch>(ulong value, int linuxLevel) where TArch : struct, IArch
    {
        if ((uint)linuxLevel > 4)
            throw new ArgumentException($"level {linuxLevel} is not 0 (pgd) .. 4 (pte)", nameof(linuxLevel));
        if (TArch.PagingLevels == 2 && value > uint.MaxValue)
            throw new ArgumentException($"0x{value:x} does not fit a 32-bit i386 entry", nameof(value));
        int level = TArch.LinuxLevel(linuxLevel);
        bool present = (value & 1) != 0;
        bool ps = (value & (ulong)PteFlags.Pse) != 0;
        bool leaf = present && (level == 1 || (PageTables<TArch>.LargeAllowed(level) && ps));
        ulong frame = leaf && level > 1 ? TArch.LargePageFrame(value, level) : value & TArch.PtePfnMask;
        ulong size = leaf ? PageTables<TArch>.EntrySpan(level) : 0;
        var flags = Vtop<TArch>.CrashFlags(value);
        return new PteDecoding(value, TArch.Kind, level, LevelNames[linuxLevel], flags, frame >> 12, frame, leaf, size, Explain<TArch>(value, level, leaf));
    }

    private static List<PteBit> Explain<TArch>(ulong v, int level, bool leaf) where TArch : struct, IArch
    {
        ulong Bit(int n) => (v >> n) & 1;
        bool large = leaf && level > 1;
        var bits = new List<PteBit>
        {
            new("0", "PRESENT", "entry present", Bit(0)),
            new("1", "RW", "read/write access allowed", Bit(1)),
            new("2", "USER", "user access allowed", Bit(2)),
            new("3", "PWT", "page level write through", Bit(3)),
            new("4", "PCD", "page level cache disabled", Bit(4)),
            new("5", "ACCESSED", "entry has been accessed", Bit(5)),
        };
        if (level == 1 || large)
            bits.Add(new("6", "DIRTY", "page dirty", Bit(6)));
        else
            bits.Add(new("6", "DIRTY", "ignored in a table entry", Bit(6)));
        if (level == 1)
            bits.Add(new("7", "PAT", "pat (page attribute table index)", Bit(7)));
        else if (PageTables<TArch>.LargeAllowed(level))
            bits.Add(new("7", "PSE", "page size (1 = maps a page)", Bit(7)));
        else
            bits.Add(new("7", "PSE", "page size (reserved at this level)", Bit(7)));
        bits.Add(new("8", "GLOBAL", leaf || level == 1 ? ((v & 1) != 0 ? "global translation" : "global translation (PROTNONE when not present)") : "ignored in a table entry", Bit(8)));
        bits.Add(new("9", "SOFTW1", "software (Linux: special)", Bit(9)));
        bits.Add(new("10", "SOFTW2", TArch.PagingLevels == 2 ? "software" : "software (Linux: uffd-wp)", Bit(10)));
        bits.Add(new("11", "SOFTW3", "software (Linux: soft-dirty)", Bit(11)));
        if (large)
            bits.Add(new("12", "PAT_LARGE", "pat (page attribute table index)", Bit(12)));
        if (large && TArch.PagingLevels == 2)
            bits.Add(new("13-20", "PSE36", "physical address bits 39:32 (PSE-36)", (v >> 13) & 0xff));
        if (TArch.PagingLevels > 2)
        {
            bits.Add(new("57", "SOFTW4", "software", Bit(57)));
            bits.Add(new("58", "SOFTW5", "software (Linux: saved-dirty)", Bit(58)));
            bits.Add(new("59-62", "PKEY", "protection key", (v >> 59) & 0xf));
            bits.Add(new("63", "NX", "execute disable", Bit(63)));
        }
        return bits;
    }
}
