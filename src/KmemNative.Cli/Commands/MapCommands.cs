using System.Globalization;
using System.Text;
using KmemNative.Diagnostics;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>
/// <c>map</c>: pictures of memory. Physical memory by owner (default), the free lists and fragmentation
/// (<c>--frag</c>), the virtual address space (<c>--virt [--pid N]</c>); as SVG with <c>--svg FILE</c>, else as a
/// text summary of the same numbers.
/// </summary>
internal sealed class MapCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("map", "Picture memory: physical pages by owner, --frag free lists and fragmentation, --virt the virtual address space (SVG with --svg FILE, else text)", b =>
        {
            var svg = b.Option("--svg", "Write the picture to FILE as SVG (otherwise print its numbers)", s => s, "FILE");
            var frag = b.Flag("--frag", "Free blocks per order and the extfrag unusable index per order, per zone");
            var virt = b.Flag("--virt", "The virtual address space: process VMAs up to TASK_SIZE, then the kernel's areas");
            var pid = b.Option("--pid", "With --virt: the process whose VMAs to draw (in a script or the shell, after spawn)", CliValues.ParseInt, "N");
            b.UsesMachine();
            return ctx =>
            {
                if (ctx.GetValue(frag) && ctx.GetValue(virt))
                    throw new UsageException("--frag and --virt draw different pictures: choose one", "map");
                if (ctx.IsGiven(pid) && !ctx.GetValue(virt))
                    throw new UsageException("--pid goes with --virt", "map");
                var m = ctx.Machine;
                string? path = ctx.GetValue(svg);
                int? p = ctx.IsGiven(pid) ? ctx.GetValue(pid) : null;
                if (ctx.GetValue(frag))
                    Frag(ctx, m, path);
                else if (ctx.GetValue(virt))
                    Virt(ctx, m, p, path);
                else
                    Physical(ctx, m, path);
                if (path is not null)
                    ctx.SetResult(path);
            };
        });
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static void Physical(CommandContext ctx, Machine m, string? path)
    {
        var map = PhysicalMemoryMap.Scan(m);
        if (path is not null)
        {
            ReplayCommands.WriteFile(path, MemoryPictures.PhysicalSvg(map));
            ulong cell = map.MaxPfn <= MemoryPictures.PerPageLimit ? 1 : 1UL << m.PageblockOrder;
            ctx.Out.WriteLine($"wrote {path}: physical memory, {N((long)map.MaxPfn)} page frames, one cell per {(cell == 1 ? "page" : $"pageblock ({cell} pages)")}");
            return;
        }
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Physical memory: {N((long)map.MaxPfn)} page frames\n");
        foreach (var z in map.Zones)
            sb.Append(CultureInfo.InvariantCulture, $"  zone {z.Name,-7} pfn 0x{z.StartPfn:x}-0x{z.EndPfn - 1:x}\n");
        sb.Append("Pages by owner:\n");
        foreach (var o in Enum.GetValues<PageOwner>())
        {
            long n = map.Count(o);
            if (n > 0)
                sb.Append(CultureInfo.InvariantCulture, $"  {PhysicalMemoryMap.Key(o),-14}{N(n),10}  {PhysicalMemoryMap.Describe(o)}\n");
        }
        sb.Append("Free pages by buddy order:");
        foreach (long n in map.FreePagesByOrder())
            sb.Append(' ').Append(N(n));
        sb.Append('\n');
        ctx.Out.Write(sb.ToString());
    }

    private static void Frag(CommandContext ctx, Machine m, string? path)
    {
        if (path is not null)
        {
            ReplayCommands.WriteFile(path, MemoryPictures.FragmentationSvg(m));
            ctx.Out.WriteLine($"wrote {path}: free blocks and unusable index per order, {Fragmentation.Compute(m).Count} zones");
            return;
        }
        var sb = new StringBuilder("Free blocks per order (/proc/buddyinfo):\n");
        sb.Append(m.Proc.Buddyinfo());
        sb.Append("Unusable free space index per order (/sys/kernel/debug/extfrag/unusable_index):\n");
        sb.Append(Fragmentation.UnusableIndexText(m));
        ctx.Out.Write(sb.ToString());
    }

    private static void Virt(CommandContext ctx, Machine m, int? pid, string? path)
    {
        if (pid is { } p && m.FindProcess(p) is null)
            throw new CommandFailedException($"no process {p} (-ESRCH)");
        if (path is not null)
        {
            ReplayCommands.WriteFile(path, MemoryPictures.VirtualSvg(m, pid));
            ctx.Out.WriteLine($"wrote {path}: virtual address space, {MemoryPictures.VirtualBands(m, pid).Count} bands");
            return;
        }
        int w = m.Arch == KmemNative.Arch.ArchKind.I386 ? 8 : 16;
        var sb = new StringBuilder();
        bool user = false;
        foreach (var band in MemoryPictures.VirtualBands(m, pid).Reverse())
        {
            if (!user && band.Start < m.TaskSize)
            {
                // Where user space ends: what the picture marks with a dashed line.
                sb.Append(CultureInfo.InvariantCulture, $"{new string('-', w)}  TASK_SIZE 0x{m.TaskSize:x}\n");
                user = true;
            }
            sb.Append(band.Start.ToString("x" + w, CultureInfo.InvariantCulture)).Append('-')
              .Append(band.Last.ToString("x" + w, CultureInfo.InvariantCulture)).Append("  ").Append(band.Name);
            if (band.Detail is not null)
                sb.Append(" (").Append(band.Detail).Append(')');
            sb.Append('\n');
        }
        ctx.Out.Write(sb.ToString());
    }
}
