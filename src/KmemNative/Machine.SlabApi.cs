using System.Text;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative;

// The slab allocator's API (mm/slub.c, mm/slab_common.c): caches, the kmalloc family, slab_debug and the views.
// Objects are kernel virtual addresses (ulong). Hot calls take the Cpu to run on; the overloads without one use
// the calling thread's CPU (ThisCpu). Through a Machine<TArch> reference the explicit-CPU calls are direct.
public abstract partial class Machine
{
    // ---- caches ---------------------------------------------------------------------------------------

    /// <summary>
    /// kmem_cache_create(): a cache of <paramref name="size"/>-byte objects. The <c>struct kmem_cache</c> is
    /// allocated from the <c>kmem_cache</c> cache and the name kstrdup()ed into a kmalloc object, as in the kernel.
    /// </summary>
    /// <param name="cpu">The CPU to run on.</param>
    /// <param name="name">Name shown by /proc/slabinfo and /sys/kernel/slab (unique, no spaces).</param>
    /// <param name="size">Object size, 1..KMALLOC_MAX_SIZE (4 MiB).</param>
    /// <param name="align">Required alignment (0 or a power of two up to PAGE_SIZE).</param>
    /// <param name="flags">SLAB_HWCACHE_ALIGN, SLAB_RECLAIM_ACCOUNT, SLAB_PANIC, SLAB_TYPESAFE_BY_RCU, debug flags...</param>
    /// <param name="ctor">Constructor run on every object (given its address) when its slab is created.</param>
    /// <returns>The cache, or null when memory ran out.</returns>
    /// <exception cref="SlabCacheException">Invalid name, size, alignment or flags, or the name exists (-EINVAL/-EEXIST).</exception>
    /// <exception cref="KernelPanicException">Creation failed and <paramref name="flags"/> has SLAB_PANIC.</exception>
    public abstract KmemCache? KmemCacheCreate(Cpu cpu, string name, uint size, uint align = 0, SlabFlags flags = SlabFlags.None, Action<ulong>? ctor = null);

    /// <summary>kmem_cache_create() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="KmemCacheCreate(Cpu, string, uint, uint, SlabFlags, Action{ulong})"/>
    public KmemCache? KmemCacheCreate(string name, uint size, uint align = 0, SlabFlags flags = SlabFlags.None, Action<ulong>? ctor = null) =>
        KmemCacheCreate(ThisCpu, name, size, align, flags, ctor);

    /// <summary>
    /// kmem_cache_create(name, size, &amp;args, flags) (6.18's __kmem_cache_create_args()): a cache with the optional
    /// arguments of <see cref="KmemCacheArgs"/>, among them <see cref="KmemCacheArgs.SheafCapacity"/> for per-CPU sheaves.
    /// </summary>
    /// <inheritdoc cref="KmemCacheCreate(Cpu, string, uint, uint, SlabFlags, Action{ulong})"/>
    public abstract KmemCache? KmemCacheCreate(Cpu cpu, string name, uint size, KmemCacheArgs args, SlabFlags flags = SlabFlags.None);

    /// <summary>kmem_cache_create(name, size, &amp;args, flags) on the calling thread's CPU.</summary>
    /// <inheritdoc cref="KmemCacheCreate(Cpu, string, uint, KmemCacheArgs, SlabFlags)"/>
    public KmemCache? KmemCacheCreate(string name, uint size, KmemCacheArgs args, SlabFlags flags = SlabFlags.None) =>
        KmemCacheCreate(ThisCpu, name, size, args, flags);

    /// <summary>
    /// kmem_cache_destroy(): flush every CPU slab of the cache, free its empty slabs and release it. The caller
    /// guarantees nobody uses the cache concurrently (as in the kernel).
    /// </summary>
    /// <exception cref="SlabBugException">Objects remain (<see cref="SlabBug.ObjectsRemaining"/>, with the leak
    /// report); the cache is kept, usable, and can be destroyed once its objects are freed.</exception>
    /// <exception cref="SlabCacheException">Already destroyed, or a boot cache.</exception>
    public abstract void KmemCacheDestroy(Cpu cpu, KmemCache s);

