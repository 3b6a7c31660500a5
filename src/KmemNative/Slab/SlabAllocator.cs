using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

/// <summary>
/// SLUB (mm/slub.c, mm/slab_common.c) on the emulated page allocator: slab caches whose <c>struct kmem_cache</c>,
/// <c>kmem_cache_node</c>, per-CPU <c>kmem_cache_cpu</c>, slab descriptors (the <c>struct slab</c> overlay on
/// <c>struct page</c>) and objects all live in the arena, in the kernel's layout, at kernel virtual addresses.
/// </summary>
/// <remarks>
/// <para>Tiers: each CPU allocates from and frees to its own frozen CPU slab through <c>c-&gt;freelist</c> with plain
/// loads and stores (the CPU runs one host thread, like preemption disabled). When the CPU slab is exhausted the
/// slow path takes the objects other CPUs freed meanwhile (<c>slab-&gt;freelist</c>), then a slab from the node's
/// partial list (under <c>list_lock</c>), then a new slab from the page allocator.</para>
/// <para>Remote frees: an object freed by a CPU whose CPU slab is not the object's slab goes onto the slab's own
/// freelist with a compare-and-swap of freelist and counters (__slab_free); only a free that makes a full slab
/// partial or a partial slab empty also takes <c>list_lock</c>. The double-word swap is a real cmpxchg8b on i386;
/// on x86-64, where .NET has no 16-byte compare-and-swap, it is emulated under the slab's PG_locked bit spinlock,
/// the kernel's own fallback (__update_freelist_slow).</para>
/// <para>Caches with slab_debug flags have no CPU slab: every allocation and free is done one object at a time
/// under <c>list_lock</c> with the checks (alloc_single_from_partial, free_to_partial_list).</para>
/// <para>Caches created with a sheaf capacity (6.18's opt-in per-CPU sheaves) put a per-CPU main and spare array
/// of object pointers in front of all this: allocations pop and frees push the main sheaf (any object of the
/// cache, whatever its slab, so remote frees cost no compare-and-swap); empty and full sheaves are traded with the
/// node's barn, refilled from the CPU slab and flushed to the slabs in bulk (detached freelists).</para>
/// </remarks>
internal sealed unsafe partial class SlabAllocator<TArch> where TArch : struct, IArch
{
    private readonly Machine<TArch> _m;
    private readonly MemMap<TArch> _mm;
    private readonly PageAllocator<TArch> _pages;
    private readonly SlabLayouts _l = HotSlab<TArch>.L;
    private readonly byte* _base;
    private readonly ulong _lowmemBytes;
    private readonly ulong _longLimit;          // last physical address at which a pointer-sized access fits in the arena

    private readonly Lock _mutex = new();        // slab_mutex: the cache list, creation, destruction
    private readonly List<KmemCache> _caches = []; // slab_caches, newest first (list_add)
    private volatile Dictionary<ulong, KmemCache> _byVa = [];   // copy-on-write under slab_mutex: lock-free reads
    private readonly Stack<int> _freeCpuSlots = new();
    private readonly int _emptyCpuSlot;
    private ulong _slabCachesHead;               // LIST_HEAD(slab_caches) in the image's .data (direct-map alias)
    private ulong _rodataTop, _rodataBottom, _dataTop, _dataBottom;
    private ulong _random;                       // get_random_long() state (deterministic per boot)
    private volatile KmemCache[] _cacheSnapshot = [];
    private SlabDebugOptions _debug;

