using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class ConcurrencyTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Threads_on_different_cpus_allocate_and_free_with_pages_conserved(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 4);
        var before = Machines.FreeAreas(m);
        var shared = new System.Collections.Concurrent.ConcurrentQueue<(Page, int)>();
        var threads = Enumerable.Range(0, 4).Select(id => new Thread(() =>
        {
            var cpu = m.GetCpu(id);
            var rng = new Random(id);
            var mine = new List<(Page, int)>();
            for (int i = 0; i < 20000; i++)
            {
                int op = rng.Next(10);
                if (op < 5 || mine.Count == 0)
                {
                    int order = rng.Next(10) < 8 ? 0 : rng.Next(1, 5);
                    if (m.AllocPages(cpu, Gfp.Kernel | Gfp.NoWarn, order) is { } p)
                        mine.Add((p, order));
                }
                else if (op < 8)
                {
                    int idx = rng.Next(mine.Count);
                    var (p, o) = mine[idx];
                    mine[idx] = mine[^1];
                    mine.RemoveAt(mine.Count - 1);
                    m.FreePages(cpu, p, o);
                }
                else
                {
                    // Hand a page to whichever thread frees next: cross-CPU frees.
                    int idx = rng.Next(mine.Count);
                    shared.Enqueue(mine[idx]);
                    mine[idx] = mine[^1];
                    mine.RemoveAt(mine.Count - 1);
                    if (shared.TryDequeue(out var other))
                        m.FreePages(cpu, other.Item1, other.Item2);
                }
            }
            foreach (var (p, o) in mine)
                m.FreePages(cpu, p, o);
            m.ReleaseCpu(cpu);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        while (shared.TryDequeue(out var left))
            m.FreePages(left.Item1, left.Item2);
        var mid = m.CheckConsistency();
        Assert.Equal(0, mid.Total.Allocated);
        m.DrainAllPages();
        Assert.Equal(0, m.CheckConsistency().Total.PerCpu);
        Assert.Equal(before, Machines.FreeAreas(m));
    }

    [Fact]
    public void A_cpu_held_by_another_live_thread_is_not_handed_out()
    {
        using var m = Machines.I386(16, cpus: 1);
        var held = new ManualResetEventSlim();
        var done = new ManualResetEventSlim();
        var t = new Thread(() =>
        {
            m.GetCpu(0);
            held.Set();
            done.Wait();
        });
        t.Start();
        held.Wait();
        Assert.Throws<CpuUnavailableException>(() => m.GetCpu(0));
        Assert.Throws<CpuUnavailableException>(() => m.ThisCpu);
        done.Set();
        t.Join();
        Assert.Equal(0, m.ThisCpu.Id);                               // the thread died: its CPU is free again
    }
}
