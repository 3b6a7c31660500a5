using System.Globalization;
using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

public static partial class MemoryPictures
{
    /// <summary>One band of the virtual address space picture.</summary>
    /// <param name="Start">First address.</param>
    /// <param name="Last">Last address (inclusive: the top band ends at 2^64 - 1).</param>
    /// <param name="Key">Kind (data-kind): user, vma, logical, vmalloc, pkmap, fixmap, kernel-text...</param>
    /// <param name="Name">Label.</param>
    /// <param name="Detail">Second label line (physical range, marker names), or null.</param>
    public sealed record VirtualBand(ulong Start, ulong Last, string Key, string Name, string? Detail);

    private static string VirtualKey(AddressKind k) => k switch
    {
        AddressKind.User => "user",
        AddressKind.NonCanonical => "non-canonical",
        AddressKind.Logical => "logical",
        AddressKind.Vmalloc => "vmalloc",
        AddressKind.Pkmap => "pkmap",
        AddressKind.Fixmap => "fixmap",
        AddressKind.KernelText => "kernel-text",
        AddressKind.Modules => "modules",
        AddressKind.Vmemmap => "vmemmap",
        AddressKind.CpuEntryArea => "cpu-entry-area",
        AddressKind.LdtRemap => "ldt-remap",
        AddressKind.Espfix => "espfix",
        AddressKind.Efi => "efi",
        AddressKind.GuardHole => "guard-hole",
        _ => "unused",
    };

    private static string VirtualColour(string key) => key switch
    {
        "user" => "#deebf7",
        "vma" => "#4292c6",
        "logical" => "#74c476",
        "vmalloc" => "#fdae6b",
        "pkmap" => "#9e9ac8",
        "fixmap" => "#bcbddc",
        "kernel-text" => "#252525",
        "modules" => "#636363",
        "vmemmap" => "#969696",
        "cpu-entry-area" => "#c6dbef",
        "non-canonical" => "#ffffff",
        "unused" => "#f7f7f7",
        _ => "#d9d9d9",
    };

    /// <summary>
    /// The bands of the picture, lowest address first: the process's VMAs and the gaps between them up to
    /// TASK_SIZE, then the kernel's areas with the markers the kernel names (PAGE_OFFSET, high_memory,
    /// VMALLOC_START/END, PKMAP_BASE, FIXADDR_START, __START_KERNEL_map).
    /// </summary>
    /// <param name="machine">The machine.</param>
    /// <param name="pid">The process whose VMAs fill user space (none: user space is one band).</param>
    /// <param name="source">Where the VMAs come from (default: the machine's processes, <see cref="VmaSources.Processes"/>).</param>
    public static IReadOnlyList<VirtualBand> VirtualBands(Machine machine, int? pid = null, IVmaSource? source = null)
    {
        ArgumentNullException.ThrowIfNull(machine);
        bool i386 = machine.Arch == ArchKind.I386;
        ulong top = i386 ? 0xffff_ffffUL : ulong.MaxValue;
        var bands = new List<VirtualBand>();
        IReadOnlyList<VmaView>? vmas = pid is { } p ? (source ?? VmaSources.Processes).Vmas(machine, p) : null;
        foreach (var a in machine.KernelAreas)
        {
            ulong last = a.End == 0 ? top : a.End - 1;
            if (a.Kind == AddressKind.User)
            {
                // User space ends at TASK_SIZE; on x86-64 the page below the non-canonical hole is never mapped.
                ulong taskLast = Math.Min(last, machine.TaskSize - 1);
                if (vmas is { Count: > 0 })
                    AddUserBands(bands, a.Start, taskLast, vmas);
                else
                {
                    string who = pid is { } q ? F($"no process {q}") : "no process chosen (--pid N)";
                    bands.Add(new VirtualBand(a.Start, taskLast, "user", "user space", F($"up to TASK_SIZE {Hex(taskLast + 1)}; {who}")));
                }
                if (taskLast < last)
                    bands.Add(new VirtualBand(taskLast + 1, last, "unused", "guard page above TASK_SIZE", null));
                continue;
            }
            string? detail = a.Kind switch
            {
                AddressKind.Logical => F($"PAGE_OFFSET {Hex(a.Start)} → phys {Hex(a.Start - machine.PageOffset)}–{Hex(last - machine.PageOffset)}; ends at high_memory {Hex(machine.HighMemory)}"),
                AddressKind.Vmalloc => F($"VMALLOC_START {Hex(machine.VmallocStart)} – VMALLOC_END {Hex(machine.VmallocEnd)}; areas in use: {machine.VmallocAreas.Count}"),
                AddressKind.Pkmap => F($"PKMAP_BASE {Hex(a.Start)}: LAST_PKMAP {(last + 1 - a.Start) >> PageSize.Shift} slots for kmap()"),
                AddressKind.Fixmap => F($"FIXADDR_START {Hex(a.Start)}: kmap_local slots, APIC, boot-time mappings"),
                AddressKind.KernelText => F($"__START_KERNEL_map {Hex(a.Start)}: kernel image at phys {Hex(machine.Image.Start)}"),
                AddressKind.Vmemmap => F($"VMEMMAP_START {Hex(a.Start)}: struct page array ({Size(machine.MemmapBytes)} used)"),
                _ => null,
            };
            string name = a.Kind switch
            {
                AddressKind.Logical => machine.Arch == ArchKind.I386 ? "lowmem linear map" : "direct map of RAM",
                AddressKind.Vmalloc => "vmalloc area",
                AddressKind.Pkmap => "persistent kmap window",
                AddressKind.Fixmap => "fixmap",
                AddressKind.KernelText => "kernel text mapping",
                AddressKind.Modules => "module area",
                AddressKind.Vmemmap => "vmemmap",
                AddressKind.CpuEntryArea => "cpu_entry_area",
                AddressKind.LdtRemap => "LDT remap",
                AddressKind.Espfix => "ESPfix stacks",
                AddressKind.Efi => "EFI runtime services",
                AddressKind.GuardHole => "hypervisor guard hole",
                AddressKind.NonCanonical => "non-canonical hole",
                _ => "unused",
            };
            bands.Add(new VirtualBand(a.Start, last, VirtualKey(a.Kind), name, detail));
        }
        return bands;
    }