    public SlabAllocator(Machine<TArch> machine, string? slabDebug, bool hardened)
    {
        _m = machine;
        _mm = machine.MemMap;
        _pages = machine.PageAllocator;
        _base = machine.Memory.Base;
        _lowmemBytes = machine.MaxLowPfn << PageSize.Shift;
        _longLimit = machine.Memory.Size - (ulong)TArch.PointerSize;
        Hardened = hardened;
        _debug = SlabDebugOptions.Parse(slabDebug);
        _random = 0x9e37_79b9_7f4a_7c15UL ^ machine.Config.MemBytes ^ ((ulong)machine.Config.Cpus << 40);
        _kmalloc = new KmemCache?[KmallocTypes.Count * SlubConst.KmallocCacheNum];
        _memmapHost = _mm.Desc(0);
        _memmapVa = _mm.MemmapVa;
        _memmapBytes = _mm.MemmapBytes;
        // No struct kmem_cache sits at physical 0 (the first MiB is reserved): a limit of 0 sends every kfree() of
        // a machine with encoded free pointers out of line.
        _kmemCacheLimit = hardened ? 0 : machine.Memory.Size - (ulong)_l.KmemCache.Size;
        _cpuSlotLimit = (ulong)(Machine<TArch>.PercpuUnitSize - _l.KmemCacheCpu.Size);

        // Static storage in the image and one per-CPU kmem_cache_cpu that stays empty: the slot of destroyed caches
        // and of the placeholder, so their fast paths always fall through to the slow path.
        var img = machine.Image;
        _rodataBottom = img.RodataStart;
        _rodataTop = img.RodataStart + img.RodataBytes;
        _dataBottom = img.DataStart;
        _dataTop = img.DataStart + img.DataBytes;
        _slabCachesHead = StaticData((ulong)(2 * TArch.PointerSize), (ulong)TArch.PointerSize);
        _mm.InitListHead(_slabCachesHead);
        _emptyCpuSlot = machine.PercpuAlloc(_l.KmemCacheCpu.Size, 2 * TArch.PointerSize);
        _notReady = new KmemCache(machine, "(slab not initialised)", 0, null) { CpuSlabOffset = _emptyCpuSlot, Owner = this };
        Array.Fill(_smallNormal, _notReady);
    }

    /// <summary>CONFIG_SLAB_FREELIST_HARDENED: free pointers stored as ptr ^ s-&gt;random ^ swab(address).</summary>
    public bool Hardened { get; }

    /// <summary>The slab_debug= options in effect for caches created from now on.</summary>
    public SlabDebugOptions DebugOptions => _debug;

    public KmemCache KmemCacheCache => _kmemCache;

    public KmemCache KmemCacheNodeCache => _kmemCacheNode;

    /// <summary>Every live cache, newest first (the order of slab_caches and /proc/slabinfo).</summary>
    public KmemCache[] Caches => _cacheSnapshot;

    private KmemCache _kmemCache = null!, _kmemCacheNode = null!;

    // ---- boot: kmem_cache_init() ------------------------------------------------------------------------

    private volatile bool _initialized;
    private bool _initializing;
    private readonly KmemCache _notReady;        // stands in for the kmalloc caches until kmem_cache_init() ran

    /// <summary>True once kmem_cache_init() ran.</summary>
    public bool Initialized => _initialized;

    /// <summary>
    /// kmem_cache_init() on first use: a machine that never touches the slab allocator keeps the page allocator
    /// exactly as boot left it. Whatever runs it (an allocation, a view) sees the state boot would have made.
    /// </summary>
    public void EnsureInit(Cpu? cpu = null)
    {
        if (_initialized)
            return;
        lock (_mutex)
        {
            if (_initialized || _initializing)
                return;
            _initializing = true;
            try
            {
                InitCaches(cpu ?? _m.ThisCpu);
                _initialized = true;
            }
            finally
            {
                _initializing = false;
            }
        }
    }

    /// <summary>
    /// kmem_cache_init(): the kmem_cache_node and kmem_cache caches are built in static storage first (the first
    /// node structure is carved by hand from kmem_cache_node's first slab), then bootstrap() moves each into an
    /// object of the kmem_cache cache itself; the kmalloc caches follow.
    /// </summary>
    private void InitCaches(Cpu boot)
    {
        // Until bootstrap() the two caches are the static structures themselves.
        _kmemCacheNode = CreateBootCache(boot, "kmem_cache_node", (uint)_l.KmemCacheNode.Size, early: true);
        _kmemCache = CreateBootCache(boot, "kmem_cache", (uint)_l.KmemCache.Size, early: false);
        _kmemCache = Bootstrap(boot, _kmemCache);
        _kmemCacheNode = Bootstrap(boot, _kmemCacheNode);
        CreateKmallocCaches(boot);
        _m.Log.Info($"SLUB: HWalign={SlubConst.CacheLine}, Order=0-{SlubConst.MaxOrder}, MinObjects=0, CPUs={_m.Cpus.Count}, Nodes=1");
    }

