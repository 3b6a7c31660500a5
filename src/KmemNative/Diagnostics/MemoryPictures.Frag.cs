using System.Globalization;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

public static partial class MemoryPictures
{
    /// <summary>
    /// The fragmentation chart: per populated zone, the free blocks of each order (bars, from free_area[].nr_free)
    /// and the extfrag unusable free space index of each order (line, 0 to 1, as /sys/kernel/debug/extfrag/
    /// unusable_index computes it).
    /// </summary>
    public static string FragmentationSvg(Machine machine, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(machine);
        var zones = Fragmentation.Compute(machine);
        const double panelW = 760, panelH = 270, left = 60, top = 80, plotW = 560, plotH = 160;
        double width = left + panelW + 20;
        double height = top + zones.Count * (panelH + 20) + 20;
        string heading = title ?? F($"Free lists and fragmentation: {machine.ArchName}, {Size(machine.Config.MemBytes)}");
        var svg = new SvgWriter(width, height, heading);
        svg.Text(20, 30, heading, 18, weight: "bold", cls: "title");
        svg.Text(20, 50, "Bars: free blocks per order (free_area[order].nr_free).", 12, cls: "subtitle");
        svg.Text(20, 64, "Line: unusable free space index per order (extfrag/unusable_index: 0 = all free memory usable at that order, 1 = none).", 12, cls: "subtitle");

        double y = top;
        foreach (var z in zones)
        {
            svg.Open("g", ("class", "zone-panel"), ("data-zone", z.Zone));
            svg.Rect(left - 40, y, panelW, panelH, "#fafafa", ("stroke", "#cccccc"));
            svg.Text(left - 30, y + 20, F($"ZONE_{z.Zone.ToUpperInvariant()}: {N(z.FreePages)} free pages ({Size((ulong)z.FreePages << PageSize.Shift)})"), 14, weight: "bold", cls: "zone-label");
            double px = left + 10, py = y + 40;
            long maxBlocks = Math.Max(1, z.FreeBlocks.Max());
            double slot = plotW / z.FreeBlocks.Length;
            // Axes.
            svg.Line(px, py + plotH, px + plotW, py + plotH, "#333333");
            svg.Line(px, py, px, py + plotH, "#333333");
            svg.Line(px + plotW, py, px + plotW, py + plotH, "#1f78b4", 1);
            svg.Text(px - 6, py + 4, N(maxBlocks), 10, "end", fill: "#555555");
            svg.Text(px - 6, py + plotH, "0", 10, "end", fill: "#555555");
            svg.Text(px + plotW + 6, py + 4, "1.0", 10, fill: "#1f78b4");
            svg.Text(px + plotW + 6, py + plotH, "0.0", 10, fill: "#1f78b4");
            var points = new List<string>();
            for (int o = 0; o < z.FreeBlocks.Length; o++)
            {
                long blocks = z.FreeBlocks[o];
                double h = blocks == 0 ? 0 : Math.Max(1, plotH * blocks / (double)maxBlocks);
                double bx = px + o * slot + slot * 0.15, bw = slot * 0.7;
                svg.RectWithTitle(bx, py + plotH - h, bw, h, FreeColour(o), F($"order {o}: {N(blocks)} free blocks of {1 << o} pages"),
                    ("class", "bar"), ("data-order", o.ToString(CultureInfo.InvariantCulture)), ("data-blocks", blocks.ToString(CultureInfo.InvariantCulture)),
                    ("stroke", "#555555"), ("stroke-width", "0.5"));
                svg.Text(bx + bw / 2, py + plotH - h - 3, N(blocks), 9, "middle", cls: "bar-label");
                svg.Text(bx + bw / 2, py + plotH + 14, o.ToString(CultureInfo.InvariantCulture), 10, "middle", cls: "order-label");
                int idx = z.UnusableIndex[o];
                double cx = bx + bw / 2, cy = py + plotH - plotH * idx / 1000.0;
                points.Add(F($"{cx:0.##},{cy:0.##}"));
            }
            svg.Path("M " + string.Join(" L ", points), "#1f78b4", 2, cls: "unusable-line");
            for (int o = 0; o < z.FreeBlocks.Length; o++)
            {
                int idx = z.UnusableIndex[o];
                var xy = points[o].Split(',');
                double cx = double.Parse(xy[0], CultureInfo.InvariantCulture), cy = double.Parse(xy[1], CultureInfo.InvariantCulture);
                svg.Circle(cx, cy, 3, "#1f78b4", ("class", "unusable"), ("data-order", o.ToString(CultureInfo.InvariantCulture)),
                    ("data-index", F($"{idx / 1000}.{idx % 1000:000}")));
            }
            svg.Text(px + plotW / 2, py + plotH + 30, "order", 11, "middle", fill: "#555555");
            svg.Text(px, py + plotH + 46, "unusable_index: " + string.Join(" ", z.UnusableIndex.Select(i => F($"{i / 1000}.{i % 1000:000}"))), 10, cls: "unusable-text", fill: "#1f78b4");
            svg.Close("g");
            y += panelH + 20;
        }
        return svg.ToString();
    }
}
