using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Cli.Commands;

/// <summary>Parsers and text for the slab commands: cache and address arguments, tracepoint lines, crash's kmem -s/-S.</summary>
internal static class SlabText
{
    /// <summary>Help text for CACHE arguments.</summary>
    public const string CacheHelp = "A cache: its name (kmalloc-64) or its struct kmem_cache address";

    /// <summary>Help text for ADDR arguments.</summary>
    public const string AddrHelp = "A kernel virtual address (0x...), optionally plus or minus an offset: 0xffff888001234000+18";

    /// <summary>An address with an optional +N / -N offset, e.g. <c>0xc1234000+18</c>.</summary>
    public static ulong ParseAddress(string text)
    {
        int sign = text.IndexOfAny(['+', '-'], 1);
        if (sign < 0)
            return CliValues.ParseAddress(text);
        ulong a = CliValues.ParseAddress(text[..sign]);
        ulong b = CliValues.ParseNumber(text[(sign + 1)..], "offset");
        return text[sign] == '+' ? a + b : a - b;
    }

    /// <summary>The cache a CACHE argument names on <paramref name="m"/>.</summary>
    /// <exception cref="CommandFailedException">No such cache.</exception>
    public static KmemCache Cache(Machine m, string text)
    {
        if (m.FindKmemCache(text) is { } byName)
            return byName;
        if (CliValues.TryParseNumber(text, out ulong va) && m.KmemCaches.FirstOrDefault(c => c.Va == va) is { } byVa)
            return byVa;
        throw new CommandFailedException($"no slab cache '{text}' (see 'proc slabinfo' for the caches)");
    }

    /// <summary>%p with pointer hashing off: the address in hex, zero-padded to the pointer width.</summary>
    public static string P(Machine m, ulong v) => v.ToString(m.Arch == ArchKind.X86_64 ? "x16" : "x8", CultureInfo.InvariantCulture);

    private static string Pad(Machine m) => m.Arch == ArchKind.X86_64 ? "" : "        ";

    /// <summary>accounted= of the kmem tracepoints: memcg on and __GFP_ACCOUNT or SLAB_ACCOUNT.</summary>
    public static string Accounted(Machine m, Gfp gfp, KmemCache? s) =>
        m.Arch == ArchKind.X86_64 && ((gfp & Gfp.Account) != 0 || (s is not null && (s.Flags & SlabFlags.Account) != 0)) ? "true" : "false";

    /// <summary>The kmem:kmalloc tracepoint line (without call_site).</summary>
    public static string KmallocLine(Machine m, string eventName, ulong ptr, ulong req, Gfp gfp)
    {
        var s = m.KmallocCache(req, gfp);
        ulong bytesAlloc = ptr == 16 ? 0 : m.KmallocBytes(req, gfp);
        return $"{eventName}: ptr={P(m, ptr)} bytes_req={req} bytes_alloc={bytesAlloc} gfp_flags={GfpFlags.Format(gfp)} node=-1 accounted={Accounted(m, gfp, s)}";
    }

    // ---- crash's kmem -s / -S ---------------------------------------------------------------------------

    /// <summary>The column header of <c>kmem -s</c>.</summary>
    public static string CacheHeader(Machine m) =>
        (m.Arch == ArchKind.X86_64 ? "CACHE             " : "CACHE     ") + "OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME";

    /// <summary>One cache line of <c>kmem -s</c>: address, object size, allocated, total, slabs, slab size, name.</summary>
    public static string CacheLine(Machine m, CacheState st)
    {
        var s = st.Cache;
        long ssize = 4L << s.Order;
        return string.Create(CultureInfo.InvariantCulture,
            $"{P(m, s.Va)} {s.ObjectSize,8} {st.Allocated,10} {st.Total,9} {st.NrSlabs,6} {ssize.ToString(CultureInfo.InvariantCulture) + "k",6}  {s.Name}");
    }

    /// <summary>The header of a slab line.</summary>
    public static string SlabHeader(Machine m, string indent) =>
        indent + (m.Arch == ArchKind.X86_64 ? "SLAB              MEMORY            " : "SLAB      MEMORY    ") + "NODE  TOTAL  ALLOCATED  FREE";

    /// <summary>A slab line: struct slab address, memory, node, total, allocated, free.</summary>
    public static string SlabLine(Machine m, SlabState slab, string indent) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{indent}{P(m, slab.Slab)}  {P(m, slab.Memory)}{0,6}{slab.Total,7}{slab.Allocated,11}{slab.Free,6}");

