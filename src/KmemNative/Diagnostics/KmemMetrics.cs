using System.Diagnostics.Metrics;
using KmemNative.PageAlloc;

namespace KmemNative.Diagnostics;

/// <summary>
/// Live counters of every machine in the process, published through <see cref="System.Diagnostics.Metrics"/> under
/// the meter <see cref="MeterName"/> ("KmemNative"), for <c>dotnet-counters monitor --counters KmemNative</c>,
/// OpenTelemetry (<c>AddMeter("KmemNative")</c>) or a <see cref="MeterListener"/>.
/// </summary>
/// <remarks>
/// <para>Every instrument is observable: its callback reads the counters the emulated kernel keeps anyway
/// (free_area[].nr_free, struct kmem_cache_node, vm_event_states, the TLB's counters) when a listener collects,
/// and only then. The allocation, free and translation paths do nothing for metrics, so they cost the same whether
/// anyone listens or not (bench/KmemNative.Bench/Diagnostics/MetricsBench.cs measures it).</para>
/// <para>Every measurement carries the tag <c>machine</c> (a number unique in the process, in boot order); zone,
/// order, cache, cpu and mode tags say which counter it is. A collection holds a lock that
/// <see cref="Machine.Dispose"/> also takes, so a machine is never read while its memory is being freed.</para>
/// <para>Instruments (units in braces are UCUM annotations):</para>
/// <list type="table">
/// <item><term>kmem.zone.free_pages</term><description>gauge {page}: NR_FREE_PAGES per zone.</description></item>
/// <item><term>kmem.zone.free_blocks</term><description>gauge {block}: free blocks per zone and order (/proc/buddyinfo).</description></item>
/// <item><term>kmem.slab.active_objects</term><description>gauge {object}: objects in use per cache (/proc/slabinfo active_objs).</description></item>
/// <item><term>kmem.slab.objects</term><description>gauge {object}: objects the cache's slabs hold (num_objs).</description></item>
/// <item><term>kmem.page_alloc.allocations</term><description>counter {page}: pgalloc_* per zone.</description></item>
/// <item><term>kmem.page_alloc.frees</term><description>counter {page}: pgfree.</description></item>
/// <item><term>kmem.page_faults</term><description>counter {fault}: pgfault; kmem.page_faults.major: pgmajfault.</description></item>
/// <item><term>kmem.mmu.faults</term><description>counter {fault}: faults the MMU raised, per CPU.</description></item>
/// <item><term>kmem.tlb.hits</term><description>counter {hit}: per CPU (counted only with <see cref="Machine.TlbStatistics"/> on).</description></item>
/// <item><term>kmem.tlb.misses</term><description>counter {miss}: per CPU.</description></item>
/// <item><term>kmem.tlb.flushes</term><description>counter {flush}: per CPU and kind (full, page, range, shootdown).</description></item>
/// <item><term>kmem.reclaim.scanned</term><description>counter {page}: pgscan_kswapd / pgscan_direct (mode tag).</description></item>
/// <item><term>kmem.reclaim.reclaimed</term><description>counter {page}: pgsteal_kswapd / pgsteal_direct (mode tag).</description></item>
/// <item><term>kmem.oom.kills</term><description>counter {kill}: oom_kill.</description></item>
/// </list>
/// </remarks>
public static class KmemMetrics
{
    /// <summary>The meter's name: "KmemNative".</summary>
    public const string MeterName = "KmemNative";

    private static readonly Lock s_lock = new();
    private static readonly List<Machine> s_machines = [];
    private static int s_nextId;

    /// <summary>The meter every instrument belongs to.</summary>
    public static Meter Meter { get; } = CreateMeter();

    private static Meter CreateMeter()
    {
        var meter = new Meter(MeterName, typeof(KmemMetrics).Assembly.GetName().Version?.ToString());
        meter.CreateObservableGauge("kmem.zone.free_pages", () => Collect(ZoneFreePages), "{page}", "NR_FREE_PAGES of each zone");
        meter.CreateObservableGauge("kmem.zone.free_blocks", () => Collect(ZoneFreeBlocks), "{block}", "Free blocks of each order in each zone (/proc/buddyinfo)");
        meter.CreateObservableGauge("kmem.slab.active_objects", () => Collect(SlabActive), "{object}", "Objects in use per slab cache (/proc/slabinfo active_objs)");
        meter.CreateObservableGauge("kmem.slab.objects", () => Collect(SlabTotal), "{object}", "Objects the slabs of each cache hold (/proc/slabinfo num_objs)");
        meter.CreateObservableCounter("kmem.page_alloc.allocations", () => Collect(PageAllocs), "{page}", "Pages allocated per zone (pgalloc_*)");
        meter.CreateObservableCounter("kmem.page_alloc.frees", () => Collect(m => Event(m, VmEvent.Pgfree)), "{page}", "Pages freed (pgfree)");
        meter.CreateObservableCounter("kmem.page_faults", () => Collect(m => Event(m, VmEvent.Pgfault)), "{fault}", "Page faults (pgfault)");
        meter.CreateObservableCounter("kmem.page_faults.major", () => Collect(m => Event(m, VmEvent.Pgmajfault)), "{fault}", "Major page faults (pgmajfault)");
        meter.CreateObservableCounter("kmem.mmu.faults", () => Collect(m => PerCpu(m, c => c.TlbStatistics.Faults)), "{fault}", "Faults raised by MMU accesses, per CPU");
        meter.CreateObservableCounter("kmem.tlb.hits", () => Collect(m => PerCpu(m, c => c.TlbStatistics.Hits)), "{hit}", "TLB hits per CPU (counted in TLB statistics mode only)");
        meter.CreateObservableCounter("kmem.tlb.misses", () => Collect(m => PerCpu(m, c => c.TlbStatistics.Misses)), "{miss}", "TLB misses per CPU");
        meter.CreateObservableCounter("kmem.tlb.flushes", () => Collect(TlbFlushes), "{flush}", "TLB flushes per CPU and kind");
        meter.CreateObservableCounter("kmem.reclaim.scanned", () => Collect(m => Modes(m, VmEvent.PgscanKswapd, VmEvent.PgscanDirect)), "{page}", "Pages scanned by reclaim (pgscan_kswapd, pgscan_direct)");
        meter.CreateObservableCounter("kmem.reclaim.reclaimed", () => Collect(m => Modes(m, VmEvent.PgstealKswapd, VmEvent.PgstealDirect)), "{page}", "Pages reclaimed (pgsteal_kswapd, pgsteal_direct)");
        meter.CreateObservableCounter("kmem.oom.kills", () => Collect(m => Event(m, VmEvent.OomKill)), "{kill}", "Processes killed by the OOM killer (oom_kill)");
        return meter;
    }