    /// <summary>create_boot_cache(): a cache whose struct kmem_cache is static (in the image's .data) for now.</summary>
    private KmemCache CreateBootCache(Cpu cpu, string name, uint size, bool early)
    {
        ulong va = StaticData((ulong)_l.KmemCache.Size, (ulong)SlubConst.CacheLine);
        var s = new KmemCache(_m, name, va, HostOfLinear(va)) { NameVa = StaticString(name) };
        // kmalloc-style natural alignment for power-of-two sizes, then SLAB_HWCACHE_ALIGN.
        uint align = 8;
        if (BitOperations.IsPow2(size))
            align = Math.Max(align, size);
        s.Align = (int)CalculateAlignment(SlabFlags.HwcacheAlign, align, size);
        s.ObjectSize = (int)size;
        OpenCache(cpu, s, SlabFlags.HwcacheAlign, early);
        return s;
    }

    /// <summary>bootstrap(): copy a static cache into an object of kmem_cache and point its slabs at the copy.</summary>
    private KmemCache Bootstrap(Cpu cpu, KmemCache old)
    {
        ulong va = AllocForKernel(cpu, _kmemCache, zero: true);
        var s = new KmemCache(_m, old.Name, va, HostOfLinear(va));
        CopyGeometry(old, s);
        Buffer.MemoryCopy(old.Host, s.Host, _l.KmemCache.Size, _l.KmemCache.Size);
        // The boot CPU's slab goes back to the lists so that every slab is reachable from the node for the fixup.
        FlushCpuSlab(cpu, old);
        foreach (ulong slab in NodeSlabs(old))
            St(SlabHost(slab) + HotSlab<TArch>.SlabCache, va);
        PublishCache(s);
        return s;
    }

    private static void CopyGeometry(KmemCache from, KmemCache to)
    {
        to.ObjectSize = from.ObjectSize;
        to.Size = from.Size;
        to.SizeInverse = from.SizeInverse;
        to.SizeShift = from.SizeShift;
        to.SizeMultipleLimit = from.SizeMultipleLimit;
        to.Align = from.Align;
        to.Offset = from.Offset;
        to.Inuse = from.Inuse;
        to.RedLeftPad = from.RedLeftPad;
        to.Order = from.Order;
        to.ObjectsPerSlab = from.ObjectsPerSlab;
        to.MinOrder = from.MinOrder;
        to.Flags = from.Flags;
        to.CreateFlags = from.CreateFlags;
        to.MinPartial = from.MinPartial;
        to.AllocFlags = from.AllocFlags;
        to.Ctor = from.Ctor;
        to.CpuSlabOffset = from.CpuSlabOffset;
        to.CpuSlabSlot = from.CpuSlabSlot;
        to.FpOffset = from.FpOffset;
        to.FpHost = from.FpHost;
        to.FpLimit = from.FpLimit;
        to.Owner = from.Owner;
        to.Random = from.Random;
        to.Hardened = from.Hardened;
        to.NodeVa = from.NodeVa;
        to.NodeHost = from.NodeHost;
        to.NameVa = from.NameVa;
        to.NameAllocated = from.NameAllocated;
        to.KmallocSlot = from.KmallocSlot;
        to.ArenaBase = from.ArenaBase;
    }

    // ---- kmem_cache_create() ----------------------------------------------------------------------------

