using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;

namespace KmemNative.Trace;

// Caches: found by name, created on first sight with a geometry inferred from the traced sizes, or created and
// destroyed where an emulator-written trace's annotations say; and the end of the replay.
internal sealed unsafe partial class TraceReplayer<TArch>
{
    private const byte Unknown = 0, Ready = 1, Unavailable = 2, NotFound = 3;

    private ref CacheSlot CacheFor(Cpu cpu, int nameId, long req, long alloc, bool create)
    {
        if (nameId >= _caches.Length)
            Array.Resize(ref _caches, Math.Max(nameId + 1, _caches.Length * 2));
        ref var slot = ref _caches[nameId];
        if (slot.State == Ready)
        {
            if (slot.Allocs == 0 && create)
            {
                slot.TracedReq = req;
                slot.TracedAlloc = alloc;
            }
            return ref slot;
        }
        if (slot.State == Unknown || (slot.State == NotFound && create))
            Resolve(cpu, ref slot, nameId, req, alloc, create);
        return ref slot;
    }

    private void Resolve(Cpu cpu, ref CacheSlot slot, int nameId, long req, long alloc, bool create)
    {
        string name = _strings[nameId];
        if (_m.FindKmemCache(name) is { } existing)
        {
            SetReady(ref slot, nameId, existing, "existing", req, alloc);
            return;
        }
        if (!create)
        {
            slot.State = NotFound;
            return;
        }
        var (align, flags, how) = InferGeometry(req, alloc);
        KmemCache? s;
        try
        {
            s = _m.KmemCacheCreate(cpu, name, (uint)Math.Clamp(req, 1, int.MaxValue), align, flags);
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.KmemCacheAlloc, e, 0);
            slot.State = Unavailable;
            return;
        }
        if (s is null)
        {
            Failed(FtraceEventKind.KmemCacheAlloc);
            slot.State = Unavailable;
            return;
        }
        _r.CachesCreated++;
        SetReady(ref slot, nameId, s, how, req, alloc);
    }

    private void SetReady(ref CacheSlot slot, int nameId, KmemCache s, string how, long req, long alloc)
    {
        if (slot.State != Ready && !_cacheOrder.Contains(nameId))
            _cacheOrder.Add(nameId);
        slot.Cache = s;
        slot.State = Ready;
        slot.How = how;
        slot.TracedReq = req;
        slot.TracedAlloc = alloc;
    }

    /// <summary>
    /// The geometry that reproduces the traced stride: s-&gt;size = ALIGN(ALIGN(object_size, word) [+ word when the free
    /// pointer lies after the object], align). The smallest power-of-two alignment that gives bytes_alloc wins; if only
    /// "free pointer after the object" does (the traced cache had a constructor or SLAB_TYPESAFE_BY_RCU), the cache
    /// is made SLAB_TYPESAFE_BY_RCU, which places it there without running a constructor per object.
    /// </summary>
    internal static (uint Align, SlabFlags Flags, string How) InferGeometry(long req, long alloc)
    {
        uint word = (uint)TArch.PointerSize;
        if (req <= 0 || alloc < req || (ulong)alloc > SlubConst.KmallocMaxSize)
            return (0, SlabFlags.None, "default");
        ulong inside = Align((ulong)req, word);
        for (uint a = word; a <= PageSize.Bytes; a <<= 1)
        {
            if (Align(inside, a) == (ulong)alloc)
                return (a <= word ? 0 : a, SlabFlags.None, a <= word ? "default" : $"aligned {a}");
        }
        for (uint a = word; a <= PageSize.Bytes; a <<= 1)
        {
            if (Align(inside + word, a) == (ulong)alloc)
                return (a <= word ? 0 : a, SlabFlags.TypesafeByRcu, a <= word ? "free pointer after the object" : $"free pointer after the object, aligned {a}");
        }
        return (0, SlabFlags.None, "default");
    }

    private static ulong Align(ulong v, ulong a) => (v + a - 1) & ~(a - 1);

    // ---- annotations, lost events, the end -----------------------------------------------------------------

    public void Annotate(TraceAnnotationInfo a, int nameId, long line)
    {
        if ((uint)a.Cpu >= (uint)_cpus.Length || _cpus[a.Cpu] is not { } cpu)
        {
            Skip(ReplaySkip.CpuUnavailable, a.Kind == TraceAnnotationKind.KmemCacheCreate ? FtraceEventKind.KmemCacheAlloc : FtraceEventKind.KmemCacheFree);
            return;
        }
        if (nameId >= _caches.Length)
            Array.Resize(ref _caches, Math.Max(nameId + 1, _caches.Length * 2));
        ref var slot = ref _caches[nameId];
        _r.Annotations++;
        if (a.Kind == TraceAnnotationKind.KmemCacheCreate)
        {
            if (_m.FindKmemCache(a.Name) is { } existing)
            {
                SetReady(ref slot, nameId, existing, "existing", 0, 0);
                return;
            }
            try
            {
                Action<ulong>? ctor = a.Ctor ? static _ => { } : null;
                var s = a.SheafCapacity > 0
                    ? _m.KmemCacheCreate(cpu, a.Name, a.Size, new KmemCacheArgs { Align = a.Align, Ctor = ctor, SheafCapacity = (uint)a.SheafCapacity }, a.Flags)
                    : _m.KmemCacheCreate(cpu, a.Name, a.Size, a.Align, a.Flags, ctor);
                if (s is null)
                {
                    slot.State = Unavailable;
                    return;
                }
                _r.CachesCreated++;
                SetReady(ref slot, nameId, s, "annotation", 0, 0);
            }
            catch (KmemException e)
            {
                Refused(FtraceEventKind.KmemCacheAlloc, e, line);
                slot.State = Unavailable;
            }
            return;
        }
        var cache = slot.State == Ready ? slot.Cache : _m.FindKmemCache(a.Name);
        if (cache is null)
            return;
        try
        {
            _m.KmemCacheDestroy(cpu, cache);
            slot = default;
        }
        catch (KmemException e)
        {
            Refused(FtraceEventKind.KmemCacheFree, e, line);
        }
    }

    public void Lost()
    {
        // Events are missing: a held block cannot be matched with what followed it any more.
        FlushPending();
        Array.Fill(_slabRetry, -1);
    }

    public void Finish()
    {
        FlushPending();
        if (_o.FreeAtEnd)
            FreeEverything();
        if (_o.Output is not null)
            _m.Tracer = _previousTracer;
        if (_writer is { } w)
            w.TimestampUs = null;
        for (int i = 0; i < _cpus.Length; i++)
        {
            if (_cpus[i] is { } cpu && !_heldBefore[i])
                _m.ReleaseCpu(cpu);
        }
        _r.PagesHeld = _pagesHeld;
        _r.ObjectsHeld = _objects.Values.Count(v => v > SlubConst.ZeroSizePtr);
        _r.SlabPages = SlabPagesNow;
        foreach (int id in _cacheOrder)
        {
            ref var slot = ref _caches[id];
            if (slot.State != Ready || slot.Allocs == 0)
                continue;
            _r.CacheStrides.Add(new CacheStride(slot.Cache!.Name, slot.TracedReq, slot.TracedAlloc, slot.Cache.Size, slot.How, slot.Allocs));
        }
    }

    /// <summary>Frees every object and block the replay still holds (<see cref="TraceReplayOptions.FreeAtEnd"/>).</summary>
    private void FreeEverything()
    {
        var cpu = _cpus.First(c => c is not null)!;
        foreach (var obj in _objects.Values)
        {
            if (obj <= SlubConst.ZeroSizePtr)
                continue;
            try
            {
                _m.Kfree(cpu, obj);
            }
            catch (KmemException e)
            {
                Refused(FtraceEventKind.Kfree, e, 0);
            }
        }
        _objects.Clear();
        foreach (var e in _pages.Values)
        {
            if (e.Kind == PageKind.Plain)
                FreeHeld(cpu, e, FtraceEventKind.MmPageFree);
        }
        _pages.Clear();
    }
}