    private static void AddUserBands(List<VirtualBand> bands, ulong start, ulong last, IReadOnlyList<VmaView> vmas)
    {
        ulong at = start;
        foreach (var v in vmas.Where(v => v.Start >= start && v.End - 1 <= last).OrderBy(v => v.Start))
        {
            if (v.Start > at)
                bands.Add(new VirtualBand(at, v.Start - 1, "user", "unmapped", null));
            string name = v.Name.Length == 0 ? "[anon]" : v.Name;
            bands.Add(new VirtualBand(v.Start, v.End - 1, "vma", F($"{name} {v.Perms}"), null));
            at = v.End;
        }
        if (at <= last)
            bands.Add(new VirtualBand(at, last, "user", "unmapped", F($"up to TASK_SIZE {Hex(last + 1)}")));
    }

    /// <summary>
    /// The virtual address space as the classic diagram, highest address on top: the process's VMAs up to
    /// TASK_SIZE, then the kernel's part — on i386 the lowmem linear map at PAGE_OFFSET with its physical range, the
    /// vmalloc area, the pkmap window and the fixmap; on x86-64 the direct map, vmalloc, vmemmap and the kernel text.
    /// Bands are to scale (the linear map of RAM sets the scale) where they fit between a minimum and a maximum
    /// height; the others are drawn at that bound and marked with a broken-axis zigzag. Labels sit beside their
    /// band, moved apart (with a leader line) where small bands would make them overlap.
    /// </summary>
    /// <param name="machine">The machine.</param>
    /// <param name="pid">The process whose VMAs to draw (none: user space is one band).</param>
    /// <param name="title">The heading (default: the profile, the RAM and the process).</param>
    /// <param name="source">Where the VMAs come from (default: the machine's processes, <see cref="VmaSources.Processes"/>).</param>
    public static string VirtualSvg(Machine machine, int? pid = null, string? title = null, IVmaSource? source = null)
    {
        var bands = VirtualBands(machine, pid, source);
        double linear = bands.Where(b => b.Key == "logical").Sum(b => (double)(b.Last - b.Start) + 1);
        if (linear <= 0)
            linear = 1UL << 30;
        double scale = 220.0 / linear;   // px per byte: the linear map of RAM is 220 px tall
        const double colX = 330, colW = 190, top = 80, minH = 16, maxH = 240, gapMin = 6, gapMax = 36;
        const double labelX = colX + colW + 24;

        // Geometry, highest band first.
        var rows = new List<BandRow>(bands.Count);
        double y = top;
        for (int i = bands.Count - 1; i >= 0; i--)
        {
            var b = bands[i];
            double bytes = (double)(b.Last - b.Start) + 1;
            double h = bytes * scale;
            bool gap = IsGap(b);
            double lo = gap ? gapMin : minH, hi = gap ? gapMax : maxH;
            bool broken = h < lo || h > hi;
            if (h > hi)
            {
                // Too large to draw to scale: grow slowly with the size (log), so bigger still looks bigger.
                double over = Math.Log2(h / hi);
                h = gap ? Math.Min(gapMax, gapMin + 3 * over) : Math.Min(maxH, 60 + 6 * over);
            }
            h = Math.Max(h, lo);
            rows.Add(new BandRow(b, y, h, broken));
            y += h;
        }
        double columnBottom = y;

        // Labels beside the column: each block centred on its band where there is room, else moved just enough.
        var labels = rows.Where(r => r.H >= 14 || !IsGap(r.Band))
            .Select(r => new LabelBlock(r, r.Band.Detail is null ? 14 : 26)).ToList();
        LayOutLabels(labels, top - 6);

        // Addresses left of the column at band edges; where two would collide the more important one stays.
        var addresses = new List<(double Y, string Text, int Rank)> { (top + 3, Hex(bands[^1].Last), 1) };
        foreach (var r in rows)
        {
            bool taskSize = r.Band.Start == machine.TaskSize;
            var a = (Y: r.Y + r.H + 3, Text: taskSize ? "TASK_SIZE " + Hex(r.Band.Start) : Hex(r.Band.Start), Rank: taskSize ? 2 : 0);
            if (a.Y - addresses[^1].Y >= 9)
                addresses.Add(a);
            else if (a.Rank > addresses[^1].Rank)
                addresses[^1] = a;
        }

        double width = labelX + 560;
        double height = Math.Max(columnBottom, labels.Count == 0 ? 0 : labels[^1].Top + labels[^1].Height) + 60;
        string who = pid is { } p ? F($", process {p}") : "";
        string heading = title ?? F($"Virtual address space: {machine.ArchName}, {Size(machine.Config.MemBytes)} of RAM{who}");
        var svg = new SvgWriter(width, height, heading);
        svg.Text(20, 30, heading, 18, weight: "bold", cls: "title");
        svg.Text(20, 52, "Highest address on top. Bands are to scale (the linear map of RAM sets it) unless their edges are marked // (broken axis: too small or too large to draw to scale).", 12, cls: "subtitle");

        svg.Open("g", ("id", "bands"));
        foreach (var r in rows)
        {
            var b = r.Band;
            svg.RectWithTitle(colX, r.Y, colW, r.H, VirtualColour(b.Key), F($"{b.Name}: {Hex(b.Start)}–{Hex(b.Last)} ({Size(b.Last - b.Start + 1)})"),
                ("class", "band"), ("data-kind", b.Key), ("data-start", Hex(b.Start)), ("data-last", Hex(b.Last)),
                ("data-scaled", r.Broken ? "no" : "yes"), ("stroke", "#555555"), ("stroke-width", "0.75"));
            if (r.Broken)
                BrokenAxis(svg, colX, colW, r.Y + r.H / 2);
            if (r.H >= 14)
            {
                bool dark = b.Key is "kernel-text" or "modules" or "vma";
                svg.Text(colX + colW / 2, r.Y + Math.Min(r.H / 2 + 4, r.H - 3), b.Name.Length > 30 ? b.Name[..30] : b.Name, 10, "middle", cls: "band-name", fill: dark ? "#ffffff" : "#111111");
            }
        }
        svg.Close("g");

        svg.Open("g", ("id", "labels"));
        foreach (var l in labels)
        {
            var (b, broken) = (l.Row.Band, l.Row.Broken);
            double anchor = l.Row.Y + l.Row.H / 2;
            double mid = l.Top + 7;
            // A leader from the band's edge when the label had to move away from it; a short tick otherwise.
            svg.Line(colX + colW, anchor, labelX - 4, mid, "#999999", 0.6, cls: Math.Abs(mid - anchor) > 3 ? "leader" : "tick");
            svg.Text(labelX, l.Top + 11, F($"{b.Name} — {Size(b.Last - b.Start + 1)}{(broken ? " (not to scale)" : "")}"), 11, cls: "band-label");
            if (b.Detail is not null)
                svg.Text(labelX, l.Top + 23, b.Detail, 9.5, cls: "band-detail", fill: "#555555");
        }
        svg.Close("g");

        foreach (var (ay, text, rank) in addresses)
        {
            svg.Text(colX - 10, ay, text, 9, "end", cls: rank == 2 ? "address task-size" : "address", fill: rank == 2 ? "#08519c" : "#333333",
                weight: rank == 2 ? "bold" : "normal");
            if (rank == 2)
                svg.Line(colX - 6, ay - 3, colX + colW, ay - 3, "#08519c", 1.2, dash: "4 2", cls: "task-size");
        }
        svg.Text(colX + colW / 2, height - 20, F($"{bands.Count} bands; 1 px = {Size((ulong)Math.Max(1, 1 / scale))} where to scale"), 11, "middle", fill: "#555555");
        return svg.ToString();
    }

