using KmemNative.PhysMem;

namespace KmemNative.Slab;

/// <summary>
/// The SLUB structures the emulator lays out in the arena, with the C rules and the profile's widths:
/// <c>struct kmem_cache</c> (mm/slab.h), <c>struct kmem_cache_node</c> and <c>struct kmem_cache_cpu</c> (mm/slub.c),
/// <c>struct track</c>, and the <c>struct slab</c> overlay on <c>struct page</c>.
/// </summary>
/// <remarks>
/// <para>Configuration: CONFIG_SLUB_DEBUG=y, CONFIG_SYSFS=y, CONFIG_SLAB_FREELIST_HARDENED field present (the encoding
/// is a boot option), CONFIG_NUMA on x86-64 only, CONFIG_HARDENED_USERCOPY=y, one node; CONFIG_SLUB_CPU_PARTIAL,
/// CONFIG_SLAB_FREELIST_RANDOM, CONFIG_KASAN, CONFIG_SLUB_STATS, CONFIG_STACKDEPOT and lockdep off. The opt-in
/// per-CPU sheaves of 6.18 (kmem_cache_args.sheaf_capacity) are used only by caches created with a capacity:
/// for the others <c>cpu_sheaves</c>, <c>sheaf_capacity</c> and the node's <c>barn</c> stay 0/NULL.</para>
/// <para>x86-64 <c>struct kmem_cache</c> (216 bytes; the kmem_cache cache rounds it to 256 like the real slabinfo):
/// cpu_slab@0 cpu_sheaves@8 flags@16 min_partial@24 size@32 object_size@36 reciprocal_size@40 offset@48
/// sheaf_capacity@52 oo@56 min@60 allocflags@64 refcount@68 ctor@72 inuse@80 align@84 red_left_pad@88 name@96
/// list@104 kobj@120 random@184 remote_node_defrag_ratio@192 useroffset@196 usersize@200 node[1]@208.
/// i386 (136 bytes): cpu_slab@0 cpu_sheaves@4 flags@8 min_partial@12 size@16 object_size@20 reciprocal_size@24
/// offset@32 sheaf_capacity@36 oo@40 min@44 allocflags@48 refcount@52 ctor@56 inuse@60 align@64 red_left_pad@68
/// name@72 list@76 kobj@84 random@120 useroffset@124 usersize@128 node[1]@132.</para>
/// <para><c>struct kmem_cache_node</c>: x86-64 list_lock@0 nr_partial@8 partial@16 nr_slabs@32 total_objects@40
/// full@48 barn@64 (72 bytes, 128 with SLAB_HWCACHE_ALIGN); i386 list_lock@0 nr_partial@4 partial@8 nr_slabs@16
/// total_objects@20 full@24 barn@32 (36 bytes, 64 aligned).</para>
/// <para><c>struct kmem_cache_cpu</c> in the per-CPU area: x86-64 freelist@0 tid@8 slab@16; i386 freelist@0 tid@4
/// slab@8. Two emulator words follow the kernel's fields: <c>slab_addr</c> (page_address() of the CPU slab) and
/// <c>slab_span</c> (one past the offset of its last object), so the fast paths check "object of my CPU slab" with
/// one subtraction and one compare and never dereference a pointer that does not lie inside that slab.</para>
/// <para>Sheaves: <c>struct slub_percpu_sheaves</c> in the per-CPU area, x86-64 lock@0 main@8 spare@16 rcu_free@24
/// (32 bytes), i386 lock@0 main@4 spare@8 rcu_free@12 (16); <c>struct slab_sheaf</c> (kzalloc'ed), x86-64
/// barn_list/rcu_head@0 cache@16 size@24 node@28 objects[]@32, i386 barn_list@0 cache@8 size@12 node@16
/// objects[]@20; <c>struct node_barn</c> (kmalloc'ed), x86-64 lock@0 sheaves_full@8 sheaves_empty@24 nr_full@40
/// nr_empty@44 (48), i386 lock@0 sheaves_full@4 sheaves_empty@12 nr_full@20 nr_empty@24 (28).</para>
/// <para><c>struct track</c> (no STACKDEPOT): x86-64 addr@0 cpu@8 pid@12 when@16 (24 bytes); i386 addr@0 cpu@4 pid@8
/// when@12 (16 bytes).</para>
/// </remarks>
internal sealed class SlabLayouts
{
    public SlabLayouts(int ptr, bool numa)
    {
        PointerSize = ptr;
        var kc = new KStructLayout("kmem_cache")
            .Add("cpu_slab", ptr)
            .Add("cpu_sheaves", ptr)
            .Add("flags", 4)
            .Add("min_partial", ptr)
            .Add("size", 4)
            .Add("object_size", 4)
            .Add("reciprocal_size", 8, 4)
            .Add("offset", 4)
            .Add("sheaf_capacity", 4)
            .Add("oo", 4)
            .Add("min", 4)
            .Add("allocflags", 4)
            .Add("refcount", 4)
            .Add("ctor", ptr)
            .Add("inuse", 4)
            .Add("align", 4)
            .Add("red_left_pad", 4)
            .Add("name", ptr)
            .Add("list", 2 * ptr, ptr)
            // struct kobject: name, entry, parent, kset, ktype, sd, kref, state bits.
            .Add("kobj", ptr == 8 ? 64 : 36, ptr)
            .Add("random", ptr);
        if (numa)
            kc.Add("remote_node_defrag_ratio", 4);
        KmemCache = kc.Add("useroffset", 4)
            .Add("usersize", 4)
            .Add("node", ptr);

        KmemCacheNode = new KStructLayout("kmem_cache_node")
            .Add("list_lock", 4)
            .Add("nr_partial", ptr)
            .Add("partial", 2 * ptr, ptr)
            .Add("nr_slabs", ptr)
            .Add("total_objects", ptr)
            .Add("full", 2 * ptr, ptr)
            .Add("barn", ptr);

        KmemCacheCpu = new KStructLayout("kmem_cache_cpu")
            .Add("freelist", ptr)
            .Add("tid", ptr)
            .Add("slab", ptr)
            .Add("slab_addr", ptr)
            .Add("slab_span", ptr);

        // local_trylock_t without lockdep: one u8 'acquired'.
        PercpuSheaves = new KStructLayout("slub_percpu_sheaves")
            .Add("lock", 1)
            .Add("main", ptr)
            .Add("spare", ptr)
            .Add("rcu_free", ptr);

        // union { struct rcu_head rcu_head; struct list_head barn_list; struct { capacity; pfmemalloc; }; }
        SlabSheaf = new KStructLayout("slab_sheaf")
            .Add("barn_list", 2 * ptr, ptr)
            .Add("cache", ptr)
            .Add("size", 4)
            .Add("node", 4)
            .Add("objects", 0, ptr);

        NodeBarn = new KStructLayout("node_barn")
            .Add("lock", 4)
            .Add("sheaves_full", 2 * ptr, ptr)
            .Add("sheaves_empty", 2 * ptr, ptr)
            .Add("nr_full", 4)
            .Add("nr_empty", 4);

        Track = new KStructLayout("track")
            .Add("addr", ptr)
            .Add("cpu", 4)
            .Add("pid", 4)
            .Add("when", ptr);
    }

