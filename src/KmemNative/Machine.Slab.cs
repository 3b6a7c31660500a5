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
        return _slab.Create(cpu, name, size, args.Align, flags, args.Ctor, args.SheafCapacity);
    }

    /// <inheritdoc/>
    public override KmemCache? KmemCacheCreate(Cpu cpu, string name, uint size, uint align = 0, SlabFlags flags = SlabFlags.None, Action<ulong>? ctor = null)
    {
        ThrowIfDisposed();
        return _slab.Create(cpu, name, size, align, flags, ctor, 0);
    }

    /// <inheritdoc/>
    public override void KmemCacheDestroy(Cpu cpu, KmemCache s)
    {
        ThrowIfDisposed();
        _slab.Destroy(cpu, s);
    }

    /// <inheritdoc/>
    public override int KmemCacheShrink(Cpu cpu, KmemCache s)
    {
        ThrowIfDisposed();
        return _slab.Shrink(cpu, s);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override ulong KmemCacheAlloc(Cpu cpu, KmemCache s, Gfp gfp) => SlabAllocator<TArch>.Alloc(cpu, s, gfp);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void KmemCacheFree(Cpu cpu, KmemCache s, ulong obj) => SlabAllocator<TArch>.Free(cpu, s, obj);

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
    public override ulong Kmalloc(Cpu cpu, ulong size, Gfp gfp) => _slab.Kmalloc(cpu, size, gfp);

    /// <inheritdoc/>
    public override ulong KmallocArray(Cpu cpu, ulong n, ulong size, Gfp gfp) => _slab.KmallocArray(cpu, n, size, gfp);

    /// <inheritdoc/>
    public override ulong Krealloc(Cpu cpu, ulong p, ulong newSize, Gfp gfp)
    {
        ThrowIfDisposed();
        return _slab.Krealloc(cpu, p, newSize, gfp);
    }

    /// <inheritdoc/>
    public override ulong Ksize(Cpu cpu, ulong p)
    {
        ThrowIfDisposed();
        return _slab.Ksize(cpu, p);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Kfree(Cpu cpu, ulong p) => _slab.Kfree(cpu, p);

    /// <inheritdoc/>
    public override void KfreeSensitive(Cpu cpu, ulong p) => _slab.KfreeSensitive(cpu, p);

    /// <inheritdoc/>
    public override ulong Kmemdup(Cpu cpu, ulong src, ulong len, Gfp gfp) => _slab.Kmemdup(cpu, src, len, gfp);

    /// <inheritdoc/>
    public override ulong Kmemdup(Cpu cpu, ReadOnlySpan<byte> data, Gfp gfp) => _slab.Kmemdup(cpu, data, gfp);

    /// <inheritdoc/>
    public override ulong Kstrdup(Cpu cpu, string? text, Gfp gfp) => _slab.Kstrdup(cpu, text, gfp);

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
}