    /// <summary>kmem_cache_create(): validates, allocates the struct from kmem_cache, sizes the cache and lists it.</summary>
    public KmemCache? Create(Cpu cpu, string name, uint size, uint align, SlabFlags flags, Action<ulong>? ctor, uint sheafCapacity)
    {
        if (sheafCapacity > SlubConst.MaxSheafCapacity)
            throw new SlabCacheException($"kmem_cache_create({name}): sheaf_capacity {sheafCapacity} is larger than {SlubConst.MaxSheafCapacity}");
        CheckCpu(cpu);
        EnsureInit(cpu);
        lock (_mutex)
        {
            string? error = ValidateCreate(name, size, align, flags, out int errno);
            if (error is not null)
                return CreateFailed(name, flags, errno, error);
            BeginOp();
            KmemCache? s = null;
            try
            {
                // kstrdup_const(): the name is copied into a kmalloc object.
                ulong nameVa = KstrdupInternal(cpu, name, Gfp.Kernel);
                if (nameVa == 0)
                    return CreateFailed(name, flags, -12, "out of memory for the name");
                ulong va = AllocForKernel(cpu, _kmemCache, zero: true);
                if (va == 0)
                {
                    KfreeInternal(cpu, nameVa);
                    return CreateFailed(name, flags, -12, "out of memory for struct kmem_cache");
                }
                s = new KmemCache(_m, name, va, HostOfLinear(va)) { NameVa = nameVa, NameAllocated = true, Ctor = ctor, RequestedSheafCapacity = (int)sheafCapacity };
                s.ObjectSize = (int)size;
                s.Align = (int)CalculateAlignment(flags, align, size);
                if (!OpenCache(cpu, s, flags, early: false))
                {
                    KmemCacheFreeInternal(cpu, _kmemCache, va);
                    KfreeInternal(cpu, nameVa);
                    return CreateFailed(name, flags, -22, "no slab order can hold one object");
                }
                if (s.SheafCapacity != 0 && !InitSheaves(cpu, s))
                {
                    ReleaseCache(cpu, s);
                    return CreateFailed(name, flags, -12, "out of memory for the sheaves");
                }
                PublishCache(s);
                return s;
            }
            finally
            {
                EndOp();
            }
        }
    }

    private KmemCache? CreateFailed(string name, SlabFlags flags, int errno, string why)
    {
        if ((flags & SlabFlags.Panic) != 0)
            throw new KernelPanicException($"kmem_cache_create: Failed to create slab '{name}'. Error {errno}");
        _m.Log.Warn($"kmem_cache_create({name}) failed with error {errno}");
        if (errno == -12)
            return null;
        throw new SlabCacheException($"kmem_cache_create({name}) failed with error {errno}: {why}");
    }

    private string? ValidateCreate(string name, uint size, uint align, SlabFlags flags, out int errno)
    {
        errno = -22;
        if (string.IsNullOrEmpty(name))
            return "a cache needs a name";
        if (name.Any(char.IsWhiteSpace) || name.Length > 64)
            return "the name must be at most 64 characters without spaces (it confuses parsers of /proc/slabinfo)";
        if (size == 0 || size > SlubConst.KmallocMaxSize)
            return $"object size {size} is outside 1..{SlubConst.KmallocMaxSize} (KMALLOC_MAX_SIZE)";
        if (align != 0 && (!BitOperations.IsPow2(align) || align > PageSize.Bytes))
            return $"alignment {align} is not a power of two of at most PAGE_SIZE";
        if ((flags & ~SlabFlagsText.Permitted) != 0)
            return $"flags {SlabFlagsText.Format(flags & ~SlabFlagsText.Permitted)} are not accepted by kmem_cache_create()";
        if (_caches.Any(c => c.Name == name))
        {
            // With merging off every cache gets its own /sys/kernel/slab/NAME: a second one fails with -EEXIST.
            errno = -17;
            return $"a cache named '{name}' already exists";
        }
        return null;
    }

    /// <summary>calculate_alignment() (mm/slab_common.c).</summary>
    private static uint CalculateAlignment(SlabFlags flags, uint align, uint size)
    {
        if ((flags & SlabFlags.HwcacheAlign) != 0)
        {
            uint ralign = SlubConst.CacheLine;
            while (size <= ralign / 2)
                ralign /= 2;
            align = Math.Max(align, ralign);
        }
        align = Math.Max(align, 8u);                 // ARCH_SLAB_MINALIGN: __alignof__(unsigned long long)
        uint ptr = (uint)TArch.PointerSize;
        return (align + ptr - 1) & ~(ptr - 1);
    }

    private void PublishCache(KmemCache s)
    {
        *(int*)(s.Host + _l.KmemCache.Offset("refcount")) = 1;
        _mm.ListAdd(s.Va + (ulong)_l.KmemCache.Offset("list"), _slabCachesHead);
        _caches.Insert(0, s);
        _byVa = new Dictionary<ulong, KmemCache>(_byVa) { [s.Va] = s };
        _cacheSnapshot = [.. _caches];
    }

