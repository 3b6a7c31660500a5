using System.Globalization;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

/// <summary>
/// Pictures of memory as SVG: the physical memory map (<see cref="PhysicalSvg(Machine, string?)"/>), the fragmentation chart
/// (<see cref="FragmentationSvg"/>) and the virtual address space (<see cref="VirtualSvg"/>).
/// </summary>
/// <remarks>
/// The SVG is written by hand (<see cref="SvgWriter"/>) and is structured for machines as well as eyes: every cell,
/// bar and area carries <c>class</c> and <c>data-*</c> attributes (owner, pages, pfn, order...) that tests read back
/// with System.Xml, and the legend states the page count of each owner.
/// </remarks>
public static partial class MemoryPictures
{
    /// <summary>Pages up to which the physical map draws one cell per page; above it, one per pageblock.</summary>
    public const ulong PerPageLimit = 16384;

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Fill colour of an owner (free blocks by order: <see cref="FreeColour"/>).</summary>
    public static string Colour(PageOwner o) => o switch
    {
        PageOwner.Hole => "#f2f2f2",
        PageOwner.Free => FreeColour(0),
        PageOwner.FreePcp => "#fee391",
        PageOwner.Slab => "#fd8d3c",
        PageOwner.LargeKmalloc => "#a63603",
        PageOwner.PageTable => "#6a51a3",
        PageOwner.UserAnon => "#2171b5",
        PageOwner.PageCache => "#6baed6",
        PageOwner.AllocatedMovable => "#df65b0",
        PageOwner.AllocatedKernel => "#cb181d",
        PageOwner.KernelImage => "#252525",
        PageOwner.MemMap => "#737373",
        _ => "#bdbdbd",
    };

    /// <summary>Free blocks: pale green for order 0 to dark green for MAX_PAGE_ORDER.</summary>
    public static string FreeColour(int order)
    {
        // Interpolate #e5f5e0 -> #00441b.
        double t = Math.Clamp(order / (double)PageSize.MaxOrder, 0, 1);
        int r = (int)Math.Round(0xe5 + (0x00 - 0xe5) * t);
        int g = (int)Math.Round(0xf5 + (0x44 - 0xf5) * t);
        int b = (int)Math.Round(0xe0 + (0x1b - 0xe0) * t);
        return F($"#{r:x2}{g:x2}{b:x2}");
    }

    private static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private static string Size(ulong bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return F($"{v:0.#} {units[u]}");
    }

    /// <summary>
    /// The physical memory map: one cell per page (per pageblock above <see cref="PerPageLimit"/> pages), coloured by
    /// owner — free blocks shaded by buddy order — one band per zone with its range, and a legend with page counts.
    /// </summary>
    public static string PhysicalSvg(Machine machine, string? title = null) => PhysicalSvg(PhysicalMemoryMap.Scan(machine), title);

