using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>
/// slab_debug: the cases of the kernel's lib/tests/slub_kunit.c (same caches, same corruption, same error counts
/// from validate_slab_cache()), the KASAN slab cases, and the exceptions the emulator raises with the kernel's report.
/// </summary>
public class SlabDebugTests
{
    private static readonly string Equals77 = new('=', 77);
    private static readonly string Dashes77 = new('-', 77);

    /// <summary>test_kmem_cache_create(): SLAB_NO_USER_FLAGS keeps a global slab_debug= out of the test's cache.</summary>
    private static KmemCache Create(Machine m, Cpu cpu, string name, uint size, SlabFlags flags) =>
        m.KmemCacheCreate(cpu, name, size, 0, flags | SlabFlags.NoUserFlags)!;

    private static void Poke(Machine m, ulong va, byte value) => m.Memory.WriteByte(m.Pa(va), value);

    private static byte Peek(Machine m, ulong va) => m.Memory.ReadByte(m.Pa(va));

    private static string[] Lines(string report) => report.Split('\n');

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kunit_clobber_zone(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "TestSlub_RZ_alloc", 64, SlabFlags.RedZone);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        Poke(m, p + 64, 0x12);
        var v = m.KmemCacheValidate(cpu, s);
        Assert.Equal(2, v.Errors);
        Assert.Equal(SlabBug.RightRedzoneOverwritten, v.Reports[0].Bug);
        Assert.Equal(0xcc, Peek(m, p + 64));                    // restored
        m.KmemCacheFree(cpu, s, p);
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kunit_next_pointer(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        int ptr = arch == ArchKind.X86_64 ? 8 : 4;
        var s = Create(m, cpu, "TestSlub_next_ptr_free", 64, SlabFlags.Poison);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        ulong fpAddr = p + (ulong)s.Offset;
        byte[] saved = new byte[ptr];
        m.Memory.Read(m.Pa(fpAddr), saved);
        Poke(m, fpAddr, (byte)~saved[0]);
        // The corrupted freechain, the wrong count of objects in use, and the fix of that count.
        var v = m.KmemCacheValidate(cpu, s);
        Assert.Equal(3, v.Errors);
        Assert.Equal(SlabBug.FreechainCorrupt, v.Reports[0].Bug);
        Assert.Contains("BUG TestSlub_next_ptr_free (Not tainted): Freechain corrupt", v.Reports[0].Report);
        Assert.Contains("Wrong object count. Counter is 0 but counted were", v.Reports[1].Report);
        // Repair the pointer: still the wrong count (validation cut the chain and fixed the count), and its fix.
        m.Memory.Write(m.Pa(fpAddr), saved);
        Assert.Equal(2, m.KmemCacheValidate(cpu, s).Errors);
        // The previous validation repaired the count: nothing left.
        Assert.Equal(0, m.KmemCacheValidate(cpu, s).Errors);
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Theory]
    [InlineData(0, 0x78)]    // test_first_word
    [InlineData(50, 0x9a)]   // test_clobber_50th_byte
    public void Kunit_writes_to_a_free_poisoned_object(int offset, byte value)
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, offset == 0 ? "TestSlub_1th_word_free" : "TestSlub_50th_word_free", 64, SlabFlags.Poison);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        Assert.Equal(0x6b, Peek(m, p + 1));                       // POISON_FREE
        Assert.Equal(0xa5, Peek(m, p + 63));                      // POISON_END
        Poke(m, p + (ulong)offset, value);
        var v = m.KmemCacheValidate(cpu, s);
        Assert.Equal(2, v.Errors);
        Assert.Equal(SlabBug.PoisonOverwritten, v.Reports[0].Bug);
        Assert.Contains($". First byte 0x{value:x} instead of 0x6b", v.Reports[0].Report);
        m.KmemCacheDestroy(cpu, s);
    }

    [Fact]
    public void Kunit_clobber_redzone_free()
    {
        using var m = Machines.I386(64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "TestSlub_RZ_free", 64, SlabFlags.RedZone);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        Assert.Equal(0xbb, Peek(m, p + 64));                      // SLUB_RED_INACTIVE while free
        Poke(m, p + 64, 0xab);
        Assert.Equal(2, m.KmemCacheValidate(cpu, s).Errors);
        m.KmemCacheDestroy(cpu, s);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kunit_kmalloc_redzone_access_kmalloc_18_then_write_byte_18(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var (changed, busy) = m.SlabDebug("ZU,kmalloc-32");
        Assert.Equal(["kmalloc-32"], changed.Select(c => c.Name));
        Assert.Empty(busy);
        ulong p = m.Kmalloc(cpu, 18, Gfp.Kernel);
        var s = m.VirtToCache(p)!;
        Assert.Equal("kmalloc-32", s.Name);
        // The 14 bytes past the request are red zone (the size asked for is kept with the user tracks).
        for (int i = 18; i < 32; i++)
            Assert.Equal(0xcc, Peek(m, p + (ulong)i));
        Poke(m, p + 18, 0xab);
        Poke(m, p + 19, 0xab);
        var v = m.KmemCacheValidate(cpu, s);
        Assert.Equal(2, v.Errors);
        Assert.Equal(SlabBug.KmallocRedzoneOverwritten, v.Reports[0].Bug);
        Assert.Contains("kmalloc Redzone overwritten", Lines(v.Reports[0].Report)[1]);
        m.Kfree(cpu, p);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kunit_leak_destroy_reports_and_keeps_the_cache(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "TestSlub_leak_destroy", 64, SlabFlags.NoMerge);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheDestroy(cpu, s));
        Assert.Equal(SlabBug.ObjectsRemaining, e.Bug);
        var lines = Lines(e.Report);
        Assert.Equal(Equals77, lines[0]);
        Assert.Equal("BUG TestSlub_leak_destroy (Not tainted): Objects remaining in TestSlub_leak_destroy on __kmem_cache_shutdown()", lines[1]);
        Assert.Equal(Dashes77, lines[2]);
        Assert.Equal("", lines[3]);
        Assert.StartsWith("Slab 0x", lines[4]);
        Assert.Contains($"Object 0x{p.ToString(arch == ArchKind.X86_64 ? "x16" : "x8")} @offset={p & 0xfff}", lines);
        Assert.Contains(lines, l => l.StartsWith("kmem_cache_destroy TestSlub_leak_destroy: Slab cache still has objects when called from kmem_cache_destroy", StringComparison.Ordinal));
        Assert.Contains("B", m.TaintText);
        // The cache is still there, consistent and usable: free the object and destroy again.
        m.CheckConsistency();
        Assert.Same(s, m.FindKmemCache("TestSlub_leak_destroy"));
        m.KmemCacheFree(cpu, s, p);
        m.KmemCacheDestroy(cpu, s);
        Assert.Null(m.FindKmemCache("TestSlub_leak_destroy"));
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kunit_krealloc_redzone_zeroing(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        m.SlabDebug("ZU,kmalloc-64,kmalloc-128");
        ulong p = m.Kmalloc(cpu, 48, Gfp.Kernel);
        m.ObjectBytes(p)[..48].Fill(0xff);
        // Shrink: everything past 40 is red zone.
        Assert.Equal(p, m.Krealloc(cpu, p, 40, Gfp.Kernel | Gfp.Zero));
        for (int i = 40; i < 64; i++)
            Assert.Equal(0xcc, Peek(m, p + (ulong)i));
        // Grow inside the same 64-byte object: 40..56 zeroed, 56..64 red zone.
        Assert.Equal(p, m.Krealloc(cpu, p, 56, Gfp.Kernel | Gfp.Zero));
        for (int i = 40; i < 56; i++)
            Assert.Equal(0, Peek(m, p + (ulong)i));
        for (int i = 56; i < 64; i++)
            Assert.Equal(0xcc, Peek(m, p + (ulong)i));
        Assert.Equal(0, m.KmemCacheValidate(cpu, m.VirtToCache(p)!).Errors);
        m.ObjectBytes(p)[..56].Fill(0xff);
        // Grow into a 128-byte object: the contents move, the rest is zeroed.
        ulong q = m.Krealloc(cpu, p, 112, Gfp.Kernel | Gfp.Zero);
        Assert.Equal("kmalloc-128", m.VirtToCache(q)!.Name);
        for (int i = 0; i < 56; i++)
            Assert.Equal(0xff, Peek(m, q + (ulong)i));
        for (int i = 56; i < 112; i++)
            Assert.Equal(0, Peek(m, q + (ulong)i));
        m.Kfree(cpu, q);
        m.CheckConsistency();
    }

    // ---- detections raised as exceptions ----------------------------------------------------------------

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Double_free_is_reported_in_the_kernels_layout_and_the_cache_stays_consistent(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "df", 64, SlabFlagsText.DebugDefault);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        ulong q = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, p));
        Assert.Equal(SlabBug.ObjectAlreadyFree, e.Bug);
        var lines = Lines(e.Report);
        Assert.Equal(Equals77, lines[0]);
        Assert.Equal(77, lines[0].Length);
        Assert.Equal("BUG df (Not tainted): Object already free", lines[1]);
        Assert.Equal(Dashes77, lines[2]);
        Assert.Equal("", lines[3]);
        Assert.StartsWith("Allocated in kmem_cache_alloc+0x0/0x40 age=", lines[4]);
        Assert.StartsWith("Freed in kmem_cache_free+0x0/0x40 age=", lines[5]);
        Assert.Matches(@"^Slab 0x[0-9a-f]+ objects=\d+ used=1 fp=0x[0-9a-f]+ flags=0x[0-9a-f]+\(", lines[6]);
        Assert.Matches(@"^Object 0x[0-9a-f]+ @offset=\d+ fp=0x[0-9a-f]+$", lines[7]);
        Assert.Equal("", lines[8]);
        Assert.StartsWith("Redzone  ", lines[9]);
        Assert.Contains(lines, l => l.StartsWith("Object   ", StringComparison.Ordinal) && l.EndsWith("kkkkkkkkkkkkkkkk", StringComparison.Ordinal));
        Assert.Equal($"FIX df: Object at 0x{p.ToString(arch == ArchKind.X86_64 ? "x16" : "x8")} not freed", lines[^1]);
        Assert.Contains(lines[1], m.Log.Lines);                     // the report is in dmesg too
        m.CheckConsistency();
        Assert.Equal(1, m.KmemCacheState(s).Allocated);
        // The next report says the kernel is tainted (B: bad page).
        var again = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, p));
        Assert.StartsWith("BUG df (Tainted: G    B", Lines(again.Report)[1]);
        m.KmemCacheFree(cpu, s, q);
        m.KmemCacheDestroy(cpu, s);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Naive_double_free_is_caught_even_without_debugging(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        ulong p = m.Kmalloc(cpu, 64, Gfp.Kernel);
        m.Kfree(cpu, p);
        var e = Assert.Throws<SlabBugException>(() => m.Kfree(cpu, p));
        Assert.Equal(SlabBug.ObjectAlreadyFree, e.Bug);
        Assert.Equal("BUG kmalloc-64 (Not tainted): Object already free", Lines(e.Report)[1]);
        m.CheckConsistency();
        // A double free into a slab that is not the CPU's: more frees than allocated objects.
        var s = m.KmemCacheCreate(cpu, "df2", 512)!;
        var objs = Enumerable.Range(0, s.ObjectsPerSlab + 1).Select(_ => m.KmemCacheAlloc(cpu, s, Gfp.Kernel)).ToList();
        // The first slab is full and no longer the CPU slab: its frees are __slab_free()s.
        for (int i = 0; i < s.ObjectsPerSlab; i++)
            m.KmemCacheFree(cpu, s, objs[i]);
        var e2 = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, objs[1]));
        Assert.Equal(SlabBug.ObjectAlreadyFree, e2.Bug);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Red_zone_overwrites_are_caught_at_free_and_the_object_is_not_freed(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "rz", 40, SlabFlags.ConsistencyChecks | SlabFlags.RedZone);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        Assert.Equal(0xcc, Peek(m, p - 1));                        // left red zone, active
        Poke(m, p + 40, 0x00);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, p));
        Assert.Equal(SlabBug.RightRedzoneOverwritten, e.Bug);
        string px = p.ToString(arch == ArchKind.X86_64 ? "x16" : "x8");
        string fx = (p + 40).ToString(arch == ArchKind.X86_64 ? "x16" : "x8");
        Assert.Equal($"0x{fx}-0x{fx} @offset={(p + 40) & 0xfff}. First byte 0x0 instead of 0xcc", Lines(e.Report)[4]);
        Assert.Contains($"FIX rz: Restoring Right Redzone 0x{fx}-0x{fx}=0xcc", e.Report);
        Assert.Contains($"FIX rz: Object at 0x{px} not freed", e.Report);
        Assert.Equal(1, m.KmemCacheState(s).Allocated);
        Poke(m, p - 3, 0x11);
        Assert.Equal(SlabBug.LeftRedzoneOverwritten, Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, p)).Bug);
        m.KmemCacheFree(cpu, s, p);                                // both restored: now it frees
        Assert.Equal(0xbb, Peek(m, p - 1));                        // inactive red zone
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Use_after_free_is_caught_when_the_object_is_handed_out_again(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "uaf", 64, SlabFlags.ConsistencyChecks | SlabFlags.Poison);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        Poke(m, p + 50, 0x9a);
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        Assert.Equal(SlabBug.PoisonOverwritten, e.Bug);
        Assert.Contains("FIX uaf: Marking all objects used", e.Report);
        m.CheckConsistency();
        ulong q = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);            // from a new slab
        Assert.NotEqual(p & ~0xfffUL, q & ~0xfffUL);
        m.KmemCacheFree(cpu, s, q);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Corrupt_free_pointers_are_caught(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        int ptr = arch == ArchKind.X86_64 ? 8 : 4;
        // A debug cache checks the free pointer of every object it hands out.
        var s = Create(m, cpu, "fc", 64, SlabFlags.ConsistencyChecks | SlabFlags.Poison);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        m.Memory.Write(m.Pa(p + (ulong)s.Offset), Enumerable.Repeat((byte)0x41, ptr).ToArray());
        var e = Assert.Throws<SlabBugException>(() => m.KmemCacheAlloc(cpu, s, Gfp.Kernel));
        Assert.Equal(SlabBug.FreechainCorrupt, e.Bug);
        Assert.Contains("Freepointer corrupt", e.Report);
        m.CheckConsistency();
        // Without debugging, a free pointer leading out of the arena is cut when the CPU freelist reaches it.
        ulong a = m.Kmalloc(cpu, 128, Gfp.Kernel);
        ulong b = m.Kmalloc(cpu, 128, Gfp.Kernel);
        m.Kfree(cpu, b);
        m.Kfree(cpu, a);                                            // a -> b on the CPU freelist
        m.Memory.Write(m.Pa(a + 64), Enumerable.Repeat((byte)0xff, ptr).ToArray());
        Assert.Equal(a, m.Kmalloc(cpu, 128, Gfp.Kernel));           // hands out a, loads the corrupt pointer
        var e2 = Assert.Throws<SlabBugException>(() => m.Kmalloc(cpu, 128, Gfp.Kernel));
        Assert.Equal(SlabBug.FreechainCorrupt, e2.Bug);
        Assert.Contains("FIX kmalloc-128: Isolate corrupted freechain", e2.Report);
        m.CheckConsistency();
        ulong c = m.Kmalloc(cpu, 128, Gfp.Kernel);                  // the allocator goes on
        m.Kfree(cpu, c);
        m.Kfree(cpu, a);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Invalid_pointers_are_refused_wherever_they_point(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        m.SlabDebug("F,kmalloc-64");
        ulong p = m.Kmalloc(cpu, 64, Gfp.Kernel);
        // Into the middle of an object (slab_debug=F checks check_valid_pointer()).
        var mid = Assert.Throws<SlabBugException>(() => m.Kfree(cpu, p + 8));
        Assert.Equal(SlabBug.InvalidObjectPointer, mid.Bug);
        Assert.Equal($"BUG kmalloc-64 (Not tainted): Invalid object pointer 0x{(p + 8).ToString(arch == ArchKind.X86_64 ? "x16" : "x8")}", Lines(mid.Report)[1]);
        // Memory that is no slab (a page from the page allocator).
        ulong page = m.GetFreePages(cpu, Gfp.Kernel, 0);
        var notSlab = Assert.Throws<SlabBugException>(() => m.Kfree(cpu, page));
        Assert.Equal(SlabBug.InvalidObjectPointer, notSlab.Bug);
        Assert.EndsWith("page dumped because: Not a kmalloc allocation", notSlab.Report);
        // Outside the machine's memory.
        ulong wild = arch == ArchKind.X86_64 ? 0xdead_0000_0000_0100UL : 0x0000_1000UL;
        var outside = Assert.Throws<SlabBugException>(() => m.Kfree(cpu, wild));
        Assert.StartsWith("BUG: unable to handle page fault for address:", outside.Report);
        // An object of another cache.
        var s = m.KmemCacheCreate(cpu, "other", 64)!;
        var wrong = Assert.Throws<SlabBugException>(() => m.KmemCacheFree(cpu, s, p));
        Assert.Contains("Wrong slab cache. other but object is from kmalloc-64", wrong.Report);
        Assert.True(m.KmemObjInfo(p)!.Allocated);                  // nothing was freed
        m.CheckConsistency();
        m.FreePages(cpu, page, 0);
        m.Kfree(cpu, p);                                            // the real object still frees
        m.KmemCacheDestroy(cpu, s);
        m.CheckConsistency();
    }

    [Fact]
    public void Without_debugging_a_free_inside_an_object_of_the_cpu_slab_goes_unseen_like_in_the_kernel()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        ulong p = m.Kmalloc(cpu, 64, Gfp.Kernel);
        m.Kfree(cpu, p + 8);                                        // two stores on the fast path, no check
        var e = Assert.Throws<ConsistencyException>(() => m.CheckSlabConsistency());
        Assert.Contains("not an object of its slab", e.Message);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void User_tracking_records_site_cpu_pid_and_time(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 2);
        var cpu = m.GetCpu(1);
        cpu.Pid = 42;
        cpu.Caller = "my_probe+0x1c/0x80";
        var s = Create(m, cpu, "tracked", 100, SlabFlags.StoreUser);
        ulong t0 = m.Jiffies;
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        var info = m.KmemObjInfo(p + 10)!;
        Assert.Equal(new SlabTrack("my_probe+0x1c/0x80", 1, 42, t0 + 1), info.AllocTrack);
        Assert.Null(info.FreeTrack);
        Assert.Equal(10, info.PointerOffset);
        Assert.Equal($"slab tracked start {p.ToString(arch == ArchKind.X86_64 ? "x16" : "x8")} pointer offset 10 size 100 allocated at my_probe+0x1c/0x80", m.KmemDumpObj(p + 10));
        cpu.Caller = null;
        m.KmemCacheFree(cpu, s, p);
        Assert.Equal(new SlabTrack("kmem_cache_free+0x0/0x40", 1, 42, t0 + 2), m.KmemObjInfo(p)!.FreeTrack);
        Assert.False(m.KmemObjInfo(p)!.Allocated);
        m.KmemCacheDestroy(cpu, s);
    }

    [Fact]
    public void Slab_debug_options_parse_like_the_kernel()
    {
        var all = SlabDebugOptions.Parse("");
        Assert.Equal(SlabFlagsText.DebugDefault, all.Global);
        var one = SlabDebugOptions.Parse("FZ,kmalloc-32");
        Assert.Equal((SlabFlags)0, one.Global);
        Assert.Equal(SlabFlags.ConsistencyChecks | SlabFlags.RedZone, one.FlagsFor(0, "kmalloc-32") );
        Assert.Equal((SlabFlags)0, one.FlagsFor(0, "kmalloc-64"));
        var glob = SlabDebugOptions.Parse("P,kmalloc-*;U");
        Assert.Equal(SlabFlags.StoreUser, glob.Global);
        Assert.Equal(SlabFlags.Poison, glob.FlagsFor(0, "kmalloc-rcl-8") & SlabFlags.Poison);
        Assert.Equal(SlabFlags.StoreUser, glob.FlagsFor(0, "dentry"));
        Assert.Equal(SlabFlags.NoUserFlags, glob.FlagsFor(SlabFlags.NoUserFlags, "kmalloc-8"));
        Assert.Equal(SlabFlagsText.DebugDefault, SlabDebugOptions.Parse(",dentry").FlagsFor(0, "dentry"));
        Assert.Equal((SlabFlags)0, SlabDebugOptions.Parse("FZ-").Global);
        Assert.True(SlabDebugOptions.Parse("FO").DisableHigherOrderDebug);
        Assert.Throws<FormatException>(() => SlabDebugOptions.Parse("Q"));
    }

    [Fact]
    public void Slab_debug_at_boot_applies_to_the_kmalloc_caches_and_at_run_time_to_empty_ones()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 64UL << 20, SlabDebug = "FZPU,kmalloc-96" });
        var s96 = m.FindKmemCache("kmalloc-96")!;
        Assert.True(s96.IsDebug);
        Assert.False(m.FindKmemCache("kmalloc-64")!.IsDebug);
        Assert.Contains(("red_zone", "1"), m.SlabSysfs(s96));
        ulong held = m.Kmalloc(8, Gfp.Kernel);
        var (changed, busy) = m.SlabDebug("P,kmalloc-8,kmalloc-16");
        // kmalloc-16 gains P; the empty kmalloc-96 loses FZPU; kmalloc-8 holds an object and keeps its layout.
        Assert.Equal(["kmalloc-16", "kmalloc-96"], changed.Select(c => c.Name));
        Assert.Equal(["kmalloc-8"], busy.Select(c => c.Name));
        Assert.True(m.FindKmemCache("kmalloc-16")!.IsDebug);
        Assert.False(s96.IsDebug);
        Assert.False(m.FindKmemCache("kmalloc-8")!.IsDebug);
        m.Kfree(held);
        m.CheckConsistency();
    }

    [Fact]
    public void Poisoned_red_zoned_object_bytes_in_the_arena()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var s = Create(m, cpu, "bytes", 24, SlabFlags.RedZone | SlabFlags.Poison);
        ulong p = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, p);
        byte[] obj = new byte[s.Size];
        m.Memory.Read(m.Pa(p - (ulong)s.RedLeftPad), obj);
        int l = s.RedLeftPad;
        Assert.All(obj[..l], b => Assert.Equal(0xbb, b));                 // left red zone, inactive
        Assert.All(obj[l..(l + 23)], b => Assert.Equal(0x6b, b));         // POISON_FREE
        Assert.Equal(0xa5, obj[l + 23]);                                   // POISON_END
        Assert.All(obj[(l + 24)..(l + s.Inuse)], b => Assert.Equal(0xbb, b));
        Assert.Equal(0x5a, obj[^1]);                                       // padding: POISON_INUSE
        m.KmemCacheDestroy(cpu, s);
    }
}