    /// <summary>The objects of a slab: allocated in brackets, CPU-cached free ones annotated.</summary>
    public static void SlabObjects(StringBuilder sb, Machine m, SlabState slab, string indent, Func<SlabObjectState, bool>? filter = null)
    {
        sb.Append(indent).Append("FREE / [ALLOCATED]\n");
        foreach (var o in slab.Objects)
        {
            if (filter is not null && !filter(o))
                continue;
            if (o.Allocated)
                sb.Append(indent).Append('[').Append(P(m, o.Address)).Append("]\n");
            else if (o.Sheaf is { } where)
                sb.Append(indent).Append(' ').Append(P(m, o.Address)).Append(o.CpuCache is { } sc ? $"  (cpu {sc} {where} sheaf)\n" : $"  ({where} sheaf)\n");
            else if (o.CpuCache is { } cpu)
                sb.Append(indent).Append(' ').Append(P(m, o.Address)).Append("  (cpu ").Append(cpu).Append(" cache)\n");
            else
                sb.Append(indent).Append(' ').Append(P(m, o.Address)).Append('\n');
        }
    }

    /// <summary><c>kmem -S</c> of one cache: per-CPU slabs, the node's counters, partial and full slabs with their objects.</summary>
    public static string CacheDetail(Machine m, CacheState st)
    {
        var sb = new StringBuilder();
        sb.Append(CacheLine(m, st)).Append('\n');
        foreach (var (cpu, kmemCacheCpu, slab) in st.CpuSlabs)
        {
            sb.Append("  CPU ").Append(cpu).Append(" KMEM_CACHE_CPU:\n    ").Append(P(m, kmemCacheCpu)).Append('\n');
            sb.Append("  CPU ").Append(cpu).Append(" SLAB:\n");
            if (slab is null)
            {
                sb.Append("    (empty)\n");
            }
            else
            {
                sb.Append(SlabHeader(m, "    ")).Append('\n').Append(SlabLine(m, slab, "    ")).Append('\n');
                SlabObjects(sb, m, slab, "    ");
            }
            sb.Append("  CPU ").Append(cpu).Append(" PARTIAL:\n    (empty)\n");
            if (st.Sheaves?.FirstOrDefault(x => x.Cpu == cpu) is { } pcs)
            {
                sb.Append("  CPU ").Append(cpu).Append(" SHEAVES: ").Append(P(m, pcs.Address)).Append('\n');
                sb.Append(string.Create(CultureInfo.InvariantCulture, $"    main  {P(m, pcs.Main)}  {pcs.MainSize}/{st.Cache.SheafCapacity}\n"));
                sb.Append(pcs.Spare == 0 ? "    spare (none)\n" : string.Create(CultureInfo.InvariantCulture, $"    spare {P(m, pcs.Spare)}  {pcs.SpareSize}/{st.Cache.SheafCapacity}\n"));
            }
        }
        sb.Append("  KMEM_CACHE_NODE   NODE  SLABS  PARTIAL  PER-CPU\n");
        int perCpu = st.CpuSlabs.Count(c => c.Slab is not null);
        sb.Append(string.Create(CultureInfo.InvariantCulture, $"  {P(m, st.NodeVa)}{Pad(m)}{0,6}{st.NrSlabs,7}{st.NrPartial,9}{perCpu,9}\n"));
        if (st.Barn is { } barn)
            sb.Append(string.Create(CultureInfo.InvariantCulture, $"  NODE 0 BARN: {P(m, barn.Address)}  full {barn.Full.Count}  empty {barn.Empty.Count}\n"));
        AppendSlabs(sb, m, "  NODE 0 PARTIAL:", st.Partial, null);
        AppendSlabs(sb, m, "  NODE 0 FULL:", st.Full, st.FullTracked ? null : "(not tracked by the kernel: found by scanning mem_map)");
        return sb.ToString();
    }

    private static void AppendSlabs(StringBuilder sb, Machine m, string title, IReadOnlyList<SlabState> slabs, string? note)
    {
        sb.Append(title).Append('\n');
        if (note is not null && slabs.Count > 0)
            sb.Append("    ").Append(note).Append('\n');
        if (slabs.Count == 0)
        {
            sb.Append("    (empty)\n");
            return;
        }
        sb.Append(SlabHeader(m, "    ")).Append('\n');
        foreach (var slab in slabs)
        {
            sb.Append(SlabLine(m, slab, "    ")).Append('\n');
            SlabObjects(sb, m, slab, "    ");
        }
    }

    /// <summary>
    /// <c>kmem -s ADDR</c> / <c>kmem ADDR</c> for a slab object: the cache line, its slab, and the object (in
    /// brackets when allocated), as crash prints it.
    /// </summary>
    public static string ObjectLines(Machine m, SlabObjectInfo info)
    {
        var st = m.KmemCacheState(info.Cache);
        var slab = st.AllSlabs.First(x => x.Slab == info.Slab);
        var sb = new StringBuilder();
        sb.Append(CacheHeader(m)).Append('\n').Append(CacheLine(m, st)).Append('\n');
        sb.Append(SlabHeader(m, "  ")).Append('\n').Append(SlabLine(m, slab, "  ")).Append('\n');
        SlabObjects(sb, m, slab, "  ", o => o.Address == info.ObjectStart);
        return sb.ToString();
    }
}
