using KmemNative.PageAlloc;

namespace KmemNative.Reclaim;

/// <summary>struct shrink_control: what one scan_objects() call is asked to do.</summary>
public sealed class ShrinkControl
{
    /// <summary>The reclaim context's GFP flags: a file-system shrinker must not run without __GFP_FS.</summary>
    public Gfp GfpMask { get; internal set; }

    /// <summary>How many objects to scan.</summary>
    public long NrToScan { get; internal set; }

    /// <summary>How many were scanned (scan_objects() may lower it).</summary>
    public long NrScanned { get; set; }
}

/// <summary>
/// struct shrinker: a cache that reclaim can ask to give memory back. count_objects() says how many objects could
/// be freed; scan_objects() frees up to <see cref="ShrinkControl.NrToScan"/> and returns how many it freed, or
/// <see cref="Stop"/> when it cannot make progress in this context.
/// </summary>
public sealed class Shrinker
{
    /// <summary>SHRINK_STOP.</summary>
    public const long Stop = ~0L;

    /// <summary>SHRINK_EMPTY.</summary>
    public const long Empty = ~0L - 1;

    /// <summary>DEFAULT_SEEKS.</summary>
    public const int DefaultSeeks = 2;

    /// <summary>SHRINK_BATCH.</summary>
    public const long DefaultBatch = 128;

    /// <summary>Creates a shrinker.</summary>
    public Shrinker(string name, Func<Cpu, ShrinkControl, long> countObjects, Func<Cpu, ShrinkControl, long> scanObjects)
    {
        Name = name;
        CountObjects = countObjects;
        ScanObjects = scanObjects;
    }

    /// <summary>The shrinker's name (shrinker_alloc()'s fmt, as /sys/kernel/debug/shrinker shows it).</summary>
    public string Name { get; }

    /// <summary>count_objects().</summary>
    public Func<Cpu, ShrinkControl, long> CountObjects { get; }

    /// <summary>scan_objects().</summary>
    public Func<Cpu, ShrinkControl, long> ScanObjects { get; }

    /// <summary>seeks: the cost of recreating an object (DEFAULT_SEEKS = 2); 0 means "scan half of them".</summary>
    public int Seeks { get; init; } = DefaultSeeks;

    /// <summary>batch: objects per scan_objects() call (0 = SHRINK_BATCH).</summary>
    public long Batch { get; init; }

    /// <summary>
    /// Documentation only: the shrinker belongs to a file system, so its scan_objects() refuses (SHRINK_STOP)
    /// without __GFP_FS, as super_cache_scan() does.
    /// </summary>
    public bool NeedsFs { get; init; }

    /// <summary>nr_deferred: work left over from earlier calls, carried into the next.</summary>
    public long NrDeferred { get; internal set; }

    /// <summary>Objects freed by this shrinker over the machine's life.</summary>
    public long Freed { get; internal set; }
}