    public int PointerSize { get; }

    /// <summary>struct kmem_cache with one node pointer (nr_node_ids = 1).</summary>
    public KStructLayout KmemCache { get; }

    public KStructLayout KmemCacheNode { get; }

    /// <summary>struct kmem_cache_cpu plus the emulator's slab_addr and slab_span words.</summary>
    public KStructLayout KmemCacheCpu { get; }

    public KStructLayout Track { get; }

    /// <summary>struct slub_percpu_sheaves (one per CPU, in the per-CPU area).</summary>
    public KStructLayout PercpuSheaves { get; }

    /// <summary>struct slab_sheaf without its flexible objects[] array.</summary>
    public KStructLayout SlabSheaf { get; }

    /// <summary>struct node_barn.</summary>
    public KStructLayout NodeBarn { get; }

    /// <summary>struct_size(sheaf, objects, capacity).</summary>
    public int SheafBytes(int capacity) => SlabSheaf.Offset("objects") + capacity * PointerSize;

    /// <summary>Bytes of the kernel's own kmem_cache_cpu (before the emulator's words).</summary>
    public int KmemCacheCpuKernelSize => 3 * PointerSize;

    public static SlabLayouts For<TArch>() where TArch : struct, Arch.IArch =>
        new(TArch.PointerSize, TArch.Kind == Arch.ArchKind.X86_64);
}

/// <summary>The hot offsets of <see cref="SlabLayouts"/> as static readonly fields: JIT constants per profile.</summary>
internal static class HotSlab<TArch> where TArch : struct, Arch.IArch
{
    public static readonly SlabLayouts L = SlabLayouts.For<TArch>();

    // kmem_cache_cpu
    public static readonly int CpuFreelist = L.KmemCacheCpu.Offset("freelist");
    public static readonly int CpuTid = L.KmemCacheCpu.Offset("tid");
    public static readonly int CpuSlab = L.KmemCacheCpu.Offset("slab");
    public static readonly int CpuSlabAddr = L.KmemCacheCpu.Offset("slab_addr");
    public static readonly int CpuSlabSpan = L.KmemCacheCpu.Offset("slab_span");

