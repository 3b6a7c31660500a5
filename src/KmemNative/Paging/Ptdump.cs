using System.Globalization;
using System.Text;
using KmemNative.Arch;

namespace KmemNative.Paging;

/// <summary>
/// The kernel's page-table dump (/sys/kernel/debug/page_tables/kernel): the generic walker of mm/ptdump.c over
/// mm/pagewalk.c driving the x86 note_page()/effective_prot() of arch/x86/mm/dump_pagetables.c.
/// </summary>
/// <remarks>
/// <para>Entries are reported at the level the generic walker sees them: a folded level never looks empty
/// (pgd_none() is 0), so holes and large pages appear at the lowest Linux level a hardware level stands for
/// (<see cref="IPagingProfile.PtdumpLevel"/>). The effective protection is computed at every level, folded ones
/// included (USER and RW ANDed, NX ORed), and a run breaks when the raw flags (<c>val &amp; PTE_FLAGS_MASK</c>),
/// the effective flags, the level, or the next marker changes.</para>
/// <para>As in the kernel, <c>PTE_FLAGS_MASK</c> drops bit 12, so the PAT column of a large page never shows.</para>
/// </remarks>
internal sealed unsafe class Ptdump<TArch> where TArch : struct, IArch
{
    private const ulong P = (ulong)PteFlags.Present;
    private static readonly string[] LevelName = ["pgd", "p4d", "pud", "pmd", "pte"];
    private const string Units = "BKMGTPE";

    private readonly PageTables<TArch> _tables;
    private readonly IReadOnlyList<AddressMarker> _markers;
    private readonly StringBuilder _out = new();
    private readonly bool _checkWx;
    private readonly ulong[] _protLevels = new ulong[5];
    private int _level = -1;
    private ulong _currentProt, _effectiveProt, _startAddress;
    private int _marker;
    private long _lines;

    private Ptdump(PageTables<TArch> tables, IReadOnlyList<AddressMarker> markers, bool checkWx)
    {
        _tables = tables;
        _markers = markers;
        _checkWx = checkWx;
    }

    /// <summary>W+X pages found (counted when the check is on).</summary>
    public long WxPages { get; private set; }

    /// <summary>PTE_FLAGS_MASK: everything outside PTE_PFN_MASK.</summary>
    private static ulong FlagsMask => ~TArch.PtePfnMask & (TArch.PagingLevels == 2 ? 0xffff_ffffUL : ulong.MaxValue);

    /// <summary>Dumps the tables under <paramref name="pgd"/>; <paramref name="checkWx"/> also counts W+X pages.</summary>
    public static (string Text, long WxPages) Dump(PageTables<TArch> tables, ulong pgd, IReadOnlyList<AddressMarker> markers, bool checkWx)
    {
        var d = new Ptdump<TArch>(tables, markers, checkWx);
        // ptdump_walk_pgd_level_core()'s ranges: x86-64 skips the hypervisor hole.
        if (TArch.Kind == ArchKind.X86_64)
        {
            d.WalkRange(pgd, 0, 1UL << 47);
            d.WalkRange(pgd, X86_64Layout.GuardHoleEnd, ulong.MaxValue);
        }
        else
        {
            d.WalkRange(pgd, 0, uint.MaxValue);
        }
        d.NotePage(0, -1, 0); // note_page_flush()
        return (d._out.ToString(), d.WxPages);
    }

    /// <summary>walk_page_range_novma() over [start, end).</summary>
    private void WalkRange(ulong pgd, ulong start, ulong end) =>
        WalkTable(pgd, TArch.PagingLevels, start, end);

    private void WalkTable(ulong table, int hwLevel, ulong start, ulong end)
    {
        ulong span = PageTables<TArch>.EntrySpan(hwLevel);
        ulong va = start;
        while (va < end)
        {
            ulong next = (va & ~(span - 1)) + span;
            if (next == 0 || next > end)
                next = end; // pgd_addr_end() clamps to the end of the range
            byte* p = _tables.EntryPtr(table, hwLevel, va);
            ulong e = PageTables<TArch>.Load(p);
            VisitEntry(e, hwLevel, va, next);
            if (next == end)
                break;
            va = next;
        }
    }

    /// <summary>The pagewalk callbacks for one hardware entry: the folded Linux levels first, then the real one.</summary>
    private void VisitEntry(ulong e, int hwLevel, ulong va, ulong next)
    {
        int real = TArch.PtdumpLevel(hwLevel);
        if (hwLevel == 1)
        {
            EffectiveProt(4, e);
            NotePage(va, 4, e);
            return;
        }
        // Folded levels above the real one: never none, never a leaf; only effective_prot() runs.
        int first = hwLevel == TArch.PagingLevels ? 0 : TArch.PtdumpLevel(hwLevel + 1) + 1;
        for (int d = first; d < real; d++)
            EffectiveProt(d, e);
        if ((e & ~(ulong)(PteFlags.Accessed | PteFlags.Dirty)) == 0)
        {
            NotePage(va, real, 0);   // ptdump_hole(): pmd_none() and friends ignore A/D (the KNL erratum mask)
            return;
        }
        EffectiveProt(real, e);
        if ((e & P) == 0 || PageTables<TArch>.IsLarge(e, hwLevel))
        {
            NotePage(va, real, e);
            return;
        }
        WalkTable(PageTables<TArch>.NextTable(e), hwLevel - 1, va, next);
    }

