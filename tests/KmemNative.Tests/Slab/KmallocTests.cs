using System.Globalization;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>The kmalloc family: size classes, cache types, large allocations, krealloc, ksize and friends.</summary>
public class KmallocTests
{
    /// <summary>
    /// Every distinct kmalloc request of the real trace (x86-64, 2 CPUs): the emulator hands out exactly the
    /// bytes_alloc the traced kernel did, and from a real allocation whose cache stride is that size.
    /// </summary>
    [Fact]
    public void Bytes_alloc_of_every_kmalloc_in_the_real_trace_matches()
    {
        using var m = Machines.X64(128, cpus: 2);
        var cpu = m.GetCpu(0);
        var lines = File.ReadAllLines(Machines.DataFile("kmalloc-trace-a.txt")).Where(l => !l.StartsWith('#')).ToList();
        long events = 0;
        foreach (var line in lines)
        {
            var f = line.Split(' ');
            long count = long.Parse(f[0], CultureInfo.InvariantCulture);
            ulong req = ulong.Parse(f[1], CultureInfo.InvariantCulture), traced = ulong.Parse(f[2], CultureInfo.InvariantCulture);
            Gfp gfp = GfpFlags.Parse(f[3]);
            Assert.Equal(traced, m.KmallocBytes(req, gfp));
            ulong p = m.Kmalloc(cpu, req, gfp);
            Assert.NotEqual(0UL, p);
            var s = m.VirtToCache(p);
            Assert.NotNull(s);
            Assert.Equal(traced, (ulong)s!.Size);
            Assert.Equal(traced, m.Ksize(cpu, p));
            m.Kfree(cpu, p);
            events += count;
        }
        Assert.Equal(52487, events);   // every kmalloc: line of the trace is covered
        m.CheckConsistency();
    }

    [Theory]
    [InlineData(1, "kmalloc-8")]
    [InlineData(8, "kmalloc-8")]
    [InlineData(9, "kmalloc-16")]
    [InlineData(24, "kmalloc-32")]
    [InlineData(64, "kmalloc-64")]
    [InlineData(65, "kmalloc-96")]
    [InlineData(96, "kmalloc-96")]
    [InlineData(97, "kmalloc-128")]
    [InlineData(100, "kmalloc-128")]
    [InlineData(129, "kmalloc-192")]
    [InlineData(192, "kmalloc-192")]
    [InlineData(193, "kmalloc-256")]
    [InlineData(1000, "kmalloc-1k")]
    [InlineData(2048, "kmalloc-2k")]
    [InlineData(4097, "kmalloc-8k")]
    [InlineData(8192, "kmalloc-8k")]
    public void Size_classes_follow_the_kernel_index_table(ulong size, string cache)
    {
        foreach (var arch in new[] { ArchKind.I386, ArchKind.X86_64 })
        {
            using var m = Machines.Boot(arch, 64);
            Assert.Equal(cache, m.KmallocCache(size, Gfp.Kernel)!.Name);
        }
    }