    /// <summary>kmem_cache_destroy() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="KmemCacheDestroy(Cpu, KmemCache)"/>
    public void KmemCacheDestroy(KmemCache s) => KmemCacheDestroy(ThisCpu, s);

    /// <summary>
    /// kmem_cache_shrink(): flush the CPU slabs (those of CPUs other live threads run are flushed by their owner at
    /// its next slab slow path), free every empty slab, sort the partial list. Returns 0 when no slab remains.
    /// </summary>
    public abstract int KmemCacheShrink(Cpu cpu, KmemCache s);

    /// <summary>kmem_cache_shrink() on the calling thread's CPU.</summary>
    public int KmemCacheShrink(KmemCache s) => KmemCacheShrink(ThisCpu, s);

    /// <summary>
    /// kmem_cache_alloc(): an object from the CPU's slab (a few loads and stores), else from the slow path.
    /// </summary>
    /// <returns>The object's kernel virtual address, or 0 when no memory could be found.</returns>
    /// <exception cref="SlabBugException">slab_debug found corruption on the object being handed out (it is not
    /// handed out; its slab is marked full), or a corrupt freelist was cut.</exception>
    public abstract ulong KmemCacheAlloc(Cpu cpu, KmemCache s, Gfp gfp);

    /// <summary>kmem_cache_alloc() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="KmemCacheAlloc(Cpu, KmemCache, Gfp)"/>
    public ulong KmemCacheAlloc(KmemCache s, Gfp gfp) => KmemCacheAlloc(ThisCpu, s, gfp);

    /// <summary>kmem_cache_zalloc(): kmem_cache_alloc() with __GFP_ZERO.</summary>
    public ulong KmemCacheZalloc(Cpu cpu, KmemCache s, Gfp gfp) => KmemCacheAlloc(cpu, s, gfp | Gfp.Zero);

    /// <summary>kmem_cache_zalloc() on the calling thread's CPU.</summary>
    public ulong KmemCacheZalloc(KmemCache s, Gfp gfp) => KmemCacheAlloc(ThisCpu, s, gfp | Gfp.Zero);

    /// <summary>
    /// kmem_cache_free(): back onto the CPU freelist when the object is in the CPU's slab, else onto its own slab's
    /// freelist with a compare-and-swap (a remote free). Freeing 0 does nothing.
    /// </summary>
    /// <exception cref="SlabBugException">An invalid pointer (not an object of this cache), a double free, or
    /// slab_debug found the object corrupt; the object is not freed and the cache is left consistent.</exception>
    public abstract void KmemCacheFree(Cpu cpu, KmemCache s, ulong obj);

    /// <summary>kmem_cache_free() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="KmemCacheFree(Cpu, KmemCache, ulong)"/>
    public void KmemCacheFree(KmemCache s, ulong obj) => KmemCacheFree(ThisCpu, s, obj);

    /// <summary>
    /// kmem_cache_alloc_bulk(): fills <paramref name="objects"/> (from the sheaves first for a cache with sheaves);
    /// all or nothing (returns 0 on failure).
    /// </summary>
    public abstract int KmemCacheAllocBulk(Cpu cpu, KmemCache s, Gfp gfp, Span<ulong> objects);

    /// <summary>kmem_cache_alloc_bulk() on the calling thread's CPU.</summary>
    public int KmemCacheAllocBulk(KmemCache s, Gfp gfp, Span<ulong> objects) => KmemCacheAllocBulk(ThisCpu, s, gfp, objects);

    /// <summary>
    /// kmem_cache_free_bulk(): into the sheaves for a cache with sheaves, else with detached freelists (the objects
    /// of one slab linked together and freed with one compare-and-swap); debug caches free one by one with checks.
    /// </summary>
    public abstract void KmemCacheFreeBulk(Cpu cpu, KmemCache s, ReadOnlySpan<ulong> objects);

