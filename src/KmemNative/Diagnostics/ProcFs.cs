using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

/// <summary>
/// The /proc files of the memory manager, in the exact text formats of Linux 6.18 (mm/vmstat.c,
/// fs/proc/meminfo.c), computed from the machine's live counters.
/// </summary>
/// <remarks>Later subsystems add their files (slabinfo, PID/maps...) as partial-class members.</remarks>
public sealed partial class ProcFs
{
    private readonly Machine _m;

    internal ProcFs(Machine machine) => _m = machine;

    /// <summary>The files this class can produce, by /proc name, in registration order.</summary>
    public static IReadOnlyList<string> Files
    {
        get
        {
            lock (s_files)
                return [.. s_files.Keys];
        }
    }

    private static readonly OrderedDictionary<string, Func<ProcFs, string>> s_files = new(StringComparer.Ordinal);

    /// <summary>
    /// Registers a /proc file. Each subsystem's partial file of this class registers its files from a static field
    /// initializer (<c>private static readonly bool s_x = Register("slabinfo", p =&gt; p.Slabinfo());</c>), so adding a
    /// file never touches another subsystem's code.
    /// </summary>
    private static bool Register(string name, Func<ProcFs, string> read)
    {
        lock (s_files)
            s_files[name] = read;
        return true;
    }

    private static readonly bool s_pageAllocFiles =
        Register("buddyinfo", p => p.Buddyinfo()) && Register("pagetypeinfo", p => p.Pagetypeinfo()) &&
        Register("zoneinfo", p => p.Zoneinfo()) && Register("meminfo", p => p.Meminfo()) && Register("vmstat", p => p.Vmstat());

    /// <summary>True when <paramref name="name"/> is a file this machine can produce (see <see cref="Read"/>).</summary>
    public static bool Exists(string name) => Files.Contains(name) || PidFile(name) is not null;

