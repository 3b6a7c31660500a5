using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>mmap/munmap/mprotect/brk/madvise: placement, errors as the kernel returns them, splitting and merging.</summary>
public class MmapTests
{
    private static ulong TaskSize(ArchKind a) => a == ArchKind.X86_64 ? 0x7fff_ffff_f000UL : 0xc000_0000UL;

    [Theory]
    [InlineData(ArchKind.X86_64, 0x7fff_ffff_f000UL, 0x7fff_f7ff_f000UL, 0x40_0000UL)]
    [InlineData(ArchKind.I386, 0xc000_0000UL, 0xb800_0000UL, 0x0804_8000UL)]
    public void A_spawned_process_has_the_standard_layout(ArchKind arch, ulong taskSize, ulong mmapBase, ulong text)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "layout");
        var mm = p.Mm;
        Assert.Equal(taskSize, mm.TaskSize);
        // mmap_base = TASK_SIZE - max(128 MiB, RLIMIT_STACK + stack_guard_gap): the stack gap.
        Assert.Equal(mmapBase, mm.MmapBase);
        Assert.Equal(128UL << 20, taskSize - mmapBase);
        var v = p.Vmas;
        Assert.Equal(4, v.Count);
        Assert.Equal((text, text + 0x10000, "/usr/bin/layout"), (v[0].Start, v[0].End, v[0].Name));
        Assert.Equal(VmFlags.Read | VmFlags.Exec | VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec, v[0].Flags & ~VmFlags.SoftDirty);
        Assert.Equal((text + 0x10000, 16UL), (v[1].Start, v[1].Pgoff));   // data: file offset 0x10000
        Assert.Equal((text + 0x12000, text + 0x14000, ""), (v[2].Start, v[2].End, v[2].Name)); // bss
        Assert.Equal((text + 0x14000, text + 0x14000), (mm.StartBrk, mm.Brk));
        Assert.Equal((taskSize - 0x21000, taskSize, "[stack]"), (v[3].Start, v[3].End, v[3].Name));
        Assert.Equal((text, text + 0x10000, text + 0x10000, text + 0x12000), (mm.StartCode, mm.EndCode, mm.StartData, mm.EndData));
        // argv and envp live at the top of the stack, start_stack below them, 16-byte aligned.
        Assert.True(mm.ArgStart < mm.ArgEnd && mm.ArgEnd == mm.EnvStart && mm.EnvStart < mm.EnvEnd && mm.EnvEnd < taskSize);
        Assert.Equal(0UL, mm.StartStack % 16);
        Assert.True(mm.StartStack > v[3].Start && mm.StartStack < mm.ArgStart);
        var argv = new byte[mm.ArgEnd - mm.ArgStart];
        Assert.True(p.Read(cpu, mm.ArgStart, argv).IsOk);
        Assert.Equal("layout\0", System.Text.Encoding.ASCII.GetString(argv));
        Assert.Equal(1UL, p.Peek(cpu, mm.StartStack) & (arch == ArchKind.X86_64 ? ulong.MaxValue : 0xffff_ffffUL)); // argc
        // The kernel half of the pgd is shared with init_mm.
        var walk = m.WalkPageTables(m.PageOffset + 0x100000, p.AddressSpace);
        Assert.Equal(m.WalkPageTables(m.PageOffset + 0x100000).Physical, walk.Physical);
        // total_vm = every VMA; the split by kind as vm_stat_account() does it.
        Assert.Equal(v.Sum(x => (long)x.Pages), (long)mm.TotalVm);
        Assert.Equal(16UL, mm.ExecVm);
        Assert.Equal(33UL, mm.StackVm);
        Assert.Equal(4UL, mm.DataVm);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Mmap_places_top_down_below_mmap_base_and_honours_hints_and_fixed(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "mmap");
        ulong b = p.Mm.MmapBase;
        ulong a1 = p.MapAnon(cpu, 0x3000, Prot.Read);
        Assert.Equal(b - 0x3000, a1);
        ulong a2 = p.MapAnon(cpu, 0x1000, Prot.Read | Prot.Exec);
        Assert.Equal(a1 - 0x1000, a2);
        // A free hint is taken as is; an occupied one falls back to the search.
        ulong hint = 0x2000_0000;
        Assert.Equal(hint, p.MapAnon(cpu, 0x2000, Prot.Read, hint));
        Assert.Equal(a2 - 0x2000, p.MapAnon(cpu, 0x2000, Prot.Read, hint));
        // A hint below mmap_min_addr is raised to it (round_hint_to_min()).
        Assert.Equal(0x10000UL, p.MapAnon(cpu, 0x1000, Prot.Read, 0x1000));
        // MAP_FIXED replaces what is there; MAP_FIXED_NOREPLACE refuses with EEXIST.
        Assert.Equal(Errno.EEXIST, p.Mmap(cpu, hint + 0x1000, 0x1000, RW, Anon | MapFlags.FixedNoReplace).Error);
        Assert.Equal(hint + 0x1000, p.MapAnon(cpu, 0x1000, RW, hint + 0x1000, MapFlags.Fixed));
        var vmas = p.Vmas.Where(v => v.Start >= hint && v.End <= hint + 0x2000).ToList();
        Assert.Equal(2, vmas.Count);
        Assert.Equal(VmFlags.Write, vmas[1].Flags & VmFlags.Write);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Mmap_errors_are_the_kernels(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "err");
        ulong task = TaskSize(arch);
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0, 0, RW, Anon).Error);                                 // len 0
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0x2000_0001, 0x1000, RW, Anon | MapFlags.Fixed).Error);  // unaligned MAP_FIXED
        Assert.Equal(Errno.ENOMEM, p.Mmap(cpu, task - 0x1000, 0x2000, RW, Anon | MapFlags.Fixed).Error); // beyond TASK_SIZE
        Assert.Equal(Errno.ENOMEM, p.Mmap(cpu, 0, task + 0x1000, RW, Anon).Error);
        Assert.Equal(Errno.ENOMEM, p.Mmap(cpu, 0, ulong.MaxValue - 10, RW, Anon).Error);                 // PAGE_ALIGN overflows
        Assert.Equal(Errno.EPERM, p.Mmap(cpu, 0x1000, 0x1000, RW, Anon | MapFlags.Fixed).Error);         // below mmap_min_addr
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Anonymous).Error);                // neither shared nor private
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Shared | MapFlags.Anonymous | MapFlags.GrowsDown).Error);
        Assert.Equal(Errno.EBADF, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Private, 99).Error);
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0, 0x1000, RW, Anon, -1, 0x10).Error);                    // unaligned offset
        int fd = (int)m.FileCreate(cpu, "/f", 4096).Unwrap();
        Assert.Equal(Errno.EINVAL, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Private | MapFlags.GrowsDown, fd).Error);
        Assert.Equal(Errno.EOPNOTSUPP, p.Mmap(cpu, 0, 0x1000, RW, MapFlags.SharedValidate | MapFlags.Sync, fd).Error);
        Assert.Equal(4, p.Vmas.Count);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Adjacent_compatible_mappings_merge_and_munmap_splits(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "merge");
        int before = p.Vmas.Count;
        ulong a = p.MapAnon(cpu, 0x4000);
        ulong b = p.MapAnon(cpu, 0x4000);
        Assert.Equal(a - 0x4000, b);
        Assert.Equal(before + 1, p.Vmas.Count);        // one VMA [b, a + 0x4000)
        Assert.Single(p.Vmas, v => v.Start == b && v.End == a + 0x4000);
        // A hole in the middle splits it in two, map_count follows.
        Assert.True(p.Munmap(cpu, b + 0x2000, 0x3000).IsOk);
        Assert.Equal(before + 2, p.Vmas.Count);
        Assert.Equal(before + 2, p.Mm.MapCount);
        Assert.Single(p.Vmas, v => v.Start == b && v.End == b + 0x2000);
        Assert.Single(p.Vmas, v => v.Start == b + 0x5000 && v.End == a + 0x4000 && v.Pgoff == (b + 0x5000) >> 12);
        // Filling the hole with the same flags merges all three (case 1).
        Assert.Equal(b + 0x2000, p.MapAnon(cpu, 0x3000, RW, b + 0x2000, MapFlags.Fixed));
        Assert.Equal(before + 1, p.Vmas.Count);
        // Unmapping nothing succeeds; munmap errors are EINVAL.
        Assert.True(p.Munmap(cpu, 0x3000_0000, 0x1000).IsOk);
        Assert.Equal(Errno.EINVAL, p.Munmap(cpu, b + 1, 0x1000).Error);
        Assert.Equal(Errno.EINVAL, p.Munmap(cpu, b, 0).Error);
        Assert.Equal(Errno.EINVAL, p.Munmap(cpu, TaskSize(arch), 0x1000).Error);
        // The pages and page tables of an unmapped range are gone.
        Assert.True(p.Touch(cpu, b, 0x8000, MemoryAccess.Write).IsOk);
        long tables = p.AddressSpace.PageTablePages;
        Assert.True(p.Munmap(cpu, b, 0x8000).IsOk);
        Assert.Equal(0UL, p.Pte(b));
        Assert.True(p.AddressSpace.PageTablePages < tables);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Mprotect_splits_updates_ptes_flushes_and_merges_back(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "mprot");
        ulong a = p.MapAnon(cpu, 0x5000);
        Assert.True(p.Touch(cpu, a, 0x5000, MemoryAccess.Write).IsOk);
        int n = p.Vmas.Count;
        long dataVm = (long)p.Mm.DataVm;
        Assert.True(p.Mprotect(cpu, a + 0x1000, 0x2000, Prot.Read).IsOk);
        Assert.Equal(n + 2, p.Vmas.Count);
        Assert.Equal(dataVm - 2, (long)p.Mm.DataVm);
        Assert.Equal(0UL, p.Pte(a + 0x1000) & 2);
        // The TLB held a writable translation: it was flushed, so the write faults and is refused.
        Assert.Equal(SiCode.SEGV_ACCERR, p.Touch(cpu, a + 0x1000, 1, MemoryAccess.Write).Signal!.Value.Code);
        Assert.True(p.Touch(cpu, a + 0x3000, 1, MemoryAccess.Write).IsOk);
        // Back to read-write: the three VMAs merge, and the exclusive anonymous pages are writable without a fault.
        Assert.True(p.Mprotect(cpu, a + 0x1000, 0x2000, RW).IsOk);
        Assert.Equal(n, p.Vmas.Count);
        Assert.Equal(2UL, p.Pte(a + 0x1000) & 2);
        // PROT_NONE keeps the frame in a not-present PTE; access is refused until it comes back.
        ulong pfn = p.Pfn(m, a);
        Assert.True(p.Mprotect(cpu, a, 0x1000, Prot.None).IsOk);
        Assert.Equal(0UL, p.Pte(a) & 1);
        Assert.Equal(SiCode.SEGV_ACCERR, p.Touch(cpu, a, 1, MemoryAccess.Read).Signal!.Value.Code);
        Assert.True(p.Mprotect(cpu, a, 0x1000, RW).IsOk);
        Assert.Equal(pfn, p.Pfn(m, a));
        // Errors: unaligned EINVAL, a hole ENOMEM, 0 length is a no-op, missing VM_MAY* EACCES, bad prot EINVAL.
        Assert.Equal(Errno.EINVAL, p.Mprotect(cpu, a + 1, 0x1000, Prot.Read).Error);
        Assert.Equal(Errno.ENOMEM, p.Mprotect(cpu, 0x3000_0000, 0x1000, Prot.Read).Error);
        Assert.True(p.Mprotect(cpu, a + 1, 0, Prot.Read).Error == Errno.EINVAL);
        Assert.True(p.Mprotect(cpu, a, 0, Prot.Read).IsOk);
        Assert.Equal(Errno.EINVAL, p.Mprotect(cpu, a, 0x1000, (Prot)0x10).Error);
        Assert.Equal(Errno.ENOMEM, p.Mprotect(cpu, a, 0x100000, Prot.Read).Error);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Brk_grows_and_shrinks_the_heap_and_never_fails(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "brk");
        ulong start = p.Brk(cpu, 0);
        Assert.Equal(p.Mm.StartBrk, start);
        Assert.DoesNotContain(p.Vmas, v => v.Name == "[heap]");
        Assert.Equal(start + 0x1800, p.Brk(cpu, start + 0x1800));
        var heap = p.Vmas.Single(v => v.Name == "[heap]");
        Assert.Equal((start, start + 0x2000), (heap.Start, heap.End));
        Assert.Equal(VmFlags.DataDefault | VmFlags.Account, heap.Flags & ~VmFlags.SoftDirty);
        p.Poke(cpu, start + 0x1000, 5);
        Assert.Equal(start + 0x5000, p.Brk(cpu, start + 0x5000));
        Assert.Equal((start, start + 0x5000), (p.Vmas.Single(v => v.Name == "[heap]").Start, p.Vmas.Single(v => v.Name == "[heap]").End));
        // Below start_brk: refused, the old break is returned.
        Assert.Equal(start + 0x5000, p.Brk(cpu, start - 0x1000));
        // Into another mapping: refused.
        p.MapAnon(cpu, 0x1000, Prot.Read, start + 0x10000, MapFlags.Fixed);
        Assert.Equal(start + 0x5000, p.Brk(cpu, start + 0x20000));
        // Shrinking unmaps.
        Assert.Equal(start + 0x1000, p.Brk(cpu, start + 0x1000));
        Assert.Equal(start + 0x1000, p.Vmas.Single(v => v.Name == "[heap]").End);
        Assert.Equal(0UL, p.Peek(cpu, start)); // page 0 was never written; page 1 (written) is gone
        Assert.Equal(SiCode.SEGV_MAPERR, p.Touch(cpu, start + 0x1000, 1, MemoryAccess.Read).Signal!.Value.Code);
        // sbrk(): the old break back.
        Assert.Equal(start + 0x1000, p.Sbrk(cpu, 0x1000).Unwrap());
        Assert.Equal(start + 0x2000, p.Brk(cpu, 0));
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Madvise_dontneed_zaps_anonymous_pages_to_fresh_zeroes(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "madv");
        ulong a = p.MapAnon(cpu, 0x4000);
        for (ulong i = 0; i < 4; i++)
            p.Poke(cpu, a + i * 0x1000, 100 + i);
        long rss = p.Mm.Rss;
        Assert.True(p.Madvise(cpu, a + 0x1000, 0x2000, Madvise.DontNeed).IsOk);
        Assert.Equal(rss - 2, p.Mm.Rss);
        Assert.Equal(100UL, p.Peek(cpu, a));
        Assert.Equal(0UL, p.Peek(cpu, a + 0x1000));
        Assert.Equal(103UL, p.Peek(cpu, a + 0x3000));
        Assert.Equal(Errno.EINVAL, p.Madvise(cpu, a + 1, 0x1000, Madvise.DontNeed).Error);
        Assert.Equal(Errno.EINVAL, p.Madvise(cpu, a, 0x1000, (Madvise)77).Error);
        Assert.Equal(Errno.ENOMEM, p.Madvise(cpu, 0x3000_0000, 0x1000, Madvise.DontNeed).Error);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Max_map_count_limits_new_vmas(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "limit");
        m.MaxMapCount = 10;
        ulong big = p.MapAnon(cpu, 0x3000, Prot.Read, 0x3000_0000, MapFlags.Fixed);
        var addrs = new List<ulong>();
        SysResult r;
        // Alternating protections keep neighbours from merging.
        while ((r = p.Mmap(cpu, 0, 0x1000, addrs.Count % 2 == 0 ? Prot.Read : RW, Anon)).IsOk)
            addrs.Add(r.Value);
        Assert.Equal(Errno.ENOMEM, r.Error);
        Assert.Equal(11, p.Mm.MapCount); // do_mmap() refuses once map_count > max_map_count
        // Splitting a VMA at the limit: ENOMEM, nothing changed.
        Assert.Equal(Errno.ENOMEM, p.Munmap(cpu, big + 0x1000, 0x1000).Error);
        Assert.Equal(Errno.ENOMEM, p.Mprotect(cpu, big + 0x1000, 0x1000, RW).Error);
        Assert.Equal(11, p.Mm.MapCount);
        // Unmapping a whole VMA needs no split.
        Assert.True(p.Munmap(cpu, big, 0x3000).IsOk);
        p.Validate();
    }
}
