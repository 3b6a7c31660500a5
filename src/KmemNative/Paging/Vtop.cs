using System.Globalization;
using System.Text;
using KmemNative.Arch;

namespace KmemNative.Paging;

/// <summary>One entry a page walk read.</summary>
/// <param name="Level">Hardware level (4 = PML4E ... 1 = PTE).</param>
/// <param name="EntryPhys">Physical address of the entry.</param>
/// <param name="EntryVirt">The entry's kernel virtual address (through the linear map, or the image mapping for swapper_pg_dir).</param>
/// <param name="Value">The raw entry.</param>
public readonly record struct WalkStep(int Level, ulong EntryPhys, ulong EntryVirt, ulong Value);

/// <summary>A side-effect-free page walk, entry by entry, as crash's vtop shows it.</summary>
/// <param name="Virtual">The address walked.</param>
/// <param name="PgdPhys">The page directory walked (CR3).</param>
/// <param name="PgdVirt">Its kernel virtual address.</param>
/// <param name="Steps">The entries read, top level first; the walk stops at the first non-present entry or a leaf.</param>
/// <param name="Physical">The translation, or null when not mapped.</param>
/// <param name="LeafLevel">Level of the leaf (0 when not mapped).</param>
/// <param name="PageSize">Size of the page (0 when not mapped).</param>
/// <param name="Error">Why the walk could not run (non-canonical, a table outside RAM), else null.</param>
public sealed record PageWalk(
    ulong Virtual, ulong PgdPhys, ulong PgdVirt, IReadOnlyList<WalkStep> Steps, ulong? Physical, int LeafLevel, ulong PageSize, string? Error)
{
    /// <summary>True when the address translates.</summary>
    public bool IsMapped => Physical is not null;

    /// <summary>The leaf entry (or the entry where the walk stopped).</summary>
    public ulong LastEntry => Steps.Count == 0 ? 0 : Steps[^1].Value;
}

/// <summary>Walks and prints like the crash utility's <c>vtop</c> (x86_64.c x86_64_kvtop(), x86.c, memory.c do_vtop()).</summary>
internal static unsafe class Vtop<TArch> where TArch : struct, IArch
{
    private const ulong P = (ulong)PteFlags.Present;

    /// <summary>Walks <paramref name="va"/> under <paramref name="pgd"/> reading every level, changing nothing.</summary>
    public static PageWalk Walk(Machine<TArch> m, PageTables<TArch> tables, ulong pgd, ulong pgdVa, ulong va)
    {
        var steps = new List<WalkStep>();
        if (!TArch.IsCanonical(va))
            return new PageWalk(va, pgd, pgdVa, steps, null, 0, 0, $"0x{va:x} is not a canonical address");
        ulong table = pgd;
        for (int level = TArch.PagingLevels; level >= 1; level--)
        {
            if (!m.IsRamPfn(table >> PhysMem.PageSize.Shift))
                return new PageWalk(va, pgd, pgdVa, steps, null, 0, 0, $"page table at physical 0x{table:x} is outside RAM");
            byte* p = tables.EntryPtr(table, level, va);
            ulong e = PageTables<TArch>.Load(p);
            ulong phys = tables.PhysOf(p);
            ulong virt = level == TArch.PagingLevels && table == pgd ? pgdVa + (phys - pgd) : TArch.PageOffset + phys;
            steps.Add(new WalkStep(level, phys, virt, e));
            if ((e & P) == 0)
                return new PageWalk(va, pgd, pgdVa, steps, null, 0, 0, null);
            if (level == 1 || PageTables<TArch>.IsLarge(e, level))
            {
                ulong span = PageTables<TArch>.EntrySpan(level);
                ulong pa = PageTables<TArch>.LeafFrame(e, level) + (va & (span - 1));
                return new PageWalk(va, pgd, pgdVa, steps, pa, level, span, null);
            }
            table = PageTables<TArch>.NextTable(e);
        }
        return new PageWalk(va, pgd, pgdVa, steps, null, 0, 0, null);
    }

