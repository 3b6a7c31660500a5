using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Trace;

/// <summary>The replay of one trace onto one machine, whatever its profile.</summary>
internal interface ITraceReplayer
{
    void Replay(ref FtraceEvent ev, long line);
    void Annotate(TraceAnnotationInfo a, int nameId, long line);
    void Lost();
    void Finish();
}

/// <summary>
/// Replays parsed kmem events onto a <see cref="Machine{TArch}"/>: the traced CPU's emulated CPU runs each event,
/// traced addresses and pfns are mapped to the emulator's own objects and blocks through two dictionaries, and
/// the slab allocator's own page traffic is left to the emulator's slab allocator (<see cref="SlabPageHeuristic"/>).
/// </summary>
/// <remarks>
/// Hot path: one switch per event, direct (non-virtual, inlined) calls into the profile's machine with an explicit
/// CPU, and one dictionary operation keyed by the traced address. Nothing is allocated per event beyond
/// dictionary growth (both dictionaries are presized for a trace of a few hundred thousand live objects).
/// </remarks>
internal sealed unsafe partial class TraceReplayer<TArch> : ITraceReplayer where TArch : struct, IArch
{
    private const ulong NoPage = ulong.MaxValue;
    private const ulong FailedHere = 0;          // object value: the replayed allocation failed

    private readonly Machine<TArch> _m;
    private readonly StringTable _strings;
    private readonly TraceReplayResult _r;
    private readonly TraceReplayOptions _o;
    private readonly FtraceWriter? _writer;
    private readonly IKmemTracer? _previousTracer;
    private readonly Cpu?[] _cpus;
    private readonly bool[] _heldBefore;
    private readonly Dictionary<ulong, ulong> _objects = new(1 << 18);
    private readonly Dictionary<ulong, PageEntry> _pages = new(1 << 16);
    private CacheSlot[] _caches = new CacheSlot[64];
    private readonly List<int> _cacheOrder = [];
    private readonly PendingPage[] _pending;
    private int _pendingCount;
    private readonly int[] _slabRetry;           // per CPU: order of a failed allocate_slab() first attempt, or -1
    private readonly Gfp[] _slabRetryGfp;        // per CPU: its flags
    private readonly byte* _slabReclaimable, _slabUnreclaimable;
    private long _pagesHeld;

    public TraceReplayer(Machine<TArch> machine, FtraceParser parser, TraceReplayResult result, TraceReplayOptions options)
    {
        _m = machine;
        _strings = parser.Strings;
        _r = result;
        _o = options;
        // kmem_cache_init() now, before any tracer sees the machine: its caches belong to boot, not to the trace.
        _ = machine.KmemCaches;
        int n = machine.Cpus.Count;
        _cpus = new Cpu?[n];
        _heldBefore = new bool[n];
        _pending = new PendingPage[n];
        _slabRetry = new int[n];
        _slabRetryGfp = new Gfp[n];
        Array.Fill(_slabRetry, -1);
        var me = Thread.CurrentThread;
        for (int i = 0; i < n; i++)
        {
            // All traced CPUs are driven from this one thread; a CPU another live thread holds is left alone.
            _heldBefore[i] = machine.Cpus[i].Owner == me;
            try
            {
                _cpus[i] = machine.GetCpu(i);
            }
            catch (CpuUnavailableException)
            {
                _cpus[i] = null;
            }
        }
        _slabReclaimable = machine.NodeStatAddress(NodeStat.NrSlabReclaimable);
        _slabUnreclaimable = machine.NodeStatAddress(NodeStat.NrSlabUnreclaimable);
        _previousTracer = machine.Tracer;
        if (options.Output is { } factory)
        {
            var output = factory(machine);
            _writer = output as FtraceWriter;
            machine.Tracer = output;
        }
    }

    private enum PageKind : byte { Plain, Slab, LargeKmalloc, Failed }

    private struct PageEntry(ulong emuPfn, int order, PageKind kind, bool compound)
    {
        public ulong EmuPfn = emuPfn;
        public int Order = order;
        public PageKind Kind = kind;
        public bool Compound = compound;
    }

    /// <summary>An mm_page_alloc of a compound block of order ≥ 2 held back until the CPU's next event: a large kmalloc's?</summary>
    private struct PendingPage
    {
        public bool Active;
        public bool SlabClass;
        public ulong Pfn;
        public int Order;
        public Gfp Gfp;
        public long TimestampUs;
        public int FlagsId, CommId, Pid;
        public long Line;
    }

