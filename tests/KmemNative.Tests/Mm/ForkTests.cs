using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>fork(): shared read-only anonymous pages with raised refcount and mapcount, copy-on-write on either side.</summary>
public class ForkTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Fork_shares_pages_read_only_and_the_first_write_on_either_side_copies(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "parent");
        ulong a = p.MapAnon(cpu, 0x3000);
        for (ulong i = 0; i < 3; i++)
            p.Poke(cpu, a + i * 0x1000, 0x1000 + i);
        ulong[] frames = [.. Enumerable.Range(0, 3).Select(i => p.Pfn(m, a + (ulong)i * 0x1000))];
        Assert.All(frames, f => Assert.True(m.ReadPage(f).Test(PageFlag.Owner2))); // PG_anon_exclusive

        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.Equal(p.Pid, c.ParentPid);
        Assert.Equal(p.Mm.AnonPages, c.Mm.AnonPages);
        Assert.Equal(p.Mm.TotalVm, c.Mm.TotalVm);
        for (int i = 0; i < 3; i++)
        {
            ulong va = a + (ulong)i * 0x1000;
            Assert.Equal(frames[i], c.Pfn(m, va));
            Assert.Equal(0UL, p.Pte(va) & 2);                     // parent write-protected
            Assert.Equal(0UL, c.Pte(va) & 2);                     // child read-only
            Assert.Equal(0UL, c.Pte(va) & 0x20);                  // pte_mkold() in the child
            var page = m.ReadPage(frames[i]);
            Assert.Equal(2, page.Refcount);
            Assert.Equal(1u, page.PageTypeRaw);                   // _mapcount 1: two mappings
            Assert.False(page.Test(PageFlag.Owner2));
            Assert.Equal(0x1000 + (ulong)i, c.Peek(cpu, va));
        }
        // The child writes page 0: it gets a copy, the parent keeps the frame (now refcount 1, mapcount 1).
        c.Poke(cpu, a, 0xc0ffee);
        Assert.NotEqual(frames[0], c.Pfn(m, a));
        Assert.Equal(frames[0], p.Pfn(m, a));
        Assert.Equal(0x1000UL, p.Peek(cpu, a));
        Assert.Equal(0xc0ffeeUL, c.Peek(cpu, a));
        Assert.Equal((1, 0u), (m.ReadPage(frames[0]).Refcount, m.ReadPage(frames[0]).PageTypeRaw));
        // The copy belongs to the child's own anon_vma, a child of the parent's.
        var childVma = c.Vmas.Single(v => v.Start <= a && a < v.End);
        var parentVma = p.Vmas.Single(v => v.Start <= a && a < v.End);
        Assert.NotEqual(parentVma.AnonVma, childVma.AnonVma);
        Assert.Equal(childVma.AnonVma | 1, m.ReadPage(c.Pfn(m, a)).Mapping);
        Assert.Equal(parentVma.AnonVma | 1, m.ReadPage(frames[1]).Mapping);
        // The parent writes page 1: it copies too (the child still maps the original).
        long reuse = m.Event(VmEvent.Pgreuse);
        p.Poke(cpu, a + 0x1000, 0xbeef);
        Assert.NotEqual(frames[1], p.Pfn(m, a + 0x1000));
        Assert.Equal(frames[1], c.Pfn(m, a + 0x1000));
        Assert.Equal(0x1001UL, c.Peek(cpu, a + 0x1000));
        // The parent writes page 0, whose other mapping is gone: reused in place (refcount 1), no copy.
        p.Poke(cpu, a, 0x5555);
        Assert.Equal(frames[0], p.Pfn(m, a));
        Assert.Equal(reuse + 1, m.Event(VmEvent.Pgreuse));
        Assert.True(m.ReadPage(frames[0]).Test(PageFlag.Owner2));
        Assert.Equal(0xc0ffeeUL, c.Peek(cpu, a));
        p.Validate();
        c.Validate();
        // The child exits: the still-shared page 2 goes back to refcount 1 and the parent reuses it.
        c.Exit(cpu);
        Assert.Equal((1, 0u), (m.ReadPage(frames[2]).Refcount, m.ReadPage(frames[2]).PageTypeRaw));
        p.Poke(cpu, a + 0x2000, 9);
        Assert.Equal(frames[2], p.Pfn(m, a + 0x2000));
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Zero_page_mappings_file_mappings_and_fork_flags(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/h", 8192).Unwrap();
        var p = m.Spawn(cpu, "flags");
        ulong zero = p.MapAnon(cpu, 0x1000);
        p.Poke(cpu, zero + 0x800, 0);      // a write (even of 0) allocates a page and the VMA's anon_vma
        ulong readOnly = p.MapAnon(cpu, 0x1000, Prot.Read); // different flags: no merge with the VMA above
        p.Peek(cpu, readOnly);             // zero page only, no anon_vma: not copied
        ulong file = p.Mmap(cpu, 0, 8192, Prot.Read, MapFlags.Private, fd).Unwrap();
        p.Peek(cpu, file);
        ulong dontfork = p.MapAnon(cpu, 0x1000);
        p.Poke(cpu, dontfork, 1);
        Assert.True(p.Madvise(cpu, dontfork, 0x1000, Madvise.DontFork).IsOk);
        ulong wipe = p.MapAnon(cpu, 0x1000);
        p.Poke(cpu, wipe, 2);
        Assert.True(p.Madvise(cpu, wipe, 0x1000, Madvise.WipeOnFork).IsOk);
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.Equal(0UL, c.Pte(readOnly));                // VMA without anon_vma: page tables not copied
        Assert.Equal(0UL, c.Pte(file));                    // file VMA: refaulted by the child
        Assert.Equal(p.Peek(cpu, file), c.Peek(cpu, file));
        Assert.DoesNotContain(c.Vmas, v => v.Start == dontfork);
        Assert.Equal(SiCode.SEGV_MAPERR, c.Touch(cpu, dontfork, 1, MemoryAccess.Read).Signal!.Value.Code);
        Assert.Equal(0UL, c.Peek(cpu, wipe));              // VM_WIPEONFORK: fresh zero memory
        Assert.Equal(2UL, p.Peek(cpu, wipe));
        Assert.Equal(p.Mm.TotalVm - 1, c.Mm.TotalVm);     // the VM_DONTCOPY pages are not counted
        c.Validate();
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_grandchild_shares_through_the_anon_vma_chain_and_rmap_finds_every_mapping(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "rmap");
        ulong a = p.MapAnon(cpu, 0x1000);
        p.Poke(cpu, a, 1);
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        var g = m.FindProcess((int)c.Fork(cpu).Unwrap())!;
        ulong pfn = p.Pfn(m, a);
        Assert.Equal(pfn, g.Pfn(m, a));
        Assert.Equal((3, 2u), (m.ReadPage(pfn).Refcount, m.ReadPage(pfn).PageTypeRaw));
        Assert.Equal(new[] { (p.Pid, a), (c.Pid, a), (g.Pid, a) }.Order(), m.Rmap(pfn).Order());
        // The middle process exits: the page stays with the other two.
        c.Exit(cpu);
        Assert.Equal((2, 1u), (m.ReadPage(pfn).Refcount, m.ReadPage(pfn).PageTypeRaw));
        g.Poke(cpu, a, 3);
        Assert.Equal(1UL, p.Peek(cpu, a));
        p.Validate();
        g.Validate();
    }
}