    /// <summary>crash's mkstring() with CENTER and LJUST/RJUST.</summary>
    private static string Center(string s, int width, bool rjust)
    {
        if (s.Length >= width)
            return s;
        int extra = width - s.Length;
        int left = extra / 2, right = extra / 2;
        if (extra % 2 != 0)
        {
            if (rjust)
                left++;
            else
                right++;
        }
        return new string(' ', left) + s + new string(' ', right);
    }

    private static string X(ulong v) => v.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>crash's x86_64_translate_pte(): the PTE / PHYSICAL / FLAGS table.</summary>
    public static string TranslatePte(ulong pte)
    {
        ulong paddr = pte & TArch.PtePfnMask;
        string ptebuf = X(pte), physbuf = X(paddr);
        int len1 = Math.Max(ptebuf.Length, 3), len2 = Math.Max(physbuf.Length, "PHYSICAL".Length);
        var sb = new StringBuilder();
        sb.Append(Center("PTE", len1, false)).Append("  ").Append(Center("PHYSICAL", len2, false)).Append("  FLAGS\n");
        sb.Append(Center(ptebuf, len1, true)).Append("  ").Append(Center(physbuf, len2, true)).Append("  (");
        sb.Append(pte == 0 ? "no mapping" : string.Join('|', CrashFlags(pte))).Append(")\n");
        return sb.ToString();
    }

    /// <summary>The flag names crash prints, in its order.</summary>
    public static List<string> CrashFlags(ulong pte)
    {
        var f = new List<string>();
        bool present = (pte & P) != 0;
        if (present) f.Add("PRESENT");
        if ((pte & (ulong)PteFlags.Rw) != 0) f.Add("RW");
        if ((pte & (ulong)PteFlags.User) != 0) f.Add("USER");
        if ((pte & (ulong)PteFlags.Pwt) != 0) f.Add("PWT");
        if ((pte & (ulong)PteFlags.Pcd) != 0) f.Add("PCD");
        if ((pte & (ulong)PteFlags.Accessed) != 0) f.Add("ACCESSED");
        if ((pte & (ulong)PteFlags.Dirty) != 0) f.Add("DIRTY");
        if ((pte & (ulong)PteFlags.Pse) != 0 && present) f.Add("PSE");
        if ((pte & (ulong)PteFlags.Global) != 0 && !present) f.Add("PROTNONE");
        if ((pte & (ulong)PteFlags.Global) != 0) f.Add("GLOBAL");
        if ((pte & (ulong)PteFlags.Nx) != 0) f.Add("NX");
        return f;
    }

    /// <summary>
    /// The whole vtop output for a walk (trailing blanks of crash's padded columns trimmed). For a user address the
    /// process subsystem passes crash's VMA lines (<paramref name="vmaBlock"/>), printed between the PTE and the page.
    /// </summary>
    public static string Format(Machine m, PageWalk w, string? vmaBlock = null)
    {
        var sb = new StringBuilder();
        bool wide = TArch.PointerSize == 8;
        int prlen = wide ? 16 : 8;
        sb.Append("VIRTUAL".PadRight(prlen)).Append("  PHYSICAL\n");
        if (w.Error is not null)
        {
            sb.Append(X(w.Virtual).PadRight(8)).Append("  (").Append(w.Error).Append(")\n");
            return sb.ToString();
        }
        sb.Append(X(w.Virtual).PadRight(8)).Append("  ").Append(w.Physical is { } pa ? X(pa) : "(not mapped)").Append("\n\n");
        if (wide)
            FormatWalk64(sb, w);
        else
            FormatWalk32(sb, w);
        if (w.Physical is { } phys && w.Steps.Count > 0)
        {
            sb.Append('\n').Append(TranslatePte(w.LastEntry));
            if (vmaBlock is not null)
                sb.Append('\n').Append(vmaBlock);
            ulong pfn = phys >> PhysMem.PageSize.Shift;
            if (m.IsRamPfn(pfn))
                sb.Append('\n').Append(PageLine(m, pfn));
        }
        return sb.ToString();
    }