    private static bool IsGap(VirtualBand b) => b.Key is "unused" or "non-canonical" or "guard-hole";

    /// <summary>A band as drawn: its top, height, and whether its size is not to scale.</summary>
    private sealed record BandRow(VirtualBand Band, double Y, double H, bool Broken);

    /// <summary>A band's label block (name line, optional detail line); <see cref="Top"/> is set by the layout.</summary>
    private sealed class LabelBlock(BandRow row, double height)
    {
        public BandRow Row { get; } = row;
        public double Height { get; } = height;
        public double Desired { get; } = row.Y + row.H / 2 - height / 2;
        public double Top { get; set; }
    }

    /// <summary>
    /// Places label blocks (in top-to-bottom order) without overlap, each as near its band's middle as it can be:
    /// blocks that would overlap form a cluster stacked at the position that minimises the squared distances to
    /// their wishes (the mean of the wishes less each block's offset), and clusters that then touch merge.
    /// </summary>
    private static void LayOutLabels(List<LabelBlock> labels, double minTop)
    {
        const double gap = 1;
        var clusters = new List<(int First, int Last, double Top, double Height)>();
        for (int i = 0; i < labels.Count; i++)
        {
            clusters.Add((i, i, Math.Max(minTop, labels[i].Desired), labels[i].Height + gap));
            while (clusters.Count > 1 && clusters[^2].Top + clusters[^2].Height > clusters[^1].Top)
            {
                var (prev, cur) = (clusters[^2], clusters[^1]);
                int first = prev.First, last = cur.Last;
                double sum = 0, offset = 0;
                for (int k = first; k <= last; k++)
                {
                    sum += labels[k].Desired - offset;
                    offset += labels[k].Height + gap;
                }
                clusters.RemoveAt(clusters.Count - 1);
                clusters[^1] = (first, last, Math.Max(minTop, sum / (last - first + 1)), offset);
            }
        }
        foreach (var (first, last, clusterTop, _) in clusters)
        {
            double t = clusterTop;
            for (int k = first; k <= last; k++)
            {
                labels[k].Top = t;
                t += labels[k].Height + gap;
            }
        }
    }

    /// <summary>The broken-axis mark on both edges of the band: a pair of slanted strokes, white between them.</summary>
    private static void BrokenAxis(SvgWriter svg, double x, double w, double y)
    {
        foreach (double ex in (double[])[x, x + w])
        {
            svg.Path(F($"M {ex - 7:0.#},{y + 1:0.#} L {ex + 7:0.#},{y - 5:0.#} L {ex + 7:0.#},{y - 1:0.#} L {ex - 7:0.#},{y + 5:0.#} Z"), "none", 0, "#ffffff", cls: "axis-break-bg");
            svg.Path(F($"M {ex - 7:0.#},{y + 1:0.#} L {ex + 7:0.#},{y - 5:0.#}"), "#333333", 1.2, cls: "axis-break");
            svg.Path(F($"M {ex - 7:0.#},{y + 5:0.#} L {ex + 7:0.#},{y - 1:0.#}"), "#333333", 1.2, cls: "axis-break");
        }
    }
}
