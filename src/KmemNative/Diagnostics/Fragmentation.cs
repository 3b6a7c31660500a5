using System.Globalization;
using System.Text;
using KmemNative.PhysMem;

namespace KmemNative.Diagnostics;

/// <summary>One zone's free lists and how fragmented they are.</summary>
/// <param name="Zone">Zone name.</param>
/// <param name="FreeBlocks">free_area[order].nr_free for orders 0..MAX_PAGE_ORDER.</param>
/// <param name="FreePages">Pages in those blocks.</param>
/// <param name="UnusableIndex">unusable_free_index() per order in thousandths (1000 = all free memory unusable).</param>
public sealed record ZoneFragmentation(string Zone, long[] FreeBlocks, long FreePages, int[] UnusableIndex);

/// <summary>
/// External fragmentation as the kernel measures it for /sys/kernel/debug/extfrag/unusable_index (mm/vmstat.c):
/// per order, the fraction of free memory that cannot satisfy an allocation of that order because it lies in
/// smaller blocks.
/// </summary>
public static class Fragmentation
{
    /// <summary>
    /// unusable_free_index(): with fill_contig_page_info()'s sums over the free lists, (free_pages -
    /// (free_blocks_suitable &lt;&lt; order)) * 1000 / free_pages, where free_blocks_suitable counts the blocks of
    /// order ≥ <paramref name="order"/> in units of 2^order pages; 1000 when nothing is free.
    /// </summary>
    public static int UnusableFreeIndex(ReadOnlySpan<long> nrFree, int order)
    {
        long freePages = 0, suitable = 0;
        for (int o = 0; o < nrFree.Length; o++)
        {
            freePages += nrFree[o] << o;
            if (o >= order)
                suitable += nrFree[o] << (o - order);
        }
        if (freePages == 0)
            return 1000;
        return (int)((freePages - (suitable << order)) * 1000 / freePages);
    }

    /// <summary>Every populated zone's fragmentation.</summary>
    public static IReadOnlyList<ZoneFragmentation> Compute(Machine machine)
    {
        var list = new List<ZoneFragmentation>();
        foreach (var z in machine.Zones.Where(z => z.IsPopulated))
        {
            var blocks = new long[PageSize.NrOrders];
            long pages = 0;
            for (int o = 0; o < blocks.Length; o++)
            {
                blocks[o] = z.NrFree(o);
                pages += blocks[o] << o;
            }
            var index = new int[blocks.Length];
            for (int o = 0; o < blocks.Length; o++)
                index[o] = UnusableFreeIndex(blocks, o);
            list.Add(new ZoneFragmentation(z.Name, blocks, pages, index));
        }
        return list;
    }

    /// <summary>/sys/kernel/debug/extfrag/unusable_index: <c>Node 0, zone %8s</c> then <c>%d.%03d </c> per order.</summary>
    public static string UnusableIndexText(Machine machine)
    {
        var sb = new StringBuilder();
        foreach (var z in Compute(machine))
        {
            sb.Append(CultureInfo.InvariantCulture, $"Node 0, zone {z.Zone,8} ");
            foreach (int i in z.UnusableIndex)
                sb.Append(CultureInfo.InvariantCulture, $"{i / 1000}.{i % 1000:000} ");
            sb.Append('\n');
        }
        return sb.ToString();
    }
}
