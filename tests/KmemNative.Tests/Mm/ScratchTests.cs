using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using Xunit.Abstractions;

namespace KmemNative.Tests.Mm;

public class ScratchTests(ITestOutputHelper o)
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Smoke(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "hello");
        o.WriteLine(m.ReadPidFile(p.Pid, "maps"));
        var a = p.Mmap(cpu, 0, 0x10000, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
        o.WriteLine(a.ToString());
        var r = p.Touch(cpu, a.Value, 0x10000, MemoryAccess.Write);
        o.WriteLine(r.ToString());
        o.WriteLine(m.ReadPidFile(p.Pid, "maps"));
        o.WriteLine(m.ReadPidFile(p.Pid, "status"));
        p.Validate();
        var c = p.Fork(cpu);
        o.WriteLine(c.ToString());
        var child = m.FindProcess((int)c.Value)!;
        child.Validate();
        o.WriteLine(p.Vtop(a.Value));
        o.WriteLine(child.Vtop(a.Value));
        r = child.Touch(cpu, a.Value, 0x1000, MemoryAccess.Write, 7);
        o.WriteLine(r.ToString());
        o.WriteLine(child.Vtop(a.Value));
        o.WriteLine(m.ReadPidFile(child.Pid, "smaps"));
        child.Validate();
        p.Validate();
        child.Exit(cpu);
        p.Exit(cpu);
        m.CheckConsistency();
        o.WriteLine(m.Log.ToString());
    }
}
