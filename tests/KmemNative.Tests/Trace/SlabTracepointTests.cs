using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;
using KmemNative.Trace;

namespace KmemNative.Tests.Trace;

/// <summary>The slab tracepoints: what the kernel's kmem events would say, where the kernel emits them.</summary>
public sealed class SlabTracepointTests
{
    private sealed class Recorder : IKmemTracer
    {
        public readonly List<string> Events = [];
        public void Kmalloc(Cpu cpu, ulong ptr, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted) =>
            Events.Add($"kmalloc {ptr:x} {bytesReq} {bytesAlloc} {GfpFlags.Format(gfp)} {accounted}");
        public void Kfree(Cpu cpu, ulong ptr) => Events.Add($"kfree {ptr:x}");
        public void KmemCacheAlloc(Cpu cpu, ulong ptr, string cache, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted) =>
            Events.Add($"kmem_cache_alloc {ptr:x} {cache} {bytesReq} {bytesAlloc} {accounted}");
        public void KmemCacheFree(Cpu cpu, ulong ptr, string cache) => Events.Add($"kmem_cache_free {ptr:x} {cache}");
        public void MmPageAlloc(Cpu cpu, ulong? pfn, int order, int migratetype, Gfp gfp) => Events.Add($"mm_page_alloc {order} {GfpFlags.Format(gfp)}");
        public void MmPageFree(Cpu cpu, ulong pfn, int order) => Events.Add($"mm_page_free {order}");
        public void KmemCacheCreate(Cpu cpu, KmemCache cache) => Events.Add($"create {cache.Name}");
        public void KmemCacheDestroy(Cpu cpu, KmemCache cache) => Events.Add($"destroy {cache.Name}");
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Kmalloc_family_traces_like_the_kernel(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;
        var rec = new Recorder();
        m.Tracer = rec;
        ulong a = m.Kmalloc(cpu, 100, Gfp.Kernel | Gfp.Account);
        ulong zero = m.Kmalloc(cpu, 0, Gfp.Kernel);               // ZERO_SIZE_PTR, returned before the tracepoint
        ulong s = m.Kstrdup(cpu, "hello", Gfp.Kernel);
        ulong b = m.Krealloc(cpu, a, 120, Gfp.Kernel);               // fits kmalloc-128: in place, nothing traced
        ulong c = m.Krealloc(cpu, b, 1000, Gfp.Kernel);              // moves: kmalloc then kfree of the old one
        m.Kfree(cpu, 0);
        m.Kfree(cpu, zero);
        m.Kfree(cpu, c);
        m.Kfree(cpu, s);
        m.Tracer = null;
        bool memcg = arch == ArchKind.X86_64;
        Assert.Equal(
        [
            $"kmalloc {a:x} 100 128 GFP_KERNEL_ACCOUNT {memcg}",
            $"kmalloc {s:x} 6 8 GFP_KERNEL False",
            $"kmalloc {c:x} 1000 1024 GFP_KERNEL False",
            $"kfree {a:x}",
            "kfree 0",
            "kfree 10",
            $"kfree {c:x}",
            $"kfree {s:x}",
        ], rec.Events.Where(e => !e.StartsWith("mm_page", StringComparison.Ordinal)));
        Assert.Equal(b, a);
    }

    [Fact]
    public void Large_kmalloc_traces_its_pages_first_and_frees_them_after_kfree()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;
        var rec = new Recorder();
        m.Tracer = rec;
        ulong p = m.Kmalloc(cpu, 20000, Gfp.Kernel);
        m.Kfree(cpu, p);
        m.Tracer = null;
        Assert.Equal(["mm_page_alloc 3 GFP_KERNEL|__GFP_COMP", $"kmalloc {p:x} 20000 32768 GFP_KERNEL False", $"kfree {p:x}", "mm_page_free 3"], rec.Events);
    }