// shrink_slab() (mm/shrinker.c) over the registered shrinkers, and drop_caches (fs/drop_caches.c).
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    private readonly List<Shrinker> _shrinkers;
    private readonly Lock _shrinkerLock = new();
    private bool _dropCachesLogged;

    /// <summary>The registered shrinkers, in registration order.</summary>
    internal IReadOnlyList<Shrinker> Shrinkers
    {
        get
        {
            lock (_shrinkerLock)
                return [.. _shrinkers];
        }
    }

    private void InitShrinkers()
    {
        _vfs = new VfsCaches<TArch>(this);
        RegisterShrinker(_vfs.SuperShrinker);
        _pool = new DriverPool<TArch>(this);
        RegisterShrinker(_pool.Shrinker);
    }

    private VfsCaches<TArch> _vfs = null!;
    private DriverPool<TArch> _pool = null!;

    /// <summary>The emulated dentry/inode caches of the root file system (an FS shrinker).</summary>
    internal VfsCaches<TArch> Vfs => _vfs;

    /// <summary>The emulated driver object pool (a shrinker that does not depend on __GFP_FS).</summary>
    internal DriverPool<TArch> Pool => _pool;

    /// <summary>shrinker_register().</summary>
    internal void RegisterShrinker(Shrinker s)
    {
        lock (_shrinkerLock)
        {
            if (_shrinkers.Contains(s))
                throw new InvalidOperationException($"shrinker {s.Name} is already registered");
            _shrinkers.Add(s);
        }
    }

    /// <summary>shrinker_free().</summary>
    internal bool UnregisterShrinker(Shrinker s)
    {
        lock (_shrinkerLock)
            return _shrinkers.Remove(s);
    }

    /// <summary>
    /// shrink_slab(): every shrinker gets do_shrink_slab() at this priority. Returns the objects freed.
    /// </summary>
    internal long ShrinkSlab(Cpu cpu, Gfp gfp, int priority)
    {
        Shrinker[] list;
        lock (_shrinkerLock)
            list = [.. _shrinkers];
        long freed = 0;
        foreach (var s in list)
        {
            long ret = DoShrinkSlab(cpu, s, gfp, priority);
            if (ret != Shrinker.Empty)
                freed += ret;
        }
        return freed;
    }

    /// <summary>
    /// do_shrink_slab(): freeable = count_objects(); the scan target is the deferred work plus freeable &gt;&gt;
    /// priority, times 4 / seeks, capped at twice freeable; scan_objects() in batches until the target is met or it
    /// says SHRINK_STOP (slabs_scanned counts what was scanned); the remainder is deferred to the next call.
    /// </summary>
    private static long DoShrinkSlab(Cpu cpu, Shrinker s, Gfp gfp, int priority)
    {
        var sc = new ShrinkControl { GfpMask = gfp };
        long freeable = s.CountObjects(cpu, sc);
        if (freeable == 0 || freeable == Shrinker.Empty)
            return freeable;
        long batch = s.Batch != 0 ? s.Batch : Shrinker.DefaultBatch;
        long nr = s.NrDeferred;
        s.NrDeferred = 0;
        long delta = s.Seeks != 0 ? (freeable >> priority) * 4 / s.Seeks : freeable / 2;
        long totalScan = (nr >> priority) + delta;
        totalScan = Math.Min(totalScan, 2 * freeable);
        long freed = 0, scanned = 0;
        while (totalScan >= batch || totalScan >= freeable)
        {
            long nrToScan = Math.Min(batch, totalScan);
            sc.NrToScan = nrToScan;
            sc.NrScanned = nrToScan;
            long ret = s.ScanObjects(cpu, sc);
            if (ret == Shrinker.Stop)
                break;
            freed += ret;
            cpu.Events[(int)VmEvent.SlabsScanned] += sc.NrScanned;
            totalScan -= sc.NrScanned;
            scanned += sc.NrScanned;
            if (sc.NrScanned == 0)
                break;
        }
        long next = Math.Max(nr + delta - scanned, 0);
        s.NrDeferred = Math.Min(next, 2 * freeable);
        s.Freed += freed;
        return freed;
    }

    /// <summary>
    /// echo N &gt; /proc/sys/vm/drop_caches: bit 1 drops the clean, unused page cache of every file
    /// (invalidate_mapping_pages(); drop_pagecache counted), bit 2 shrinks the slab caches with GFP_KERNEL at
    /// priority 0 until a round frees little (drop_slab(); drop_slab counted). Dirty pages stay: drop_caches does
    /// not write back. Returns the pages freed.
    /// </summary>
    internal long DropCaches(Cpu cpu, int mode)
    {
        if (mode is < 1 or > 4)
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "drop_caches takes 1 (page cache), 2 (slab), 3 (both) or 4 (silence the message)");
        if (mode == 4)
        {
            _dropCachesLogged = true;
            return 0;
        }
        long before = _m.Zones.Sum(z => z.FreePages);
        if ((mode & 1) != 0)
        {
            CompleteWriteback(cpu);
            _mmSub?.InvalidateAllMappings(cpu);
            cpu.Events[(int)VmEvent.DropPagecache]++;
        }
        if ((mode & 2) != 0)
        {
            int shift = 0;
            long freed;
            do
            {
                freed = ShrinkSlab(cpu, Gfp.Kernel, 0);
            }
            while (freed >> shift++ > 1);
            cpu.Events[(int)VmEvent.DropSlab]++;
        }
        if (!_dropCachesLogged)
        {
            _dropCachesLogged = true;
            _m.Log.Info($"{cpu.Comm} ({cpu.Pid}): drop_caches: {mode}");
        }
        _m.PageAllocator.DrainAllPages(cpu);
        return Math.Max(0, _m.Zones.Sum(z => z.FreePages) - before);
    }
}