    /// <summary>effective_prot(): USER and RW ANDed down the levels, NX ORed.</summary>
    private void EffectiveProt(int level, ulong val)
    {
        ulong prot = val & FlagsMask;
        const ulong ur = (ulong)(PteFlags.User | PteFlags.Rw);
        const ulong nx = (ulong)PteFlags.Nx;
        _protLevels[level] = level > 0
            ? (_protLevels[level - 1] & prot & ur) | ((_protLevels[level - 1] | prot) & nx)
            : prot;
    }

    /// <summary>note_page(): flushes the current run when something changes.</summary>
    private void NotePage(ulong addr, int level, ulong val)
    {
        ulong newProt = val & FlagsMask;
        ulong newEff = val == 0 ? 0 : _protLevels[level];
        if (_level == -1)
        {
            _currentProt = newProt;
            _effectiveProt = newEff;
            _level = level;
            _marker = 0;
            _lines = 0;
            _out.Append("---[ ").Append(_markers[0].Name).Append(" ]---\n");
            return;
        }
        if (newProt == _currentProt && newEff == _effectiveProt && level == _level && addr < _markers[_marker + 1].Start)
            return;

        if (_checkWx && (_effectiveProt & (ulong)PteFlags.Rw) != 0 && (_effectiveProt & (ulong)PteFlags.Nx) == 0)
            WxPages += (long)(((addr - _startAddress) & (TArch.PointerSize == 4 ? uint.MaxValue : ulong.MaxValue)) / PhysMem.PageSize.Bytes);

        var m = _markers[_marker];
        if (m.MaxLines == 0 || _lines < m.MaxLines)
            PrintLine(addr);
        _lines++;
        if (addr >= _markers[_marker + 1].Start)
        {
            if (m.MaxLines != 0 && _lines > m.MaxLines)
            {
                long skip = _lines - m.MaxLines;
                _out.Append(CultureInfo.InvariantCulture, $"... {skip} entr{(skip == 1 ? "y" : "ies")} skipped ... \n");
            }
            _marker++;
            _lines = 0;
            _out.Append("---[ ").Append(_markers[_marker].Name).Append(" ]---\n");
        }
        _startAddress = addr;
        _currentProt = newProt;
        _effectiveProt = newEff;
        _level = level;
    }

    private void PrintLine(ulong addr)
    {
        int width = TArch.PointerSize * 2;
        string fmt = "x" + width.ToString(CultureInfo.InvariantCulture);
        _out.Append("0x").Append(_startAddress.ToString(fmt, CultureInfo.InvariantCulture))
            .Append("-0x").Append(addr.ToString(fmt, CultureInfo.InvariantCulture)).Append("   ");
        ulong delta = addr - _startAddress;
        if (TArch.PointerSize == 4)
            delta &= uint.MaxValue; // unsigned long arithmetic of a 32-bit kernel
        int unit = 0;
        while ((delta & 1023) == 0 && unit < Units.Length - 1)
        {
            delta >>= 10;
            unit++;
        }
        _out.Append(delta.ToString(CultureInfo.InvariantCulture).PadLeft(9)).Append(Units[unit]).Append(' ');
        _out.Append(Prot(_currentProt, _level)).Append(LevelName[_level]).Append('\n');
    }

    /// <summary>printk_prot()'s flag columns.</summary>
    internal static string Prot(ulong pr, int level)
    {
        if ((pr & P) == 0)
            return new string(' ', 30);
        var sb = new StringBuilder(30);
        sb.Append((pr & (ulong)PteFlags.User) != 0 ? "USR " : "    ");
        sb.Append((pr & (ulong)PteFlags.Rw) != 0 ? "RW " : "ro ");
        sb.Append((pr & (ulong)PteFlags.Pwt) != 0 ? "PWT " : "    ");
        sb.Append((pr & (ulong)PteFlags.Pcd) != 0 ? "PCD " : "    ");
        sb.Append(level <= 3 && (pr & (ulong)PteFlags.Pse) != 0 ? "PSE " : "    ");
        bool pat = (level == 4 && (pr & (ulong)PteFlags.Pat) != 0) || ((level == 3 || level == 2) && (pr & (ulong)PteFlags.PatLarge) != 0);
        sb.Append(pat ? "PAT " : "    ");
        sb.Append((pr & (ulong)PteFlags.Global) != 0 ? "GLB " : "    ");
        sb.Append((pr & (ulong)PteFlags.Nx) != 0 ? "NX " : "x  ");
        return sb.ToString();
    }
}