    [Fact]
    public void Cache_events_name_the_cache_and_annotate_create_and_destroy()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        _ = m.KmemCaches;
        var rec = new Recorder();
        m.Tracer = rec;
        var s = m.KmemCacheCreate(cpu, "thing", 100, 0, SlabFlags.HwcacheAlign | SlabFlags.Account)!;
        ulong o = m.KmemCacheAlloc(cpu, s, Gfp.Kernel);
        m.KmemCacheFree(cpu, s, o);
        m.KmemCacheDestroy(cpu, s);
        m.Tracer = null;
        var slab = rec.Events.Where(e => !e.StartsWith("mm_page", StringComparison.Ordinal)).ToList();
        Assert.Equal(["create thing", $"kmem_cache_alloc {o:x} thing 100 128 True", $"kmem_cache_free {o:x} thing", "destroy thing"], slab);
    }

    [Fact]
    public void Writer_annotations_parse_back()
    {
        using var m = Machines.I386(64, cpus: 3);
        var cpu = m.GetCpu(1);
        var sw = new StringWriter();
        var w = new FtraceWriter(sw, m);
        w.WriteHeader();
        w.Attach();
        var s = m.KmemCacheCreate(cpu, "with_ctor", 40, 16, SlabFlags.ReclaimAccount, _ => { })!;
        m.KmemCacheDestroy(cpu, s);
        m.Tracer = null;
        var lines = sw.ToString().Split('\n');
        Assert.Contains("#P:3", lines[2]);
        var machine = TraceAnnotation.Parse(Encoding.ASCII.GetBytes(lines.Single(l => l.StartsWith("# kmemnative: machine"))), out _)!;
        Assert.Equal((ArchKind.I386, 64UL << 20, 3), (machine.Arch, machine.MemBytes, machine.Cpus));
        var create = TraceAnnotation.Parse(Encoding.ASCII.GetBytes(lines.Single(l => l.Contains("kmem_cache_create"))), out _)!;
        Assert.Equal((TraceAnnotationKind.KmemCacheCreate, 1, "with_ctor", 40u, 16u, SlabFlags.ReclaimAccount, true),
                     (create.Kind, create.Cpu, create.Name, create.Size, create.Align, create.Flags, create.Ctor));
        var destroy = TraceAnnotation.Parse(Encoding.ASCII.GetBytes(lines.Single(l => l.Contains("kmem_cache_destroy"))), out _)!;
        Assert.Equal((TraceAnnotationKind.KmemCacheDestroy, "with_ctor"), (destroy.Kind, destroy.Name));
        Assert.Null(TraceAnnotation.Parse("# kmemnative: kmem_cache_create cpu=x"u8, out var error));
        Assert.NotNull(error);
        Assert.Null(TraceAnnotation.Parse("# kmemnative: future_thing a=b"u8, out error));
        Assert.Null(error);                                           // unknown kinds are comments
    }

    [Fact]
    public void Slab_page_rule_classifies_every_gfp_string_of_trace_a()
    {
        // The strings allocate_slab() produced in trace A: NOWARN|NORETRY, neither HIGHMEM nor MOVABLE.
        string[] slab =
        [
            "__GFP_RECLAIMABLE|__GFP_IO|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC",
            "GFP_KERNEL|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOFS|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOWAIT|__GFP_RECLAIMABLE|__GFP_NORETRY|__GFP_COMP",
            "GFP_ATOMIC|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOFS|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOWAIT|__GFP_NORETRY|__GFP_COMP|__GFP_THISNODE",
            "GFP_NOFS|__GFP_RECLAIMABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_HARDWALL",
            "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOWAIT|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC",
        ];
        string[] notSlab =
        [
            "GFP_HIGHUSER|__GFP_ACCOUNT",
            "GFP_NOFS|__GFP_HIGHMEM|__GFP_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_HARDWALL",
            "GFP_HIGHUSER_MOVABLE|__GFP_WRITE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP",
            "GFP_NOFS|__GFP_NOFAIL|__GFP_COMP|__GFP_HARDWALL",
            "GFP_NOWAIT|__GFP_COMP",
            "GFP_KERNEL_ACCOUNT|__GFP_ZERO|__GFP_COMP",
            "GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP",
        ];
        Assert.All(slab, g => Assert.True(SlabPageHeuristic.IsSlabPage(GfpFlags.Parse(g)), g));
        Assert.All(notSlab, g => Assert.False(SlabPageHeuristic.IsSlabPage(GfpFlags.Parse(g)), g));
        // And what the emulator's own allocate_slab() asks for is recognised the same way.
        using var m = Machines.X64(64);
        var rec = new Recorder();
        _ = m.KmemCaches;
        m.Tracer = rec;
        m.Kmalloc(m.GetCpu(0), 3000, Gfp.Kernel);
        m.Tracer = null;
        Assert.True(SlabPageHeuristic.IsSlabPage(GfpFlags.Parse(rec.Events[0].Split(' ')[2])), rec.Events[0]);
    }
}
