using KmemNative.PageAlloc;

namespace KmemNative.Reclaim;

// kswapd (mm/vmscan.c): one per node. The allocator's slow path wakes it (wakeup_kswapd()) when a request with
// __GFP_KSWAPD_RECLAIM finds the zones below their low watermark; it then runs balance_pgdat() until some eligible
// zone is above its high watermark. By default the emulator runs it in "step" mode: a wakeup only records the
// request and kswapd runs when KswapdStep() is called, so tests are deterministic. Optionally a host thread runs it
// as soon as it is woken (on a free emulated CPU).
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    private volatile bool _kswapdPending;
    private long _kswapdWakeups;
    private readonly Lock _kswapdLock = new();
    private Thread? _kswapdThread;
    private SemaphoreSlim? _kswapdWake;
    private volatile bool _kswapdStop;

    /// <summary>pgdat-&gt;kswapd_order: the largest order a wakeup asked for since kswapd last ran.</summary>
    internal int KswapdOrder
    {
        get => Volatile.Read(ref *(int*)(_node + _kswapdOrderOff));
        private set => Volatile.Write(ref *(int*)(_node + _kswapdOrderOff), value);
    }

    /// <summary>pgdat-&gt;kswapd_highest_zoneidx (MAX_NR_ZONES when no wakeup is pending).</summary>
    internal int KswapdHighestZoneIdx
    {
        get => Volatile.Read(ref *(int*)(_node + _kswapdHighestOff));
        private set => Volatile.Write(ref *(int*)(_node + _kswapdHighestOff), value);
    }

    /// <summary>A wakeup is pending (kswapd was woken and has not run since).</summary>
    internal bool KswapdPending => _kswapdPending;

    /// <summary>How many times the slow path actually woke kswapd.</summary>
    internal long KswapdWakeups => Interlocked.Read(ref _kswapdWakeups);

    /// <summary>True while the kswapd host thread runs.</summary>
    internal bool KswapdThreadRunning => _kswapdThread is not null;

    /// <summary>
    /// wake_all_kswapds() → wakeup_kswapd(): record the order and the highest zone kswapd must balance for; wake it
    /// unless the node is hopeless (MAX_RECLAIM_RETRIES failed runs) or already balanced for the request.
    /// </summary>
    public void WakeAllKswapds(Cpu cpu, int order, Gfp gfp, int highestZoneIdx)
    {
        int curr = KswapdHighestZoneIdx;
        if (curr == MaxNrZones || curr < highestZoneIdx)
            KswapdHighestZoneIdx = highestZoneIdx;
        if (KswapdOrder < order)
            KswapdOrder = order;
        if (_kswapdPending)
            return;     // !waitqueue_active(): kswapd is already awake
        if (Hopeless || PgdatBalanced(order, highestZoneIdx))
            return;
        _kswapdPending = true;
        Interlocked.Increment(ref _kswapdWakeups);
        _kswapdWake?.Release();
    }

    /// <summary>
    /// pgdat_balanced(): some managed zone up to <paramref name="highest"/> meets its high watermark for the order
    /// (zone_watermark_ok_safe with the lowmem reserve of the request's zone). A node with no managed zone in range
    /// needs no balancing.
    /// </summary>
    internal bool PgdatBalanced(int order, int highest)
    {
        bool any = false;
        var pa = _m.PageAllocator;
        for (int i = 0; i <= highest && i < _m.Zones.Count; i++)
        {
            var z = _m.Zones[i];
            if (z.Managed == 0)
                continue;
            any = true;
            if (pa.ZoneWatermarkOk(z, order, AllocFlags.WmarkHigh, highest))
                return true;
        }
        return !any;
    }

    /// <summary>The highest populated zone (kswapd's default class zone when it runs without a wakeup).</summary>
    private int HighestManagedZone()
    {
        for (int i = _m.Zones.Count - 1; i >= 0; i--)
            if (_m.Zones[i].Managed != 0)
                return i;
        return 0;
    }

    /// <summary>
    /// One kswapd run (step mode): take the pending request (kswapd_order, kswapd_highest_zoneidx; order 0 and the
    /// highest zone without one) and balance_pgdat() until balanced or priority 1. Returns the pages reclaimed;
    /// 0 without doing anything when the node is already balanced and no wakeup is pending.
    /// </summary>
    internal long KswapdRun(Cpu cpu)
    {
        lock (_kswapdLock)
        {
            int order = KswapdOrder;
            int highest = KswapdHighestZoneIdx;
            if (highest == MaxNrZones)
                highest = HighestManagedZone();
            bool pending = _kswapdPending;
            // kswapd_try_to_sleep() resets the request before balancing: later wakeups record a new one.
            KswapdOrder = 0;
            KswapdHighestZoneIdx = MaxNrZones;
            _kswapdPending = false;
            if (!pending && PgdatBalanced(order, highest))
                return 0;
            return BalancePgdat(cpu, order, highest);
        }
    }

    /// <summary>
    /// balance_pgdat(): as PF_MEMALLOC | PF_KSWAPD with GFP_KERNEL, count pageoutrun, then at falling priority
    /// shrink the node (kswapd_shrink_node(): nr_to_reclaim = the sum of the eligible zones' high watermarks, each at
    /// least SWAP_CLUSTER_MAX) until some eligible zone is balanced. The priority only drops when a pass scanned less
    /// than its target or reclaimed nothing. A run that reclaims nothing counts a kswapd failure.
    /// </summary>
    private long BalancePgdat(Cpu cpu, int order, int highest)
    {
        cpu.Events[(int)VmEvent.Pageoutrun]++;
        var sc = new ScanControl
        {
            GfpMask = Gfp.Kernel,
            Order = order,
            ReclaimIdx = highest,
            Kswapd = true,
        };
        uint saved = cpu.TaskFlags;
        cpu.SetTaskFlags(saved | Cpu.PfMemalloc | Cpu.PfKswapd);
        try
        {
            do
            {
                if (PgdatBalanced(sc.Order, highest))
                    break;
                long before = sc.NrReclaimed;
                sc.NrScanned = 0;
                sc.NrToReclaim = 0;
                for (int i = 0; i <= highest && i < _m.Zones.Count; i++)
                {
                    var z = _m.Zones[i];
                    if (z.Managed != 0)
                        sc.NrToReclaim += Math.Max(z.WatermarkHigh + z.WatermarkBoost, Vmscan.SwapClusterMax);
                }
                ShrinkNode(cpu, sc);
                SnapshotRefaults();
                // "Fragmentation may mean that the system cannot be rebalanced for high-order allocations": with
                // enough reclaimed for compaction (compact_gap() = 2 << order) kswapd falls back to order 0.
                if (sc.Order != 0 && sc.NrReclaimed >= 2L << sc.Order)
                    sc.Order = 0;
                bool raisePriority = sc.NrScanned < sc.NrToReclaim;
                if (raisePriority || sc.NrReclaimed == before)
                    sc.Priority--;
            }
            while (sc.Priority >= 1);
        }
        finally
        {
            cpu.SetTaskFlags(saved);
        }
        if (sc.NrReclaimed == 0)
            KswapdFailures++;
        return sc.NrReclaimed;
    }

    /// <summary>
    /// Starts or stops the kswapd host thread. While it runs, a wakeup runs balance_pgdat() at once on a free
    /// emulated CPU (there must be one: a CPU runs one host thread at a time); step mode is the default.
    /// </summary>
    internal void SetKswapdThread(bool on)
    {
        Thread? stop = null;
        lock (_kswapdLock)
        {
            if (on == _kswapdThread is not null)
                return;
            if (on)
            {
                _kswapdStop = false;
                _kswapdWake = new SemaphoreSlim(_kswapdPending ? 1 : 0);
                _kswapdThread = new Thread(KswapdMain) { IsBackground = true, Name = "kswapd0" };
                _kswapdThread.Start();
                return;
            }
            stop = _kswapdThread;
            _kswapdStop = true;
            _kswapdWake?.Release();
            _kswapdThread = null;
        }
        stop?.Join();
        _kswapdWake?.Dispose();
        _kswapdWake = null;
    }

    /// <summary>
    /// kswapd(): sleep until woken, then balance on a CPU no other thread holds. While every CPU is held the
    /// wakeup stays pending and the thread keeps looking for one (a step may also take it).
    /// </summary>
    private void KswapdMain()
    {
        var wake = _kswapdWake!;
        while (!_kswapdStop)
        {
            if (!_kswapdPending)
                wake.Wait(50);
            if (_kswapdStop)
                return;
            if (!_kswapdPending)
                continue;
            Cpu? cpu = null;
            foreach (var c in _m.Cpus)
            {
                if (_m.TryClaimCpu(c, out bool mine) && !mine)
                {
                    cpu = c;
                    break;
                }
            }
            if (cpu is null)
            {
                Thread.Sleep(1);
                continue;
            }
            string comm = cpu.Comm;
            int pid = cpu.Pid;
            try
            {
                cpu.Comm = "kswapd0";
                cpu.Pid = 0;
                if (!_m.IsDisposed)
                    KswapdRun(cpu);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            finally
            {
                cpu.Comm = comm;
                cpu.Pid = pid;
                _m.UnclaimCpu(cpu);
            }
        }
    }
}