    [Fact]
    public void Cache_types_follow_the_gfp_flags()
    {
        using var x = Machines.X64(64);
        Assert.Equal("kmalloc-rcl-64", x.KmallocCache(64, Gfp.Kernel | Gfp.Reclaimable)!.Name);
        Assert.Equal("dma-kmalloc-64", x.KmallocCache(64, Gfp.Kernel | Gfp.Dma)!.Name);
        Assert.Equal("kmalloc-cg-64", x.KmallocCache(64, Gfp.KernelAccount)!.Name);
        Assert.Equal("kmalloc-rcl-64", x.KmallocCache(64, Gfp.KernelAccount | Gfp.Reclaimable)!.Name);
        Assert.Equal("dma-kmalloc-64", x.KmallocCache(64, Gfp.KernelAccount | Gfp.Dma)!.Name);
        // i386 has no memcg: __GFP_ACCOUNT does not select a cache type, and there are no kmalloc-cg caches.
        using var i = Machines.I386(64);
        Assert.Equal("kmalloc-64", i.KmallocCache(64, Gfp.KernelAccount)!.Name);
        Assert.DoesNotContain(i.KmemCaches, c => c.Name.StartsWith("kmalloc-cg-", StringComparison.Ordinal));
        Assert.Equal(13 * 4, x.KmemCaches.Count(c => c.IsKmalloc));
        Assert.Equal(13 * 3, i.KmemCaches.Count(c => c.IsKmalloc));
        // The flags each type's caches carry.
        Assert.True((x.FindKmemCache("kmalloc-rcl-8")!.Flags & SlabFlags.ReclaimAccount) != 0);
        Assert.True((x.FindKmemCache("dma-kmalloc-8")!.Flags & SlabFlags.CacheDma) != 0);
        Assert.True((x.FindKmemCache("kmalloc-cg-8")!.Flags & SlabFlags.Account) != 0);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Dma_objects_come_from_zone_dma_and_reclaimable_ones_are_accounted(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;
        ulong before = (ulong)m.NodeState(NodeStat.NrSlabReclaimable);
        ulong dma = m.Kmalloc(cpu, 100, Gfp.Kernel | Gfp.Dma);
        Assert.True(m.Pa(dma) < 16UL << 20);
        ulong rcl = m.Kmalloc(cpu, 100, Gfp.Kernel | Gfp.Reclaimable);
        Assert.Equal(before + 1, (ulong)m.NodeState(NodeStat.NrSlabReclaimable));
        // Reclaimable slabs are __GFP_RECLAIMABLE pages: MIGRATE_RECLAIMABLE pageblocks when grouping by mobility.
        var page = m.VirtToPage(rcl);
        Assert.True(m.MobilityGroupingDisabled || m.PageblockMigratetype(page.Pfn) == MigrateType.Reclaimable);
        m.Kfree(cpu, dma);
        m.Kfree(cpu, rcl);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kmalloc_zero_and_null_are_what_the_kernel_says(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        Assert.Equal(16UL, m.Kmalloc(cpu, 0, Gfp.Kernel));   // ZERO_SIZE_PTR
        var baseline = m.CheckConsistency().Total.Allocated;
        m.Kfree(cpu, 0);
        m.Kfree(cpu, 16);
        m.KfreeSensitive(cpu, 0);
        Assert.Equal(0UL, m.Ksize(cpu, 16));
        Assert.Equal(0UL, m.Ksize(cpu, 0));
        Assert.Equal(baseline, m.CheckConsistency().Total.Allocated);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Large_kmalloc_is_a_typed_compound_page_of_get_order(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;   // kmem_cache_init() first: it allocates slabs of its own
        long unreclaim = m.NodeState(NodeStat.NrSlabUnreclaimable);
        ulong p = m.Kmalloc(cpu, 8193, Gfp.Kernel);                // get_order(8193) = 2
        var d = m.VirtToPage(p).Descriptor;
        Assert.Equal(0UL, p & 0x3fff);                              // naturally aligned order-2 block
        Assert.Equal(PageBits.PgtyLargeKmalloc, d.PageType);
        Assert.True(d.IsHead);
        Assert.True(m.ReadPage(d.Pfn + 1).IsTail);
        Assert.Equal(unreclaim + 4, m.NodeState(NodeStat.NrSlabUnreclaimable));
        Assert.Equal(16384UL, m.Ksize(cpu, p));
        Assert.Null(m.VirtToCache(p));
        Assert.Equal(16384UL, m.KmallocBytes(8193, Gfp.Kernel));
        m.CheckConsistency();
        m.Kfree(cpu, p);
        Assert.Equal(unreclaim, m.NodeState(NodeStat.NrSlabUnreclaimable));
        Assert.NotEqual(PageBits.PgtyLargeKmalloc, m.VirtToPage(p).Descriptor.PageType);
        m.CheckConsistency();
        Assert.Throws<InvalidAllocationException>(() => m.Kmalloc(cpu, (4UL << 20) + 1, Gfp.Kernel));
    }

    [Fact]
    public void Slab_memory_never_comes_from_highmem()
    {
        using var m = Machines.I386(1024);
        Assert.True(m.TotalHighPages > 0);
        var cpu = m.GetCpu(0);
        var objs = new List<ulong>();
        for (int i = 0; i < 2000; i++)
            objs.Add(m.Kmalloc(cpu, (ulong)(i % 3000 + 1), Gfp.HighUser));   // __GFP_HIGHMEM is dropped (kmalloc_fix_flags)
        objs.Add(m.Kmalloc(cpu, 20000, Gfp.HighUser));
        foreach (ulong p in objs)
            Assert.True(m.VirtAddrValid(p) && m.Pa(p) >> 12 < m.MaxLowPfn);
        Assert.Contains(m.Log.Lines, l => l.StartsWith("Unexpected gfp: ", StringComparison.Ordinal) && l.EndsWith("Fix your code!", StringComparison.Ordinal));
        foreach (ulong p in objs)
            m.Kfree(cpu, p);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Krealloc_stays_in_place_when_it_fits_and_moves_with_the_contents_otherwise(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        ulong p = m.Kmalloc(cpu, 40, Gfp.Kernel);               // kmalloc-64
        m.ObjectBytes(p)[..40].Fill(0x5c);
        Assert.Equal(p, m.Krealloc(cpu, p, 64, Gfp.Kernel));     // grows inside its object
        Assert.Equal(p, m.Krealloc(cpu, p, 10, Gfp.Kernel | Gfp.Zero));
        Assert.All(m.ObjectBytes(p)[10..64].ToArray(), b => Assert.Equal(0, b));   // the spare part zeroed
        m.ObjectBytes(p)[..10].Fill(0x77);
        ulong q = m.Krealloc(cpu, p, 100, Gfp.Kernel);
        Assert.NotEqual(p, q);
        Assert.Equal("kmalloc-128", m.VirtToCache(q)!.Name);
        Assert.All(m.ObjectBytes(q)[..10].ToArray(), b => Assert.Equal(0x77, b));
        Assert.False(m.KmemObjInfo(p)!.Allocated);                // the old object was freed
        ulong big = m.Krealloc(cpu, q, 20000, Gfp.Kernel);       // to the page allocator
        Assert.Equal(0x77, m.ObjectBytes(big)[9]);
        Assert.Equal(16UL, m.Krealloc(cpu, big, 0, Gfp.Kernel)); // size 0 frees
        ulong fresh = m.Krealloc(cpu, 0, 30, Gfp.Kernel);        // NULL allocates
        Assert.Equal("kmalloc-32", m.VirtToCache(fresh)!.Name);
        m.Kfree(cpu, fresh);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kzalloc_kcalloc_kmemdup_kstrdup_and_kfree_sensitive(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        // Dirty an object, free it, get it back zeroed.
        ulong d = m.Kmalloc(cpu, 64, Gfp.Kernel);
        m.ObjectBytes(d).Fill(0xee);
        m.Kfree(cpu, d);
        ulong z = m.Kzalloc(cpu, 64, Gfp.Kernel);
        Assert.Equal(d, z);                                      // LIFO: the same object
        Assert.All(m.ObjectBytes(z).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(0UL, m.Kcalloc(cpu, ulong.MaxValue / 2, 4, Gfp.Kernel));   // overflow: NULL
        ulong arr = m.Kcalloc(cpu, 10, 12, Gfp.Kernel);
        Assert.Equal("kmalloc-128", m.VirtToCache(arr)!.Name);
        ulong s = m.Kstrdup(cpu, "hello", Gfp.Kernel);
        Assert.Equal("hello\0"u8.ToArray(), m.ObjectBytes(s)[..6].ToArray());
        ulong dup = m.Kmemdup(cpu, s, 6, Gfp.Kernel);
        Assert.Equal("hello\0"u8.ToArray(), m.ObjectBytes(dup)[..6].ToArray());
        Assert.Equal(0UL, m.Kstrdup(cpu, null, Gfp.Kernel));
        // kfree_sensitive() wipes ksize() bytes before the free (the free pointer then lands in the middle, at 32).
        ulong secret = m.Kmalloc(cpu, 64, Gfp.Kernel);
        m.ObjectBytes(secret).Fill(0xaa);
        m.KfreeSensitive(cpu, secret);
        Assert.All(m.ObjectBytes(secret)[..32].ToArray(), b => Assert.Equal(0, b));
        Assert.All(m.ObjectBytes(secret)[40..].ToArray(), b => Assert.Equal(0, b));
        foreach (ulong p in new[] { z, arr, s, dup })
            m.Kfree(cpu, p);
        Assert.Throws<VirtualAddressException>(() => m.Kmemdup(cpu, 0x1234, 8, Gfp.Kernel));
        m.CheckConsistency();
    }

    [Fact]
    public void Object_bytes_are_bounded_by_the_object()
    {
        using var m = Machines.X64(64);
        ulong p = m.Kmalloc(100, Gfp.Kernel);
        Assert.Equal(128, m.ObjectBytes(p).Length);
        Assert.Equal(128 - 28, m.ObjectBytes(p + 28).Length);
        Assert.Throws<VirtualAddressException>(() => m.ObjectBytes(m.PageOffset + 0x1000));   // not a slab object
        m.Kfree(p);
    }
}
