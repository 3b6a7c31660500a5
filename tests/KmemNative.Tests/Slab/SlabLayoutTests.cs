using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>SLUB's structures in the arena: their offsets per profile, the bootstrap, and the struct slab overlay.</summary>
public class SlabLayoutTests
{
    [Fact]
    public void X86_64_structures_have_the_documented_offsets()
    {
        var l = SlabLayouts.For<X86_64>();
        var kc = l.KmemCache;
        (string, int)[] expected =
        [
            ("cpu_slab", 0), ("cpu_sheaves", 8), ("flags", 16), ("min_partial", 24), ("size", 32), ("object_size", 36),
            ("reciprocal_size", 40), ("offset", 48), ("sheaf_capacity", 52), ("oo", 56), ("min", 60), ("allocflags", 64),
            ("refcount", 68), ("ctor", 72), ("inuse", 80), ("align", 84), ("red_left_pad", 88), ("name", 96), ("list", 104),
            ("kobj", 120), ("random", 184), ("remote_node_defrag_ratio", 192), ("useroffset", 196), ("usersize", 200), ("node", 208),
        ];
        foreach (var (field, off) in expected)
            Assert.Equal((field, off), (field, kc.Offset(field)));
        Assert.Equal(216, kc.Size);
        Assert.Equal(72, l.KmemCacheNode.Size);
        Assert.Equal([0, 8, 16, 32, 40, 48, 64], new[] { "list_lock", "nr_partial", "partial", "nr_slabs", "total_objects", "full", "barn" }.Select(l.KmemCacheNode.Offset));
        Assert.Equal([0, 8, 16], new[] { "freelist", "tid", "slab" }.Select(l.KmemCacheCpu.Offset));
        Assert.Equal(24, l.Track.Size);
        Assert.Equal([0, 8, 12, 16], new[] { "addr", "cpu", "pid", "when" }.Select(l.Track.Offset));
        // struct slab overlay (mm/slab.h): slab_cache@8, slab_list@16, freelist@32, counters@40.
        Assert.Equal((8, 16, 32, 40), (HotSlab<X86_64>.SlabCache, HotSlab<X86_64>.SlabList, HotSlab<X86_64>.SlabFreelist, HotSlab<X86_64>.SlabCounters));
    }

