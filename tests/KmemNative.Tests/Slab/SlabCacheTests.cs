using System.Buffers.Binary;
using CsCheck;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>Slab caches: geometry (calculate_sizes/calculate_order), object placement, lifecycle, accounting.</summary>
public class SlabCacheTests
{
    private static (int Order, int Objects) Geometry(Machine m, string name)
    {
        var s = m.FindKmemCache(name)!;
        return (s.Order, s.ObjectsPerSlab);
    }

    [Fact]
    public void Kmalloc_orders_follow_calculate_order_with_the_present_cpu_count()
    {
        // 8 CPUs: min_objects = 4 * (fls(8) + 1) = 20 (the fact sheet's table).
        using (var m = Machines.X64(64, cpus: 8))
        {
            (string, int, int)[] table =
            [
                ("kmalloc-8", 0, 512), ("kmalloc-16", 0, 256), ("kmalloc-32", 0, 128), ("kmalloc-64", 0, 64), ("kmalloc-96", 0, 42),
                ("kmalloc-128", 0, 32), ("kmalloc-192", 0, 21), ("kmalloc-256", 1, 32), ("kmalloc-512", 2, 32), ("kmalloc-1k", 3, 32),
                ("kmalloc-2k", 3, 16), ("kmalloc-4k", 3, 8), ("kmalloc-8k", 3, 4),
            ];
            foreach (var (name, order, objects) in table)
                Assert.Equal((name, order, objects), (name, Geometry(m, name).Order, Geometry(m, name).Objects));
        }
        // 2 CPUs (the traced machine): min_objects = 12, so kmalloc-256 fits 16 in one page.
        using (var m = Machines.X64(64, cpus: 2))
        {
            Assert.Equal((0, 16), Geometry(m, "kmalloc-256"));
            Assert.Equal((1, 16), Geometry(m, "kmalloc-512"));
            Assert.Equal((3, 16), Geometry(m, "kmalloc-2k"));
        }
        // One CPU: min_objects = 8.
        using (var m = Machines.I386(64, cpus: 1))
            Assert.Equal((0, 8), Geometry(m, "kmalloc-512"));
    }

    [Fact]
    public void Kmalloc_and_boot_cache_geometry_matches_the_real_slabinfo_of_a_4_cpu_machine()
    {
        // The reference machine's kmalloc lines (objsize, objperslab, pagesperslab) are those of 4..7 present CPUs.
        using var m = Machines.X64(128, cpus: 4);
        var ours = m.Proc.Slabinfo().Split('\n').Skip(2).Where(l => l.Length > 0)
            .ToDictionary(l => l.Split(' ')[0], Columns);
        var real = File.ReadAllLines(Machines.DataFile("proc-6.18", "slabinfo")).Skip(2)
            .Where(l => l.StartsWith("kmalloc-", StringComparison.Ordinal) || l.StartsWith("dma-kmalloc-", StringComparison.Ordinal) || l.StartsWith("kmem_cache", StringComparison.Ordinal));
        int compared = 0;
        foreach (var line in real)
        {
            string name = line.Split(' ')[0];
            Assert.Equal((name, Columns(line)), (name, ours[name]));
            compared++;
        }
        Assert.Equal(54, compared);   // 13 sizes x 4 types, kmem_cache and kmem_cache_node
    }

