using System.Globalization;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Slab;

/// <summary>/proc/slabinfo, /sys/kernel/slab and mem_dump_obj().</summary>
public class SlabViewTests
{
    private static string Row(string name, long active, long num, int objsize, int perSlab, int pages, long activeSlabs, long numSlabs) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{name,-17} {active,6} {num,6} {objsize,6} {perSlab,4} {pages,4} : tunables {0,4} {0,4} {0,4} : slabdata {activeSlabs,6} {numSlabs,6} {0,6}");

    private static string Reformat(string line)
    {
        var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long L(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
        return Row(f[0], L(1), L(2), (int)L(3), (int)L(4), (int)L(5), L(13), L(14));
    }

    [Fact]
    public void Slabinfo_has_the_real_header_and_the_real_column_format()
    {
        var real = File.ReadAllLines(Machines.DataFile("proc-6.18", "slabinfo"));
        // The row format reproduces every line of the real file byte for byte...
        foreach (var line in real.Skip(2))
            Assert.Equal(line, Reformat(line));
        foreach (var arch in new[] { ArchKind.I386, ArchKind.X86_64 })
        {
            using var m = Machines.Boot(arch, 64);
            var ours = m.Proc.Read("slabinfo").Split('\n');
            Assert.Equal(real[0], ours[0]);
            Assert.Equal(real[1], ours[1]);
            Assert.Equal("", ours[^1]);
            // ...and every line of ours.
            foreach (var line in ours.Skip(2).SkipLast(1))
                Assert.Equal(line, Reformat(line));
            Assert.Equal(m.KmemCaches.Count, ours.Length - 3);
        }
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Slabinfo_counts_are_get_slabinfo(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var s = m.KmemCacheCreate(cpu, "counted", 256)!;
        var objs = Enumerable.Range(0, s.ObjectsPerSlab * 3).Select(_ => m.KmemCacheAlloc(cpu, s, Gfp.Kernel)).ToList();
        // Free two objects of the first slab: it becomes partial (2 free objects counted as inactive).
        m.KmemCacheFree(cpu, s, objs[0]);
        m.KmemCacheFree(cpu, s, objs[1]);
        // Free two of the CPU slab: they sit on the CPU freelist and still count as active, as in the kernel.
        m.KmemCacheFree(cpu, s, objs[^1]);
        m.KmemCacheFree(cpu, s, objs[^2]);
        var line = m.Proc.Slabinfo().Split('\n').Single(l => l.StartsWith("counted ", StringComparison.Ordinal));
        int n = s.ObjectsPerSlab;
        Assert.Equal(Row("counted", 3 * n - 2, 3 * n, s.Size, n, 1 << s.Order, 3, 3), line);
        var state = m.KmemCacheState(s);
        Assert.Equal(3 * n - 4, state.Allocated);                 // crash counts CPU-cached objects as free
        Assert.Equal(1, state.NrPartial);
    }

    [Fact]
    public void Sysfs_shows_the_kernels_attribute_files()
    {
        using var x = Machines.X64(64);
        var names = x.SlabSysfs(x.FindKmemCache("kmalloc-64")!).Select(a => a.Name).ToArray();
        Assert.Equal(
        [
            "slab_size", "object_size", "objs_per_slab", "order", "sheaf_capacity", "min_partial", "cpu_partial", "objects_partial", "partial",
            "cpu_slabs", "ctor", "aliases", "align", "hwcache_align", "reclaim_account", "destroy_by_rcu", "shrink",
            "slabs_cpu_partial", "total_objects", "objects", "slabs", "sanity_checks", "trace", "red_zone", "poison",
            "store_user", "validate", "cache_dma", "remote_node_defrag_ratio", "usersize",
        ], names);
        var attrs = x.SlabSysfs(x.FindKmemCache("kmalloc-64")!).ToDictionary(a => a.Name, a => a.Value);
        Assert.Equal("64", attrs["object_size"]);
        Assert.Equal("64", attrs["usersize"]);
        Assert.Equal("5", attrs["min_partial"]);
        ulong p = x.Kmalloc(64, Gfp.Kernel);
        attrs = x.SlabSysfs(x.FindKmemCache("kmalloc-64")!).ToDictionary(a => a.Name, a => a.Value);
        Assert.Equal("1 N0=1", attrs["cpu_slabs"]);              // NUMA: per-node counts follow the total
        Assert.Equal("64 N0=64", attrs["total_objects"]);
        x.Kfree(p);
        using var i = Machines.I386(64);
        var ia = i.SlabSysfs(i.FindKmemCache("kmalloc-64")!).ToDictionary(a => a.Name, a => a.Value);
        Assert.False(ia.ContainsKey("remote_node_defrag_ratio"));   // no NUMA on i386
        Assert.Equal("0", ia["total_objects"]);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Mem_dump_obj_says_what_any_address_is(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        ulong p = m.Kmalloc(cpu, 100, Gfp.Kernel);
        string px = p.ToString(arch == ArchKind.X86_64 ? "x16" : "x8");
        Assert.Equal($"slab kmalloc-128 start {px} pointer offset 20 size 128", m.KmemDumpObj(p + 20));
        Assert.Equal("NULL pointer", m.KmemDumpObj(0));
        Assert.Equal("zero-size pointer", m.KmemDumpObj(16));
        ulong page = m.GetFreePages(cpu, Gfp.Kernel, 0);
        Assert.Equal("non-slab/vmalloc memory", m.KmemDumpObj(page));
        Assert.Equal("non-paged memory", m.KmemDumpObj(arch == ArchKind.X86_64 ? 0xffff_c900_0000_0000UL : 0x1000UL));
        var info = m.KmemObjInfo(p + 20)!;
        Assert.Equal(("kmalloc-128", p, 20L, true), (info.Cache.Name, info.ObjectStart, info.PointerOffset, info.Allocated));
        Assert.Equal(m.VirtToSlab(p), info.Slab);
        Assert.Null(m.KmemObjInfo(page));
        m.FreePages(cpu, page, 0);
        m.Kfree(cpu, p);
    }
}
