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
    /// The bands of the picture, lowest address first: the process's VMAs (from <see cref="VmaSources.Current"/>)
    /// and the gaps between them up to TASK_SIZE, then the kernel's areas with the markers the kernel names
    /// (PAGE_OFFSET, high_memory, VMALLOC_START/END, PKMAP_BASE, FIXADDR_START, __START_KERNEL_map).
    /// </summary>
    public static IReadOnlyList<VirtualBand> VirtualBands(Machine machine, int? pid = null)
    {
        ArgumentNullException.ThrowIfNull(machine);
        bool i386 = machine.Arch == ArchKind.I386;
        ulong top = i386 ? 0xffff_ffffUL : ulong.MaxValue;
        var bands = new List<VirtualBand>();
        IReadOnlyList<VmaView>? vmas = pid is { } p ? VmaSources.Current.Vmas(machine, p) : null;
        foreach (var a in machine.KernelAreas)
        {
            ulong last = a.End == 0 ? top : a.End - 1;
            if (a.Kind == AddressKind.User)
            {
                if (vmas is { Count: > 0 })
                {
                    AddUserBands(bands, a.Start, last, vmas);
                    continue;
                }
                string who = pid is { } q ? F($"no process {q}") : "no process chosen (--pid N)";
                bands.Add(new VirtualBand(a.Start, last, "user", "user space", F($"up to TASK_SIZE {Hex(last + 1)}; {who}")));
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
    /// height; the others are drawn at that bound and marked with a broken-axis zigzag.
    /// </summary>
    public static string VirtualSvg(Machine machine, int? pid = null, string? title = null)
    {
        var bands = VirtualBands(machine, pid);
        double linear = bands.Where(b => b.Key == "logical").Sum(b => (double)(b.Last - b.Start) + 1);
        if (linear <= 0)
            linear = 1UL << 30;
        double scale = 220.0 / linear;   // px per byte: the linear map of RAM is 220 px tall
        const double colX = 330, colW = 190, top = 80, minH = 16, maxH = 240, gapMin = 6, gapMax = 36;
        var heights = new List<(VirtualBand Band, double H, bool Broken)>();
        foreach (var b in bands)
        {
            double bytes = (double)(b.Last - b.Start) + 1;
            double h = bytes * scale;
            bool gap = b.Key is "unused" or "non-canonical" or "guard-hole";
            double lo = gap ? gapMin : minH, hi = gap ? gapMax : maxH;
            bool broken = h < lo || h > hi;
            if (h > hi)
            {
                // Too large to draw to scale: grow slowly with the size (log), so bigger still looks bigger.
                double over = Math.Log2(h / hi);
                h = gap ? Math.Min(gapMax, gapMin + 3 * over) : Math.Min(maxH, 60 + 6 * over);
            }
            heights.Add((b, Math.Max(h, lo), broken));
        }
        double total = heights.Sum(h => h.H);
        double width = colX + colW + 560;
        double height = top + total + 60;
        string who = pid is { } p ? F($", process {p}") : "";
        string heading = title ?? F($"Virtual address space: {machine.ArchName}, {Size(machine.Config.MemBytes)} of RAM{who}");
        var svg = new SvgWriter(width, height, heading);
        svg.Text(20, 30, heading, 18, weight: "bold", cls: "title");
        svg.Text(20, 52, "Highest address on top. Bands are to scale (the linear map of RAM sets it) unless their edges are marked // (broken axis: too small or too large to draw to scale).", 12, cls: "subtitle");

        double y = top;
        double lastLabel = double.MinValue;
        svg.Open("g", ("id", "bands"));
        // Highest first.
        for (int i = heights.Count - 1; i >= 0; i--)
        {
            var (b, h, broken) = heights[i];
            string fill = VirtualColour(b.Key);
            svg.RectWithTitle(colX, y, colW, h, fill, F($"{b.Name}: {Hex(b.Start)}–{Hex(b.Last)} ({Size(b.Last - b.Start + 1)})"),
                ("class", "band"), ("data-kind", b.Key), ("data-start", Hex(b.Start)), ("data-last", Hex(b.Last)),
                ("data-scaled", broken ? "no" : "yes"), ("stroke", "#555555"), ("stroke-width", "0.75"));
            if (broken)
                BrokenAxis(svg, colX, colW, y + h / 2);
            // Address of the band's start at its bottom edge, on the left (unless it would overlap the one above).
            if (y + h + 3 - lastLabel >= 9)
            {
                svg.Text(colX - 10, y + h + 3, Hex(b.Start), 9, "end", cls: "address", fill: "#333333");
                lastLabel = y + h + 3;
            }
            if (h >= 14 || b.Key is not ("unused" or "non-canonical" or "guard-hole"))
            {
                string size = Size(b.Last - b.Start + 1);
                bool dark = b.Key is "kernel-text" or "modules" or "vma";
                if (h >= 14)
                    svg.Text(colX + colW / 2, y + Math.Min(h / 2 + 4, h - 3), b.Name.Length > 30 ? b.Name[..30] : b.Name, 10, "middle", cls: "band-name", fill: dark ? "#ffffff" : "#111111");
                svg.Text(colX + colW + 12, y + Math.Min(h / 2, h - 2) + (b.Detail is null ? 4 : -2),
                    F($"{b.Name} — {size}{(broken ? " (not to scale)" : "")}"), 11, cls: "band-label");
                if (b.Detail is not null)
                    svg.Text(colX + colW + 12, y + Math.Min(h / 2, h - 2) + 11, b.Detail, 9.5, cls: "band-detail", fill: "#555555");
            }
            y += h;
        }
        svg.Close("g");
        string topAddr = Hex(bands[^1].Last);
        svg.Text(colX - 8, top + 3, topAddr, 9, "end", cls: "address", fill: "#333333");
        svg.Text(colX + colW / 2, height - 20, F($"{bands.Count} bands; 1 px = {Size((ulong)Math.Max(1, 1 / scale))} where to scale"), 11, "middle", fill: "#555555");
        return svg.ToString();
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