    /// <summary>What the replay knows about the cache of one traced name.</summary>
    private struct CacheSlot
    {
        public KmemCache? Cache;
        public byte State;          // 0 not looked up, 1 ready, 2 unavailable
        public string How;
        public long TracedReq, TracedAlloc, Allocs;
    }

    // ---- dispatch -------------------------------------------------------------------------------------------

    public void Replay(ref FtraceEvent ev, long line)
    {
        _r.EventCounts[(int)ev.Kind]++;
        int c = ev.Cpu;
        if ((uint)c >= (uint)_cpus.Length || _cpus[c] is not { } cpu)
        {
            Skip(ReplaySkip.CpuUnavailable, ev.Kind);
            return;
        }
        if (_pendingCount != 0 && _pending[c].Active)
            ResolvePending(cpu, c, ref ev);
        cpu.Pid = ev.Pid;
        cpu.Comm = _strings[ev.CommId];
        if (_writer is { } w)
        {
            w.TimestampUs = ev.TimestampUs;
            w.FlagsColumn = _strings[ev.FlagsId];
            w.CallSite = _strings[ev.CallSiteId];
        }
        switch (ev.Kind)
        {
            case FtraceEventKind.KmemCacheAlloc:
                _slabRetry[c] = -1;
                KmemCacheAlloc(cpu, ref ev);
                break;
            case FtraceEventKind.Kmalloc:
                _slabRetry[c] = -1;
                Kmalloc(cpu, ref ev, line);
                break;
            case FtraceEventKind.Kfree:
                _slabRetry[c] = -1;
                Kfree(cpu, ev.Ptr);
                break;
            case FtraceEventKind.KmemCacheFree:
                _slabRetry[c] = -1;
                KmemCacheFree(cpu, ref ev);
                break;
            case FtraceEventKind.MmPageAlloc:
                MmPageAlloc(cpu, c, ref ev, line);
                break;
            default:
                _slabRetry[c] = -1;
                MmPageFree(cpu, ev.Kind, ev.Pfn, ev.Kind == FtraceEventKind.MmPageFreeBatched ? 0 : ev.Order);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Skip(ReplaySkip why, FtraceEventKind kind)
    {
        _r.SkipCounts[(int)why]++;
        _r.SkippedCounts[(int)kind]++;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Replayed(FtraceEventKind kind) => _r.ReplayedCounts[(int)kind]++;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Failed(FtraceEventKind kind) => _r.FailedCounts[(int)kind]++;

    /// <summary>An operation the emulator refused with an error (a bad page, a slab bug report): counted, the replay goes on.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Refused(FtraceEventKind kind, KmemException e, long line)
    {
        _r.FailedCounts[(int)kind]++;
        _r.RefusedCounts[(int)kind]++;
        if (_r.RefusedMessages.Count < 10)
        {
            string first = e.Message.Split('\n')[0];
            _r.RefusedMessages.Add(line > 0 ? $"line {line}: {FtraceEvent.Name(kind)}: {first}" : $"{FtraceEvent.Name(kind)}: {first}");
        }
    }

    // ---- slab objects ---------------------------------------------------------------------------------------

    private void KmemCacheAlloc(Cpu cpu, ref FtraceEvent ev)
    {
        ref var slot = ref CacheFor(cpu, ev.NameId, ev.BytesReq, ev.BytesAlloc, create: true);
        if (slot.State != 1)
        {
            Skip(ReplaySkip.CacheUnavailable, FtraceEventKind.KmemCacheAlloc);
            return;
        }
        var s = slot.Cache!;
        slot.Allocs++;
        ulong obj;
        try
        {
            obj = _m.KmemCacheAlloc(cpu, s, ev.Gfp);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.KmemCacheAlloc, e, 0);
            if (ev.Ptr != 0)
                Remember(cpu, ev.Ptr, FailedHere);
            return;
        }
        Replayed(FtraceEventKind.KmemCacheAlloc);
        if (ev.Ptr == 0)
        {
            TracedFailure(cpu, obj);
            return;
        }
        if (obj == 0)
            Failed(FtraceEventKind.KmemCacheAlloc);
        Remember(cpu, ev.Ptr, obj);
        TrackPeak();
    }

    private void Kmalloc(Cpu cpu, ref FtraceEvent ev, long line)
    {
        ulong size = (ulong)ev.BytesReq;
        ulong ours = _m.KmallocBytes(size, ev.Gfp);
        _r.KmallocCompared++;
        if (ours != (ulong)ev.BytesAlloc)
            KmallocMismatch(ref ev, ours, line);
        ulong obj;
        try
        {
            obj = _m.Kmalloc(cpu, size, ev.Gfp);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.Kmalloc, e, line);
            if (ev.Ptr != 0)
                Remember(cpu, ev.Ptr, FailedHere);
            return;
        }
        Replayed(FtraceEventKind.Kmalloc);
        if (ev.Ptr == 0)
        {
            TracedFailure(cpu, obj);
            return;
        }
        if (obj == 0)
            Failed(FtraceEventKind.Kmalloc);
        Remember(cpu, ev.Ptr, obj);
        TrackPeak();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void KmallocMismatch(ref FtraceEvent ev, ulong ours, long line)
    {
        _r.KmallocSizeClassMismatches++;
        if (_r.KmallocMismatchSamples.Count < 10)
            _r.KmallocMismatchSamples.Add(new KmallocMismatch(line, ev.BytesReq, ev.BytesAlloc, (long)ours, _strings[ev.GfpId]));
    }

    /// <summary>The traced kernel failed this allocation; the emulator tried too, and gives back what it got.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TracedFailure(Cpu cpu, ulong obj)
    {
        _r.TracedFailures++;
        if (obj > SlubConst.ZeroSizePtr)
        {
            _r.TracedFailuresSucceeded++;
            _m.Kfree(cpu, obj);
        }
    }

    /// <summary>Maps a traced pointer to the emulator's object; a pointer still mapped was freed untraced.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Remember(Cpu cpu, ulong traced, ulong obj)
    {
        ref ulong value = ref CollectionsMarshal.GetValueRefOrAddDefault(_objects, traced, out bool exists);
        if (exists)
            ImplicitFree(cpu, value);
        value = obj;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ImplicitFree(Cpu cpu, ulong old)
    {
        _r.ImplicitFrees++;
        if (old <= SlubConst.ZeroSizePtr)
            return;
        try
        {
            _m.Kfree(cpu, old);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.Kfree, e, 0);
        }
    }

    private void Kfree(Cpu cpu, ulong ptr)
    {
        if (ptr <= SlubConst.ZeroSizePtr)
        {
            // kfree(NULL) / kfree(ZERO_SIZE_PTR): a no-op in the kernel and here; replayed so a written trace has it too.
            _r.KfreeNull++;
            _m.Kfree(cpu, ptr);
            Replayed(FtraceEventKind.Kfree);
            return;
        }
        if (!_objects.Remove(ptr, out ulong obj))
        {
            Skip(ReplaySkip.UnknownObject, FtraceEventKind.Kfree);
            return;
        }
        if (obj == FailedHere)
        {
            Skip(ReplaySkip.AllocationFailedHere, FtraceEventKind.Kfree);
            return;
        }
        try
        {
            _m.Kfree(cpu, obj);
            Replayed(FtraceEventKind.Kfree);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.Kfree, e, 0);
        }
    }

    private void KmemCacheFree(Cpu cpu, ref FtraceEvent ev)
    {
        if (!_objects.Remove(ev.Ptr, out ulong obj))
        {
            Skip(ReplaySkip.UnknownObject, FtraceEventKind.KmemCacheFree);
            return;
        }
        if (obj == FailedHere)
        {
            Skip(ReplaySkip.AllocationFailedHere, FtraceEventKind.KmemCacheFree);
            return;
        }
        ref var slot = ref CacheFor(cpu, ev.NameId, 0, 0, create: false);
        try
        {
            if (slot.State == 1)
                _m.KmemCacheFree(cpu, slot.Cache!, obj);
            else
                _m.Kfree(cpu, obj);   // the name is unknown here: free by address, as kfree() can
            Replayed(FtraceEventKind.KmemCacheFree);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.KmemCacheFree, e, 0);
        }
    }

    // ---- peak -----------------------------------------------------------------------------------------------

    private long SlabPagesNow => TArch.PointerSize == 8
        ? *(long*)_slabReclaimable + *(long*)_slabUnreclaimable
        : *(int*)_slabReclaimable + *(int*)_slabUnreclaimable;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TrackPeak()
    {
        long inUse = _pagesHeld + SlabPagesNow;
        if (inUse > _r.PeakPagesInUse)
            _r.PeakPagesInUse = inUse;
    }
}
