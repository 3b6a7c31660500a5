using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;
using Xunit.Abstractions;

namespace KmemNative.Tests.Slab;

public class ScratchTests(ITestOutputHelper o)
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Smoke(KmemNative.Arch.ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        o.WriteLine(m.Proc.Read("meminfo").Split('\n').First(l => l.StartsWith("Slab")));
        foreach (var c in m.KmemCaches.Take(5)) o.WriteLine(c.ToString());
        var s = m.KmemCacheCreate(cpu, "foo", 64)!;
        var objs = new List<ulong>();
        for (int i = 0; i < 1000; i++) objs.Add(m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        m.CheckConsistency();
        foreach (var x in objs) m.KmemCacheFree(cpu, s, x);
        m.CheckConsistency();
        var k = new List<ulong>();
        for (int i = 1; i < 20000; i += 37) k.Add(m.Kmalloc(cpu, (ulong)i, Gfp.Kernel));
        m.CheckConsistency();
        foreach (var x in k) m.Kfree(cpu, x);
        m.CheckConsistency();
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
        o.WriteLine(m.KmemCacheState(m.FindKmemCache("kmalloc-64")!).Allocated.ToString());
    }
}
