using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>Several processes faulting at the same time, each on its own host thread and CPU.</summary>
public class MmConcurrencyTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Processes_on_different_cpus_fault_fork_and_exit_concurrently(ArchKind arch)
    {
        const int Threads = 4;
        using var m = Machines.Boot(arch, arch == ArchKind.I386 ? 512UL : 256UL, Threads);
        var setup = m.GetCpu(0);
        m.Spawn(setup, "warmup").Exit(setup);
        var before = Snapshot(m);
        int fd = (int)m.FileCreate(setup, "/shared/lib", 64 << 10).Unwrap();
        m.ReleaseCpu(setup);
        var errors = new List<Exception>();
        var threads = Enumerable.Range(0, Threads).Select(id => new Thread(() =>
        {
            try
            {
                var cpu = m.GetCpu(id);
                for (int round = 0; round < 3; round++)
                {
                    var p = m.Spawn(cpu, $"worker{id}");
                    ulong len = 2UL << 20;
                    ulong a = p.MapAnon(cpu, len);
                    ulong lib = p.Mmap(cpu, 0, 64 << 10, Prot.Read, MapFlags.Private, fd).Unwrap();
                    for (ulong va = a; va < a + len; va += 0x1000)
                        p.Poke(cpu, va, va ^ (ulong)id);
                    Assert.True(p.Touch(cpu, lib, 64 << 10, MemoryAccess.Read).IsOk);
                    var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
                    for (ulong va = a; va < a + len; va += 0x2000)
                        c.Poke(cpu, va, ~va);
                    for (ulong va = a; va < a + len; va += 0x1000)
                    {
                        Assert.Equal(va ^ (ulong)id, p.Peek(cpu, va));
                        Assert.Equal(((va - a) / 0x1000) % 2 == 0 ? ~va : va ^ (ulong)id, c.Peek(cpu, va));
                    }
                    Assert.True(p.Munmap(cpu, a, len / 2).IsOk);
                    p.Validate();
                    c.Validate();
                    c.Exit(cpu);
                    p.Exit(cpu);
                }
                m.ReleaseCpu(cpu);
            }
            catch (Exception e)
            {
                lock (errors)
                    errors.Add(e);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
        Assert.Empty(m.Processes);
        var cpu0 = m.GetCpu(0);
        Assert.True(m.FileClose(cpu0, fd).IsOk);
        var after = Snapshot(m);
        Assert.Equal(before.Allocated, after.Allocated);
        Assert.Equal(before.Objects, after.Objects);
        Assert.Equal(before.Node, after.Node);
    }
}