    // ---- kmem_cache_destroy() ---------------------------------------------------------------------------

    /// <summary>
    /// kmem_cache_destroy(): flush every CPU slab (the caller guarantees nobody uses the cache any more), free the
    /// empty slabs; if objects remain the cache is reported and kept (usable, destroyable again once emptied).
    /// </summary>
    public void Destroy(Cpu cpu, KmemCache s)
    {
        CheckCpu(cpu);
        CheckCache(s);
        lock (_mutex)
        {
            if (s.IsDestroyed)
                throw new SlabCacheException($"kmem_cache_destroy({s.Name}): the cache was already destroyed");
            if (ReferenceEquals(s, _kmemCache) || ReferenceEquals(s, _kmemCacheNode) || s.IsKmalloc)
                throw new SlabCacheException($"kmem_cache_destroy({s.Name}): a boot cache cannot be destroyed");
            BeginOp();
            try
            {
                foreach (var other in _m.Cpus)
                {
                    PcsFlushAll(other, s);
                    FlushCpuSlab(other, s);
                }
                if (!ShutdownNode(cpu, s))
                {
                    AppendToLastReport($"------------[ cut here ]------------\nkmem_cache_destroy {s.Name}: Slab cache still has objects when called from {CallSiteText(cpu, "kmem_cache_destroy")}");
                    return;
                }
                _mm.ListDel(s.Va + (ulong)_l.KmemCache.Offset("list"));
                _caches.Remove(s);
                var byVa = new Dictionary<ulong, KmemCache>(_byVa);
                byVa.Remove(s.Va);
                _byVa = byVa;
                _cacheSnapshot = [.. _caches];
                ReleaseCache(cpu, s);
            }
            finally
            {
                EndOp();
            }
        }
    }

    /// <summary>__kmem_cache_release() + slab_kmem_cache_release(): per-CPU slot, node, name, the struct itself.</summary>
    private void ReleaseCache(Cpu cpu, KmemCache s)
    {
        ReleaseSheaves(cpu, s);
        int slot = s.CpuSlabSlot;
        s.IsDestroyed = true;
        s.CpuSlabOffset = _emptyCpuSlot;
        foreach (var c in _m.Cpus)
            new Span<byte>(c.Percpu + slot, _l.KmemCacheCpu.Size).Clear();
        _freeCpuSlots.Push(slot);
        KmemCacheFreeInternal(cpu, _kmemCacheNode, s.NodeVa);
        if (s.NameAllocated)
            KfreeInternal(cpu, s.NameVa);
        KmemCacheFreeInternal(cpu, _kmemCache, s.Va);
    }

    // ---- kmem_cache_open() ------------------------------------------------------------------------------