    /// <summary>kmem_cache_free_bulk() on the calling thread's CPU.</summary>
    public void KmemCacheFreeBulk(KmemCache s, ReadOnlySpan<ulong> objects) => KmemCacheFreeBulk(ThisCpu, s, objects);

    /// <summary>kfree_bulk(): kmem_cache_free_bulk(NULL, ...) — objects of any caches and large kmalloc allocations.</summary>
    public abstract void KfreeBulk(Cpu cpu, ReadOnlySpan<ulong> objects);

    /// <summary>kfree_bulk() on the calling thread's CPU.</summary>
    public void KfreeBulk(ReadOnlySpan<ulong> objects) => KfreeBulk(ThisCpu, objects);

    /// <summary>validate_slab_cache() (/sys/kernel/slab/NAME/validate): check every slab and object, repairing what it reports.</summary>
    public abstract SlabValidation KmemCacheValidate(Cpu cpu, KmemCache s);

    /// <summary>validate_slab_cache() on the calling thread's CPU.</summary>
    public SlabValidation KmemCacheValidate(KmemCache s) => KmemCacheValidate(ThisCpu, s);

    /// <summary>The live caches, newest first (slab_caches: the order of /proc/slabinfo).</summary>
    public abstract IReadOnlyList<KmemCache> KmemCaches { get; }

    /// <summary>True once kmem_cache_init() ran (on the slab allocator's first use): views that must not change
    /// the machine (metrics) read the caches only then.</summary>
    internal abstract bool SlabInitialized { get; }

    /// <summary>A live cache by name, or null.</summary>
    public abstract KmemCache? FindKmemCache(string name);

    /// <summary>virt_to_cache(): the cache of the slab object at <paramref name="va"/>, or null.</summary>
    public abstract KmemCache? VirtToCache(ulong va);

    /// <summary>virt_to_slab(): the address of the struct slab (head struct page) holding <paramref name="va"/>, or 0.</summary>
    public abstract ulong VirtToSlab(ulong va);

    // ---- kmalloc ------------------------------------------------------------------------------------------

    /// <summary>
    /// kmalloc(): 1..8192 bytes from the kmalloc-N caches (kmalloc-rcl- for __GFP_RECLAIMABLE, dma-kmalloc- for
    /// __GFP_DMA, kmalloc-cg- for __GFP_ACCOUNT on x86-64), larger sizes as a compound page of order
    /// get_order(size). kmalloc(0) returns ZERO_SIZE_PTR (16).
    /// </summary>
    /// <returns>The object's address, or 0 when no memory could be found.</returns>
    /// <exception cref="InvalidAllocationException">More than KMALLOC_MAX_SIZE, or impossible zone flags for a large request.</exception>
    public abstract ulong Kmalloc(Cpu cpu, ulong size, Gfp gfp);

    /// <summary>kmalloc() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="Kmalloc(Cpu, ulong, Gfp)"/>
    public ulong Kmalloc(ulong size, Gfp gfp) => Kmalloc(ThisCpu, size, gfp);

    /// <summary>kzalloc(): kmalloc() with __GFP_ZERO.</summary>
    public ulong Kzalloc(Cpu cpu, ulong size, Gfp gfp) => Kmalloc(cpu, size, gfp | Gfp.Zero);

    /// <summary>kzalloc() on the calling thread's CPU.</summary>
    public ulong Kzalloc(ulong size, Gfp gfp) => Kmalloc(ThisCpu, size, gfp | Gfp.Zero);

    /// <summary>kmalloc_array(): n * size bytes, 0 if the product overflows.</summary>
    public abstract ulong KmallocArray(Cpu cpu, ulong n, ulong size, Gfp gfp);

    /// <summary>kcalloc(): zeroed kmalloc_array().</summary>
    public ulong Kcalloc(Cpu cpu, ulong n, ulong size, Gfp gfp) => KmallocArray(cpu, n, size, gfp | Gfp.Zero);

