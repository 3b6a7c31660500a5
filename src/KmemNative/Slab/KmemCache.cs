using KmemNative.PageAlloc;

namespace KmemNative.Slab;

/// <summary>
/// A slab cache: a handle to a <c>struct kmem_cache</c> that lives in the machine's memory (allocated from the
/// boot <c>kmem_cache</c> cache, as the kernel does). Create one with <see cref="Machine.KmemCacheCreate(Cpu, string, uint, uint, SlabFlags, Action{ulong})"/>; allocate
/// and free its objects with <see cref="Machine.KmemCacheAlloc(Cpu, KmemCache, Gfp)"/> and
/// <see cref="Machine.KmemCacheFree(Cpu, KmemCache, ulong)"/>; objects are kernel virtual addresses.
/// </summary>
/// <remarks>
/// The geometry (object size, stride, free pointer offset, order) is fixed when the cache is created; the handle
/// keeps copies of the fields the fast paths need so that they read no arena memory they would have to
/// re-validate. <see cref="Va"/> is the address of the kernel structure, where <c>kmem -S</c> and <c>rd</c> find it.
/// </remarks>
public sealed unsafe class KmemCache
{
    internal KmemCache(Machine machine, string name, ulong va, byte* host)
    {
        Machine = machine;
        Name = name;
        Va = va;
        Host = host;
    }

    /// <summary>The machine the cache belongs to.</summary>
    public Machine Machine { get; }

    /// <summary>s-&gt;name: the name /proc/slabinfo and /sys/kernel/slab show.</summary>
    public string Name { get; }

    /// <summary>Kernel virtual address of the <c>struct kmem_cache</c>.</summary>
    public ulong Va { get; }

    /// <summary>Host address of the structure.</summary>
    internal byte* Host { get; }

    /// <summary>s-&gt;object_size: the bytes a caller may use (kmem_cache_size()).</summary>
    public int ObjectSize { get; internal set; }

    /// <summary>s-&gt;size: the stride of objects in a slab, metadata and alignment included (slabinfo's objsize).</summary>
    public int Size { get; internal set; }

    /// <summary>s-&gt;align.</summary>
    public int Align { get; internal set; }

    /// <summary>s-&gt;offset: where the free pointer lives, from the object's start.</summary>
    public int Offset { get; internal set; }

    /// <summary>s-&gt;inuse: object plus right red zone; metadata starts here.</summary>
    public int Inuse { get; internal set; }

    /// <summary>s-&gt;red_left_pad: bytes of left red zone before each object (0 without SLAB_RED_ZONE).</summary>
    public int RedLeftPad { get; internal set; }

    /// <summary>oo_order(s-&gt;oo): the order of the cache's slabs.</summary>
    public int Order { get; internal set; }

    /// <summary>oo_objects(s-&gt;oo): objects in a slab of <see cref="Order"/>.</summary>
    public int ObjectsPerSlab { get; internal set; }

    /// <summary>oo_order(s-&gt;min): the fallback order when a slab of <see cref="Order"/> cannot be had.</summary>
    public int MinOrder { get; internal set; }

    /// <summary>s-&gt;flags, with the debug flags slab_debug= added.</summary>
    public SlabFlags Flags { get; internal set; }

    /// <summary>The flags kmem_cache_create() was given.</summary>
    public SlabFlags CreateFlags { get; internal set; }

    /// <summary>s-&gt;min_partial: empty slabs kept on the node's partial list before they are freed.</summary>
    public int MinPartial { get; internal set; }

    /// <summary>s-&gt;allocflags: GFP bits every slab allocation of this cache adds (__GFP_COMP, GFP_DMA, __GFP_RECLAIMABLE).</summary>
    public Gfp AllocFlags { get; internal set; }

    /// <summary>The constructor run on each object when its slab is created, or null.</summary>
    public Action<ulong>? Ctor { get; internal set; }

    /// <summary>
    /// s-&gt;sheaf_capacity: objects per sheaf of the cache's per-CPU sheaves (kmem_cache_args.sheaf_capacity), 0
    /// when the cache has none (the default, and always with slab_debug flags, which make the kernel ignore it).
    /// </summary>
    public int SheafCapacity { get; internal set; }

    /// <summary>The sheaf capacity kmem_cache_create() was asked for (kept when slab_debug disables sheaves).</summary>
    public int RequestedSheafCapacity { get; internal set; }

    /// <summary>True once kmem_cache_destroy() released the cache.</summary>
    public bool IsDestroyed { get; internal set; }

    /// <summary>True for the kmalloc caches (SLAB_KMALLOC).</summary>
    public bool IsKmalloc => (Flags & SlabFlags.Kmalloc) != 0;

