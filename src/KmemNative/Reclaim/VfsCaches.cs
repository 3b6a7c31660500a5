using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Reclaim;

/// <summary>
/// The reclaimable part of the VFS caches of one emulated file system (fs/dcache.c, fs/inode.c, fs/super.c): unused
/// dentries on the superblock's dentry LRU, each pinning an inode, and unused inodes on its inode LRU, as slab objects
/// of the <c>dentry</c> and <c>ext4_inode_cache</c> caches (SLAB_RECLAIM_ACCOUNT: their pages count as
/// SReclaimable). The superblock shrinker (super_cache_count/super_cache_scan) is a file-system shrinker: it stops
/// at once without __GFP_FS. The caches are created on first use, so a machine that never fills them keeps its boot
/// state.
/// </summary>
internal sealed class VfsCaches<TArch> where TArch : struct, IArch
{
    private sealed class Dentry(ulong va, ulong inode)
    {
        public readonly ulong Va = va;
        public readonly ulong Inode = inode;
        public bool Referenced;
    }

    private readonly ReclaimSubsystem<TArch> _rc;
    private readonly LinkedList<Dentry> _dentryLru = [];     // head = most recently used
    private readonly LinkedList<ulong> _inodeLru = [];
    private readonly Lock _lock = new();
    private KmemCache? _dentryCache, _inodeCache;
    private int _busy;

    public VfsCaches(ReclaimSubsystem<TArch> rc)
    {
        _rc = rc;
        SuperShrinker = new Shrinker("sb-ext4", Count, Scan) { NeedsFs = true };
    }

    /// <summary>The superblock shrinker.</summary>
    public Shrinker SuperShrinker { get; }

    /// <summary>Unused dentries on the LRU.</summary>
    public int Dentries
    {
        get
        {
            lock (_lock)
                return _dentryLru.Count;
        }
    }

    /// <summary>Unused inodes on the LRU (their dentries are gone).</summary>
    public int Inodes
    {
        get
        {
            lock (_lock)
                return _inodeLru.Count;
        }
    }

    /// <summary>struct dentry: 192 bytes on x86-64 (as /proc/slabinfo shows it), 128 on i386.</summary>
    private static uint DentrySize => TArch.PointerSize == 8 ? 192u : 128u;

    /// <summary>struct ext4_inode_info: 1128 bytes on x86-64, 680 on i386.</summary>
    private static uint InodeSize => TArch.PointerSize == 8 ? 1128u : 680u;

    private void EnsureCaches(Cpu cpu)
    {
        var m = _rc.Machine;
        _inodeCache ??= m.KmemCacheCreate(cpu, "ext4_inode_cache", InodeSize, 0, SlabFlags.ReclaimAccount | SlabFlags.Account)
                        ?? throw new KmemException("kmem_cache_create(ext4_inode_cache) failed");
        _dentryCache ??= m.KmemCacheCreate(cpu, "dentry", DentrySize, 8, SlabFlags.ReclaimAccount | SlabFlags.Account)
                         ?? throw new KmemException("kmem_cache_create(dentry) failed");
    }

    /// <summary>
    /// Looks up <paramref name="count"/> new names (as a directory walk does): each gets an inode (iget) and a dentry
    /// (d_alloc), both left unused on the LRUs once the walk is done. Stops early when an allocation fails; returns
    /// how many were added. While it runs, the shrinker leaves these caches alone (the walk holds the locks it needs).
    /// </summary>
    public int Fill(Cpu cpu, int count, Gfp gfp)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var m = _rc.Machine;
        Interlocked.Increment(ref _busy);
        try
        {
            EnsureCaches(cpu);
            int added = 0;
            for (; added < count; added++)
            {
                ulong inode = m.KmemCacheAlloc(cpu, _inodeCache!, gfp);
                if (inode == 0)
                    break;
                ulong dentry = m.KmemCacheAlloc(cpu, _dentryCache!, gfp);
                if (dentry == 0)
                {
                    m.KmemCacheFree(cpu, _inodeCache!, inode);
                    break;
                }
                lock (_lock)
                    _dentryLru.AddFirst(new Dentry(dentry, inode));
            }
            return added;
        }
        finally
        {
            Interlocked.Decrement(ref _busy);
        }
    }

    /// <summary>d_lookup() hits on the <paramref name="count"/> most recent dentries: DCACHE_REFERENCED gives them another round on the LRU.</summary>
    public void Touch(int count)
    {
        lock (_lock)
        {
            var n = _dentryLru.First;
            for (int i = 0; i < count && n is not null; i++, n = n.Next)
                n.Value.Referenced = true;
        }
    }

    /// <summary>super_cache_count(): the unused dentries and inodes.</summary>
    private long Count(Cpu cpu, ShrinkControl sc)
    {
        lock (_lock)
        {
            long total = _dentryLru.Count + _inodeLru.Count;
            return total == 0 ? Shrinker.Empty : total;
        }
    }

    /// <summary>
    /// super_cache_scan(): "deadlock avoidance" — without __GFP_FS nothing (SHRINK_STOP); also when the file system
    /// is busy (its s_umount trylock fails: here, while Fill runs). Otherwise the scan is split between the dentry
    /// and inode LRUs in proportion to their sizes (prune_dcache_sb, then prune_icache_sb). Freed slab pages are
    /// handed back at once (kmem_cache_shrink: the emulator's stand-in for the slab's own trimming).
    /// </summary>
    private long Scan(Cpu cpu, ShrinkControl sc)
    {
        if ((sc.GfpMask & Gfp.Fs) == 0)
            return Shrinker.Stop;
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            return Shrinker.Stop;
        try
        {
            long dentries, inodes;
            lock (_lock)
            {
                long total = _dentryLru.Count + _inodeLru.Count;
                if (total == 0)
                    return 0;
                dentries = sc.NrToScan * _dentryLru.Count / total;
                inodes = sc.NrToScan * _inodeLru.Count / total;
            }
            long freed = PruneDcache(cpu, dentries + 1) + PruneIcache(cpu, inodes + 1);
            if (freed > 0)
            {
                var m = _rc.Machine;
                m.KmemCacheShrink(cpu, _dentryCache!);
                m.KmemCacheShrink(cpu, _inodeCache!);
            }
            return freed;
        }
        finally
        {
            Interlocked.Exchange(ref _busy, 0);
        }
    }

    /// <summary>
    /// prune_dcache_sb(): from the LRU's cold end, a referenced dentry loses DCACHE_REFERENCED and rotates
    /// (LRU_ROTATE); an unreferenced one is killed: freed, its inode put on the inode LRU (iput_final of an inode
    /// that is still hashed).
    /// </summary>
    private long PruneDcache(Cpu cpu, long nrToWalk)
    {
        var m = _rc.Machine;
        long freed = 0;
        for (long i = 0; i < nrToWalk; i++)
        {
            Dentry d;
            lock (_lock)
            {
                var last = _dentryLru.Last;
                if (last is null)
                    break;
                d = last.Value;
                _dentryLru.RemoveLast();
                if (d.Referenced)
                {
                    d.Referenced = false;
                    _dentryLru.AddFirst(d);
                    continue;
                }
                _inodeLru.AddFirst(d.Inode);
            }
            m.KmemCacheFree(cpu, _dentryCache!, d.Va);
            freed++;
        }
        return freed;
    }

    /// <summary>prune_icache_sb(): unused inodes from the LRU's cold end are evicted and freed.</summary>
    private long PruneIcache(Cpu cpu, long nrToWalk)
    {
        var m = _rc.Machine;
        long freed = 0;
        for (long i = 0; i < nrToWalk; i++)
        {
            ulong inode;
            lock (_lock)
            {
                var last = _inodeLru.Last;
                if (last is null)
                    break;
                inode = last.Value;
                _inodeLru.RemoveLast();
            }
            m.KmemCacheFree(cpu, _inodeCache!, inode);
            freed++;
        }
        return freed;
    }
}