    /// <inheritdoc cref="PhysicalSvg(Machine, string?)"/>
    public static string PhysicalSvg(PhysicalMemoryMap map, string? title = null)
    {
        var m = map.Machine;
        ulong cellPages = map.MaxPfn <= PerPageLimit ? 1 : 1UL << m.PageblockOrder;
        int columns = cellPages == 1 ? 128 : 64;
        const double cell = 9, left = 120, top = 70, legendWidth = 560, bandGap = 34;
        double gridWidth = columns * cell;

        // Rows per zone band: cells from the zone's start (rounded down to a cell) to its end.
        var bands = map.Zones.Select(z =>
        {
            // Rows start at a multiple of a row's pages, so the address labels are round numbers.
            ulong rowPages = cellPages * (ulong)columns;
            ulong first = z.StartPfn / rowPages * rowPages;
            ulong cells = (z.EndPfn - first + cellPages - 1) / cellPages;
            return (Zone: z, First: first, Cells: cells, Rows: (cells + (ulong)columns - 1) / (ulong)columns);
        }).ToList();
        double gridHeight = bands.Sum(b => bandGap + b.Rows * cell);
        var present = Enum.GetValues<PageOwner>().Where(o => map.Count(o) > 0).ToList();
        double legendHeight = 40 + present.Count * 22 + 30 + PageSize.NrOrders * 18;
        double width = left + gridWidth + 40 + legendWidth;
        double height = top + Math.Max(gridHeight, legendHeight) + 30;

        string heading = title ?? F($"Physical memory: {m.ArchName}, {Size(m.Config.MemBytes)}, {N((long)map.MaxPfn)} page frames");
        var svg = new SvgWriter(width, height, heading);
        svg.Text(20, 30, heading, 18, weight: "bold", cls: "title");
        string unit = cellPages == 1 ? "one cell per page (4 KiB)" : F($"one cell per pageblock ({cellPages} pages = {Size(cellPages << PageSize.Shift)}), coloured by its main owner");
        svg.Text(20, 52, unit, 12, cls: "subtitle");

        double y = top;
        svg.Open("g", ("id", "cells"));
        foreach (var band in bands)
        {
            var z = band.Zone;
            ulong bytes = (z.EndPfn - z.StartPfn) << PageSize.Shift;
            svg.Text(left, y + 20, F($"ZONE_{z.Name.ToUpperInvariant()}  pfn {Hex(z.StartPfn)}–{Hex(z.EndPfn - 1)}  phys {Hex(z.StartPfn << PageSize.Shift)}–{Hex((z.EndPfn << PageSize.Shift) - 1)}  ({Size(bytes)})"),
                13, weight: "bold", cls: "zone-label");
            svg.Line(left - 6, y + 26, left + gridWidth, y + 26, "#444444", 1.5, cls: "zone-boundary");
            y += bandGap;
            for (ulong row = 0; row < band.Rows; row++)
            {
                ulong rowPfn = band.First + row * (ulong)columns * cellPages;
                svg.Text(left - 8, y + row * cell + cell - 1, Hex(rowPfn << PageSize.Shift), 7, "end", cls: "row-label", fill: "#555555");
            }
            if (cellPages == 1)
                PerPageCells(svg, map, band.Zone, band.First, band.Cells, columns, left, y, cell);
            else
                PageblockCells(svg, map, band.Zone, band.First, band.Cells, columns, cellPages, left, y, cell);
            y += band.Rows * cell;
        }
        svg.Close("g");

        Legend(svg, map, present, left + gridWidth + 40, top);
        return svg.ToString();
    }

    /// <summary>One rect per run of pages with the same owner (and free order) within a row.</summary>
    private static void PerPageCells(SvgWriter svg, PhysicalMemoryMap map, ZoneSpan z, ulong first, ulong cells, int columns, double left, double y, double cell)
    {
        for (ulong i = 0; i < cells;)
        {
            ulong pfn = first + i;
            var (owner, order) = Classify(map, z, pfn);
            ulong run = 1;
            ulong rowEnd = (i / (ulong)columns + 1) * (ulong)columns;
            while (i + run < cells && i + run < rowEnd && Classify(map, z, pfn + run) == (owner, order))
                run++;
            double x = left + (i % (ulong)columns) * cell, yy = y + (i / (ulong)columns) * cell;
            string fill = owner == PageOwner.Free ? FreeColour(order) : Colour(owner);
            var attrs = new List<(string, string)>
            {
                ("class", "cell"), ("data-owner", PhysicalMemoryMap.Key(owner)), ("data-pfn", Hex(pfn)),
                ("data-pages", ((long)run).ToString(CultureInfo.InvariantCulture)),
            };
            if (owner == PageOwner.Free)
                attrs.Add(("data-order", order.ToString(CultureInfo.InvariantCulture)));
            attrs.Add(("stroke", "#ffffff"));
            attrs.Add(("stroke-width", "0.5"));
            svg.Rect(x, yy, run * cell, cell, fill, [.. attrs]);
            i += run;
        }
    }

    /// <summary>A page outside the zone (before its start in the first cell) is drawn as a hole.</summary>
    private static (PageOwner Owner, int Order) Classify(PhysicalMemoryMap map, ZoneSpan z, ulong pfn)
    {
        if (pfn < z.StartPfn || pfn >= z.EndPfn || pfn >= map.MaxPfn)
            return (PageOwner.Hole, 0);
        var o = map.Owner(pfn);
        return (o, o == PageOwner.Free ? map.FreeOrder(pfn) : 0);
    }