    /// <summary>True when slab_debug checks apply (kmem_cache_debug()): such a cache has no lockless fast path.</summary>
    public bool IsDebug => (Flags & SlabFlagsText.DebugFlags) != 0;

    // ---- copies for the hot paths (written only while the cache has no slabs) ------------------------

    /// <summary>Offset of this cache's kmem_cache_cpu in every per-CPU unit (s-&gt;cpu_slab); a never-used empty slot once destroyed.</summary>
    internal nint CpuSlabOffset;

    /// <summary>The per-CPU slot the cache owns (recycled at destroy).</summary>
    internal int CpuSlabSlot;

    /// <summary>s-&gt;offset as an unsigned value for address arithmetic.</summary>
    internal uint FpOffset;

    /// <summary>Host address of the free pointer of the object at physical address pa: pa + FpHost.</summary>
    internal ulong FpHost;

    /// <summary>
    /// Largest physical address of an object whose free pointer still lies inside the arena; 0 for caches whose
    /// free pointers are encoded (CONFIG_SLAB_FREELIST_HARDENED), which take the out-of-line path.
    /// </summary>
    internal ulong FpLimit;

    /// <summary>The SlabAllocator&lt;TArch&gt; that owns the cache (the static fast paths reach their slow paths through it).</summary>
    internal object Owner = null!;

    /// <summary>
    /// Divisibility test by <see cref="Size"/> without a division (Granlund-Montgomery): with Size = d * 2^k, d odd,
    /// x is a multiple of Size iff rotr(x * inverse(d), k) &lt;= floor((2^32 - 1) / Size).
    /// </summary>
    internal uint SizeInverse, SizeMultipleLimit;

    /// <summary>k of <see cref="SizeInverse"/>.</summary>
    internal int SizeShift;

    /// <summary>True when the 32-bit <paramref name="offset"/> is a multiple of <see cref="Size"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal bool IsMultipleOfSize(uint offset) => System.Numerics.BitOperations.RotateRight(offset * SizeInverse, SizeShift) <= SizeMultipleLimit;

    /// <summary>Precomputes <see cref="SizeInverse"/>, <see cref="SizeShift"/> and <see cref="SizeMultipleLimit"/> for <see cref="Size"/>.</summary>
    internal void SetSizeDivisor()
    {
        uint size = (uint)Size;
        int k = System.Numerics.BitOperations.TrailingZeroCount(size);
        uint d = size >> k;
        uint inv = d;                       // Newton's iteration: each step doubles the correct low bits
        for (int i = 0; i < 5; i++)
            inv *= 2 - d * inv;
        SizeInverse = inv;
        SizeShift = k;
        SizeMultipleLimit = uint.MaxValue / size;
    }

    /// <summary>s-&gt;random (CONFIG_SLAB_FREELIST_HARDENED).</summary>
    internal ulong Random;

    /// <summary>True when free pointers are stored encoded.</summary>
    internal bool Hardened;

    /// <summary>Kernel virtual address of the node structure (s-&gt;node[0]).</summary>
    internal ulong NodeVa;

    /// <summary>Host address of the node structure.</summary>
    internal byte* NodeHost;

    /// <summary>Kernel virtual address of the name string.</summary>
    internal ulong NameVa;

    /// <summary>True when the name was kstrdup()ed and must be kfree()d at destroy (kstrdup_const of a non-rodata string).</summary>
    internal bool NameAllocated;

    /// <summary>Offset of this cache's slub_percpu_sheaves in every per-CPU unit (s-&gt;cpu_sheaves), when it has sheaves.</summary>
    internal nint PcsOffset;

    /// <summary>The per-CPU slot of the sheaves (-1: none).</summary>
    internal int PcsSlot = -1;

    /// <summary>Largest physical address at which a whole sheaf of this cache lies inside the arena.</summary>
    internal ulong SheafLimit;

    /// <summary>Host address of physical address 0 (the arena): a sheaf at physical address pa is at ArenaBase + pa.</summary>
    internal byte* ArenaBase;

    /// <summary>Kernel virtual address of the node's barn (n-&gt;barn), 0 without sheaves.</summary>
    internal ulong BarnVa;

    /// <summary>Host address of the barn.</summary>
    internal byte* BarnHost;

    /// <summary>Index in kmalloc_caches[] (type * KMALLOC_CACHE_NUM + index), or -1.</summary>
    internal int KmallocSlot = -1;

    /// <inheritdoc/>
    public override string ToString() => $"{Name} (kmem_cache 0x{Va:x}, object_size {ObjectSize}, size {Size})";
}