    private static string Fmt(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>/proc/buddyinfo: free blocks per order for each populated zone.</summary>
    public string Buddyinfo()
    {
        var sb = new StringBuilder();
        foreach (var z in _m.Zones.Where(z => z.IsPopulated))
        {
            sb.Append(Fmt($"Node 0, zone {z.Name,8} "));
            for (int o = 0; o < PageSize.NrOrders; o++)
                sb.Append(Fmt($"{z.NrFree(o),6} "));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>/proc/pagetypeinfo: free blocks per order and migratetype, and pageblocks per migratetype.</summary>
    public string Pagetypeinfo()
    {
        var sb = new StringBuilder();
        int pbOrder = _m.PageblockOrder;
        sb.Append(Fmt($"Page block order: {pbOrder}\n"));
        sb.Append(Fmt($"Pages per block:  {1L << pbOrder}\n"));
        sb.Append('\n');
        sb.Append(Fmt($"{"Free pages count per migrate type at order",-43} "));
        for (int o = 0; o < PageSize.NrOrders; o++)
            sb.Append(Fmt($"{o,6} "));
        sb.Append('\n');
        var names = PageBits.MigratetypeNames;
        foreach (var z in _m.Zones.Where(z => z.IsPopulated))
        {
            for (int mt = 0; mt < MigrateTypes.Count; mt++)
            {
                sb.Append(Fmt($"Node {0,4}, zone {z.Name,8}, type {names[mt],12} "));
                for (int o = 0; o < PageSize.NrOrders; o++)
                {
                    long n = _m.CountFreeBlocks(z, o, (MigrateType)mt);
                    sb.Append(n >= 100000 ? Fmt($">{100000,6} ") : Fmt($"{n,6} "));
                }
                sb.Append('\n');
            }
        }
        sb.Append(Fmt($"\n{"Number of blocks type ",-23}"));
        for (int mt = 0; mt < MigrateTypes.Count; mt++)
            sb.Append(Fmt($"{names[mt],12} "));
        sb.Append('\n');
        foreach (var z in _m.Zones.Where(z => z.IsPopulated))
        {
            var counts = new long[MigrateTypes.Count];
            ulong step = 1UL << pbOrder;
            for (ulong pfn = z.StartPfn; pfn < z.EndPfn; pfn += step)
            {
                ulong block = pfn & ~(step - 1);
                if (BlockHasRam(block, step))
                    counts[(int)_m.PageblockMigratetype(pfn)]++;
            }
            sb.Append(Fmt($"Node 0, zone {z.Name,8} "));
            foreach (long c in counts)
                sb.Append(Fmt($"{c,12} "));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private bool BlockHasRam(ulong pfn, ulong pages)
    {
        ulong s = pfn << PageSize.Shift, e = (pfn + pages) << PageSize.Shift;
        return _m.Memory.Ram.Any(r => r.Start < e && r.End > s);
    }

    /// <summary>calculate_normal_threshold(): the per-CPU counter fold threshold shown in zoneinfo.</summary>
    private int StatThreshold(Zone z)
    {
        static int Fls(ulong x) => x == 0 ? 0 : 64 - System.Numerics.BitOperations.LeadingZeroCount(x);
        int threshold = 2 * Fls((ulong)_m.Cpus.Count) * (1 + Fls(z.Managed >> (27 - PageSize.Shift)));
        return Math.Min(threshold, 125);
    }

    /// <summary>/proc/zoneinfo: every zone, populated or not, with the node's counters under the first populated one.</summary>
    public string Zoneinfo()
    {
        var sb = new StringBuilder();
        bool numa = _m.Arch == ArchKind.X86_64;
        var firstPopulated = _m.Zones.FirstOrDefault(z => z.IsPopulated);
        foreach (var z in _m.Zones)
        {
            sb.Append(Fmt($"Node 0, zone {z.Name,8}"));
            if (ReferenceEquals(z, firstPopulated))
            {
                sb.Append("\n  per-node stats");
                for (int i = 0; i < VmStatNames.Node.Length; i++)
                    sb.Append(Fmt($"\n      {VmStatNames.Node[i],-12} {NodeValue((NodeStat)i)}"));
            }
            sb.Append(Fmt($"\n  pages free     {z.FreePages}"));
            sb.Append(Fmt($"\n        boost    {z.WatermarkBoost}"));
            sb.Append(Fmt($"\n        min      {z.WatermarkMin + z.WatermarkBoost}"));
            sb.Append(Fmt($"\n        low      {z.WatermarkLow + z.WatermarkBoost}"));
            sb.Append(Fmt($"\n        high     {z.WatermarkHigh + z.WatermarkBoost}"));
            sb.Append(Fmt($"\n        promo    {z.WatermarkPromo + z.WatermarkBoost}"));
            sb.Append(Fmt($"\n        spanned  {z.Spanned}"));
            sb.Append(Fmt($"\n        present  {z.Present}"));
            sb.Append(Fmt($"\n        managed  {z.Managed}"));
            sb.Append("\n        cma      0");
            sb.Append(Fmt($"\n        protection: ({z.LowmemReserve(0)}"));
            for (int i = 1; i < _m.Zones.Count; i++)
                sb.Append(Fmt($", {z.LowmemReserve(i)}"));
            sb.Append(')');
            if (!z.IsPopulated)
            {
                sb.Append('\n');
                continue;
            }
            for (int i = 0; i < VmStatNames.Zone.Length; i++)
                sb.Append(Fmt($"\n      {VmStatNames.Zone[i],-12} {z.Stat((ZoneStat)i)}"));
            if (numa)
            {
                long hits = _m.Cpus.Sum(c => c.NumaHits(z.Index));
                long[] numaValues = [hits, 0, 0, 0, hits, 0];
                for (int i = 0; i < VmStatNames.Numa.Length; i++)
                    sb.Append(Fmt($"\n      {VmStatNames.Numa[i],-12} {numaValues[i]}"));
            }
            sb.Append("\n  pagesets");
            foreach (var cpu in _m.Cpus)
            {
                sb.Append(Fmt($"\n    cpu: {cpu.Id}"));
                sb.Append(Fmt($"\n              count:    {_m.PcpField(cpu, z, "count")}"));
                sb.Append(Fmt($"\n              high:     {_m.PcpField(cpu, z, "high")}"));
                sb.Append(Fmt($"\n              batch:    {_m.PcpField(cpu, z, "batch")}"));
                sb.Append(Fmt($"\n              high_min: {_m.PcpField(cpu, z, "high_min")}"));
                sb.Append(Fmt($"\n              high_max: {_m.PcpField(cpu, z, "high_max")}"));
                sb.Append(Fmt($"\n  vm stats threshold: {StatThreshold(z)}"));
            }
            sb.Append(_m.NodeHopeless ? "\n  node_unreclaimable:  1" : "\n  node_unreclaimable:  0");
            sb.Append(Fmt($"\n  start_pfn:           {z.StartPfn}"));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private long NodeValue(NodeStat item) => _m.NodeState(item);

    /// <summary>
    /// /proc/meminfo: each line a 16-column label and a kB value right-aligned in 8 columns; HighTotal/HighFree/
    /// LowTotal/LowFree on i386 (CONFIG_HIGHMEM); the THP lines and DirectMap1G on x86-64.
    /// </summary>
    public string Meminfo()
    {
        var sb = new StringBuilder();
        void Kb(string label, long kb) => sb.Append(Fmt($"{label + ":",-16}{kb,8} kB\n"));
        void Pages(string label, long pages) => Kb(label, pages << (PageSize.Shift - 10));

        bool i386 = _m.Arch == ArchKind.I386;
        long totalram = (long)_m.TotalRamPages;
        long free = _m.Zones.Sum(z => z.FreePages);
        long activeAnon = NodeValue(NodeStat.NrActiveAnon), inactiveAnon = NodeValue(NodeStat.NrInactiveAnon);
        long activeFile = NodeValue(NodeStat.NrActiveFile), inactiveFile = NodeValue(NodeStat.NrInactiveFile);
        long swapCached = NodeValue(NodeStat.NrSwapcached);
        long cached = Math.Max(0, NodeValue(NodeStat.NrFilePages) - swapCached);
        long sreclaimable = NodeValue(NodeStat.NrSlabReclaimable), sunreclaim = NodeValue(NodeStat.NrSlabUnreclaimable);

        Pages("MemTotal", totalram);
        Pages("MemFree", free);
        Pages("MemAvailable", MemAvailable());
        Pages("Buffers", 0);
        Pages("Cached", cached);
        Pages("SwapCached", swapCached);
        Pages("Active", activeAnon + activeFile);
        Pages("Inactive", inactiveAnon + inactiveFile);
        Pages("Active(anon)", activeAnon);
        Pages("Inactive(anon)", inactiveAnon);
        Pages("Active(file)", activeFile);
        Pages("Inactive(file)", inactiveFile);
        Pages("Unevictable", NodeValue(NodeStat.NrUnevictable));
        Pages("Mlocked", _m.Zones.Sum(z => z.Stat(ZoneStat.NrMlock)));
        if (i386)
        {
            long totalHigh = (long)_m.TotalHighPages;
            long freeHigh = _m.Zones.Where(z => z.IsHighMem).Sum(z => z.FreePages);
            Pages("HighTotal", totalHigh);
            Pages("HighFree", freeHigh);
            Pages("LowTotal", totalram - totalHigh);
            Pages("LowFree", free - freeHigh);
        }
        Pages("SwapTotal", SwapTotalPages);
        Pages("SwapFree", SwapFreePages);
        Pages("Zswap", 0);
        Pages("Zswapped", 0);
        Pages("Dirty", NodeValue(NodeStat.NrDirty));
        Pages("Writeback", NodeValue(NodeStat.NrWriteback));
        Pages("AnonPages", NodeValue(NodeStat.NrAnonPages));
        Pages("Mapped", NodeValue(NodeStat.NrMapped));
        Pages("Shmem", NodeValue(NodeStat.NrShmem));
        Pages("KReclaimable", sreclaimable + NodeValue(NodeStat.NrKernelMiscReclaimable));
        Pages("Slab", sreclaimable + sunreclaim);
        Pages("SReclaimable", sreclaimable);
        Pages("SUnreclaim", sunreclaim);
        Kb("KernelStack", NodeValue(NodeStat.NrKernelStack));
        Pages("PageTables", NodeValue(NodeStat.NrPageTablePages));
        Pages("SecPageTables", NodeValue(NodeStat.NrSecPageTablePages));
        Pages("NFS_Unstable", 0);
        Pages("Bounce", 0);
        Pages("WritebackTmp", 0);
        Pages("CommitLimit", totalram * 50 / 100 + SwapTotalPages);
        Pages("Committed_AS", CommittedPages);
        Kb("VmallocTotal", (long)(VmallocTotalBytes >> 10));
        Pages("VmallocUsed", VmallocUsedPages);
        Pages("VmallocChunk", 0);
        Kb("Percpu", (long)_m.PercpuUnitBytes * _m.Cpus.Count >> 10);
        if (!i386)
        {
            Pages("AnonHugePages", 0);
            Pages("ShmemHugePages", 0);
            Pages("ShmemPmdMapped", 0);
            Pages("FileHugePages", 0);
            Pages("FilePmdMapped", 0);
        }
        Pages("Balloon", 0);
        sb.Append("HugePages_Total:       0\n");
        sb.Append("HugePages_Free:        0\n");
        sb.Append("HugePages_Rsvd:        0\n");
        sb.Append("HugePages_Surp:        0\n");
        Kb("Hugepagesize", i386 ? 4096 : 2048);
        Kb("Hugetlb", 0);
        var (k4, k2m, k4m, k1g) = _m.DirectMapKb();
        Kb("DirectMap4k", (long)k4);
        if (i386)
        {
            Kb("DirectMap4M", (long)k4m);
        }
        else
        {
            Kb("DirectMap2M", (long)k2m);
            Kb("DirectMap1G", (long)k1g);
        }
        return sb.ToString();
    }

    /// <summary>Swap pages configured (0 until a swap device exists).</summary>
    internal long SwapTotalPages { get; set; }

    /// <summary>Swap pages free.</summary>
    internal long SwapFreePages { get; set; }

    /// <summary>Committed_AS in pages (user address-space commitments).</summary>
    internal long CommittedPages { get; set; }

    /// <summary>Pages mapped by vmalloc.</summary>
    internal long VmallocUsedPages { get; set; }

    /// <summary>VMALLOC_TOTAL in bytes: VMALLOC_END - VMALLOC_START.</summary>
    internal ulong VmallocTotalBytes => _m.Arch == ArchKind.I386
        ? I386Layout.VmallocEnd - (_m.PageOffset + (_m.MaxLowPfn << PageSize.Shift) + I386Layout.VmallocOffset)
        : (32UL << 40) - 1;

    /// <summary>si_mem_available(): free pages above the reserves, plus the easily reclaimable half of page cache and reclaimable slab.</summary>
    public long MemAvailable()
    {
        long wmarkLow = _m.Zones.Sum(z => z.WatermarkLow + z.WatermarkBoost);
        long available = _m.Zones.Sum(z => z.FreePages) - _m.TotalReservePages;
        long pagecache = NodeValue(NodeStat.NrActiveFile) + NodeValue(NodeStat.NrInactiveFile);
        pagecache -= Math.Min(pagecache / 2, wmarkLow);
        available += pagecache;
        long reclaimable = NodeValue(NodeStat.NrSlabReclaimable) + NodeValue(NodeStat.NrKernelMiscReclaimable);
        available += reclaimable - Math.Min(reclaimable / 2, wmarkLow);
        return Math.Max(0, available);
    }

    /// <summary>/proc/vmstat: zone, NUMA and node counters, writeback thresholds, then the VM events.</summary>
    public string Vmstat()
    {
        var sb = new StringBuilder();
        bool i386 = _m.Arch == ArchKind.I386;
        for (int i = 0; i < VmStatNames.Zone.Length; i++)
            sb.Append(Fmt($"{VmStatNames.Zone[i]} {_m.Zones.Sum(z => z.Stat((ZoneStat)i))}\n"));
        if (!i386)
        {
            long hits = _m.Cpus.Sum(c => _m.Zones.Sum(z => c.NumaHits(z.Index)));
            long[] numaValues = [hits, 0, 0, 0, hits, 0];
            for (int i = 0; i < VmStatNames.Numa.Length; i++)
                sb.Append(Fmt($"{VmStatNames.Numa[i]} {numaValues[i]}\n"));
        }
        for (int i = 0; i < VmStatNames.Node.Length; i++)
        {
            if (i386 && VmStatNames.Node[i].StartsWith("pgpromote_", StringComparison.Ordinal))
                continue;
            sb.Append(Fmt($"{VmStatNames.Node[i]} {NodeValue((NodeStat)i)}\n"));
        }
        var (thresh, bgThresh) = DirtyLimits();
        sb.Append(Fmt($"nr_dirty_threshold {thresh}\n"));
        sb.Append(Fmt($"nr_dirty_background_threshold {bgThresh}\n"));
        sb.Append("nr_memmap_pages 0\n");
        sb.Append(Fmt($"nr_memmap_boot_pages {(long)((_m.MemmapBytes + PageSize.Bytes - 1) >> PageSize.Shift)}\n"));
        var configured = new HashSet<ZoneType>();
        foreach (var t in _m.Zones.Select(z => z.Type))
            configured.Add(t);
        for (int i = 0; i < VmStatNames.Event.Length; i++)
        {
            string name = VmStatNames.Event[i];
            if (!EventConfigured(name, configured, i386))
                continue;
            long value = _m.Event((VmEvent)i);
            if (name is "pgpgin" or "pgpgout")
                value /= 2;
            sb.Append(Fmt($"{name} {value}\n"));
        }
        sb.Append("nr_unstable 0\n");
        return sb.ToString();
    }

    private static bool EventConfigured(string name, HashSet<ZoneType> zones, bool i386)
    {
        foreach (var prefix in new[] { "pgalloc_", "allocstall_", "pgskip_" })
        {
            if (!name.StartsWith(prefix, StringComparison.Ordinal))
                continue;
            var type = name[prefix.Length..] switch
            {
                "dma" => ZoneType.Dma,
                "dma32" => ZoneType.Dma32,
                "normal" => ZoneType.Normal,
                "high" => ZoneType.HighMem,
                "movable" => ZoneType.Movable,
                _ => ZoneType.Device,
            };
            return zones.Contains(type);
        }
        // What the i386 (non-PAE, !NUMA, no THP) build leaves out.
        return !i386 || !(name.StartsWith("numa_", StringComparison.Ordinal) || name.StartsWith("thp_", StringComparison.Ordinal) ||
                          name.StartsWith("zone_reclaim_", StringComparison.Ordinal));
    }

    /// <summary>global_dirty_limits(): 20% / 10% of dirtyable memory (free + file LRU - reserves, HIGHMEM excluded).</summary>
    private (long Thresh, long Bg) DirtyLimits()
    {
        long dirtyable = _m.Zones.Where(z => !z.IsHighMem).Sum(z => z.FreePages)
                         + NodeValue(NodeStat.NrActiveFile) + NodeValue(NodeStat.NrInactiveFile)
                         - _m.TotalReservePages;
        dirtyable = Math.Max(dirtyable, 1);
        return (dirtyable * 20 / 100, dirtyable * 10 / 100);
    }

    /// <summary>Produces a /proc file by name (<c>meminfo</c>, <c>slabinfo</c>, <c>1234/maps</c>...).</summary>
    /// <exception cref="ProcFileNotFoundException">No such file.</exception>
    public string Read(string name)
    {
        Func<ProcFs, string>? read;
        lock (s_files)
            s_files.TryGetValue(name, out read);
        if (read is not null)
            return read(this);
        if (PidFile(name) is { } pid && PidFileReader is { } reader)
            return reader(this, pid.Pid, pid.File);
        throw new ProcFileNotFoundException(name, Files);
    }

    /// <summary>Splits <c>PID/FILE</c>; null for anything else.</summary>
    private static (int Pid, string File)? PidFile(string name)
    {
        int slash = name.IndexOf('/');
        return slash > 0 && int.TryParse(name.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
            ? (pid, name[(slash + 1)..])
            : null;
    }

    /// <summary>The per-process files, for messages and help: PID/maps, PID/smaps...</summary>
    public static string PidFilesText => "PID/maps, PID/smaps, PID/smaps_rollup, PID/status, PID/statm, PID/stat";

    /// <summary>Reader of per-process files (<c>PID/maps</c>...), set by the process subsystem.</summary>
    internal static Func<ProcFs, int, string, string>? PidFileReader { get; set; }

    /// <summary>The machine these views read.</summary>
    internal Machine Machine => _m;
}

/// <summary>A /proc file name the machine does not provide.</summary>
public sealed class ProcFileNotFoundException(string name, IReadOnlyList<string> known)
    : KmemException($"no such /proc file '{name}' (known: {string.Join(", ", known)}, and {ProcFs.PidFilesText} of a live pid)")
{
    /// <summary>The name asked for.</summary>
    public string Name { get; } = name;
}
