using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative;

// The slab allocator of a profile: every call goes straight to SlabAllocator<TArch>; the hot ones inline.
public sealed unsafe partial class Machine<TArch>
{
    private SlabAllocator<TArch> _slab = null!;

    internal SlabAllocator<TArch> SlabAllocator => _slab;

    /// <inheritdoc/>
    internal override bool SlabInitialized => _slab.Initialized;

    /// <summary>Sets up the slab allocator at the end of boot; kmem_cache_init() itself runs on its first use.</summary>
    private void InitSlab()
    {
        _slab = new SlabAllocator<TArch>(this, Config.SlabDebug, Config.SlabFreelistHardened);
    }

    /// <inheritdoc/>
    public override KmemCache? KmemCacheCreate(Cpu cpu, string name, uint size, KmemCacheArgs args, SlabFlags flags = SlabFlags.None)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(args);
        var s = _slab.Create(cpu, name, size, args.Align, flags, args.Ctor, args.SheafCapacity);
        if (s is not null && Tracer is { } t)
            t.KmemCacheCreate(cpu, s);
        return s;
    }

    /// <inheritdoc/>
    public override KmemCache? KmemCacheCreate(Cpu cpu, string name, uint size, uint align = 0, SlabFlags flags = SlabFlags.None, Action<ulong>? ctor = null)
    {
        ThrowIfDisposed();
        var s = _slab.Create(cpu, name, size, align, flags, ctor, 0);
        if (s is not null && Tracer is { } t)
            t.KmemCacheCreate(cpu, s);
        return s;
    }

    /// <inheritdoc/>
    public override void KmemCacheDestroy(Cpu cpu, KmemCache s)
    {
        ThrowIfDisposed();
        _slab.Destroy(cpu, s);
        if (Tracer is { } t)
            t.KmemCacheDestroy(cpu, s);
    }

    /// <inheritdoc/>
    public override int KmemCacheShrink(Cpu cpu, KmemCache s)
    {
        ThrowIfDisposed();
        return _slab.Shrink(cpu, s);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override ulong KmemCacheAlloc(Cpu cpu, KmemCache s, Gfp gfp)
    {
        if (cpu.AllocContext != 0)
            return KmemCacheAllocInContext(cpu, s, gfp);
        ulong obj = SlabAllocator<TArch>.Alloc(cpu, s, gfp);
        if (Tracer is { } t)
            TraceKmemCacheAlloc(t, cpu, s, obj, gfp);
        return obj;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void KmemCacheFree(Cpu cpu, KmemCache s, ulong obj)
    {
        // kmem_cache_free() traces before it frees (after cache_from_obj()), so a refused free is in the trace too.
        if (Tracer is { } t)
            t.KmemCacheFree(cpu, obj, s.Name);
        SlabAllocator<TArch>.Free(cpu, s, obj);
    }

    /// <inheritdoc/>
    public override int KmemCacheAllocBulk(Cpu cpu, KmemCache s, Gfp gfp, Span<ulong> objects) => _slab.AllocBulk(cpu, s, gfp, objects);

    /// <inheritdoc/>
    public override void KmemCacheFreeBulk(Cpu cpu, KmemCache s, ReadOnlySpan<ulong> objects) => _slab.FreeBulk(cpu, s, objects);

    /// <inheritdoc/>
    public override void KfreeBulk(Cpu cpu, ReadOnlySpan<ulong> objects) => _slab.FreeBulk(cpu, null, objects);

    /// <inheritdoc/>
    public override SlabValidation KmemCacheValidate(Cpu cpu, KmemCache s)
    {
        ThrowIfDisposed();
        var (reports, errors) = _slab.Validate(cpu, s);
        return new SlabValidation(reports, errors);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<KmemCache> KmemCaches
    {
        get
        {
            _slab.EnsureInit();
            return _slab.Caches;
        }
    }

    /// <inheritdoc/>
    public override KmemCache? FindKmemCache(string name)
    {
        _slab.EnsureInit();
        return _slab.Find(name);
    }

    /// <inheritdoc/>
    public override KmemCache? VirtToCache(ulong va) => _slab.Initialized && _slab.TryResolve(va, out var s, out _, out _, out _) ? s : null;

    /// <inheritdoc/>
    public override ulong VirtToSlab(ulong va) => _slab.Initialized ? _slab.VirtToSlab(va) : 0;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override ulong Kmalloc(Cpu cpu, ulong size, Gfp gfp)
    {
        if (cpu.AllocContext != 0)
            return KmallocInContext(cpu, size, gfp);
        ulong obj = _slab.Kmalloc(cpu, size, gfp);
        if (Tracer is { } t)
            TraceKmalloc(t, cpu, obj, size, gfp);
        return obj;
    }

    /// <inheritdoc/>
    public override ulong KmallocArray(Cpu cpu, ulong n, ulong size, Gfp gfp)
    {
        ulong obj = _slab.KmallocArray(cpu, n, size, gfp);
        // An overflowing product returns NULL before kmalloc() is reached: nothing to trace.
        if (Tracer is { } t && (size == 0 || n <= ulong.MaxValue / size))
            TraceKmalloc(t, cpu, obj, n * size, gfp);
        return obj;
    }

    /// <inheritdoc/>
    public override ulong Krealloc(Cpu cpu, ulong p, ulong newSize, Gfp gfp)
    {
        ThrowIfDisposed();
        ulong ret = _slab.Krealloc(cpu, p, newSize, gfp);
        if (Tracer is { } t)
            TraceKrealloc(t, cpu, p, ret, newSize, gfp);
        return ret;
    }

    /// <inheritdoc/>
    public override ulong Ksize(Cpu cpu, ulong p)
    {
        ThrowIfDisposed();
        return _slab.Ksize(cpu, p);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Kfree(Cpu cpu, ulong p)
    {
        // kfree() traces first, NULL included, as the kernel does.
        if (Tracer is { } t)
            t.Kfree(cpu, p);
        _slab.Kfree(cpu, p);
    }

    /// <inheritdoc/>
    public override void KfreeSensitive(Cpu cpu, ulong p)
    {
        if (Tracer is { } t)
            t.Kfree(cpu, p);
        _slab.KfreeSensitive(cpu, p);
    }

    /// <inheritdoc/>
    public override ulong Kmemdup(Cpu cpu, ulong src, ulong len, Gfp gfp)
    {
        ulong obj = _slab.Kmemdup(cpu, src, len, gfp);
        if (Tracer is { } t)
            TraceKmalloc(t, cpu, obj, len, gfp);
        return obj;
    }

    /// <inheritdoc/>
    public override ulong Kmemdup(Cpu cpu, ReadOnlySpan<byte> data, Gfp gfp)
    {
        ulong obj = _slab.Kmemdup(cpu, data, gfp);
        if (Tracer is { } t)
            TraceKmalloc(t, cpu, obj, (ulong)data.Length, gfp);
        return obj;
    }

    /// <inheritdoc/>
    public override ulong Kstrdup(Cpu cpu, string? text, Gfp gfp)
    {
        ulong obj = _slab.Kstrdup(cpu, text, gfp);
        if (text is not null && Tracer is { } t)
            TraceKmalloc(t, cpu, obj, (ulong)System.Text.Encoding.UTF8.GetByteCount(text) + 1, gfp);
        return obj;
    }

    // ---- the slab tracepoints (include/trace/events/kmem.h) ---------------------------------------------
    // Each public entry point costs one null check of Tracer when tracing is off; the work is out of line.
    // The slab allocator's own bookkeeping (struct kmem_cache, the name, barns, sheaves) calls the allocator
    // directly and is not traced: a kmem_cache_create annotation stands for it, so a replay that creates the cache
    // at the same point reproduces the same machine.

    /// <summary>trace_kmem_cache_alloc(): accounted = memcg (x86-64) and (__GFP_ACCOUNT or SLAB_ACCOUNT).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TraceKmemCacheAlloc(Trace.IKmemTracer t, Cpu cpu, KmemCache s, ulong obj, Gfp gfp)
    {
        bool accounted = TArch.Kind == KmemNative.Arch.ArchKind.X86_64 && ((gfp & Gfp.Account) != 0 || (s.Flags & SlabFlags.Account) != 0);
        t.KmemCacheAlloc(cpu, obj, s.Name, s.ObjectSize, s.Size, gfp, accounted);
    }

    /// <summary>
    /// trace_kmalloc(): bytes_alloc is the size class's stride, or PAGE_SIZE &lt;&lt; order for a large allocation;
    /// kmalloc(0) returns ZERO_SIZE_PTR before the tracepoint. accounted = memcg and __GFP_ACCOUNT.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TraceKmalloc(Trace.IKmemTracer t, Cpu cpu, ulong obj, ulong size, Gfp gfp)
    {
        if (size == 0)
            return;
        bool accounted = TArch.Kind == KmemNative.Arch.ArchKind.X86_64 && (gfp & Gfp.Account) != 0;
        t.Kmalloc(cpu, obj, (long)size, (long)_slab.KmallocBytes(size, gfp), gfp, accounted);
    }

    /// <summary>krealloc(): in place traces nothing; otherwise the new kmalloc() and then the kfree() of the old object.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void TraceKrealloc(Trace.IKmemTracer t, Cpu cpu, ulong p, ulong ret, ulong newSize, Gfp gfp)
    {
        if (newSize == 0)
        {
            t.Kfree(cpu, p);
            return;
        }
        if (ret == p)
            return;
        TraceKmalloc(t, cpu, ret, newSize, gfp);
        if (ret != 0 && p > Slab.SlubConst.ZeroSizePtr)
            t.Kfree(cpu, p);
    }

    /// <inheritdoc/>
    public override KmemCache? KmallocCache(ulong size, Gfp gfp)
    {
        _slab.EnsureInit();
        return size == 0 || size > SlubConst.KmallocMaxCacheSize ? null : _slab.KmallocSlab(size, gfp);
    }

    /// <inheritdoc/>
    public override ulong KmallocBytes(ulong size, Gfp gfp)
    {
        _slab.EnsureInit();
        return _slab.KmallocBytes(size, gfp);
    }

    /// <inheritdoc/>
    public override (IReadOnlyList<KmemCache> Changed, IReadOnlyList<KmemCache> Busy) SlabDebug(string options)
    {
        ThrowIfDisposed();
        var cpu = ThisCpu;
        _slab.EnsureInit(cpu);
        var (changed, busy) = _slab.SetDebug(cpu, options);
        return (changed, busy);
    }

    /// <inheritdoc/>
    public override SlabDebugOptions SlabDebugOptions => _slab.DebugOptions;

    /// <inheritdoc/>
    public override SlabObjectInfo? KmemObjInfo(ulong va)
    {
        ThrowIfDisposed();
        _slab.EnsureInit();
        return _slab.ObjInfo(va);
    }

    /// <inheritdoc/>
    public override string KmemDumpObj(ulong va)
    {
        ThrowIfDisposed();
        _slab.EnsureInit();
        return _slab.DumpObj(va);
    }

    /// <inheritdoc/>
    public override Span<byte> ObjectBytes(ulong va)
    {
        ThrowIfDisposed();
        _slab.EnsureInit();
        return _slab.ObjectBytes(va);
    }

    /// <inheritdoc/>
    public override SlabInfo Slabinfo(KmemCache s) => _slab.GetSlabinfo(s);

    /// <inheritdoc/>
    public override IReadOnlyList<(string Name, string Value)> SlabSysfs(KmemCache s) => _slab.SysfsAttributes(s);

    /// <inheritdoc/>
    public override CacheState KmemCacheState(KmemCache s)
    {
        ThrowIfDisposed();
        return _slab.GetCacheState(s);
    }

    /// <inheritdoc/>
    public override SlabConsistencyReport CheckSlabConsistency()
    {
        ThrowIfDisposed();
        return _slab.CheckConsistency();
    }

    /// <summary>
    /// slab_pre_alloc_hook()'s might_alloc() for a CPU in atomic context or a memalloc scope: the report (or, strict,
    /// the refusal) once, then the allocation with no second report from the page allocator underneath.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong KmemCacheAllocInContext(Cpu cpu, KmemCache s, Gfp gfp)
    {
        KmemNative.Reclaim.AllocContext.MightAlloc(cpu, cpu.CurrentGfpContext(gfp), "kmem_cache_alloc");
        cpu.MightSleepReporting++;
        try
        {
            ulong obj = SlabAllocator<TArch>.Alloc(cpu, s, gfp);
            if (Tracer is { } t)
                TraceKmemCacheAlloc(t, cpu, s, obj, gfp);
            return obj;
        }
        finally
        {
            cpu.MightSleepReporting--;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong KmallocInContext(Cpu cpu, ulong size, Gfp gfp)
    {
        KmemNative.Reclaim.AllocContext.MightAlloc(cpu, cpu.CurrentGfpContext(gfp), "kmalloc");
        cpu.MightSleepReporting++;
        try
        {
            ulong obj = _slab.Kmalloc(cpu, size, gfp);
            if (Tracer is { } t)
                TraceKmalloc(t, cpu, obj, size, gfp);
            return obj;
        }
        finally
        {
            cpu.MightSleepReporting--;
        }
    }
}
