using System.Globalization;
using System.Xml.Linq;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Diagnostics;

/// <summary>The SVG pictures: well-formed XML whose cells, bars, bands and legend agree with the allocator.</summary>
public sealed class MemoryPicturesTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static long Attr(XElement e, string name) => long.Parse(e.Attribute(name)!.Value, CultureInfo.InvariantCulture);

    /// <summary>A machine with slabs, page tables, per-CPU pages, free blocks of several orders and allocated pages.</summary>
    private static Machine Busy(ArchKind arch, ulong mib)
    {
        var m = Machines.Boot(arch, mib);
        var cpu = m.GetCpu(0);
        for (int i = 0; i < 500; i++)
            m.Kmalloc(cpu, 700, Gfp.Kernel);
        var held = new List<(Page P, int O)>();
        for (int i = 0; i < 60; i++)
            held.Add((m.AllocPages(cpu, i % 2 == 0 ? Gfp.HighUserMovable : Gfp.Kernel, i % 3)!.Value, i % 3));
        for (int i = 0; i < held.Count; i += 4)
            m.FreePages(cpu, held[i].P, held[i].O);                   // some go to the per-CPU lists
        m.Vmalloc(cpu, 64 * 1024);
        return m;
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Physical_map_cells_count_every_page_as_the_allocator_does(ArchKind arch)
    {
        using var m = Busy(arch, 48);
        var map = PhysicalMemoryMap.Scan(m);
        var doc = XDocument.Parse(MemoryPictures.PhysicalSvg(map));
        var cells = doc.Descendants(Svg + "rect").Where(r => (string?)r.Attribute("class") == "cell").ToList();
        Assert.True(cells.Count > 100);

        // One cell per page (48 MiB is below the per-page limit): the cells' pages by owner are the map's counts...
        var byOwner = cells.GroupBy(c => c.Attribute("data-owner")!.Value).ToDictionary(g => g.Key, g => g.Sum(c => Attr(c, "data-pages")));
        foreach (var o in Enum.GetValues<PageOwner>().Where(o => o != PageOwner.Hole))
            Assert.Equal(map.Count(o), byOwner.GetValueOrDefault(PhysicalMemoryMap.Key(o)));

        // ...and the map's counts are the allocator's.
        var report = m.CheckConsistency();
        Assert.Equal(m.Zones.Sum(z => z.FreePages), map.Count(PageOwner.Free));
        Assert.Equal(report.Total.PerCpu, map.Count(PageOwner.FreePcp));
        Assert.Equal(m.NodeState(NodeStat.NrSlabReclaimable) + m.NodeState(NodeStat.NrSlabUnreclaimable),
                     map.Count(PageOwner.Slab) + map.Count(PageOwner.LargeKmalloc));
        long reservedKinds = map.Count(PageOwner.KernelImage) + map.Count(PageOwner.MemMap) + map.Count(PageOwner.Reserved);
        Assert.Equal(report.Total.Present, report.Total.Free + report.Total.PerCpu + report.Total.Allocated + report.Total.Reserved);
        Assert.True(reservedKinds <= report.Total.Reserved);
        Assert.Equal((long)(m.MemmapBytes >> 12), map.Count(PageOwner.MemMap));
        Assert.True(map.Count(PageOwner.PageTable) > 0);                 // vmalloc's page tables, the boot tables
        Assert.True(map.Count(PageOwner.AllocatedMovable) > 0);
        Assert.Equal(map.FreePagesByOrder().Sum(), map.Count(PageOwner.Free));

        // Free cells carry their buddy order and are shaded by it.
        Assert.All(cells.Where(c => c.Attribute("data-owner")!.Value == "free"),
            c => Assert.Equal(MemoryPictures.FreeColour((int)Attr(c, "data-order")), c.Attribute("fill")!.Value));

        // The legend: one entry per owner present, with the same page counts; the order scale.
        var legend = doc.Descendants(Svg + "g").Single(g => (string?)g.Attribute("id") == "legend");
        var entries = legend.Elements(Svg + "text").Where(t => (string?)t.Attribute("class") == "legend-entry").ToList();
        Assert.Equal(Enum.GetValues<PageOwner>().Count(o => map.Count(o) > 0), entries.Count);
        var owners = Enum.GetValues<PageOwner>().ToDictionary(PhysicalMemoryMap.Key);
        Assert.All(entries, e => Assert.Equal(map.Count(owners[e.Attribute("data-owner")!.Value]), Attr(e, "data-pages")));
        Assert.Equal(11, legend.Elements(Svg + "text").Count(t => (string?)t.Attribute("class") == "legend-order"));

        // A labelled band per populated zone.
        var zones = doc.Descendants(Svg + "text").Where(t => (string?)t.Attribute("class") == "zone-label").Select(t => t.Value).ToList();
        Assert.Equal(m.Zones.Count(z => z.IsPopulated), zones.Count);
        Assert.All(m.Zones.Where(z => z.IsPopulated), z => Assert.Contains(zones, l => l.StartsWith($"ZONE_{z.Name.ToUpperInvariant()} ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Large_machines_draw_one_cell_per_pageblock()
    {
        using var m = Busy(ArchKind.X86_64, 256);
        var map = PhysicalMemoryMap.Scan(m);
        var doc = XDocument.Parse(MemoryPictures.PhysicalSvg(map));
        var cells = doc.Descendants(Svg + "rect").Where(r => (string?)r.Attribute("class") == "cell").ToList();
        ulong block = 1UL << m.PageblockOrder;
        ulong row = block * 64;                                          // 64 cells a row, rows aligned to their size
        long expected = m.Zones.Where(z => z.IsPopulated).Sum(z => (long)((z.EndPfn - z.StartPfn / row * row + block - 1) / block));
        Assert.Equal(expected, cells.Count);
        // Each cell counts the RAM pages of its zone in it: together, every page that is not a hole.
        Assert.Equal((long)map.MaxPfn - map.Count(PageOwner.Hole), cells.Sum(c => Attr(c, "data-pages")));
        Assert.All(cells, c => Assert.NotNull(c.Element(Svg + "title")));   // the block's make-up as a tooltip
    }

    [Fact]
    public void Fragmentation_chart_shows_nr_free_and_the_unusable_index()
    {
        using var m = Busy(ArchKind.X86_64, 64);
        var doc = XDocument.Parse(MemoryPictures.FragmentationSvg(m));
        var panels = doc.Descendants(Svg + "g").Where(g => (string?)g.Attribute("class") == "zone-panel").ToList();
        var populated = m.Zones.Where(z => z.IsPopulated).ToList();
        Assert.Equal(populated.Count, panels.Count);
        foreach (var (z, panel) in populated.Zip(panels))
        {
            Assert.Equal(z.Name, panel.Attribute("data-zone")!.Value);
            var bars = panel.Descendants(Svg + "rect").Where(r => (string?)r.Attribute("class") == "bar").ToList();
            Assert.Equal(Enumerable.Range(0, 11).Select(o => z.NrFree(o)), bars.Select(b => Attr(b, "data-blocks")));
            var blocks = Enumerable.Range(0, 11).Select(o => z.NrFree(o)).ToArray();
            var points = panel.Descendants(Svg + "circle").Select(c => c.Attribute("data-index")!.Value).ToList();
            Assert.Equal(Enumerable.Range(0, 11).Select(o => Fragmentation.UnusableFreeIndex(blocks, o)).Select(i => $"{i / 1000}.{i % 1000:000}"), points);
        }
    }

    [Fact]
    public void Unusable_index_follows_the_kernels_formula()
    {
        // 1 free block of order 0 and 1 of order 2: 5 free pages. Order 0: all usable. Order 1: the order-0 page is
        // unusable (1/5 = 0.200). Order 2: same. Order 3: nothing usable (1.000).
        long[] nr = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal([0, 200, 200, 1000], Enumerable.Range(0, 4).Select(o => Fragmentation.UnusableFreeIndex(nr, o)));
        Assert.Equal(1000, Fragmentation.UnusableFreeIndex(new long[11], 0));   // nothing free: all unusable
        using var m = Machines.X64(64);
        var text = Fragmentation.UnusableIndexText(m).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^Node 0, zone +DMA( \d\.\d{3}){11} $", text[0]);
    }

    [Fact]
    public void Virtual_map_of_i386_names_lowmem_vmalloc_pkmap_and_fixmap()
    {
        using var m = Machines.I386(256);
        var bands = MemoryPictures.VirtualBands(m);
        // Contiguous from 0 to 4 GiB - 1.
        Assert.Equal(0UL, bands[0].Start);
        Assert.Equal(0xffff_ffffUL, bands[^1].Last);
        for (int i = 1; i < bands.Count; i++)
            Assert.Equal(bands[i - 1].Last + 1, bands[i].Start);
        var lowmem = bands.Single(b => b.Key == "logical");
        Assert.Equal(m.PageOffset, lowmem.Start);
        Assert.Contains($"phys 0x0–0x{m.HighMemory - m.PageOffset - 1:x}", lowmem.Detail);
        Assert.Contains(bands, b => b.Key == "vmalloc" && b.Start == m.VmallocStart);
        Assert.Contains(bands, b => b.Key == "pkmap");
        Assert.Contains(bands, b => b.Key == "fixmap");
        var doc = XDocument.Parse(MemoryPictures.VirtualSvg(m));
        var rects = doc.Descendants(Svg + "rect").Where(r => (string?)r.Attribute("class") == "band").ToList();
        Assert.Equal(bands.Count, rects.Count);
        // To scale where it fits: lowmem is; the 4 MiB pkmap window is not.
        Assert.Equal("yes", rects.Single(r => r.Attribute("data-kind")!.Value == "logical").Attribute("data-scaled")!.Value);
        Assert.Equal("no", rects.Single(r => r.Attribute("data-kind")!.Value == "pkmap").Attribute("data-scaled")!.Value);
        Assert.Contains(doc.Descendants(Svg + "path"), p => (string?)p.Attribute("class") == "axis-break");
    }

    [Fact]
    public void Virtual_map_of_x86_64_has_the_direct_map_vmalloc_vmemmap_and_kernel_text()
    {
        using var m = Machines.X64(64);
        var bands = MemoryPictures.VirtualBands(m);
        Assert.Equal(ulong.MaxValue, bands[^1].Last);
        foreach (var key in new[] { "logical", "vmalloc", "vmemmap", "kernel-text", "user" })
            Assert.Contains(bands, b => b.Key == key);
        Assert.Equal(0xffff888000000000UL, bands.Single(b => b.Key == "logical").Start);
    }

    private sealed class FakeVmas : IVmaSource
    {
        public IReadOnlyList<VmaView>? Vmas(Machine machine, int pid) => pid == 42
            ? [new VmaView(0x400000, 0x401000, "r-xp", "/bin/true"), new VmaView(0x7ffd0000, 0x7fff0000, "rw-p", "[stack]")]
            : null;
    }

    [Fact]
    public void A_vma_source_puts_its_vmas_below_task_size()
    {
        using var m = Machines.I386(64);
        var source = new FakeVmas();
        var bands = MemoryPictures.VirtualBands(m, 42, source);
        var vmas = bands.Where(b => b.Key == "vma").ToList();
        Assert.Equal(["/bin/true r-xp", "[stack] rw-p"], vmas.Select(v => v.Name));
        Assert.Equal((0x400000UL, 0x400fffUL), (vmas[0].Start, vmas[0].Last));
        Assert.Contains(bands, b => b.Key == "user" && b.Name == "unmapped");
        Assert.Contains("no process 7", MemoryPictures.VirtualBands(m, 7, source).Single(b => b.Key == "user").Detail);
    }

    /// <summary>The bands' y and height, top to bottom, and the texts of a class.</summary>
    private static List<XElement> Texts(XDocument doc, string cls) =>
        doc.Descendants(Svg + "text").Where(t => ((string?)t.Attribute("class") ?? "").Split(' ').Contains(cls)).ToList();

    private static double Y(XElement e) => double.Parse(e.Attribute("y")!.Value, CultureInfo.InvariantCulture);

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void A_process_map_draws_each_vma_with_its_name_up_to_task_size(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "viewer");
        Assert.True(p.Sbrk(cpu, 64 * 1024).IsOk);                              // a [heap] VMA
        ulong anon = p.Mmap(cpu, 0, 16384, KmemNative.Mm.Prot.Read | KmemNative.Mm.Prot.Write,
            KmemNative.Mm.MapFlags.Private | KmemNative.Mm.MapFlags.Anonymous).Unwrap();
        var vmas = p.Vmas;
        ulong taskSize = arch == ArchKind.I386 ? 0xc000_0000UL : 0x7fff_ffff_f000UL;
        Assert.Equal(taskSize, m.TaskSize);

        // Bands: each VMA exactly, the gaps between them, nothing but the x86-64 guard page between TASK_SIZE and the kernel.
        var bands = MemoryPictures.VirtualBands(m, p.Pid);
        var vmaBands = bands.Where(b => b.Key == "vma").ToList();
        Assert.Equal(vmas.Select(v => (v.Start, v.End - 1)), vmaBands.Select(b => (b.Start, b.Last)));
        Assert.Equal(vmas.Select(v => (v.Name.Length == 0 ? "[anon]" : v.Name) + " " + v.Perms), vmaBands.Select(b => b.Name));
        Assert.Contains("[heap] rw-p", vmaBands.Select(b => b.Name));
        Assert.Contains("[stack] rw-p", vmaBands.Select(b => b.Name));
        Assert.Contains("/usr/bin/viewer r-xp", vmaBands.Select(b => b.Name));
        Assert.Contains(vmaBands, b => b.Start == anon && b.Name == "[anon] rw-p");
        var user = bands.TakeWhile(b => b.Start < taskSize).ToList();
        Assert.Equal(0UL, user[0].Start);
        Assert.Equal(taskSize - 1, user[^1].Last);
        Assert.All(user, b => Assert.True(b.Key is "vma" or "user", b.Name));
        for (int i = 1; i < bands.Count; i++)
            Assert.Equal(bands[i - 1].Last + 1, bands[i].Start);
        if (arch == ArchKind.X86_64)
            Assert.Equal((taskSize, 0x7fff_ffff_ffffUL, "unused"), (bands[user.Count].Start, bands[user.Count].Last, bands[user.Count].Key));

        // The SVG: one rect per band with its range, a label per VMA, the TASK_SIZE marker, no two labels overlapping.
        var doc = XDocument.Parse(MemoryPictures.VirtualSvg(m, p.Pid));
        var rects = doc.Descendants(Svg + "rect").Where(r => (string?)r.Attribute("class") == "band").ToList();
        Assert.Equal(bands.Count, rects.Count);
        var vmaRects = rects.Where(r => r.Attribute("data-kind")!.Value == "vma").ToList();
        Assert.Equal(vmas.Select(v => $"0x{v.Start:x}").Reverse(), vmaRects.Select(r => r.Attribute("data-start")!.Value));
        var labels = Texts(doc, "band-label").Select(t => t.Value).ToList();
        foreach (var b in vmaBands)
            Assert.Contains(labels, l => l.StartsWith(b.Name + " — ", StringComparison.Ordinal));
        Assert.Equal($"TASK_SIZE 0x{taskSize:x}", Assert.Single(Texts(doc, "task-size")).Value);
        Assert.Contains($"process {p.Pid}", doc.Descendants(Svg + "text").First().Value);
        var lines = Texts(doc, "band-label").Concat(Texts(doc, "band-detail")).Select(Y).Order().ToList();
        for (int i = 1; i < lines.Count; i++)
            Assert.True(lines[i] - lines[i - 1] >= 11, $"label lines {i - 1} and {i} overlap: y {lines[i - 1]} and {lines[i]}");
        var addresses = Texts(doc, "address").Select(Y).Order().ToList();
        for (int i = 1; i < addresses.Count; i++)
            Assert.True(addresses[i] - addresses[i - 1] >= 9, $"addresses {i - 1} and {i} overlap");

        p.Exit(cpu);
        Assert.Contains($"no process {p.Pid}", MemoryPictures.VirtualBands(m, p.Pid).Single(b => b.Key == "user").Detail);
    }

    [Fact]
    public void The_crowded_top_of_the_i386_map_keeps_its_labels_apart()
    {
        // LDT remap, the persistent kmap window, cpu_entry_area and the fixmap are a few MiB each above vmalloc: drawn
        // at the minimum height, their labels (two lines for pkmap and fixmap) need more room than their bands.
        using var m = Machines.I386(256);
        var doc = XDocument.Parse(MemoryPictures.VirtualSvg(m));
        var labels = Texts(doc, "band-label");
        double ldt = Y(labels.Single(t => t.Value.StartsWith("LDT remap", StringComparison.Ordinal)));
        double pkmap = Y(labels.Single(t => t.Value.StartsWith("persistent kmap window", StringComparison.Ordinal)));
        Assert.True(pkmap - ldt >= 11, $"LDT remap at {ldt}, persistent kmap window at {pkmap}");
        var lines = labels.Concat(Texts(doc, "band-detail")).Select(Y).Order().ToList();
        for (int i = 1; i < lines.Count; i++)
            Assert.True(lines[i] - lines[i - 1] >= 11, $"label lines {i - 1} and {i} overlap: y {lines[i - 1]} and {lines[i]}");
        // Labels that had to move keep a leader line to their band.
        Assert.Contains(doc.Descendants(Svg + "line"), l => (string?)l.Attribute("class") == "leader");
        Assert.Equal("TASK_SIZE 0xc0000000", Assert.Single(Texts(doc, "task-size")).Value);
    }
}
