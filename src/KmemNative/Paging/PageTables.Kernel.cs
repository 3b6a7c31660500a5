using System.Runtime.CompilerServices;

namespace KmemNative.Paging;

// The kernel's names for the page-table accessors (include/linux/pgtable.h, arch/x86/include/asm/pgtable*.h,
// pgalloc.h). Linux levels are pgd, p4d, pud, pmd, pte; a level the mode lacks is folded into the one above it
// (p4d on 4-level; p4d, pud and pmd on 2-level): its offset function returns the entry it was given, exactly as
// pgtable-nop4d.h / nopud.h / nopmd.h do, so code written against the five levels runs on every profile.
internal sealed unsafe partial class PageTables<TArch>
{
    /// <summary>pgd_offset(): the top-level entry of <paramref name="va"/> in the directory at <paramref name="pgd"/>.</summary>
    public byte* PgdOffset(ulong pgd, ulong va) => EntryPtr(pgd, TArch.PagingLevels, va);

    /// <summary>p4d_offset(): the p4d entry below a pgd entry (the pgd entry itself when folded); null when the upper entry is not present.</summary>
    public byte* P4dOffset(byte* pgdp, ulong va) => Descend(pgdp, 0, 1, va);

    /// <summary>pud_offset().</summary>
    public byte* PudOffset(byte* p4dp, ulong va) => Descend(p4dp, 1, 2, va);

    /// <summary>pmd_offset().</summary>
    public byte* PmdOffset(byte* pudp, ulong va) => Descend(pudp, 2, 3, va);

    /// <summary>pte_offset_kernel() (and pte_offset_map() without HIGHPTE).</summary>
    public byte* PteOffsetKernel(byte* pmdp, ulong va) => Descend(pmdp, 3, 4, va);

    private byte* Descend(byte* upper, int upperLevel, int lowerLevel, ulong va)
    {
        int hu = TArch.LinuxLevel(upperLevel), hl = TArch.LinuxLevel(lowerLevel);
        if (hu == hl)
            return upper; // folded
        ulong e = Load(upper);
        return (e & P) == 0 || IsLarge(e, hu) ? null : EntryPtr(NextTable(e), hl, va);
    }

    /// <summary>set_pte().</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetPte(byte* ptep, ulong pte) => Set(ptep, pte);

    /// <summary>set_pmd().</summary>
    public static void SetPmd(byte* pmdp, ulong pmd) => Set(pmdp, pmd);

    /// <summary>set_pud().</summary>
    public static void SetPud(byte* pudp, ulong pud) => Set(pudp, pud);

    /// <summary>set_p4d().</summary>
    public static void SetP4d(byte* p4dp, ulong p4d) => Set(p4dp, p4d);

    /// <summary>set_pgd(): a no-op store through a folded level is the same entry as the level below it.</summary>
    public static void SetPgd(byte* pgdp, ulong pgd) => Set(pgdp, pgd);

    /// <summary>pte_clear().</summary>
    public static void PteClear(byte* ptep) => Clear(ptep);

    /// <summary>pmd_clear().</summary>
    public static void PmdClear(byte* pmdp) => Clear(pmdp);

    /// <summary>pud_clear().</summary>
    public static void PudClear(byte* pudp) => Clear(pudp);

    /// <summary>pmd_populate_kernel() / pmd_populate(): point a pmd at a PTE table (_PAGE_TABLE | __pa(pte)).</summary>
    public static void PmdPopulate(byte* pmdp, ulong ptePhys) => Set(pmdp, ptePhys | PageProt.PageTable);

    /// <summary>pud_populate(): point a pud at a PMD table; folded pmds make this unreachable on 2-level paging.</summary>
    public static void PudPopulate(byte* pudp, ulong pmdPhys) => Set(pudp, pmdPhys | PageProt.PageTable);

    /// <summary>p4d_populate(): point a p4d at a PUD table.</summary>
    public static void P4dPopulate(byte* p4dp, ulong pudPhys) => Set(p4dp, pudPhys | PageProt.PageTable);

    /// <summary>pgd_populate(): a no-op while p4d is folded into pgd (4-level paging), as on x86 without LA57.</summary>
    public static void PgdPopulate(byte* pgdp, ulong p4dPhys)
    {
        if (TArch.LinuxLevel(0) != TArch.LinuxLevel(1))
            Set(pgdp, p4dPhys | PageProt.PageTable);
    }

    /// <summary>pte_none() / pmd_none(): an empty entry.</summary>
    public static bool None(byte* p) => Load(p) == 0;

    /// <summary>pte_present() / pmd_present(): P set, or PROTNONE (bit 8) without P, as Linux counts it.</summary>
    public static bool Present(byte* p) => (Load(p) & ((ulong)PteFlags.Present | (ulong)PteFlags.Global)) != 0;
}
