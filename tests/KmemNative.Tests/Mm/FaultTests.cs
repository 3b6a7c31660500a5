using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>Demand paging through the MMU's #PF hook: zero page, anonymous pages, file pages, stack growth, SIGSEGV/SIGBUS.</summary>
public class FaultTests
{
    private const ulong P = 1, Rw = 2, User = 4, Accessed = 0x20, Dirty = 0x40, Special = 0x200;

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_read_maps_the_shared_zero_page_read_only_and_a_later_write_gets_a_zeroed_page(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "zero");
        ulong a = p.MapAnon(cpu, 0x4000);
        long anonBefore = m.NodeState(NodeStat.NrAnonPages);
        var r = p.Touch(cpu, a, 0x4000, MemoryAccess.Read);
        Assert.Equal((4, 4, 0), (r.Pages, r.MinorFaults, r.MajorFaults));
        ulong zeroPfn = m.ZeroPagePhys >> 12;
        for (ulong va = a; va < a + 0x4000; va += 0x1000)
        {
            ulong pte = p.Pte(va);
            Assert.Equal(zeroPfn, p.Pfn(m, va));
            Assert.Equal(P | User | Special, pte & (P | Rw | User | Special));
        }
        // The zero page is special: no RSS, no mapcount, no NR_ANON_MAPPED.
        Assert.Equal(0, p.Mm.AnonPages - 1); // the stack's argument page only
        Assert.Equal(anonBefore, m.NodeState(NodeStat.NrAnonPages));
        Assert.Equal(0UL, p.Peek(cpu, a + 8));
        // A write: do_wp_page() on the zero page gives a zeroed page of our own, writable and dirty.
        p.Poke(cpu, a + 0x1008, 0x1122334455667788);
        Assert.NotEqual(zeroPfn, p.Pfn(m, a + 0x1000));
        Assert.Equal(P | Rw | User | Dirty, p.Pte(a + 0x1000) & (P | Rw | User | Dirty));
        Assert.Equal(0x1122334455667788UL, p.Peek(cpu, a + 0x1008));
        Assert.Equal(0UL, p.Peek(cpu, a + 0x1000));
        Assert.Equal(2, p.Mm.AnonPages);
        Assert.Equal(anonBefore + 1, m.NodeState(NodeStat.NrAnonPages));
        var page = m.ReadPage(p.Pfn(m, a + 0x1000));
        Assert.Equal(1, page.Refcount);
        Assert.Equal(0u, page.PageTypeRaw); // _mapcount 0: mapped once
        Assert.Equal(p.Vmas.First(v => v.Start <= a && a < v.End).AnonVma | 1, page.Mapping);
        Assert.Equal((a + 0x1000) >> 12, page.Index);
        // The zero page itself is never written.
        var zero = new byte[4096];
        m.Memory.Read(m.ZeroPagePhys, zero);
        Assert.All(zero, b => Assert.Equal(0, b));
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Write_faults_allocate_zeroed_movable_pages_and_count_in_vmstat_and_the_task(ArchKind arch)
    {
        // i386 with 1 GiB: GFP_HIGHUSER_MOVABLE takes HIGHMEM, zeroed through kmap_local.
        using var m = Machines.Boot(arch, arch == ArchKind.I386 ? 1024UL : 64UL);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "writer");
        ulong a = p.MapAnon(cpu, 0x10000);
        long pgfault = m.Event(VmEvent.Pgfault);
        var (min0, _) = p.Faults;
        var r = p.Touch(cpu, a, 0x10000, MemoryAccess.Write, 0x5a);
        Assert.Equal(16, r.MinorFaults);
        Assert.Equal(16, m.Event(VmEvent.Pgfault) - pgfault);
        Assert.Equal(min0 + 16, p.Faults.Minor);
        for (ulong va = a; va < a + 0x10000; va += 0x1000)
        {
            var page = m.ReadPage(p.Pfn(m, va));
            Assert.Equal(MigrateType.Movable, m.PageblockMigratetype(page.Pfn));
            if (arch == ArchKind.I386)
                Assert.Equal("HighMem", m.Zones[page.ZoneIndex].Name);
            var bytes = new byte[4096];
            m.Memory.Read(page.Pfn << 12, bytes);
            Assert.Equal(0x5a, bytes[0]);
            Assert.All(bytes.AsSpan(1).ToArray(), b => Assert.Equal(0, b));
        }
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Accesses_outside_a_vma_or_against_its_permissions_raise_sigsegv_with_the_error_code(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "segv");
        ulong ro = p.MapAnon(cpu, 0x2000, Prot.Read);
        // Write to a read-only mapping: first not present (error 0x6: USER|WRITE), SEGV_ACCERR.
        var r = p.Touch(cpu, ro, 1, MemoryAccess.Write);
        Assert.Equal(new SigInfo(Signal.SIGSEGV, SiCode.SEGV_ACCERR, ro, 0x6), r.Signal);
        // After a read maps the zero page, the same write is a protection fault (0x7).
        Assert.True(p.Touch(cpu, ro, 1, MemoryAccess.Read).IsOk);
        Assert.Equal(new SigInfo(Signal.SIGSEGV, SiCode.SEGV_ACCERR, ro, 0x7), p.Touch(cpu, ro, 1, MemoryAccess.Write).Signal);
        // No VMA at all: SEGV_MAPERR, read error 0x4.
        Assert.Equal(new SigInfo(Signal.SIGSEGV, SiCode.SEGV_MAPERR, 0x10000, 0x4), p.Touch(cpu, 0x10000, 1, MemoryAccess.Read).Signal);
        // PROT_NONE: every access is SEGV_ACCERR.
        ulong none = p.MapAnon(cpu, 0x1000, Prot.None);
        Assert.Equal(SiCode.SEGV_ACCERR, p.Touch(cpu, none, 1, MemoryAccess.Read).Signal!.Value.Code);
        // After munmap: SEGV_MAPERR.
        ulong gone = p.MapAnon(cpu, 0x1000);
        p.Poke(cpu, gone, 1);
        Assert.True(p.Munmap(cpu, gone, 0x1000).IsOk);
        Assert.Equal(new SigInfo(Signal.SIGSEGV, SiCode.SEGV_MAPERR, gone, 0x6), p.Touch(cpu, gone, 1, MemoryAccess.Write).Signal);
        // A segfault is logged as show_signal_msg() prints it.
        Assert.Contains(m.Log.Lines, l => l.Contains($"segv[{p.Pid}]: segfault at {gone:x} ip ", StringComparison.Ordinal) && l.Contains(" error 6 ", StringComparison.Ordinal));
        Assert.Equal(p.LastSignal, p.Touch(cpu, gone, 1, MemoryAccess.Write).Signal);
        // Failed faults count no min_flt.
        var (min, _) = p.Faults;
        p.Touch(cpu, gone, 1, MemoryAccess.Read);
        Assert.Equal(min, p.Faults.Minor);
        p.Validate();
    }

    [Fact]
    public void Executing_from_a_non_exec_mapping_faults_on_nx_only_where_nx_exists()
    {
        using (var m = Machines.X64(64))
        {
            var cpu = m.GetCpu(0);
            var p = m.Spawn(cpu, "nx");
            ulong a = p.MapAnon(cpu, 0x1000);
            // The fetch first faults the page in (a read), then the NX PTE raises PROT|USER|INSTR = 0x15.
            Assert.Equal(new SigInfo(Signal.SIGSEGV, SiCode.SEGV_ACCERR, a, 0x15), p.Touch(cpu, a, 1, MemoryAccess.Execute).Signal);
            Assert.True(p.Touch(cpu, p.Mm.StartCode, 1, MemoryAccess.Execute).IsOk);
        }
        using (var m = Machines.I386(64))
        {
            var cpu = m.GetCpu(0);
            var p = m.Spawn(cpu, "nx");
            ulong a = p.MapAnon(cpu, 0x1000);
            Assert.True(p.Touch(cpu, a, 1, MemoryAccess.Execute).IsOk); // 2-level paging: readable means executable
        }
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void The_stack_grows_down_on_faults_below_it_within_the_limits(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "stack");
        var stack = p.Vmas.Single(v => v.Name == "[stack]");
        Assert.Equal(VmFlags.StackFlags, stack.Flags & ~VmFlags.SoftDirty);
        Assert.Equal(0x21000UL, stack.End - stack.Start);
        ulong stackVm = p.Mm.StackVm;
        // A write 1 MiB below the stack's start: expand_downwards() grows the VMA (vm_pgoff follows vm_start).
        ulong target = stack.Start - 0x100000;
        Assert.True(p.Touch(cpu, target + 0x10, 1, MemoryAccess.Write).IsOk);
        var grown = p.Vmas.Single(v => v.Name == "[stack]");
        Assert.Equal(target, grown.Start);
        Assert.Equal(target >> 12, grown.Pgoff);
        Assert.Equal(stackVm + 0x100, p.Mm.StackVm);
        // Beyond RLIMIT_STACK (8 MiB): SEGV_MAPERR.
        ulong tooFar = stack.End - (9UL << 20);
        Assert.Equal(SiCode.SEGV_MAPERR, p.Touch(cpu, tooFar, 1, MemoryAccess.Write).Signal!.Value.Code);
        // A mapping within the stack guard gap (1 MiB) below the stack stops its growth.
        ulong blocker = p.Mmap(cpu, target - 0x80000, 0x1000, RW, Anon | MapFlags.Fixed).Unwrap();
        Assert.Equal(SiCode.SEGV_MAPERR, p.Touch(cpu, target - 0x1000, 1, MemoryAccess.Write).Signal!.Value.Code);
        Assert.True(p.Munmap(cpu, blocker, 0x1000).IsOk);
        Assert.True(p.Touch(cpu, target - 0x1000, 1, MemoryAccess.Write).IsOk);
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void File_faults_read_the_page_cache_major_first_then_minor(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/f", 3 * 4096 + 100).Unwrap();
        var p = m.Spawn(cpu, "reader");
        var q = m.Spawn(cpu, "reader2");
        ulong a = p.Mmap(cpu, 0, 4 * 4096, Prot.Read, MapFlags.Private, fd).Unwrap();
        long majBefore = m.Event(VmEvent.Pgmajfault);
        var r = p.Touch(cpu, a, 4 * 4096 - 1, MemoryAccess.Read);
        Assert.Equal((4, 0, 4), (r.Pages, r.MinorFaults, r.MajorFaults));
        Assert.Equal(4, m.Event(VmEvent.Pgmajfault) - majBefore);
        Assert.Equal(4, p.Mm.FilePages);
        Assert.Equal(4, m.Files.Single(f => f.Fd == fd).CachedPages);
        // The bytes are the file's; the tail past EOF reads zero.
        var buf = new byte[4 * 4096];
        Assert.True(p.Read(cpu, a, buf).IsOk);
        var disk = new byte[3 * 4096 + 100];
        m.FileRead(cpu, fd, 0, disk).Unwrap();
        Assert.Equal(disk, buf[..disk.Length]);
        Assert.All(buf[disk.Length..], b => Assert.Equal(0, b));
        // page->mapping is the address_space, page->index the file page; a second process maps the same page, minor.
        var page = m.ReadPage(p.Pfn(m, a + 0x2000));
        Assert.Equal(2UL, page.Index);
        Assert.Equal(0UL, page.Mapping & 1);
        ulong b = q.Mmap(cpu, 0, 4096, Prot.Read, MapFlags.Shared, fd, 0x2000).Unwrap();
        r = q.Touch(cpu, b, 1, MemoryAccess.Read);
        Assert.Equal((1, 0), (r.MinorFaults, r.MajorFaults));
        Assert.Equal(page.Pfn, q.Pfn(m, b));
        Assert.Equal(1u, m.ReadPage(page.Pfn).PageTypeRaw); // mapcount 2
        Assert.Equal(3, m.ReadPage(page.Pfn).Refcount);  // page cache + two mappings
        // Beyond the end of the file inside the VMA: SIGBUS.
        ulong big = p.Mmap(cpu, 0, 8 * 4096, Prot.Read, MapFlags.Private, fd).Unwrap();
        Assert.Equal(new SigInfo(Signal.SIGBUS, SiCode.BUS_ADRERR, big + 4 * 4096, 0x4), p.Touch(cpu, big + 4 * 4096, 1, MemoryAccess.Read).Signal);
        p.Validate();
        q.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Shared_file_writes_reach_the_page_cache_and_private_ones_stay_private(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        int fd = (int)m.FileCreate(cpu, "/data/g", 2 * 4096).Unwrap();
        var p = m.Spawn(cpu, "w");
        var q = m.Spawn(cpu, "r");
        ulong shared = p.Mmap(cpu, 0, 8192, RW, MapFlags.Shared, fd).Unwrap();
        ulong view = q.Mmap(cpu, 0, 8192, Prot.Read, MapFlags.Shared, fd).Unwrap();
        ulong priv = q.Mmap(cpu, 0, 8192, RW, MapFlags.Private, fd).Unwrap();
        // A read first: write-notify keeps the PTE read-only and the page clean.
        p.Peek(cpu, shared);
        Assert.Equal(0UL, p.Pte(shared) & Rw);
        long dirty = m.NodeState(NodeStat.NrDirty);
        p.Poke(cpu, shared, 0xfeedface);
        Assert.Equal(Rw, p.Pte(shared) & Rw);
        Assert.Equal(dirty + 1, m.NodeState(NodeStat.NrDirty));
        Assert.Equal(0xfeedfaceUL, q.Peek(cpu, view));
        var file = new byte[8];
        m.FileRead(cpu, fd, 0, file).Unwrap();
        Assert.Equal(0xfeedfaceUL, BitConverter.ToUInt64(file));
        // A private write copies (do_cow_fault / wp_page_copy): the file and the other mapping keep the shared bytes.
        q.Poke(cpu, priv + 8, 0xdead);
        Assert.Equal(0xfeedfaceUL, q.Peek(cpu, priv));
        Assert.Equal(0xdeadUL, q.Peek(cpu, priv + 8));
        Assert.NotEqual(0xdeadUL, q.Peek(cpu, view + 8));
        Assert.Equal(1, q.Mm.AnonPages - 1);
        // MAP_SHARED + PROT_WRITE of a read-only descriptor: EACCES; MAP_PRIVATE is fine.
        int ro = (int)m.FileCreate(cpu, "/data/ro", 4096, readOnly: true).Unwrap();
        Assert.Equal(Errno.EACCES, p.Mmap(cpu, 0, 4096, RW, MapFlags.Shared, ro).Error);
        ulong rop = p.Mmap(cpu, 0, 4096, Prot.Read, MapFlags.Shared, ro).Unwrap();
        Assert.Equal(Errno.EACCES, p.Mprotect(cpu, rop, 4096, RW).Error); // no VM_MAYWRITE
        Assert.True(p.Mmap(cpu, 0, 4096, RW, MapFlags.Private, ro).IsOk);
        p.Validate();
        q.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Shared_anonymous_memory_is_a_shmem_object_shared_across_fork(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "shm");
        ulong a = p.Mmap(cpu, 0, 0x3000, RW, MapFlags.Shared | MapFlags.Anonymous).Unwrap();
        var vma = p.Vmas.Single(v => v.Start == a);
        Assert.Equal("/dev/zero (deleted)", vma.Name);
        Assert.Equal(VmFlags.Shared | VmFlags.MayShare, vma.Flags & (VmFlags.Shared | VmFlags.MayShare));
        long shmem = m.NodeState(NodeStat.NrShmem);
        p.Poke(cpu, a + 0x1000, 77);
        Assert.Equal(shmem + 1, m.NodeState(NodeStat.NrShmem));
        Assert.Equal(1, p.Mm.ShmemPages);
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.Equal(0, c.Mm.ShmemPages); // shmem VMAs are not copied: the child faults them in
        Assert.Equal(77UL, c.Peek(cpu, a + 0x1000));
        c.Poke(cpu, a + 0x2000, 88);
        Assert.Equal(88UL, p.Peek(cpu, a + 0x2000));
        Assert.Equal(p.Pfn(m, a + 0x2000), c.Pfn(m, a + 0x2000));
        c.Validate();
        p.Validate();
    }
}

/// <summary>MAP_POPULATE, MAP_GROWSDOWN and MAP_LOCKED.</summary>
public class MmapFlagTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Map_populate_faults_every_page_in_at_mmap_time(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "populate");
        long rss = p.Mm.Rss, pgfault = m.Event(VmEvent.Pgfault);
        ulong a = p.MapAnon(cpu, 0x8000, RW, 0, MapFlags.Populate);
        Assert.Equal(rss + 8, p.Mm.Rss);               // private writable: write faults (real pages)
        Assert.Equal(8, m.Event(VmEvent.Pgfault) - pgfault);
        var r = p.Touch(cpu, a, 0x8000, MemoryAccess.Write);
        Assert.Equal((8, 0), (r.Pages, r.MinorFaults));  // nothing left to fault
        ulong ro = p.MapAnon(cpu, 0x2000, Prot.Read, 0, MapFlags.Populate);
        Assert.Equal(m.ZeroPagePhys >> 12, p.Pfn(m, ro)); // read-only: read faults map the zero page
        p.Validate();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Map_growsdown_makes_a_stack_like_vma_and_map_locked_populates_and_counts(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "grows");
        ulong g = p.MapAnon(cpu, 0x2000, RW, 0x3000_0000, MapFlags.Fixed | MapFlags.GrowsDown);
        var v = p.Vmas.Single(x => x.Start == g);
        Assert.Equal(VmFlags.GrowsDown, v.Flags & VmFlags.GrowsDown);
        Assert.True(p.Touch(cpu, g - 0x3000, 1, MemoryAccess.Write).IsOk);
        Assert.Equal(g - 0x3000, p.Vmas.Single(x => x.End == g + 0x2000).Start);
        Assert.Equal(33UL + 5, p.Mm.StackVm);          // a VM_GROWSDOWN VMA counts as stack: 2 pages + 3 grown
        ulong l = p.MapAnon(cpu, 0x4000, RW, 0, MapFlags.Locked);
        Assert.Equal(4UL, p.Mm.LockedVm);
        Assert.NotEqual(0UL, p.Pte(l + 0x3000));       // VM_LOCKED mappings are populated
        Assert.Contains($"VmLck:\t      16 kB", m.Proc.Read($"{p.Pid}/status"));
        Assert.True(p.Munmap(cpu, l, 0x4000).IsOk);
        Assert.Equal(0UL, p.Mm.LockedVm);
        // More than RLIMIT_MEMLOCK (8 MiB): -EAGAIN.
        Assert.Equal(Errno.EAGAIN, p.Mmap(cpu, 0, 9UL << 20, RW, Anon | MapFlags.Locked).Error);
        p.Validate();
    }
}
