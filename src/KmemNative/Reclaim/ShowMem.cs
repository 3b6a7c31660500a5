using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// The reports of an allocation that fails (mm/page_alloc.c warn_alloc(), mm/show_mem.c __show_mem()) and
// WARN_ON_ONCE. They go to the kernel log; the last allocation-failure report is also kept as text. Not emulated:
// dump_stack() (there is no call stack to show) and the printk rate limit (every report is printed, so the output is
// deterministic).
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    private readonly HashSet<string> _warnedOnce = [];
    private string? _lastFailureReport;
    private long _allocFailures;

    /// <summary>The last "page allocation failure" report (the warn_alloc() line and show_mem()), or null.</summary>
    internal string? LastAllocFailureReport => Volatile.Read(ref _lastFailureReport);

    /// <summary>How many allocation-failure reports were printed.</summary>
    internal long AllocFailureReports => Interlocked.Read(ref _allocFailures);

    /// <summary>
    /// warn_alloc(): unless __GFP_NOWARN (or a __GFP_DMA request on a machine without a DMA zone), the line
    /// "&lt;comm&gt;: page allocation failure: order:N, mode:0x...(flags), nodemask=(null)" and show_mem() for the
    /// request's zones.
    /// </summary>
    public void WarnAlloc(Cpu cpu, Gfp gfp, int order)
    {
        if ((gfp & Gfp.NoWarn) != 0)
            return;
        if ((gfp & Gfp.Dma) != 0 && !_m.Zones.Any(z => TArch.ZoneTypes[z.Index] == Arch.ZoneType.Dma && z.Managed != 0))
            return;
        var lines = new List<string>
        {
            Inv($"{cpu.Comm}: page allocation failure: order:{order}, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), nodemask=(null)"),
        };
        ShowMem(cpu, GfpFlags.Zone<TArch>(gfp), lines);
        _m.Log.Warn(lines[0]);
        for (int i = 1; i < lines.Count; i++)
            _m.Log.Info(lines[i]);
        Volatile.Write(ref _lastFailureReport, string.Join('\n', lines));
        Interlocked.Increment(ref _allocFailures);
    }

    /// <summary>WARN_ON_ONCE(): "WARNING: CPU: N PID: N at &lt;site&gt;" the first time a site triggers, and TAINT_WARN.</summary>
    public void WarnOnce(Cpu cpu, string site)
    {
        lock (_warnedOnce)
        {
            if (!_warnedOnce.Add(site))
                return;
        }
        _m.Log.Warn(Inv($"WARNING: CPU: {cpu.Id} PID: {cpu.Pid} at {site}"));
        _m.AddTaint(KmemNative.Machine.TaintWarn);
    }

    /// <summary>
    /// __show_mem(): "Mem-Info:", show_free_areas() (the global counts in pages, the node in kB, each populated zone
    /// up to <paramref name="maxZoneIdx"/> with its free pages, watermarks and lowmem_reserve, then each zone's free
    /// blocks per order with their migrate types as /proc/buddyinfo counts them), the page-cache and swap totals,
    /// and the RAM summary.
    /// </summary>
    internal void ShowMem(Cpu cpu, int maxZoneIdx, List<string> lines)
    {
        static long K(long pages) => pages << (PageSize.Shift - 10);
        long Node(NodeStat s) => NodeStatRead(s);
        var zones = _m.Zones.Where(z => z.IsPopulated).ToList();
        long FreePcp(Zone z) => _m.Cpus.Sum(c => (long)_m.PcpCount(c, z));
        long freePcpAll = zones.Sum(FreePcp);
        lines.Add("Mem-Info:");
        lines.Add(Inv($"active_anon:{Node(NodeStat.NrActiveAnon)} inactive_anon:{Node(NodeStat.NrInactiveAnon)} isolated_anon:{Node(NodeStat.NrIsolatedAnon)}"));
        lines.Add(Inv($" active_file:{Node(NodeStat.NrActiveFile)} inactive_file:{Node(NodeStat.NrInactiveFile)} isolated_file:{Node(NodeStat.NrIsolatedFile)}"));
        lines.Add(Inv($" unevictable:{Node(NodeStat.NrUnevictable)} dirty:{Node(NodeStat.NrDirty)} writeback:{Node(NodeStat.NrWriteback)}"));
        lines.Add(Inv($" slab_reclaimable:{Node(NodeStat.NrSlabReclaimable)} slab_unreclaimable:{Node(NodeStat.NrSlabUnreclaimable)}"));
        lines.Add(Inv($" mapped:{Node(NodeStat.NrMapped)} shmem:{Node(NodeStat.NrShmem)} pagetables:{Node(NodeStat.NrPageTablePages)}"));
        lines.Add(Inv($" sec_pagetables:{Node(NodeStat.NrSecPageTablePages)} bounce:0"));
        lines.Add(Inv($" kernel_misc_reclaimable:{Node(NodeStat.NrKernelMiscReclaimable)}"));
        lines.Add(Inv($" free:{zones.Sum(z => z.FreePages)} free_pcp:{freePcpAll} free_cma:0"));
        string thp = TArch.Kind == ArchKind.X86_64 ? " shmem_thp:0kB shmem_pmdmapped:0kB anon_thp:0kB" : "";
        lines.Add(Inv($"Node 0 active_anon:{K(Node(NodeStat.NrActiveAnon))}kB inactive_anon:{K(Node(NodeStat.NrInactiveAnon))}kB active_file:{K(Node(NodeStat.NrActiveFile))}kB inactive_file:{K(Node(NodeStat.NrInactiveFile))}kB unevictable:{K(Node(NodeStat.NrUnevictable))}kB isolated(anon):{K(Node(NodeStat.NrIsolatedAnon))}kB isolated(file):{K(Node(NodeStat.NrIsolatedFile))}kB mapped:{K(Node(NodeStat.NrMapped))}kB dirty:{K(Node(NodeStat.NrDirty))}kB writeback:{K(Node(NodeStat.NrWriteback))}kB shmem:{K(Node(NodeStat.NrShmem))}kB{thp} writeback_tmp:0kB kernel_stack:{Node(NodeStat.NrKernelStack)}kB pagetables:{K(Node(NodeStat.NrPageTablePages))}kB sec_pagetables:{K(Node(NodeStat.NrSecPageTablePages))}kB all_unreclaimable? {(Hopeless ? "yes" : "no")} Balloon:0kB"));
        foreach (var z in zones)
        {
            if (z.Index > maxZoneIdx)
                continue;
            long S(ZoneStat s) => K(z.Stat(s));
            lines.Add(Inv($"Node 0 {z.Name} free:{K(z.FreePages)}kB boost:{K(z.WatermarkBoost)}kB min:{K(z.WatermarkMin)}kB low:{K(z.WatermarkLow)}kB high:{K(z.WatermarkHigh)}kB reserved_highatomic:{K(z.ReservedHighatomic)}KB free_highatomic:{K(z.FreeHighatomic)}KB active_anon:{S(ZoneStat.NrZoneActiveAnon)}kB inactive_anon:{S(ZoneStat.NrZoneInactiveAnon)}kB active_file:{S(ZoneStat.NrZoneActiveFile)}kB inactive_file:{S(ZoneStat.NrZoneInactiveFile)}kB unevictable:{S(ZoneStat.NrZoneUnevictable)}kB writepending:{S(ZoneStat.NrZoneWritePending)}kB present:{K((long)z.Present)}kB managed:{K((long)z.Managed)}kB mlocked:{S(ZoneStat.NrMlock)}kB bounce:0kB free_pcp:{K(FreePcp(z))}kB local_pcp:{K(_m.PcpCount(cpu, z))}kB free_cma:0kB"));
            var sb = new StringBuilder("lowmem_reserve[]:");
            for (int i = 0; i < _m.Zones.Count; i++)
                sb.Append(' ').Append(z.LowmemReserve(i).ToString(CultureInfo.InvariantCulture));
            lines.Add(sb.ToString());
        }
        foreach (var z in zones)
        {
            if (z.Index > maxZoneIdx)
                continue;
            lines.Add(BuddyLine(z));
        }
        lines.Add(Inv($"{Node(NodeStat.NrFilePages)} total pagecache pages"));
        lines.Add(Inv($"{SwapCachePages} pages in swap cache"));
        lines.Add(Inv($"Free swap  = {K(NrSwapPages)}kB"));
        lines.Add(Inv($"Total swap = {K(TotalSwapPages)}kB"));
        long present = zones.Sum(z => (long)z.Present);
        long high = zones.Where(z => z.IsHighMem || TArch.ZoneTypes[z.Index] == Arch.ZoneType.Movable).Sum(z => (long)z.Present);
        long reserved = zones.Sum(z => (long)(z.Present - z.Managed));
        lines.Add(Inv($"{present} pages RAM"));
        lines.Add(Inv($"{high} pages HighMem/MovableOnly"));
        lines.Add(Inv($"{reserved} pages reserved"));
    }

    /// <summary>The migrate-type letters show_migration_types() prints (MIGRATE_UNMOVABLE 'U' ... MIGRATE_ISOLATE 'I').</summary>
    private static readonly (MigrateType Type, char Letter)[] s_mtLetters =
        [(MigrateType.Unmovable, 'U'), (MigrateType.Movable, 'M'), (MigrateType.Reclaimable, 'E'), (MigrateType.HighAtomic, 'H'), (MigrateType.Isolate, 'I')];

    /// <summary>"Node 0 DMA: 1*4kB (U) 0*8kB ... = NkB": each order's free blocks and the types of the lists holding them.</summary>
    private string BuddyLine(Zone z)
    {
        var sb = new StringBuilder();
        sb.Append("Node 0 ").Append(z.Name).Append(": ");
        long total = 0;
        for (int order = 0; order <= PageSize.MaxOrder; order++)
        {
            long nr = z.NrFree(order);
            long kb = 4L << order;
            total += nr * kb;
            sb.Append(nr.ToString(CultureInfo.InvariantCulture)).Append('*').Append(kb.ToString(CultureInfo.InvariantCulture)).Append("kB ");
            if (nr == 0)
                continue;
            sb.Append('(');
            foreach (var (type, letter) in s_mtLetters)
                if (_m.CountFreeBlocks(z, order, type) != 0)
                    sb.Append(letter);
            sb.Append(") ");
        }
        sb.Append("= ").Append(total.ToString(CultureInfo.InvariantCulture)).Append("kB");
        return sb.ToString();
    }
}