    private static (int ObjSize, int PerSlab, int Pages) Columns(string line)
    {
        var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (int.Parse(f[3]), int.Parse(f[4]), int.Parse(f[5]));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Free_pointer_offset_is_in_the_middle_unless_the_object_must_stay_intact(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        Assert.Equal(32, m.FindKmemCache("kmalloc-64")!.Offset);
        Assert.Equal(128, m.FindKmemCache("kmalloc-256")!.Offset);
        Assert.Equal(48, m.FindKmemCache("kmalloc-96")!.Offset);
        int ptr = arch == ArchKind.X86_64 ? 8 : 4;
        Assert.Equal(ptr == 8 ? 0 : 4, m.FindKmemCache("kmalloc-8")!.Offset);   // ALIGN_DOWN(8 / 2, sizeof(void *))
        // Poisoning, a constructor or RCU move the free pointer after the (word-aligned) object.
        var poison = m.KmemCacheCreate("fp_poison", 60, 0, SlabFlags.Poison)!;
        Assert.Equal(ptr == 8 ? 64 : 60, poison.Offset);     // ALIGN(object_size, sizeof(void *))
        Assert.Equal(ptr == 8 ? 72 : 64, poison.Size);       // plus the pointer, aligned to 8
        var ctor = m.KmemCacheCreate("fp_ctor", 64, 0, SlabFlags.None, _ => { })!;
        Assert.Equal(64, ctor.Offset);
        var rcu = m.KmemCacheCreate("fp_rcu", 64, 0, SlabFlags.TypesafeByRcu)!;
        Assert.Equal(64, rcu.Offset);
        Assert.True(rcu.Offset >= rcu.Inuse);
    }

    [Theory]
    [InlineData(8u, 8)]
    [InlineData(20u, 32)]
    [InlineData(33u, 64)]
    [InlineData(100u, 64)]
    public void Hwcache_align_halves_the_cache_line_while_the_object_fits(uint size, int align)
    {
        using var m = Machines.X64(64);
        var s = m.KmemCacheCreate("hw", size, 0, SlabFlags.HwcacheAlign)!;
        Assert.Equal(align, s.Align);
        Assert.Equal(0, s.Size % align);
    }

    [Fact]
    public void Red_zone_layout_of_the_kunit_cache()
    {
        // TestSlub_RZ_alloc: 64-byte objects with SLAB_RED_ZONE only.
        using var m = Machines.X64(64);
        var s = m.KmemCacheCreate("rz", 64, 0, SlabFlags.RedZone | SlabFlags.NoUserFlags)!;
        Assert.Equal(72, s.Inuse);         // a word of right red zone after the object
        Assert.Equal(8, s.RedLeftPad);
        Assert.Equal(32, s.Offset);        // still in the middle
        Assert.Equal(88, s.Size);          // 8 left + 64 + 8 right + 8 padding
    }

    /// <summary>
    /// Property: after any sequence of allocations and frees (on several CPUs) every object is aligned, inside
    /// its slab, disjoint from every other live object, and the consistency checks hold; freeing everything and
    /// destroying the cache gives every page back.
    /// </summary>
    [Fact]
    public void Random_alloc_free_sequences_keep_objects_aligned_disjoint_and_accounted()
    {
        Gen.Select(Gen.Int[1, 600], Gen.Int[0, 3], Gen.Int[0, 1].Array[50, 400], Gen.Int[0, 1])
            .Sample((size, alignShift, ops, archPick) =>
            {
                var arch = archPick == 0 ? ArchKind.I386 : ArchKind.X86_64;
                using var m = Machines.Boot(arch, 32, cpus: 2);
                var cpu0 = m.GetCpu(0);
                uint align = alignShift == 0 ? 0 : 8u << alignShift;
                var s = m.KmemCacheCreate(cpu0, "prop", (uint)size, align)!;
                // The cache itself (struct kmem_cache, node, name) may have needed slabs of the boot caches.
                long baseline = m.CheckConsistency().Total.Allocated;
                var live = new List<ulong>();
                int step = 0;
                foreach (int op in ops)
                {
                    step++;
                    if (op == 0 || live.Count == 0)
                    {
                        ulong o = m.KmemCacheAlloc(cpu0, s, Gfp.Kernel);
                        if (align != 0 && o % align != 0)
                            throw new InvalidOperationException($"object 0x{o:x} not aligned to {align}");
                        live.Add(o);
                    }
                    else
                    {
                        int i = step * 7919 % live.Count;
                        m.KmemCacheFree(cpu0, s, live[i]);
                        live.RemoveAt(i);
                    }
                }
                var sorted = live.Order().ToList();
                for (int i = 1; i < sorted.Count; i++)
                    if (sorted[i] - sorted[i - 1] < (ulong)s.ObjectSize)
                        throw new InvalidOperationException($"objects 0x{sorted[i - 1]:x} and 0x{sorted[i]:x} overlap");
                foreach (ulong o in live)
                    if (m.KmemObjInfo(o) is not { Allocated: true } info || info.ObjectStart != o || info.Cache != s)
                        throw new InvalidOperationException($"0x{o:x} is not an allocated object start of the cache");
                var report = m.CheckSlabConsistency();
                var state = m.KmemCacheState(s);
                if (state.Allocated != live.Count)
                    throw new InvalidOperationException($"{state.Allocated} allocated objects counted, {live.Count} live");
                m.CheckConsistency();
                foreach (ulong o in live)
                    m.KmemCacheFree(cpu0, s, o);
                m.KmemCacheDestroy(cpu0, s);
                if (m.CheckConsistency().Total.Allocated != baseline)
                    throw new InvalidOperationException("pages were not returned to the buddy allocator");
                _ = report;
            }, iter: 40);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Empty_slabs_beyond_min_partial_go_back_to_the_page_allocator(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;
        long baseline = m.CheckConsistency().Total.Allocated;
        var s = m.KmemCacheCreate(cpu, "churn", 512)!;           // 8 objects per order-0 slab...
        long afterCreate = m.CheckConsistency().Total.Allocated;
        int perSlab = s.ObjectsPerSlab;
        var objs = new List<ulong>();
        for (int i = 0; i < perSlab * 20; i++)
            objs.Add(m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        Assert.Equal(20, m.Slabinfo(s).NumSlabs);
        foreach (ulong o in objs)
            m.KmemCacheFree(cpu, s, o);
        // The CPU slab stays; a slab that empties while the node already lists min_partial slabs (itself
        // included) is freed, so min_partial - 1 empty slabs stay on the partial list.
        var info = m.Slabinfo(s);
        Assert.Equal(1 + s.MinPartial - 1, info.NumSlabs);
        Assert.Equal(0, info.ActiveObjs - s.ObjectsPerSlab);     // only the CPU slab's objects count as active
        m.CheckConsistency();
        // kmem_cache_shrink() frees every empty slab, the CPU slab included.
        Assert.Equal(0, m.KmemCacheShrink(cpu, s));
        Assert.Equal(0, m.Slabinfo(s).NumSlabs);
        Assert.Equal(afterCreate, m.CheckConsistency().Total.Allocated);
        m.KmemCacheDestroy(cpu, s);
        Assert.Equal(afterCreate, m.CheckConsistency().Total.Allocated);   // the boot caches keep their (partial) slabs
        Assert.True(afterCreate >= baseline);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Slab_pages_are_counted_in_the_node_and_in_meminfo(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var rcl = m.KmemCacheCreate(cpu, "reclaimable", 200, 0, SlabFlags.ReclaimAccount)!;
        var plain = m.KmemCacheCreate(cpu, "plain", 200)!;
        var a = new List<ulong>();
        for (int i = 0; i < 100; i++)
        {
            a.Add(m.KmemCacheAlloc(cpu, rcl, Gfp.Kernel));
            a.Add(m.KmemCacheAlloc(cpu, plain, Gfp.Kernel));
        }
        ulong big = m.Kmalloc(cpu, 100_000, Gfp.Kernel);
        long rclPages = m.Slabinfo(rcl).NumSlabs << rcl.Order;
        var report = m.CheckSlabConsistency();        // the node counters equal the pages found in mem_map
        Assert.Equal(report.SlabPages + report.LargeKmallocPages, m.NodeState(NodeStat.NrSlabReclaimable) + m.NodeState(NodeStat.NrSlabUnreclaimable));
        Assert.True(m.NodeState(NodeStat.NrSlabReclaimable) >= rclPages);
        Assert.Equal(32, report.LargeKmallocPages);
        var meminfo = m.Proc.Meminfo().Split('\n').Where(l => l.Length > 0).ToDictionary(l => l.Split(':')[0], l => long.Parse(l.Split(':')[1].Trim().Split(' ')[0]));
        Assert.Equal(m.NodeState(NodeStat.NrSlabReclaimable) * 4, meminfo["SReclaimable"]);
        Assert.Equal(m.NodeState(NodeStat.NrSlabUnreclaimable) * 4, meminfo["SUnreclaim"]);
        Assert.Equal(meminfo["SReclaimable"] + meminfo["SUnreclaim"], meminfo["Slab"]);
        foreach (ulong o in a)
            m.KmemCacheFree(cpu, m.VirtToCache(o)!, o);
        m.Kfree(cpu, big);
        m.KmemCacheDestroy(cpu, rcl);
        m.KmemCacheDestroy(cpu, plain);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Constructor_runs_once_per_object_when_its_slab_is_made(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var seen = new List<ulong>();
        var s = m.KmemCacheCreate(cpu, "ctor", 48, 0, SlabFlags.None, obj =>
        {
            seen.Add(obj);
            m.ObjectBytes(obj)[..4].Fill(0x42);
        })!;
        ulong o = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        Assert.Equal(s.ObjectsPerSlab, seen.Count);
        Assert.Contains(o, seen);
        Assert.Equal(0x42, m.ObjectBytes(o)[0]);
        m.KmemCacheFree(cpu, s, o);
        Assert.Equal(0x42, m.ObjectBytes(o)[0]);               // the free pointer lives after the object
        Assert.Equal(s.ObjectsPerSlab, seen.Count);            // no constructor on reuse
        m.KmemCacheDestroy(cpu, s);
        // A constructor that throws leaves nothing behind.
        var bad = m.KmemCacheCreate(cpu, "ctor_throws", 48, 0, SlabFlags.None, _ => throw new InvalidOperationException("boom"))!;
        long before = m.CheckConsistency().Total.Allocated;
        Assert.Throws<InvalidOperationException>(() => m.KmemCacheAlloc(cpu, bad, Gfp.Kernel));
        Assert.Equal(before, m.CheckConsistency().Total.Allocated);
        m.KmemCacheDestroy(cpu, bad);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Zalloc_and_bulk_allocation(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "bulk", 64)!;
        ulong o = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.ObjectBytes(o).Fill(0xff);
        m.KmemCacheFree(cpu, s, o);
        ulong z = m.KmemCacheZalloc(cpu, s, Gfp.Kernel);
        Assert.Equal(o, z);
        Assert.All(m.ObjectBytes(z).ToArray(), b => Assert.Equal(0, b));
        var objs = new ulong[200];
        Assert.Equal(200, m.KmemCacheAllocBulk(cpu, s, Gfp.Kernel, objs));
        Assert.Equal(200, objs.Distinct().Count());
        Assert.Equal(201, m.KmemCacheState(s).Allocated);
        m.KmemCacheFreeBulk(cpu, s, objs);
        m.KmemCacheFree(cpu, s, z);
        Assert.Equal(0, m.KmemCacheState(s).Allocated);
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Fact]
    public void Bad_requests_are_refused_and_slab_panic_panics()
    {
        using var m = Machines.X64(64);
        var before = Machines.FreeAreas(m);
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("", 64));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("has space", 64));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("zero", 0));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("huge", (4u << 20) + 1));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("align", 64, 24));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("flags", 64, 0, SlabFlags.ObjectPoison));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheCreate("kmalloc-64", 64));   // -EEXIST
        var e = Assert.Throws<KernelPanicException>(() => m.KmemCacheCreate("kmalloc-64", 64, 0, SlabFlags.Panic));
        Assert.Equal("Kernel panic - not syncing: kmem_cache_create: Failed to create slab 'kmalloc-64'. Error -17", e.Message);
        Assert.Contains(m.Log.Lines, l => l == "kmem_cache_create(zero) failed with error -22");
        var s = m.KmemCacheCreate("once", 64)!;
        m.KmemCacheDestroy(s);
        Assert.True(s.IsDestroyed);
        Assert.Throws<SlabCacheException>(() => m.KmemCacheAlloc(s, Gfp.Kernel));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheDestroy(s));
        Assert.Throws<SlabCacheException>(() => m.KmemCacheDestroy(m.FindKmemCache("kmalloc-64")!));
        m.CheckConsistency();
        _ = before;
    }

    [Fact]
    public void Hardened_free_pointers_are_stored_encoded()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 64UL << 20, SlabFreelistHardened = true });
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "hardened", 64)!;
        ulong a = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        ulong b = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, b);
        m.KmemCacheFree(cpu, s, a);                     // a's free pointer now names b
        ulong random = m.Memory.ReadUInt64(m.Pa(s.Va) + 184);
        Assert.NotEqual(0UL, random);
        ulong addr = a + (ulong)s.Offset;
        ulong stored = m.Memory.ReadUInt64(m.Pa(addr));
        Assert.Equal(b, stored ^ random ^ BinaryPrimitives.ReverseEndianness(addr));
        Assert.Equal(a, m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        Assert.Equal(b, m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        m.KmemCacheFree(cpu, s, a);
        m.Kfree(cpu, b);
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Fact]
    public void Slab_allocator_starts_on_first_use_and_leaves_the_page_allocator_untouched_before()
    {
        using var m = Machines.X64(64);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
        Assert.DoesNotContain(m.Log.Lines, l => l.StartsWith("SLUB:", StringComparison.Ordinal));
        ulong p = m.Kmalloc(10, Gfp.Kernel);
        Assert.Contains(m.Log.Lines, l => l == "SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs=2, Nodes=1");
        Assert.True(m.CheckConsistency().Total.Allocated > 0);
        m.Kfree(p);
    }
}
