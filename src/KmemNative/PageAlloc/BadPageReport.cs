using System.Text;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>
/// bad_page() + dump_page() (mm/page_alloc.c, mm/debug.c): the report the kernel prints for a page in a state
/// it must not be in, with the descriptor decoded (%pGp flags, page type) and dumped raw.
/// </summary>
internal static unsafe class BadPageReport<TArch> where TArch : struct, IArch
{
    /// <summary>Page flag names in the order %pGp prints them (__def_pageflag_names).</summary>
    private static readonly (PageFlag Flag, string Name)[] s_names =
    [
        (PageFlag.Locked, "locked"), (PageFlag.Waiters, "waiters"), (PageFlag.Referenced, "referenced"),
        (PageFlag.Uptodate, "uptodate"), (PageFlag.Dirty, "dirty"), (PageFlag.Lru, "lru"), (PageFlag.Active, "active"),
        (PageFlag.Workingset, "workingset"), (PageFlag.OwnerPriv1, "owner_priv_1"), (PageFlag.Owner2, "owner_2"),
        (PageFlag.Arch1, "arch_1"), (PageFlag.Reserved, "reserved"), (PageFlag.Private, "private"),
        (PageFlag.Private2, "private_2"), (PageFlag.Writeback, "writeback"), (PageFlag.Head, "head"),
        (PageFlag.Reclaim, "reclaim"), (PageFlag.Swapbacked, "swapbacked"), (PageFlag.Unevictable, "unevictable"),
        (PageFlag.Dropbehind, "dropbehind"), (PageFlag.Mlocked, "mlocked"), (PageFlag.Hwpoison, "hwpoison"),
    ];

    /// <summary>The full report for <paramref name="pfn"/>.</summary>
    public static string Format(MemMap<TArch> mm, Zone[] zones, string comm, ulong pfn, string reason)
    {
        var sb = new StringBuilder();
        sb.Append("BUG: Bad page state in process ").Append(comm).Append("  pfn:").Append(pfn.ToString("x5")).Append('\n');
        DumpPage(sb, mm, pfn);
        sb.Append("page dumped because: ").Append(reason);
        return sb.ToString();
    }

    /// <summary>dump_page() without the reason line.</summary>
    public static void DumpPage(StringBuilder sb, MemMap<TArch> mm, ulong pfn)
    {
        byte* p = mm.Desc(pfn);
        uint type = MemMap<TArch>.PageType(p);
        bool typed = type >> 24 is >= 0xf0 and <= 0xfe;
        int mapcount = typed ? 0 : (int)type + 1;
        int pw = TArch.PointerSize * 2;
        sb.Append("page: refcount:").Append(MemMap<TArch>.Refcount(p))
          .Append(" mapcount:").Append(mapcount)
          .Append(" mapping:").Append(MemMap<TArch>.Mapping(p).ToString("x" + pw))
          .Append(" index:").Append(Hex(MemMap<TArch>.Index(p)))
          .Append(" pfn:").Append(Hex(pfn)).Append('\n');
        if (MemMap<TArch>.TestFlag(p, PageFlag.Head) && pfn + 1 < mm.MaxPfn)
        {
            ulong order = MemMap<TArch>.Flags(mm.Desc(pfn + 1)) & 0xff;
            sb.Append("head: order:").Append(order).Append(" mapcount:0 entire_mapcount:0 nr_pages_mapped:0 pincount:0\n");
        }
        if (MemMap<TArch>.MemcgData(p) != 0)
            sb.Append("memcg:").Append(MemMap<TArch>.MemcgData(p).ToString("x")).Append('\n');
        sb.Append("flags: ").Append(FormatFlags(MemMap<TArch>.Flags(p))).Append('\n');
        if (typed)
            sb.Append("page_type: ").Append((type >> 24).ToString("x")).Append('(')
              .Append(PageBits.PageTypeName((byte)(type >> 24)) ?? "unknown").Append(")\n");
        AppendRaw(sb, p);
    }

    /// <summary>%pGp: the flags word in hex, then the set flags by name and the node/zone fields.</summary>
    public static string FormatFlags(ulong flags)
    {
        var sb = new StringBuilder();
        sb.Append(Hex(flags)).Append('(');
        ulong main = flags & ((1UL << PageBits.FlagBits) - 1);
        bool append = false;
        foreach (var (flag, name) in s_names)
        {
            ulong bit = 1UL << (int)flag;
            if ((main & bit) == 0)
                continue;
            if (append)
                sb.Append('|');
            sb.Append(name);
            main &= ~bit;
            append = true;
        }
        if (main != 0)
        {
            if (append)
                sb.Append('|');
            sb.Append(Hex(main));
            append = true;
        }
        if (TArch.NodesWidth != 0)
        {
            if (append)
                sb.Append('|');
            sb.Append("node=").Append((flags >> TArch.NodesPgOff) & ((1UL << TArch.NodesWidth) - 1));
            append = true;
        }
        if (append)
            sb.Append('|');
        sb.Append("zone=").Append((flags >> TArch.ZonesPgOff) & ((1UL << TArch.ZonesWidth) - 1));
        sb.Append(')');
        return sb.ToString();
    }

    /// <summary>print_hex_dump("raw: ", rowsize 32, groupsize sizeof(long)) of the descriptor.</summary>
    private static void AppendRaw(StringBuilder sb, byte* p)
    {
        int words = TArch.StructPageSize / TArch.PointerSize;
        int perLine = 32 / TArch.PointerSize;
        for (int w = 0; w < words; w++)
        {
            if (w % perLine == 0)
                sb.Append(w == 0 ? "raw: " : "\nraw: ");
            else
                sb.Append(' ');
            sb.Append(TArch.LoadLong(p + w * TArch.PointerSize).ToString("x" + TArch.PointerSize * 2));
        }
        sb.Append('\n');
    }

    /// <summary>The kernel's %#lx: "0x" + hex, "0x0" for zero.</summary>
    private static string Hex(ulong v) => "0x" + v.ToString("x");
}
