using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>exit/mmput returns every page, page table, slab object and counter: the machine is back to its boot state.</summary>
public class TeardownTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void After_every_process_exits_the_allocator_and_slab_counters_are_back_to_the_state_before_spawning(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 128);
        var cpu = m.GetCpu(0);
        // The first spawn creates the caches (kmem_cache_create allocates once); the baseline is taken after it.
        m.Spawn(cpu, "warmup").Exit(cpu);
        var before = Snapshot(m);

        int fd = (int)m.FileCreate(cpu, "/data/file", 40_000).Unwrap();
        var p = m.Spawn(cpu, "parent");
        ulong anon = p.MapAnon(cpu, 1 << 20);
        Assert.True(p.Touch(cpu, anon, 1 << 20, MemoryAccess.Write).IsOk);
        ulong shared = p.Mmap(cpu, 0, 64 << 10, RW, MapFlags.Shared | MapFlags.Anonymous).Unwrap();
        Assert.True(p.Touch(cpu, shared, 64 << 10, MemoryAccess.Write).IsOk);
        ulong file = p.Mmap(cpu, 0, 40_000, RW, MapFlags.Shared, fd).Unwrap();
        Assert.True(p.Touch(cpu, file, 40_000, MemoryAccess.Write).IsOk);
        ulong priv = p.Mmap(cpu, 0, 40_000, RW, MapFlags.Private, fd).Unwrap();
        Assert.True(p.Touch(cpu, priv, 20_000, MemoryAccess.Read).IsOk);
        Assert.True(p.Touch(cpu, priv + 20_480, 8192, MemoryAccess.Write).IsOk);
        ulong brk = p.Brk(cpu, 0);
        Assert.Equal(brk + 0x30000, p.Brk(cpu, brk + 0x30000));
        Assert.True(p.Touch(cpu, brk, 0x30000, MemoryAccess.Write).IsOk);
        Assert.True(p.Touch(cpu, p.Mm.StartStack - 0x10000, 0x10000, MemoryAccess.Write).IsOk); // stack growth
        Assert.True(p.Mprotect(cpu, anon + 0x3000, 0x5000, Prot.Read).IsOk);
        Assert.True(p.Munmap(cpu, anon + 0x10000, 0x8000).IsOk);
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.True(c.Touch(cpu, anon, 0x3000, MemoryAccess.Write).IsOk);
        Assert.True(c.Touch(cpu, shared, 0x1000, MemoryAccess.Write).IsOk);
        var g = m.FindProcess((int)c.Fork(cpu).Unwrap())!;
        Assert.True(p.Touch(cpu, anon + 0x20000, 0x4000, MemoryAccess.Write).IsOk);
        p.Validate();
        c.Validate();
        g.Validate();
        Assert.True(m.FileClose(cpu, fd).IsOk);
        // Exit in an order where the shared pages outlive their first owner.
        p.Exit(cpu);
        g.Exit(cpu);
        c.Exit(cpu);

        Assert.Empty(m.Processes);
        Assert.Empty(m.Files);
        var after = Snapshot(m);
        Assert.Equal(before.Allocated, after.Allocated);
        Assert.Equal(before.Objects, after.Objects);
        Assert.Equal(before.Node, after.Node);
        Assert.DoesNotContain(m.Log.Lines, l => l.Contains("BUG", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Failing_syscalls_leak_nothing(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        m.Spawn(cpu, "warmup").Exit(cpu);
        var before = Snapshot(m);
        var p = m.Spawn(cpu, "bad");
        ulong a = p.MapAnon(cpu, 0x10000);
        ulong task = arch == ArchKind.X86_64 ? 0x7fff_ffff_f000UL : 0xc000_0000UL;
        Assert.Equal(Errno.EINVAL, p.Munmap(cpu, a + 1, 0x1000).Error);
        Assert.Equal(Errno.EINVAL, p.Munmap(cpu, a, 0).Error);
        Assert.Equal(Errno.EINVAL, p.Mprotect(cpu, a + 1, 0x1000, Prot.Read).Error);
        Assert.Equal(Errno.EEXIST, p.Mmap(cpu, a, 0x1000, RW, Anon | MapFlags.FixedNoReplace).Error);
        Assert.Equal(Errno.ENOMEM, p.Mmap(cpu, task - 0x1000, 0x2000, RW, Anon | MapFlags.Fixed).Error);
        Assert.Equal(Errno.EBADF, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Private, 42).Error);
        Assert.True(p.Munmap(cpu, a, 0x10000).IsOk);
        Assert.Equal(Signal.SIGSEGV, p.Touch(cpu, a, 1, MemoryAccess.Write).Signal!.Value.Signal);
        p.Exit(cpu);
        var after = Snapshot(m);
        Assert.Equal(before.Allocated, after.Allocated);
        Assert.Equal(before.Objects, after.Objects);
        Assert.Equal(before.Node, after.Node);
    }
}