/// <summary>
/// An emulated block driver's pool of cached buffers in a SLAB_RECLAIM_ACCOUNT cache (<c>kmem_driver_pool</c>), with
/// a shrinker that does not depend on the file system: it runs for GFP_NOFS reclaim too. Releasing a buffer may
/// mean writing it to the device, so like a block-layer cache it stops (SHRINK_STOP) without __GFP_IO: GFP_NOIO
/// reclaim cannot use it. Emulator-specific: it stands for the non-FS shrinkers of a real kernel.
/// </summary>
internal sealed class DriverPool<TArch> where TArch : struct, IArch
{
    /// <summary>Object size of the pool.</summary>
    public const uint ObjectSize = 512;

    private readonly ReclaimSubsystem<TArch> _rc;
    private readonly LinkedList<ulong> _objects = [];
    private readonly Lock _lock = new();
    private KmemCache? _cache;
    private int _busy;

    public DriverPool(ReclaimSubsystem<TArch> rc)
    {
        _rc = rc;
        Shrinker = new Shrinker("driver-pool", Count, Scan);
    }

    /// <summary>The pool's shrinker.</summary>
    public Shrinker Shrinker { get; }

    /// <summary>Objects cached in the pool.</summary>
    public int Count()
    {
        lock (_lock)
            return _objects.Count;
    }

    /// <summary>Allocates <paramref name="count"/> objects into the pool; returns how many were added.</summary>
    public int Fill(Cpu cpu, int count, Gfp gfp)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var m = _rc.Machine;
        Interlocked.Increment(ref _busy);
        try
        {
            _cache ??= m.KmemCacheCreate(cpu, "kmem_driver_pool", ObjectSize, 0, SlabFlags.ReclaimAccount)
                       ?? throw new KmemException("kmem_cache_create(kmem_driver_pool) failed");
            int added = 0;
            for (; added < count; added++)
            {
                ulong obj = m.KmemCacheAlloc(cpu, _cache, gfp);
                if (obj == 0)
                    break;
                lock (_lock)
                    _objects.AddFirst(obj);
            }
            return added;
        }
        finally
        {
            Interlocked.Decrement(ref _busy);
        }
    }

    private long Count(Cpu cpu, ShrinkControl sc)
    {
        int n = Count();
        return n == 0 ? Shrinker.Empty : n;
    }

    private long Scan(Cpu cpu, ShrinkControl sc)
    {
        if ((sc.GfpMask & Gfp.Io) == 0)
            return Shrinker.Stop;
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            return Shrinker.Stop;
        try
        {
            var m = _rc.Machine;
            long freed = 0;
            for (long i = 0; i < sc.NrToScan; i++)
            {
                ulong obj;
                lock (_lock)
                {
                    if (_objects.Last is not { } last)
                        break;
                    obj = last.Value;
                    _objects.RemoveLast();
                }
                m.KmemCacheFree(cpu, _cache!, obj);
                freed++;
            }
            if (freed > 0)
                m.KmemCacheShrink(cpu, _cache!);
            return freed;
        }
        finally
        {
            Interlocked.Exchange(ref _busy, 0);
        }
    }
}