    /// <summary>One rect per pageblock, in its main owner's colour, with the block's make-up as a tooltip.</summary>
    private static void PageblockCells(SvgWriter svg, PhysicalMemoryMap map, ZoneSpan z, ulong first, ulong cells, int columns, ulong cellPages,
        double left, double y, double cell)
    {
        var counts = new long[Enum.GetValues<PageOwner>().Length];
        for (ulong i = 0; i < cells; i++)
        {
            Array.Clear(counts);
            int maxOrder = 0;
            ulong start = first + i * cellPages;
            long inZone = 0;
            for (ulong p = start; p < start + cellPages; p++)
            {
                var (o, order) = Classify(map, z, p);
                counts[(int)o]++;
                if (o != PageOwner.Hole)
                    inZone++;
                if (o == PageOwner.Free)
                    maxOrder = Math.Max(maxOrder, order);
            }
            var main = PageOwner.Hole;
            for (int k = 1; k < counts.Length; k++)
            {
                if (counts[k] > 0 && (main == PageOwner.Hole || counts[k] > counts[(int)main]))
                    main = (PageOwner)k;
            }
            double x = left + (i % (ulong)columns) * cell, yy = y + (i / (ulong)columns) * cell;
            string fill = main == PageOwner.Free ? FreeColour(maxOrder) : Colour(main);
            string makeUp = string.Join(", ", Enumerable.Range(0, counts.Length).Where(k => counts[k] > 0)
                .OrderByDescending(k => counts[k]).Select(k => F($"{PhysicalMemoryMap.Key((PageOwner)k)} {counts[k]}")));
            svg.RectWithTitle(x, yy, cell, cell, fill, F($"pfn {Hex(start)}–{Hex(start + cellPages - 1)}: {makeUp}"),
                ("class", "cell"), ("data-owner", PhysicalMemoryMap.Key(main)), ("data-pfn", Hex(start)),
                ("data-pages", inZone.ToString(CultureInfo.InvariantCulture)), ("stroke", "#ffffff"), ("stroke-width", "0.5"));
        }
    }

    private static void Legend(SvgWriter svg, PhysicalMemoryMap map, List<PageOwner> present, double x, double y)
    {
        svg.Open("g", ("id", "legend"));
        svg.Text(x, y + 12, "Owner of each page", 14, weight: "bold");
        y += 30;
        foreach (var o in present)
        {
            long pages = map.Count(o);
            svg.Rect(x, y, 14, 14, Colour(o), ("class", "swatch"), ("data-owner", PhysicalMemoryMap.Key(o)), ("stroke", "#888888"), ("stroke-width", "0.5"));
            svg.Element("text", F($"{PhysicalMemoryMap.Describe(o)}: {N(pages)} pages ({Size((ulong)pages << PageSize.Shift)})"),
                ("x", F($"{x + 20}")), ("y", F($"{y + 12}")), ("font-size", "12"), ("class", "legend-entry"),
                ("data-owner", PhysicalMemoryMap.Key(o)), ("data-pages", pages.ToString(CultureInfo.InvariantCulture)));
            y += 22;
        }
        y += 14;
        svg.Text(x, y, "Free pages by buddy order", 12, weight: "bold");
        y += 8;
        var byOrder = map.FreePagesByOrder();
        for (int order = 0; order < byOrder.Length; order++)
        {
            svg.Rect(x, y, 14, 14, FreeColour(order), ("class", "swatch-order"), ("data-order", order.ToString(CultureInfo.InvariantCulture)), ("stroke", "#888888"), ("stroke-width", "0.5"));
            svg.Element("text", F($"order {order} ({1 << order} pages): {N(byOrder[order])} free pages"),
                ("x", F($"{x + 20}")), ("y", F($"{y + 12}")), ("font-size", "11"), ("class", "legend-order"),
                ("data-order", order.ToString(CultureInfo.InvariantCulture)), ("data-pages", byOrder[order].ToString(CultureInfo.InvariantCulture)));
            y += 18;
        }
        svg.Close("g");
    }
}