    /// <summary>kcalloc() on the calling thread's CPU.</summary>
    public ulong Kcalloc(ulong n, ulong size, Gfp gfp) => KmallocArray(ThisCpu, n, size, gfp | Gfp.Zero);

    /// <summary>
    /// krealloc(): the same object when <paramref name="newSize"/> still fits it (the spare part zeroed for
    /// __GFP_ZERO, the kmalloc red zone moved), else a new allocation with the old contents and the old one freed.
    /// Size 0 frees and returns ZERO_SIZE_PTR; a NULL pointer allocates.
    /// </summary>
    /// <exception cref="SlabBugException"><paramref name="p"/> is not a kmalloc allocation.</exception>
    public abstract ulong Krealloc(Cpu cpu, ulong p, ulong newSize, Gfp gfp);

    /// <summary>krealloc() on the calling thread's CPU.</summary>
    public ulong Krealloc(ulong p, ulong newSize, Gfp gfp) => Krealloc(ThisCpu, p, newSize, gfp);

    /// <summary>ksize(): the bytes actually usable at <paramref name="p"/> (0 for NULL and ZERO_SIZE_PTR).</summary>
    /// <exception cref="SlabBugException"><paramref name="p"/> is not the start of a kmalloc allocation.</exception>
    public abstract ulong Ksize(Cpu cpu, ulong p);

    /// <summary>ksize() on the calling thread's CPU.</summary>
    public ulong Ksize(ulong p) => Ksize(ThisCpu, p);

    /// <summary>kfree(): NULL and ZERO_SIZE_PTR do nothing; slab objects and large allocations are freed.</summary>
    /// <exception cref="SlabBugException">Not a kmalloc allocation's start, a double free, or slab_debug found
    /// corruption; nothing is freed.</exception>
    public abstract void Kfree(Cpu cpu, ulong p);

    /// <summary>kfree() on the calling thread's CPU.</summary>
    /// <inheritdoc cref="Kfree(Cpu, ulong)"/>
    public void Kfree(ulong p) => Kfree(ThisCpu, p);

    /// <summary>kfree_sensitive(): zero ksize() bytes, then kfree().</summary>
    public abstract void KfreeSensitive(Cpu cpu, ulong p);

    /// <summary>kfree_sensitive() on the calling thread's CPU.</summary>
    public void KfreeSensitive(ulong p) => KfreeSensitive(ThisCpu, p);

    /// <summary>kmemdup(): a kmalloc copy of <paramref name="len"/> bytes at kernel address <paramref name="src"/>.</summary>
    /// <exception cref="VirtualAddressException">The source is not direct-mapped RAM.</exception>
    public abstract ulong Kmemdup(Cpu cpu, ulong src, ulong len, Gfp gfp);

    /// <summary>kmemdup() of host bytes into a new kmalloc object.</summary>
    public abstract ulong Kmemdup(Cpu cpu, ReadOnlySpan<byte> data, Gfp gfp);

    /// <summary>kmemdup() of host bytes on the calling thread's CPU.</summary>
    public ulong Kmemdup(ReadOnlySpan<byte> data, Gfp gfp) => Kmemdup(ThisCpu, data, gfp);

    /// <summary>kstrdup(): a NUL-terminated UTF-8 copy in a kmalloc object (0 for null).</summary>
    public abstract ulong Kstrdup(Cpu cpu, string? text, Gfp gfp);

    /// <summary>kstrdup() on the calling thread's CPU.</summary>
    public ulong Kstrdup(string? text, Gfp gfp) => Kstrdup(ThisCpu, text, gfp);

    /// <summary>kmalloc_slab(): the cache kmalloc(size, gfp) uses, or null above KMALLOC_MAX_CACHE_SIZE (and for 0).</summary>
    public abstract KmemCache? KmallocCache(ulong size, Gfp gfp);