    /// <summary>Adds a booted machine to what the instruments report.</summary>
    internal static void Register(Machine m)
    {
        _ = Meter;
        lock (s_lock)
        {
            m.MetricsId = s_nextId++;
            s_machines.Add(m);
        }
    }

    /// <summary>Removes a machine (before its memory goes), waiting for a collection in progress.</summary>
    internal static void Unregister(Machine m)
    {
        lock (s_lock)
            s_machines.Remove(m);
    }

    private static IEnumerable<Measurement<long>> Collect(Func<Machine, IEnumerable<Measurement<long>>> read)
    {
        var all = new List<Measurement<long>>();
        lock (s_lock)
        {
            foreach (var m in s_machines)
            {
                if (m.IsDisposed)
                    continue;
                try
                {
                    all.AddRange(read(m));
                }
                catch (KmemException)
                {
                    // A machine whose structures are corrupt (the consistency checker reports it) is left out of
                    // this collection rather than failing the listener's.
                }
            }
        }
        return all;
    }

    private static KeyValuePair<string, object?> Tag(string name, object? value) => new(name, value);

    private static IEnumerable<Measurement<long>> ZoneFreePages(Machine m) =>
        m.Zones.Where(z => z.IsPopulated).Select(z => new Measurement<long>(z.FreePages, Tag("machine", m.MetricsId), Tag("zone", z.Name)));

    private static IEnumerable<Measurement<long>> ZoneFreeBlocks(Machine m)
    {
        foreach (var z in m.Zones.Where(z => z.IsPopulated))
        {
            for (int order = 0; order < PhysMem.PageSize.NrOrders; order++)
                yield return new Measurement<long>(z.NrFree(order), Tag("machine", m.MetricsId), Tag("zone", z.Name), Tag("order", order));
        }
    }

    // Reading the caches before kmem_cache_init() would run it (it runs on first use): metrics change nothing.
    private static IReadOnlyList<Slab.KmemCache> Caches(Machine m) => m.SlabInitialized ? m.KmemCaches : [];

    private static IEnumerable<Measurement<long>> SlabActive(Machine m) =>
        Caches(m).Select(s => new Measurement<long>(m.Slabinfo(s).ActiveObjs, Tag("machine", m.MetricsId), Tag("cache", s.Name)));

    private static IEnumerable<Measurement<long>> SlabTotal(Machine m) =>
        Caches(m).Select(s => new Measurement<long>(m.Slabinfo(s).NumObjs, Tag("machine", m.MetricsId), Tag("cache", s.Name)));

    private static IEnumerable<Measurement<long>> PageAllocs(Machine m) =>
        m.Zones.Where(z => z.IsPopulated).Select(z =>
            new Measurement<long>(m.Event(VmEvent.PgallocDma + (int)z.Type), Tag("machine", m.MetricsId), Tag("zone", z.Name)));

    private static IEnumerable<Measurement<long>> Event(Machine m, VmEvent item) =>
        [new Measurement<long>(m.Event(item), Tag("machine", m.MetricsId))];

    private static IEnumerable<Measurement<long>> Modes(Machine m, VmEvent kswapd, VmEvent direct) =>
    [
        new Measurement<long>(m.Event(kswapd), Tag("machine", m.MetricsId), Tag("mode", "kswapd")),
        new Measurement<long>(m.Event(direct), Tag("machine", m.MetricsId), Tag("mode", "direct")),
    ];

    private static IEnumerable<Measurement<long>> PerCpu(Machine m, Func<Cpu, long> read) =>
        m.Cpus.Select(c => new Measurement<long>(read(c), Tag("machine", m.MetricsId), Tag("cpu", c.Id)));

    private static IEnumerable<Measurement<long>> TlbFlushes(Machine m)
    {
        foreach (var c in m.Cpus)
        {
            var s = c.TlbStatistics;
            yield return new Measurement<long>(s.FullFlushes, Tag("machine", m.MetricsId), Tag("cpu", c.Id), Tag("kind", "full"));
            yield return new Measurement<long>(s.PageFlushes, Tag("machine", m.MetricsId), Tag("cpu", c.Id), Tag("kind", "page"));
            yield return new Measurement<long>(s.RangeFlushes, Tag("machine", m.MetricsId), Tag("cpu", c.Id), Tag("kind", "range"));
            yield return new Measurement<long>(s.Shootdowns, Tag("machine", m.MetricsId), Tag("cpu", c.Id), Tag("kind", "shootdown"));
        }
    }
}