    // slub_percpu_sheaves and slab_sheaf
    public static readonly int PcsMain = L.PercpuSheaves.Offset("main");
    public static readonly int PcsSpare = L.PercpuSheaves.Offset("spare");
    public static readonly int SheafSize = L.SlabSheaf.Offset("size");
    public static readonly int SheafObjects = L.SlabSheaf.Offset("objects");

    // kmem_cache
    public static readonly int KcCpuSlab = L.KmemCache.Offset("cpu_slab");
    public static readonly int KcFlags = L.KmemCache.Offset("flags");
    public static readonly int KcOffset = L.KmemCache.Offset("offset");
    public static readonly int KcRandom = L.KmemCache.Offset("random");
    public static readonly int KcSize = L.KmemCache.Size;

    // struct slab overlay on the head page (mm/slab.h): slab_cache aliases lru.next / compound_head, slab_list
    // covers lru.prev and mapping, freelist aliases index, counters alias private.
    public static readonly int SlabCache = TArch.PageLruOffset;
    public static readonly int SlabList = TArch.PageLruOffset + TArch.PointerSize;
    public static readonly int SlabFreelist = TArch.PageIndexOffset;
    public static readonly int SlabCounters = TArch.PagePrivateOffset;

    /// <summary>struct page is 16-byte aligned on x86-64 and 32 on i386: freelist+counters can be one CAS on i386.</summary>
    public static readonly bool DoubleWordCas = TArch.PointerSize == 4;
}

/// <summary>The bit fields of <c>slab-&gt;counters</c>: inuse:16, objects:15, frozen:1 in its low 32 bits.</summary>
internal static class SlabCounters
{
    public static uint Inuse(ulong c) => (uint)c & 0xffff;

    public static uint Objects(ulong c) => ((uint)c >> 16) & 0x7fff;

    public static bool Frozen(ulong c) => ((uint)c & 0x8000_0000u) != 0;

    public static ulong Make(uint inuse, uint objects, bool frozen) => (inuse & 0xffff) | ((objects & 0x7fff) << 16) | (frozen ? 0x8000_0000u : 0u);

    public static ulong WithInuse(ulong c, uint inuse) => (c & ~0xffffUL) | (inuse & 0xffff);

    public static ulong WithFrozen(ulong c, bool frozen) => frozen ? c | 0x8000_0000UL : c & ~0x8000_0000UL;
}

/// <summary>Poison and red-zone bytes (include/linux/poison.h).</summary>
internal static class SlabPoison
{
    /// <summary>POISON_INUSE: padding, and slab memory not yet handed out.</summary>
    public const byte Inuse = 0x5a;
    /// <summary>POISON_FREE: a freed object.</summary>
    public const byte Free = 0x6b;
    /// <summary>POISON_END: last byte of a poisoned object.</summary>
    public const byte End = 0xa5;
    /// <summary>SLUB_RED_INACTIVE: red zone of a free object.</summary>
    public const byte RedInactive = 0xbb;
    /// <summary>SLUB_RED_ACTIVE: red zone of an allocated object.</summary>
    public const byte RedActive = 0xcc;
}

/// <summary>Constants of mm/slub.c and include/linux/slab.h.</summary>
internal static class SlubConst
{
    public const int OoShift = 16;
    /// <summary>The largest sheaf_capacity the emulator accepts (a sheaf must stay a kmalloc object).</summary>
    public const uint MaxSheafCapacity = 4096;
    public const uint OoMask = (1u << OoShift) - 1;
    public const int MaxObjsPerPage = 32767;
    public const int MinPartial = 5;
    public const int MaxPartial = 10;
    /// <summary>slab_max_order default: PAGE_ALLOC_COSTLY_ORDER.</summary>
    public const int MaxOrder = PageSize.CostlyOrder;
    /// <summary>cache_line_size() on x86 (X86_L1_CACHE_SHIFT 6).</summary>
    public const int CacheLine = 64;
    /// <summary>ZERO_SIZE_PTR: what kmalloc(0) returns.</summary>
    public const ulong ZeroSizePtr = 16;
    /// <summary>KMALLOC_MAX_CACHE_SIZE: larger requests go to the page allocator.</summary>
    public const ulong KmallocMaxCacheSize = 8192;
    /// <summary>KMALLOC_MAX_SIZE: 1 &lt;&lt; (MAX_PAGE_ORDER + PAGE_SHIFT).</summary>
    public const ulong KmallocMaxSize = 1UL << (PageSize.MaxOrder + PageSize.Shift);
    /// <summary>KMALLOC_SHIFT_LOW (ARCH_KMALLOC_MINALIGN 8).</summary>
    public const int KmallocShiftLow = 3;
    /// <summary>KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1.</summary>
    public const int KmallocShiftHigh = 13;
    /// <summary>KMALLOC_SHIFT_HIGH + 1: kmalloc_caches[] entries per type.</summary>
    public const int KmallocCacheNum = KmallocShiftHigh + 1;
}