    /// <summary>The bytes kmalloc(size, gfp) hands out (the tracepoint's bytes_alloc).</summary>
    public abstract ulong KmallocBytes(ulong size, Gfp gfp);

    // ---- debugging and inspection ---------------------------------------------------------------------------

    /// <summary>
    /// slab_debug=OPTIONS[,CACHES]: applies to caches created from now on and re-lays out existing caches whose
    /// flags change if they can be emptied (shrunk); caches holding objects keep their flags (returned as busy).
    /// An empty string turns on FZPU for every cache, "-" turns debugging off.
    /// </summary>
    /// <exception cref="FormatException">An unknown option letter.</exception>
    public abstract (IReadOnlyList<KmemCache> Changed, IReadOnlyList<KmemCache> Busy) SlabDebug(string options);

    /// <summary>The slab_debug= options in effect.</summary>
    public abstract SlabDebugOptions SlabDebugOptions { get; }

    /// <summary>What the address is, if it lies in a slab (kmem_obj_info() plus allocation state).</summary>
    public abstract SlabObjectInfo? KmemObjInfo(ulong va);

    /// <summary>mem_dump_obj(): "slab kmalloc-64 start ... pointer offset N size 64", or the kind of memory.</summary>
    public abstract string KmemDumpObj(ulong va);

    /// <summary>
    /// A host span over the bytes from <paramref name="va"/> to the end of the slab object (or large kmalloc
    /// allocation) containing it, free or allocated. Valid until the machine is disposed.
    /// </summary>
    /// <exception cref="VirtualAddressException">Not inside an object.</exception>
    public abstract Span<byte> ObjectBytes(ulong va);

    /// <summary>/proc/slabinfo's numbers for one cache.</summary>
    public abstract SlabInfo Slabinfo(KmemCache s);

    /// <summary>/sys/kernel/slab/NAME/: every attribute file and what reading it shows (without the newline).</summary>
    public abstract IReadOnlyList<(string Name, string Value)> SlabSysfs(KmemCache s);

    /// <summary>The per-CPU, per-node and per-slab state of a cache (crash's kmem -S).</summary>
    public abstract CacheState KmemCacheState(KmemCache s);

    /// <summary>Checks SLUB's structures against each other (also part of <see cref="CheckConsistency"/>).</summary>
    /// <exception cref="ConsistencyException">Something disagrees.</exception>
    public abstract SlabConsistencyReport CheckSlabConsistency();

    // ---- time and taint -------------------------------------------------------------------------------------

    /// <summary>INITIAL_JIFFIES: (unsigned long)(unsigned int)(-300 * HZ) with HZ = 1000.</summary>
    public const ulong InitialJiffies = 0xfffb_6c20;

    private long _jiffies = (long)InitialJiffies;

    /// <summary>
    /// jiffies. The emulated clock advances by one each time slab_debug records a track, so the "age" in a report
    /// counts tracked slab events; it is deterministic.
    /// </summary>
    public ulong Jiffies => (ulong)Interlocked.Read(ref _jiffies);

    internal ulong TickJiffies() => (ulong)Interlocked.Increment(ref _jiffies);

    internal const int TaintBadPage = 5;   // TAINT_BAD_PAGE 'B'
    internal const int TaintWarn = 9;      // TAINT_WARN 'W'
    private long _taint;

    internal void AddTaint(int bit) => Interlocked.Or(ref _taint, 1L << bit);

    /// <summary>print_tainted(): "Not tainted", or "Tainted: " and one letter (or space) per taint flag.</summary>
    public string TaintText
    {
        get
        {
            long mask = Interlocked.Read(ref _taint);
            if (mask == 0)
                return "Not tainted";
            const string on = "PFSRMBUDAWCIOELKXTNJ";
            var sb = new StringBuilder("Tainted: ");
            for (int i = 0; i < on.Length; i++)
                sb.Append((mask & (1L << i)) != 0 ? on[i] : i == 0 ? 'G' : ' ');
            return sb.ToString();
        }
    }
}