    [Fact]
    public void I386_structures_have_the_documented_offsets()
    {
        var l = SlabLayouts.For<I386>();
        var kc = l.KmemCache;
        (string, int)[] expected =
        [
            ("cpu_slab", 0), ("cpu_sheaves", 4), ("flags", 8), ("min_partial", 12), ("size", 16), ("object_size", 20),
            ("reciprocal_size", 24), ("offset", 32), ("oo", 40), ("inuse", 60), ("red_left_pad", 68), ("name", 72), ("list", 76),
            ("kobj", 84), ("random", 120), ("useroffset", 124), ("node", 132),
        ];
        foreach (var (field, off) in expected)
            Assert.Equal((field, off), (field, kc.Offset(field)));
        Assert.Equal(136, kc.Size);
        Assert.Equal(36, l.KmemCacheNode.Size);
        Assert.Equal([0, 4, 8], new[] { "freelist", "tid", "slab" }.Select(l.KmemCacheCpu.Offset));
        Assert.Equal(16, l.Track.Size);
        Assert.Equal((4, 8, 16, 20), (HotSlab<I386>.SlabCache, HotSlab<I386>.SlabList, HotSlab<I386>.SlabFreelist, HotSlab<I386>.SlabCounters));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Struct_kmem_cache_lives_in_the_kmem_cache_cache_with_its_fields(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        int ptr = arch == ArchKind.X86_64 ? 8 : 4;
        var l = arch == ArchKind.X86_64 ? SlabLayouts.For<X86_64>() : SlabLayouts.For<I386>();
        var s = m.KmemCacheCreate("layout_test", 100, 0, SlabFlags.HwcacheAlign)!;
        var kmemCache = m.FindKmemCache("kmem_cache")!;
        // bootstrap(): every struct kmem_cache, kmem_cache's own included, is an object of kmem_cache.
        Assert.Same(kmemCache, m.VirtToCache(s.Va));
        Assert.Same(kmemCache, m.VirtToCache(kmemCache.Va));
        Assert.Same(kmemCache, m.VirtToCache(m.FindKmemCache("kmem_cache_node")!.Va));
        Assert.Same(m.FindKmemCache("kmem_cache_node"), m.VirtToCache(ReadPtr(m, s.Va + (ulong)l.KmemCache.Offset("node"), ptr)));

        ulong pa = m.Pa(s.Va);
        uint U32(string field) => m.Memory.ReadUInt32(pa + (ulong)l.KmemCache.Offset(field));
        Assert.Equal((uint)s.Size, U32("size"));
        Assert.Equal(100u, U32("object_size"));
        Assert.Equal((uint)s.Offset, U32("offset"));
        Assert.Equal((uint)s.Align, U32("align"));
        Assert.Equal((uint)s.Inuse, U32("inuse"));
        Assert.Equal((uint)(s.Order << 16 | s.ObjectsPerSlab), U32("oo"));
        Assert.Equal((uint)s.Flags, U32("flags"));
        Assert.Equal(1u, U32("refcount"));
        // The name is a kstrdup()ed copy in a kmalloc object.
        ulong name = ReadPtr(m, s.Va + (ulong)l.KmemCache.Offset("name"), ptr);
        Assert.Equal("kmalloc-16", m.VirtToCache(name)!.Name);
        Assert.Equal("layout_test\0"u8.ToArray(), m.ObjectBytes(name)[..12].ToArray());
        // cpu_slab is the per-CPU offset of the cache's kmem_cache_cpu: tid starts at the CPU number.
        ulong cpuSlab = ReadPtr(m, s.Va, ptr);
        Assert.True(cpuSlab > 0 && cpuSlab < (ulong)m.PercpuUnitBytes);
        // slab_caches: the list goes from the newest cache (this one) to kmem_cache, the first one bootstrapped.
        Assert.Same(s, m.KmemCaches[0]);
        Assert.Equal("kmem_cache", m.KmemCaches[^1].Name);
        Assert.Equal("kmem_cache_node", m.KmemCaches[^2].Name);
        m.KmemCacheDestroy(s);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_slab_page_carries_the_struct_slab_overlay(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "overlay", 1000)!;   // 1000 bytes: an order-2 compound slab with 2 CPUs
        Assert.Equal(2, s.Order);
        ulong o1 = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        ulong o2 = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        var head = m.VirtToPage(o1).Descriptor;
        Assert.Equal(PageBits.PgtySlab, head.PageType);
        Assert.Equal(0xf5000000u, head.PageTypeRaw);
        Assert.True(head.IsHead);
        Assert.Equal(1, head.Refcount);
        Assert.Equal(s.Va, head.LruNext);                                   // slab_cache
        Assert.Equal(head.Address, m.VirtToSlab(o2 + 5));
        var tail = m.ReadPage(head.Pfn + 3);
        Assert.True(tail.IsTail);
        Assert.Equal(head.Address, m.VirtToSlab(m.PageOffset + ((head.Pfn + 3) << 12) + 100));
        // A CPU slab is frozen; the CPU holds its freelist, the slab's own is empty; inuse counts the CPU's objects too.
        ulong counters = head.Private;                                             // counters alias private
        Assert.Equal((uint)s.ObjectsPerSlab, (uint)(counters >> 16) & 0x7fff);    // objects
        Assert.Equal((uint)s.ObjectsPerSlab, (uint)counters & 0xffff);            // inuse: all taken by the CPU
        Assert.True((counters & 0x8000_0000) != 0);                                // frozen
        Assert.Equal(0UL, head.Index);                                             // freelist (aliases index)
        m.KmemCacheFree(cpu, s, o1);
        m.KmemCacheFree(cpu, s, o2);
        m.KmemCacheDestroy(cpu, s);
        // After the slab went back: no type, no mapping, the allocator's free checks passed.
        var after = m.ReadPage(head.Pfn);
        Assert.Null(after.PageType);
        Assert.Equal(0UL, after.Mapping);
        m.CheckConsistency();
    }

    private static ulong ReadPtr(Machine m, ulong va, int ptr)
    {
        ulong pa = m.Pa(va);
        return ptr == 8 ? m.Memory.ReadUInt64(pa) : m.Memory.ReadUInt32(pa);
    }
}