    /// <summary>
    /// kmem_cache_open(): apply slab_debug=, size the objects, pick the order, allocate the node structure and the
    /// per-CPU kmem_cache_cpu, and write everything into the struct in the arena.
    /// </summary>
    private bool OpenCache(Cpu cpu, KmemCache s, SlabFlags flags, bool early)
    {
        s.CreateFlags = flags;
        s.Flags = _debug.FlagsFor(flags, s.Name);
        s.Hardened = Hardened;
        s.Random = Hardened ? NextRandom() : 0;
        // do_kmem_cache_create(): sheaves only without slab_debug flags.
        s.SheafCapacity = (s.Flags & SlabFlagsText.DebugFlags) == 0 ? s.RequestedSheafCapacity : 0;
        if (!CalculateSizes(s))
            return false;
        if (_debug.DisableHigherOrderDebug && PageSize.GetOrder((ulong)s.Size) > PageSize.GetOrder((ulong)s.ObjectSize))
        {
            // slab_debug=O: drop the metadata flags when they would raise the minimum order.
            s.Flags &= ~SlabFlagsText.DebugMetadata;
            s.SheafCapacity = (s.Flags & SlabFlagsText.DebugFlags) == 0 ? s.RequestedSheafCapacity : 0;
            if (!CalculateSizes(s))
                return false;
        }
        if ((s.Flags & SlabFlagsText.NoCmpxchg) == 0)
            s.Flags |= SlabFlags.CmpxchgDouble;
        int ilog = 31 - BitOperations.LeadingZeroCount((uint)s.Size);
        s.MinPartial = Math.Max(SlubConst.MinPartial, Math.Min(SlubConst.MaxPartial, ilog / 2));

        // init_kmem_cache_nodes(): the very first node structure is carved from kmem_cache_node's own first slab.
        ulong nodeVa = early ? EarlyNodeAlloc(cpu, s) : AllocForKernel(cpu, _kmemCacheNode, zero: true);
        if (nodeVa == 0)
            return false;
        s.NodeVa = nodeVa;
        s.NodeHost = HostOfLinear(nodeVa);
        InitNode(s);
        if (early)
            FinishEarlyNode(s);

        // alloc_kmem_cache_cpus(): double-word aligned, zeroed, tid = cpu.
        int slot = _freeCpuSlots.Count > 0 ? _freeCpuSlots.Pop() : _m.PercpuAlloc(_l.KmemCacheCpu.Size, 2 * TArch.PointerSize);
        s.CpuSlabSlot = slot;
        s.CpuSlabOffset = slot;
        foreach (var c in _m.Cpus)
        {
            new Span<byte>(c.Percpu + slot, _l.KmemCacheCpu.Size).Clear();
            St(c.Percpu + slot + HotSlab<TArch>.CpuTid, (ulong)c.Id);
        }
        WriteKmemCache(s);
        return true;
    }

    /// <summary>Writes the handle's geometry into the struct kmem_cache in the arena.</summary>
    private void WriteKmemCache(KmemCache s)
    {
        var L = _l.KmemCache;
        byte* p = s.Host;
        St(p + L.Offset("cpu_slab"), (ulong)s.CpuSlabSlot);
        St(p + L.Offset("cpu_sheaves"), s.PcsSlot >= 0 ? (ulong)s.PcsSlot : 0);
        *(uint*)(p + L.Offset("flags")) = (uint)s.Flags;
        St(p + L.Offset("min_partial"), (ulong)s.MinPartial);
        *(uint*)(p + L.Offset("size")) = (uint)s.Size;
        *(uint*)(p + L.Offset("object_size")) = (uint)s.ObjectSize;
        WriteReciprocal(p + L.Offset("reciprocal_size"), (uint)s.Size);
        *(uint*)(p + L.Offset("offset")) = (uint)s.Offset;
        *(uint*)(p + L.Offset("sheaf_capacity")) = (uint)s.SheafCapacity;
        *(uint*)(p + L.Offset("oo")) = (uint)(s.Order << SlubConst.OoShift) | (uint)s.ObjectsPerSlab;
        *(uint*)(p + L.Offset("min")) = (uint)(s.MinOrder << SlubConst.OoShift) | OrderObjects(s.MinOrder, (uint)s.Size);
        *(uint*)(p + L.Offset("allocflags")) = (uint)s.AllocFlags;
        St(p + L.Offset("ctor"), s.Ctor is null ? 0 : CallSiteAddress("ctor:" + s.Name));
        *(uint*)(p + L.Offset("inuse")) = (uint)s.Inuse;
        *(uint*)(p + L.Offset("align")) = (uint)s.Align;
        *(uint*)(p + L.Offset("red_left_pad")) = (uint)s.RedLeftPad;
        St(p + L.Offset("name"), s.NameVa);
        St(p + L.Offset("random"), s.Random);
        if (TArch.Kind == ArchKind.X86_64)
            *(uint*)(p + L.Offset("remote_node_defrag_ratio")) = 1000;
        *(uint*)(p + L.Offset("useroffset")) = 0;
        // Hardened usercopy: kmalloc objects may be copied to and from user space whole.
        *(uint*)(p + L.Offset("usersize")) = s.IsKmalloc ? (uint)s.ObjectSize : 0;
        St(p + L.Offset("node"), s.NodeVa);
    }

