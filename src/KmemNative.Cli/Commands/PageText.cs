using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>How commands print pages, so every command shows a page the same way.</summary>
internal static class PageText
{
    /// <summary><c>page 0xffffea0000040000 pfn 0x1000 order 0 zone Normal</c>.</summary>
    public static string Line(Page page, int order) =>
        $"page {CliValues.Hex(page.DescriptorAddress)} pfn {CliValues.Hex(page.Pfn)} order {order} zone {ZoneName(page)}";

    /// <summary>The name of the zone the page's flags say it is in.</summary>
    public static string ZoneName(Page page) => ZoneName(page.Machine, page.Descriptor.ZoneIndex);

    /// <summary>The name of zone <paramref name="index"/> of <paramref name="machine"/>.</summary>
    public static string ZoneName(Machine machine, int index) =>
        (uint)index < (uint)machine.Zones.Count ? machine.Zones[index].Name : $"zone{index}";

    /// <summary>
    /// The error for an allocation that returned nothing, carrying the kernel's warn_alloc() line when the
    /// attempt logged one (not with __GFP_NOWARN).
    /// </summary>
    /// <param name="call">The kernel function, e.g. <c>alloc_pages</c>.</param>
    /// <param name="gfp">The flags asked for.</param>
    /// <param name="order">The order asked for.</param>
    /// <param name="machine">The machine.</param>
    /// <param name="logMark">The log's line count before the attempt.</param>
    public static CommandFailedException AllocationFailed(string call, Gfp gfp, int order, Machine machine, int logMark)
    {
        string message = $"{call}({GfpFlags.Format(gfp)}, {order}) failed";
        // warn_alloc()'s report: the failure line, then show_mem()'s Mem-Info lines after it.
        var lines = machine.Log.Since(logMark);
        int at = -1;
        for (int i = lines.Count - 1; i >= 0 && at < 0; i--)
            if (lines[i].Contains("page allocation failure", StringComparison.Ordinal))
                at = i;
        return new CommandFailedException(at < 0 ? message : $"{message}: {string.Join('\n', lines.Skip(at))}");
    }
}