    private static void FormatWalk64(StringBuilder sb, PageWalk w)
    {
        // 4-level: the top entry is "PAGE DIRECTORY", then PUD/PMD/PTE lines with the entries' physical addresses.
        sb.Append(TArch.PagingLevels >= 5 ? "PGD DIRECTORY: " : "PML4 DIRECTORY: ").Append(X(w.PgdVirt)).Append('\n');
        foreach (var s in w.Steps)
        {
            if (s.Level == TArch.PagingLevels)
            {
                sb.Append("PAGE DIRECTORY: ").Append(X(s.Value)).Append('\n');
                continue;
            }
            string name = s.Level switch { 4 => "P4D", 3 => "PUD", 2 => "PMD", _ => "PTE" };
            sb.Append("   ").Append(name).Append(": ").Append(X(s.EntryPhys)).Append(" => ").Append(X(s.Value)).Append('\n');
        }
        if (w.Physical is not null)
        {
            ulong page = PageTables<TArch>.LeafFrame(w.LastEntry, w.LeafLevel);
            sb.Append("  PAGE: ").Append(X(page));
            if (w.LeafLevel == 2)
                sb.Append("  (2MB)\n");
            else if (w.LeafLevel == 3)
                sb.Append("  (1GB)\n");
            else
                sb.Append('\n');
        }
    }

    private static void FormatWalk32(StringBuilder sb, PageWalk w)
    {
        // 2-level: crash prints the entries' kernel virtual addresses; the PMD line repeats the folded PGD entry.
        sb.Append("PAGE DIRECTORY: ").Append(X(w.PgdVirt)).Append('\n');
        foreach (var s in w.Steps)
        {
            if (s.Level == 2)
            {
                sb.Append("  PGD: ").Append(X(s.EntryVirt)).Append(" => ").Append(X(s.Value)).Append('\n');
                sb.Append("  PMD: ").Append(X(s.EntryVirt)).Append(" => ").Append(X(s.Value)).Append('\n');
            }
            else
            {
                sb.Append("  PTE: ").Append(X(s.EntryVirt)).Append(" => ").Append(X(s.Value)).Append('\n');
            }
        }
        if (w.Physical is not null)
        {
            ulong page = PageTables<TArch>.LeafFrame(w.LastEntry, w.LeafLevel);
            sb.Append(" PAGE: ").Append(X(page)).Append(w.LeafLevel == 2 ? "  (4MB)\n" : "\n");
        }
    }

    /// <summary>crash's dump_mem_map() line for one page: descriptor address, physical, mapping, index, count, flags.</summary>
    private static string PageLine(Machine m, ulong pfn)
    {
        var d = m.ReadPage(pfn);
        bool wide = TArch.PointerSize == 8;
        int prlen = wide ? 16 : 8;
        var sb = new StringBuilder();
        sb.Append(Center("PAGE", prlen, false)).Append(' ').Append("PHYSICAL".PadLeft(8)).Append(' ')
          .Append(Center("MAPPING", prlen, true)).Append(' ').Append(Center("INDEX", 8, true)).Append("CNT FLAGS\n");
        string flags = X(d.Flags);
        int paren = d.FlagsText.IndexOf('(', StringComparison.Ordinal);
        string names = paren >= 0 ? " " + d.FlagsText[paren..] : "";
        sb.Append(X(d.Address).PadRight(prlen)).Append(' ').Append(X(pfn << PhysMem.PageSize.Shift).PadLeft(8)).Append(' ')
          .Append(X(d.Mapping).PadLeft(prlen)).Append(' ')
          .Append(d.Index.ToString(CultureInfo.InvariantCulture).PadLeft(8)).Append(' ')
          .Append(d.Refcount.ToString(CultureInfo.InvariantCulture).PadLeft(2)).Append(' ')
          .Append(flags).Append(names).Append('\n');
        return sb.ToString();
    }
}