    /// <summary>reciprocal_value(): m = floor(2^32 * (2^l - d) / d) + 1, sh1 = min(l, 1), sh2 = max(l - 1, 0).</summary>
    private static void WriteReciprocal(byte* p, uint d)
    {
        int l = d <= 1 ? 0 : 32 - BitOperations.LeadingZeroCount(d - 1);
        ulong m = ((1UL << 32) * ((1UL << l) - d)) / d + 1;
        *(uint*)p = (uint)m;
        p[4] = (byte)Math.Min(l, 1);
        p[5] = (byte)Math.Max(l - 1, 0);
    }

    private void InitNode(KmemCache s)
    {
        var L = _l.KmemCacheNode;
        byte* n = s.NodeHost;
        new Span<byte>(n, L.Size).Clear();
        _mm.InitListHead(s.NodeVa + (ulong)L.Offset("partial"));
        _mm.InitListHead(s.NodeVa + (ulong)L.Offset("full"));
    }

    // ---- kernel statics (.rodata strings, .data structures) ---------------------------------------------

    /// <summary>A NUL-terminated string in the image's .rodata (a string literal), by its direct-map address.</summary>
    private ulong StaticString(string s)
    {
        var bytes = Encoding.ASCII.GetBytes(s + "\0");
        ulong top = (_rodataTop - (ulong)bytes.Length) & ~7UL;
        if (top < _rodataBottom)
            throw new KmemException("kernel .rodata exhausted by static strings");
        _rodataTop = top;
        bytes.CopyTo(new Span<byte>(_base + top, bytes.Length));
        return TArch.PageOffset + top;
    }

    /// <summary>Zeroed static storage in the image's .data, by its direct-map address.</summary>
    private ulong StaticData(ulong size, ulong align)
    {
        ulong top = (_dataTop - size) & ~(align - 1);
        if (top < _dataBottom)
            throw new KmemException("kernel .data exhausted by static structures");
        _dataTop = top;
        new Span<byte>(_base + top, (int)size).Clear();
        return TArch.PageOffset + top;
    }

    /// <summary>get_random_long(): xorshift64*, seeded from the machine's configuration so runs are repeatable.</summary>
    private ulong NextRandom()
    {
        ulong x = _random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        _random = x;
        ulong r = x * 0x2545_f491_4f6c_dd1dUL;
        return TArch.PointerSize == 8 ? r : r & 0xffff_ffff;
    }

    // ---- small helpers ----------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Ld(byte* p) => TArch.LoadLong(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void St(byte* p, ulong v) => TArch.StoreLong(p, v);

    /// <summary>Host address of a direct-map address the allocator itself produced (trusted).</summary>
    private byte* HostOfLinear(ulong va) => _base + (va - TArch.PageOffset);

    /// <summary>Host address of [va, va + len) when it is lowmem RAM in the direct map.</summary>
    private bool TryHostOfLinear(ulong va, ulong len, out byte* host)
    {
        ulong pa = va - TArch.PageOffset;
        host = null;
        if (va < TArch.PageOffset || pa >= _lowmemBytes || len > _lowmemBytes - pa)
            return false;
        host = _base + pa;
        return true;
    }

    /// <summary>Host address of a slab's head page descriptor given the descriptor's kernel address (trusted).</summary>
    private byte* SlabHost(ulong slabVa)
    {
        _mm.TryPfnOfDescVa(slabVa, out ulong pfn);
        return _mm.Desc(pfn);
    }

    private ulong PfnOfSlab(ulong slabVa)
    {
        _mm.TryPfnOfDescVa(slabVa, out ulong pfn);
        return pfn;
    }

    private static ulong PageAddress(ulong pfn) => TArch.PageOffset + (pfn << PageSize.Shift);

    private void CheckCpu(Cpu cpu)
    {
        if (!ReferenceEquals(cpu.Machine, _m))
            throw new KmemException($"{cpu} belongs to another machine");
    }

    private void CheckCache(KmemCache s)
    {
        if (!ReferenceEquals(s.Machine, _m))
            throw new SlabCacheException($"cache {s.Name} belongs to another machine");
    }

    /// <summary>The cache whose struct kmem_cache is at <paramref name="va"/>, or null.</summary>
    public KmemCache? CacheAt(ulong va) => _byVa.GetValueOrDefault(va);

    /// <summary>A live cache by name, or null.</summary>
    public KmemCache? Find(string name) => _cacheSnapshot.FirstOrDefault(c => c.Name == name);
}
