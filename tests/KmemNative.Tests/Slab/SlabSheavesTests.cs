using System.Collections.Concurrent;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>
/// The per-CPU sheaves of 6.18 (kmem_cache_args.sheaf_capacity): main and spare sheaf per CPU, the node's barn,
/// bulk refills and flushes, and the bulk API (detached freelists).
/// </summary>
public class SlabSheavesTests
{
    private static ulong ReadPtr(Machine m, ulong va, int ptr) =>
        ptr == 8 ? m.Memory.ReadUInt64(m.Pa(va)) : m.Memory.ReadUInt32(m.Pa(va));

    [Fact]
    public void Sheaf_structures_have_the_kernels_offsets()
    {
        var x = SlabLayouts.For<X86_64>();
        Assert.Equal([0, 8, 16, 24], new[] { "lock", "main", "spare", "rcu_free" }.Select(x.PercpuSheaves.Offset));
        Assert.Equal(32, x.PercpuSheaves.Size);
        Assert.Equal([0, 16, 24, 28, 32], new[] { "barn_list", "cache", "size", "node", "objects" }.Select(x.SlabSheaf.Offset));
        Assert.Equal(32 + 32 * 8, x.SheafBytes(32));
        Assert.Equal([0, 8, 24, 40, 44], new[] { "lock", "sheaves_full", "sheaves_empty", "nr_full", "nr_empty" }.Select(x.NodeBarn.Offset));
        Assert.Equal(48, x.NodeBarn.Size);

        var i = SlabLayouts.For<I386>();
        Assert.Equal([0, 4, 8, 12], new[] { "lock", "main", "spare", "rcu_free" }.Select(i.PercpuSheaves.Offset));
        Assert.Equal(16, i.PercpuSheaves.Size);
        Assert.Equal([0, 8, 12, 16, 20], new[] { "barn_list", "cache", "size", "node", "objects" }.Select(i.SlabSheaf.Offset));
        Assert.Equal([0, 4, 12, 20, 24], new[] { "lock", "sheaves_full", "sheaves_empty", "nr_full", "nr_empty" }.Select(i.NodeBarn.Offset));
        Assert.Equal(28, i.NodeBarn.Size);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_cache_with_sheaves_records_them_in_the_arena(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        int ptr = arch == ArchKind.X86_64 ? 8 : 4;
        var l = arch == ArchKind.X86_64 ? SlabLayouts.For<X86_64>() : SlabLayouts.For<I386>();
        var s = m.KmemCacheCreate("sheaved", 64, new KmemCacheArgs { SheafCapacity = 8 })!;
        Assert.Equal(8, s.SheafCapacity);
        ulong pa = m.Pa(s.Va);
        Assert.Equal(8u, m.Memory.ReadUInt32(pa + (ulong)l.KmemCache.Offset("sheaf_capacity")));
        ulong pcsOff = ReadPtr(m, s.Va + (ulong)l.KmemCache.Offset("cpu_sheaves"), ptr);
        Assert.True(pcsOff > 0 && pcsOff < (ulong)m.PercpuUnitBytes);
        // n->barn is a kmalloc'ed struct node_barn; each CPU's main sheaf a kzalloc'ed slab_sheaf naming the cache.
        ulong node = ReadPtr(m, s.Va + (ulong)l.KmemCache.Offset("node"), ptr);
        ulong barn = ReadPtr(m, node + (ulong)l.KmemCacheNode.Offset("barn"), ptr);
        Assert.True(m.VirtToCache(barn)!.IsKmalloc);
        var state = m.KmemCacheState(s);
        Assert.NotNull(state.Barn);
        Assert.Equal(barn, state.Barn!.Address);
        Assert.Equal(m.Cpus.Count, state.Sheaves!.Count);
        foreach (var pcs in state.Sheaves)
        {
            Assert.Equal(pcsOff, pcs.Address - m.GetCpu(pcs.Cpu).PercpuVa);
            Assert.Equal(pcs.Main, ReadPtr(m, pcs.Address + (ulong)l.PercpuSheaves.Offset("main"), ptr));
            Assert.Equal(s.Va, ReadPtr(m, pcs.Main + (ulong)l.SlabSheaf.Offset("cache"), ptr));
            Assert.Equal(0, pcs.MainSize);
            Assert.Equal(0ul, pcs.Spare);
        }
        Assert.Equal("8", m.SlabSysfs(s).Single(a => a.Name == "sheaf_capacity").Value);
        Assert.Equal("0", m.SlabSysfs(m.FindKmemCache("kmalloc-64")!).Single(a => a.Name == "sheaf_capacity").Value);
        m.KmemCacheDestroy(s);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Allocations_pop_and_frees_push_the_main_sheaf(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "sheaved", 64, new KmemCacheArgs { SheafCapacity = 8 })!;
        // The first allocation finds main empty and no full sheaf in the barn: a sheaf is refilled in bulk from
        // the slabs (the spare, none yet, so a new one) and installed; one object is popped.
        ulong a = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        var st = m.KmemCacheState(s);
        var pcs = st.Sheaves![0];
        Assert.Equal(7, pcs.MainSize);
        Assert.Single(st.Barn!.Empty);               // the old, empty main went to the barn
        m.KmemCacheFree(cpu, s, a);
        Assert.Equal(8, m.KmemCacheState(s).Sheaves![0].MainSize);
        // LIFO: the object freed last comes back first.
        Assert.Equal(a, m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        m.KmemCacheFree(cpu, s, a);
        // Objects cached in sheaves are in use for their slab (slabinfo counts them active) but free for crash.
        var obj = m.KmemCacheState(s).AllSlabs.SelectMany(x => x.Objects).Single(o => o.Address == a);
        Assert.False(obj.Allocated);
        Assert.Equal((0, "main"), (obj.CpuCache, obj.Sheaf));
        Assert.Equal(0, m.KmemCacheState(s).Allocated);
        Assert.Equal(m.Slabinfo(s).NumObjs, m.Slabinfo(s).ActiveObjs);   // one frozen CPU slab: all active
        var info = m.KmemObjInfo(a)!;
        Assert.Equal("main", info.Sheaf);
        m.CheckConsistency();
    }

    [Fact]
    public void Full_sheaves_go_to_the_barn_up_to_its_limit_then_flush_to_the_slabs()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "sheaved", 64, new KmemCacheArgs { SheafCapacity = 4 })!;
        var objs = new List<ulong>();
        for (int i = 0; i < 200; i++)
            objs.Add(m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        Assert.Equal(200, objs.Distinct().Count());
        foreach (ulong o in objs)
            m.KmemCacheFree(cpu, s, o);
        var st = m.KmemCacheState(s);
        // main and spare full, MAX_FULL_SHEAVES (10) full sheaves in the barn; the rest went back to slabs.
        Assert.Equal(4, st.Sheaves![0].MainSize);
        Assert.Equal(4, st.Sheaves[0].SpareSize);
        Assert.Equal(10, st.Barn!.Full.Count);
        Assert.Equal(0, st.Allocated);
        Assert.Equal(200 - 48, st.AllSlabs.Sum(x => x.Objects.Count(o => !o.Allocated && o.Sheaf is null)) - (int)(st.Total - 200));
        m.CheckConsistency();
        // Allocating again drains main, spare, then trades empty sheaves for the barn's full ones.
        for (int i = 0; i < 48; i++)
            Assert.NotEqual(0ul, m.KmemCacheAlloc(cpu, s, Gfp.Atomic));
        st = m.KmemCacheState(s);
        Assert.Empty(st.Barn!.Full);
        Assert.Equal(0, st.Sheaves![0].MainSize);
        // GFP_ATOMIC cannot refill a sheaf (no blocking): the next allocation comes straight from a slab.
        ulong fromSlab = m.KmemCacheAlloc(cpu, s, Gfp.Atomic);
        Assert.NotEqual(0ul, fromSlab);
        Assert.Equal(0, m.KmemCacheState(s).Sheaves![0].MainSize);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Shrink_and_destroy_flush_sheaves_and_barn_and_give_every_page_back(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var kmallocBefore = m.KmemCaches.Where(c => c.IsKmalloc).ToDictionary(c => c.Name, c => m.KmemCacheState(c).Allocated);
        var s = m.KmemCacheCreate(cpu, "sheaved", 200, new KmemCacheArgs { SheafCapacity = 16 })!;
        var objs = new ulong[500];
        for (int i = 0; i < objs.Length; i++)
            objs[i] = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        foreach (ulong o in objs)
            m.KmemCacheFree(cpu, s, o);
        Assert.NotEmpty(m.KmemCacheState(s).Barn!.Full);
        Assert.Equal(0, m.KmemCacheShrink(cpu, s));
        var st = m.KmemCacheState(s);
        Assert.Equal(0, st.NrSlabs);
        Assert.Empty(st.Barn!.Full);
        Assert.Empty(st.Barn.Empty);
        Assert.Equal(0ul, st.Sheaves![0].Spare);
        Assert.Equal(0, st.Sheaves[0].MainSize);
        m.CheckConsistency();
        for (int i = 0; i < 50; i++)
            objs[i] = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        for (int i = 0; i < 50; i++)
            m.KmemCacheFree(cpu, s, objs[i]);
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
        // The sheaves, the barn and the name were kmalloc objects: all freed.
        foreach (var c in m.KmemCaches.Where(c => c.IsKmalloc))
            Assert.Equal((c.Name, kmallocBefore[c.Name]), (c.Name, m.KmemCacheState(c).Allocated));
    }

    [Fact]
    public void Slab_debug_flags_make_the_kernel_ignore_the_sheaf_capacity()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 64UL << 20, Cpus = 2, SlabDebug = "FZPU,dbg" });
        var dbg = m.KmemCacheCreate("dbg", 64, new KmemCacheArgs { SheafCapacity = 16 })!;
        var plain = m.KmemCacheCreate("plain", 64, new KmemCacheArgs { SheafCapacity = 16 })!;
        Assert.Equal((0, 16), (dbg.SheafCapacity, dbg.RequestedSheafCapacity));
        Assert.Equal(16, plain.SheafCapacity);
        Assert.Null(m.KmemCacheState(dbg).Barn);
        ulong o = m.KmemCacheAlloc(dbg, Gfp.Kernel);
        m.KmemCacheFree(dbg, o);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(dbg, o));
        Assert.Equal(SlabBug.ObjectAlreadyFree, e.Reports[0].Bug);
        // slab_debug at run time re-lays out empty caches: sheaves go away with the flags and come back without.
        m.SlabDebug("FZPU,plain");
        Assert.Equal(0, plain.SheafCapacity);
        Assert.Null(m.KmemCacheState(plain).Barn);
        m.SlabDebug("-");
        Assert.Equal(16, plain.SheafCapacity);
        Assert.NotNull(m.KmemCacheState(plain).Barn);
        ulong p = m.KmemCacheAlloc(plain, Gfp.Kernel);
        m.KmemCacheFree(plain, p);
        m.CheckConsistency();
    }

    [Fact]
    public void Bad_frees_of_a_sheaf_cache_are_reported()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "sheaved", 64, new KmemCacheArgs { SheafCapacity = 8 })!;
        ulong a = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, a);
        // The naive double free: the object on top of the main sheaf freed again.
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, a));
        Assert.Equal(SlabBug.ObjectAlreadyFree, e.Reports[0].Bug);
        // Another cache's object.
        ulong k = m.Kmalloc(cpu, 64, Gfp.Kernel);
        e = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, k));
        Assert.Equal(SlabBug.InvalidObjectPointer, e.Reports[0].Bug);
        Assert.Contains("Wrong slab cache", e.Reports[0].Report);
        m.Kfree(cpu, k);
        // A pointer into the middle of an object is taken by the sheaf (the kernel does not look either) and caught
        // when the sheaf is flushed to the slabs.
        ulong b = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, b + 8);
        Assert.Throws<ConsistencyException>(() => m.CheckConsistency());
        e = Assert.Throws<SlabBugException>(() => m.KmemCacheShrink(cpu, s));
        Assert.Equal(SlabBug.InvalidObjectPointer, e.Reports[0].Bug);
        m.KmemCacheFree(cpu, s, b);
        m.KmemCacheShrink(cpu, s);
        m.CheckConsistency();
    }

    [Fact]
    public void Objects_migrate_between_cpus_through_their_sheaves_and_the_barn()
    {
        using var m = Machines.X64(64, cpus: 2);
        var cpu0 = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu0, "sheaved", 128, new KmemCacheArgs { SheafCapacity = 8 })!;
        var objs = new ulong[40];
        for (int i = 0; i < objs.Length; i++)
            objs[i] = m.KmemCacheAlloc(cpu0, s, Gfp.Kernel);
        m.ReleaseCpu(cpu0);
        var t = new Thread(() =>
        {
            var cpu1 = m.GetCpu(1);
            foreach (ulong o in objs)
                m.KmemCacheFree(cpu1, s, o);      // into cpu1's sheaves, whatever slab each object is in
            m.ReleaseCpu(cpu1);
        });
        t.Start();
        t.Join();
        var st = m.KmemCacheState(s);
        Assert.Equal(8, st.Sheaves![1].MainSize);
        Assert.Contains(st.AllSlabs.SelectMany(x => x.Objects), o => o.CpuCache == 1 && o.Sheaf == "main");
        Assert.Contains(st.AllSlabs.SelectMany(x => x.Objects), o => o.CpuCache is null && o.Sheaf == "barn");
        m.CheckConsistency();
        // cpu0 picks up full sheaves cpu1 left in the barn.
        cpu0 = m.GetCpu(0);
        var again = new HashSet<ulong>();
        for (int i = 0; i < 16; i++)
            again.Add(m.KmemCacheAlloc(cpu0, s, Gfp.Kernel));
        Assert.Subset(objs.ToHashSet(), again);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Threads_share_a_sheaf_cache_consistently(ArchKind arch)
    {
        const int threads = 4;
        using var m = Machines.Boot(arch, 128, cpus: threads);
        var boot = m.GetCpu(0);
        var s = m.KmemCacheCreate(boot, "sheaved", 96, new KmemCacheArgs { SheafCapacity = 12 })!;
        m.ReleaseCpu(boot);
        var mailboxes = Enumerable.Range(0, threads).Select(_ => new BlockingCollection<ulong>()).ToArray();
        var errors = new ConcurrentQueue<Exception>();
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(id => new Thread(() =>
        {
            try
            {
                var cpu = m.GetCpu(id);
                start.SignalAndWait();
                var rng = new Random(id);
                var mine = new List<ulong>();
                Span<ulong> bulk = stackalloc ulong[10];
                for (int round = 0; round < 40; round++)
                {
                    for (int i = 0; i < 200; i++)
                    {
                        ulong o = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
                        m.ObjectBytes(o)[..8].Fill((byte)(id + 1));
                        mine.Add(o);
                    }
                    if (m.KmemCacheAllocBulk(cpu, s, Gfp.Kernel, bulk) != bulk.Length)
                        throw new InvalidOperationException("bulk allocation failed");
                    foreach (ulong o in bulk)
                    {
                        m.ObjectBytes(o)[..8].Fill((byte)(id + 1));
                        mine.Add(o);
                    }
                    foreach (ulong o in mine)
                        if (m.ObjectBytes(o)[0] != id + 1)
                            throw new InvalidOperationException($"object 0x{o:x} of cpu{id} was handed to someone else");
                    int half = mine.Count / 2;
                    foreach (ulong o in mine.Take(half))
                        mailboxes[(id + 1) % threads].Add(o);
                    m.KmemCacheFreeBulk(cpu, s, mine.Skip(half).ToArray());
                    mine.Clear();
                    while (mailboxes[id].TryTake(out ulong o))
                        m.KmemCacheFree(cpu, s, o);
                    if (round % 10 == 9)
                        m.KmemCacheShrink(cpu, s);   // flushes the CPUs it can claim; asks the others
                }
                start.SignalAndWait();
                while (mailboxes[id].TryTake(out ulong left))
                    m.KmemCacheFree(cpu, s, left);
                m.ReleaseCpu(cpu);
            }
            catch (Exception e)
            {
                errors.Enqueue(e);
                start.RemoveParticipant();
            }
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.Empty(errors);
        m.CheckConsistency();
        Assert.Equal(0, m.KmemCacheState(s).Allocated);
        m.KmemCacheDestroy(m.GetCpu(0), s);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Bulk_free_links_the_objects_of_one_slab_and_frees_them_together(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "bulk", 256)!;
        var objs = new ulong[3 * s.ObjectsPerSlab];
        Assert.Equal(objs.Length, m.KmemCacheAllocBulk(cpu, s, Gfp.Kernel, objs));
        Assert.Equal(objs.Length, objs.Distinct().Count());
        // Flush the CPU slab so that all three slabs are off the CPU: every group is a remote free.
        m.KmemCacheShrink(cpu, s);
        var shuffled = objs.OrderBy(o => (o * 2654435761UL) & 0xffff).ToArray();
        m.KmemCacheFreeBulk(cpu, s, shuffled);
        var st = m.KmemCacheState(s);
        Assert.Equal(0, st.Allocated);
        m.CheckConsistency();
        // kfree_bulk(): objects of several caches and a large kmalloc allocation.
        var mixed = new[] { m.Kmalloc(cpu, 8, Gfp.Kernel), m.Kmalloc(cpu, 100, Gfp.Kernel), m.Kmalloc(cpu, 20000, Gfp.Kernel), m.KmemCacheAlloc(cpu, s, Gfp.Kernel), m.Kmalloc(cpu, 8, Gfp.Kernel) };
        long unreclaimable = m.NodeState(NodeStat.NrSlabUnreclaimable);
        m.KfreeBulk(cpu, mixed);
        Assert.True(m.NodeState(NodeStat.NrSlabUnreclaimable) < unreclaimable);
        Assert.All(mixed, o => Assert.False(m.KmemObjInfo(o)?.Allocated ?? false));
        m.CheckConsistency();
        // A bad pointer in a bulk free is reported; the good ones are freed.
        var some = new ulong[4];
        m.KmemCacheAllocBulk(cpu, s, Gfp.Kernel, some);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheFreeBulk(cpu, s, [some[0], some[1] + 1, some[2], some[3]]));
        Assert.Equal(SlabBug.InvalidObjectPointer, e.Reports[0].Bug);
        m.KmemCacheFree(cpu, s, some[1]);
        Assert.Equal(0, m.KmemCacheState(s).Allocated);
        m.CheckConsistency();
    }

    [Fact]
    public void Kmem_dash_S_shows_the_sheaves_and_the_barn()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "sheaved", 512, new KmemCacheArgs { SheafCapacity = 4 })!;
        var objs = new ulong[20];
        for (int i = 0; i < objs.Length; i++)
            objs[i] = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        for (int i = 0; i < 14; i++)
            m.KmemCacheFree(cpu, s, objs[i]);
        var st = m.KmemCacheState(s);
        Assert.Equal(6, st.Allocated);
        // Frees 1-4 fill main; 5-8 an empty sheaf from the barn (main becomes the spare); 9-12 and 13-14 go to
        // newly allocated sheaves (the barn has no empty one), each full main going to the barn.
        Assert.Equal(2, st.Sheaves![0].MainSize);
        Assert.Equal(4, st.Sheaves[0].SpareSize);
        Assert.Equal(2, st.Barn!.Full.Count);
        var inSheaves = st.AllSlabs.SelectMany(x => x.Objects).Where(o => o.Sheaf is not null).ToList();
        Assert.Equal(14, inSheaves.Count);
        Assert.Equal(2, inSheaves.Count(o => o.Sheaf == "main"));
        Assert.Equal(8, inSheaves.Count(o => o.Sheaf == "barn"));
        m.CheckConsistency();
    }

    [Fact]
    public void The_division_free_multiple_test_agrees_with_the_remainder()
    {
        using var m = Machines.X64(64);
        var rng = new Random(5);
        foreach (uint size in Enumerable.Range(1, 600).Select(i => (uint)i).Concat([768u, 1000u, 1024u, 4096u, 4104u, 8192u, 12345u, 4u << 20]))
        {
            var s = m.KmemCacheCreate($"div{size}", Math.Min(size, 1u << 22))!;
            for (int i = 0; i < 200; i++)
            {
                uint off = i < 100 ? (uint)(i * s.Size) + (uint)(i % 3) : (uint)rng.Next(0, 1 << 23);
                Assert.Equal(off % (uint)s.Size == 0, s.IsMultipleOfSize(off));
            }
            m.KmemCacheDestroy(s);
        }
    }
}
