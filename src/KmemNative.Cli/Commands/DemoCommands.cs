using KmemNative.Arch;
using KmemNative.Cli.Scripting;

namespace KmemNative.Cli.Commands;

/// <summary>
/// <c>kmem demo</c>: a guided tour. Each part boots a machine and runs script lines through the interpreter, echoing
/// them as a shell transcript, so what it shows is exactly what a user can type.
/// </summary>
internal sealed class DemoCommands : ICommandModule
{
    /// <summary>The machines the tour boots, in order.</summary>
    private static readonly (ArchKind Arch, string Mem)[] s_machines = [(ArchKind.I386, "1G"), (ArchKind.X86_64, "4G")];

    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("demo", "Tour the emulator: boot i386 1G and x86_64 4G, show the zones, allocate from each, then run every study script", _ => Run, CommandScope.Cli);
    }

    private static void Run(CommandContext ctx)
    {
        foreach (var (arch, mem) in s_machines)
        {
            var config = new MachineConfig { Arch = arch, MemBytes = MachineConfig.ParseSize(mem), TlbStatistics = true };
            using var session = ctx.NewScriptSession(config);
            var tour = new Transcript(session, ctx.Out);
            Banner(ctx.Out, $"{MachineConfig.ArchName(arch)} with {mem} of RAM");

            tour.Section("Boot log: the firmware's e820 map, the zone ranges, what the buddy allocator got");
            tour.Run("boot");

            tour.Section("/proc/buddyinfo: free blocks of each order (1, 2, 4 ... 1024 pages) per zone");
            tour.Run("proc buddyinfo");

            tour.Section("/proc/zoneinfo, excerpt: sizes, watermarks (in pages) and lowmem reserves");
            foreach (var line in ZoneinfoExcerpt(session.Machine!.Proc.Read("zoneinfo")))
                ctx.Out.WriteLine(line);

            tour.Section("Which zone does each GFP mask land in? gfp_zone() names the highest zone allowed");
            string[] masks = arch == ArchKind.X86_64 ? ["GFP_DMA", "GFP_DMA32", "GFP_KERNEL", "GFP_HIGHUSER"] : ["GFP_DMA", "GFP_KERNEL", "GFP_HIGHUSER"];
            for (int i = 0; i < masks.Length; i++)
            {
                tour.Run($"gfp {masks[i]} --zone");
                tour.Run($"$p{i} = alloc_pages {masks[i]} 0");
            }
            tour.Run("page $p0");
            for (int i = 0; i < masks.Length; i++)
                tour.Run($"__free_pages $p{i} 0");
            tour.Run("expect-fail __free_pages $p0 0   # a double free is caught: bad_page()");

            tour.Section("Consistency: every page is free, on a per-CPU list, allocated or reserved");
            tour.Run("check");
        }

        foreach (var (name, text) in StudyScripts.All())
        {
            Banner(ctx.Out, $"Study script {name}");
            using var session = ctx.NewScriptSession(new MachineConfig { TlbStatistics = true });
            var tour = new Transcript(session, ctx.Out);
            foreach (var line in text.Split('\n'))
                tour.RunScriptLine(line);
        }
    }

    private static void Banner(TextWriter output, string title)
    {
        output.WriteLine();
        output.WriteLine(new string('=', 78));
        output.WriteLine($"  {title}");
        output.WriteLine(new string('=', 78));
    }

    /// <summary>
    /// The populated zones' headers and size, watermark and protection lines of /proc/zoneinfo; counters, pagesets
    /// and the empty zones (Movable, Device) left out.
    /// </summary>
    private static IEnumerable<string> ZoneinfoExcerpt(string zoneinfo)
    {
        var zone = new List<string>();
        foreach (var line in zoneinfo.Split('\n').Append("Node end"))
        {
            if (line.StartsWith("Node ", StringComparison.Ordinal))
            {
                if (!zone.Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is ["present", "0"]))
                    foreach (var kept in zone)
                        yield return kept;
                zone.Clear();
                zone.Add(line);
            }
            else if (line.TrimStart().Split(' ', 2)[0] is "pages" or "min" or "low" or "high" or "spanned" or "present" or "managed" or "protection:")
            {
                zone.Add(line);
            }
        }
    }

    /// <summary>Runs script lines on a session, printing each as <c>kmem&gt; LINE</c> before its output.</summary>
    private sealed class Transcript(Session session, TextWriter output)
    {
        private readonly ScriptInterpreter _interpreter = new(session);

        public void Section(string title)
        {
            output.WriteLine();
            output.WriteLine($"--- {title}");
        }

        public void Run(string line)
        {
            output.WriteLine($"kmem> {line}");
            _interpreter.Execute(line);
        }

        /// <summary>A line of a study script: comments print as narration, blank lines as spacing, commands run.</summary>
        public void RunScriptLine(string line)
        {
            string trimmed = line.Trim();
            if (trimmed.Length == 0)
                output.WriteLine();
            else if (trimmed.StartsWith('#'))
                output.WriteLine(trimmed);
            else
                Run(trimmed);
        }
    }
}
