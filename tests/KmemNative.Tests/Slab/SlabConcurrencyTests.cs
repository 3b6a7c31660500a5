using System.Collections.Concurrent;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>Several host threads, each its own emulated CPU, allocating and freeing — locally and across CPUs.</summary>
public class SlabConcurrencyTests
{
    private const int Threads = 4;

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Threads_allocate_and_free_on_their_cpus_and_across_them(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 128, cpus: Threads);
        var boot = m.GetCpu(0);
        var shared = m.KmemCacheCreate(boot, "shared", 96)!;
        m.ReleaseCpu(boot);
        long baseline = m.CheckConsistency().Total.Allocated;

        // Each thread hands half of its objects to the next thread, which frees them on its own CPU:
        // remote frees into slabs that may be another CPU's frozen CPU slab at that very moment.
        var mailboxes = Enumerable.Range(0, Threads).Select(_ => new BlockingCollection<ulong>()).ToArray();
        var errors = new ConcurrentQueue<Exception>();
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(id => new Thread(() =>
        {
            try
            {
                var cpu = m.GetCpu(id);
                start.SignalAndWait();
                var mine = new List<ulong>();
                var rng = new Random(id * 31 + 7);
                for (int round = 0; round < 40; round++)
                {
                    for (int i = 0; i < 300; i++)
                    {
                        ulong o = rng.Next(3) == 0 ? m.Kmalloc(cpu, (ulong)rng.Next(1, 700), Gfp.Kernel) : m.KmemCacheAlloc(cpu, shared, Gfp.Kernel);
                        if (o == 0)
                            throw new InvalidOperationException("allocation failed");
                        // Stamp the object: another thread's allocation overlapping it would overwrite the stamp.
                        m.ObjectBytes(o)[..8].Fill((byte)(id + 1));
                        mine.Add(o);
                    }
                    for (int i = mine.Count - 1; i >= 0; i--)
                    {
                        ulong o = mine[i];
                        if (m.ObjectBytes(o)[0] != id + 1)
                            throw new InvalidOperationException($"object 0x{o:x} of cpu{id} was handed to someone else");
                        if (i % 2 == 0)
                            mailboxes[(id + 1) % Threads].Add(o);
                        else
                            Free(m, cpu, o);
                    }
                    mine.Clear();
                    while (mailboxes[id].TryTake(out ulong o))
                        Free(m, cpu, o);
                }
                start.SignalAndWait();
                while (mailboxes[id].TryTake(out ulong left))
                    Free(m, cpu, left);
                m.ReleaseCpu(cpu);
            }
            catch (Exception e)
            {
                errors.Enqueue(e);
                start.RemoveParticipant();
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);

        // Quiescent: every object of every slab is accounted for, the counters agree, nothing is allocated.
        var cpu0 = m.GetCpu(0);
        m.CheckConsistency();
        Assert.Equal(0, m.KmemCacheState(shared).Allocated);
        m.KmemCacheDestroy(cpu0, shared);                  // also frees its kstrdup()ed name
        m.CheckConsistency();
        foreach (var s in m.KmemCaches.Where(c => c.IsKmalloc))
            Assert.Equal((s.Name, 0L), (s.Name, m.KmemCacheState(s).Allocated));
        _ = baseline;
    }

    private static void Free(Machine m, Cpu cpu, ulong o)
    {
        var s = m.VirtToCache(o)!;
        if (s.IsKmalloc)
            m.Kfree(cpu, o);
        else
            m.KmemCacheFree(cpu, s, o);
    }

    [Fact]
    public void A_remote_free_goes_to_the_slab_not_to_the_other_cpus_freelist()
    {
        using var m = Machines.X64(64, cpus: 2);
        var s = m.KmemCacheCreate(m.GetCpu(0), "remote", 64)!;
        ulong obj = 0;
        var t = new Thread(() =>
        {
            var c1 = m.GetCpu(1);
            obj = m.KmemCacheAlloc(c1, s, Gfp.Kernel);   // cpu1's CPU slab
        });
        t.Start();
        t.Join();
        var cpu0 = m.GetCpu(0);
        var before = m.KmemCacheState(s);
        var slab = before.CpuSlabs[1].Slab!;
        Assert.Contains(slab.Objects, o => o.Address == obj && o.Allocated);
        m.KmemCacheFree(cpu0, s, obj);                    // cpu0 frees an object of cpu1's frozen slab
        var after = m.KmemCacheState(s);
        var cpu1Slab = after.CpuSlabs[1].Slab!;
        Assert.True(cpu1Slab.Frozen);
        // The object is on the slab's own freelist (struct slab.freelist, i.e. page->index), not on cpu1's lockless list.
        Assert.Equal(obj, m.ReadPage(m.VirtToPage(obj).Pfn).Index);
        Assert.Contains(cpu1Slab.Objects, o => o.Address == obj && !o.Allocated && o.CpuCache is null);
        Assert.Null(after.CpuSlabs[0].Slab);
        m.CheckConsistency();
    }
}
