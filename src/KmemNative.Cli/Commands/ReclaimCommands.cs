using System.Globalization;
using KmemNative.PageAlloc;
using KmemNative.Reclaim;
using static KmemNative.Cli.Commands.MmCommands;

namespace KmemNative.Cli.Commands;

/// <summary>
/// Memory pressure (issue #6) as script commands with the kernel's names: the page cache (<c>file_read</c>,
/// <c>file_write</c>, <c>sync</c>), reclaim (<c>kswapd_step</c>, <c>kswapd</c>, <c>try_to_free_pages</c>,
/// <c>drop_caches</c>, <c>shrinkers</c>, <c>dcache_fill</c>, <c>driver_pool_fill</c>, <c>lru</c>), swap
/// (<c>swapon</c>), the OOM killer (<c>oom_score_adj</c>), the reports (<c>show_mem</c>), and the CPU's context
/// (<c>local_irq_disable</c>, <c>spin_lock</c>, <c>irq_enter</c>, <c>memalloc_noio_save</c>..., <c>context</c>).
/// </summary>
internal sealed class ReclaimCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        RegisterPageCache(registry);
        RegisterReclaim(registry);
        RegisterContext(registry);
    }

    // ---- the page cache ------------------------------------------------------------------------------

    private static void RegisterPageCache(CommandRegistry registry)
    {
        registry.Add("file_read", "file_read NAME OFF LEN: read() through the page cache (pages read in from \"disk\" as needed)", b =>
        {
            var (name, off, len, cpu) = FileArgs(b);
            return ctx =>
            {
                var m = ctx.Machine;
                var (fd, path) = ResolveFile(ctx, ctx.GetValue(name));
                long before = Cached(m, fd);
                var buffer = new byte[checked((int)Math.Min(ctx.GetValue(len), int.MaxValue))];
                var r = m.FileRead(GetCpu(ctx, cpu), fd, ctx.GetValue(off), buffer);
                if (!r.IsOk)
                    throw new CommandFailedException($"pread({path}, {buffer.Length}, {ctx.GetValue(off)}) = {r}");
                long after = Cached(m, fd);
                ctx.Out.WriteLine($"file_read {path} {ctx.GetValue(off)}+{buffer.Length}: {r.Value} bytes; page cache {after} pages ({after - before} read in)");
                ctx.SetResult(r.Value.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("file_write", "file_write NAME OFF LEN: write() LEN bytes (0x5a) through the page cache, dirtying its pages", b =>
        {
            var (name, off, len, cpu) = FileArgs(b);
            return ctx =>
            {
                var m = ctx.Machine;
                var (fd, path) = ResolveFile(ctx, ctx.GetValue(name));
                var data = new byte[checked((int)Math.Min(ctx.GetValue(len), int.MaxValue))];
                data.AsSpan().Fill(0x5a);
                var r = m.FileWrite(GetCpu(ctx, cpu), fd, ctx.GetValue(off), data);
                if (!r.IsOk)
                    throw new CommandFailedException($"pwrite({path}, {data.Length}, {ctx.GetValue(off)}) = {r}");
                ctx.Out.WriteLine($"file_write {path} {ctx.GetValue(off)}+{data.Length}: {r.Value} bytes; page cache {Cached(m, fd)} pages, nr_dirty {m.NodeState(NodeStat.NrDirty)}");
                ctx.SetResult(r.Value.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("sync", "sync: write every dirty page-cache page back and wait for the I/O", b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                long n = ctx.Machine.Sync(GetCpu(ctx, cpu));
                ctx.Out.WriteLine($"sync: {n} pages written back");
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);
    }

    private static (System.CommandLine.Argument<string>, System.CommandLine.Argument<ulong>, System.CommandLine.Argument<ulong>, System.CommandLine.Option<int>) FileArgs(CommandBuilder b)
    {
        var name = b.Argument("NAME", "A file from file_create: its path or its descriptor");
        var off = b.Argument("OFF", "Byte offset in the file", CliValues.ParseLength);
        var len = b.Argument("LEN", "Bytes (a number with an optional K/M suffix)", CliValues.ParseLength);
        var cpu = CpuOption(b);
        b.UsesMachine();
        return (name, off, len, cpu);
    }

    /// <summary>A file named by its path or its descriptor.</summary>
    private static (int Fd, string Path) ResolveFile(CommandContext ctx, string name)
    {
        var files = ctx.Machine.Files;
        var f = int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int fd)
            ? files.FirstOrDefault(x => x.Fd == fd)
            : files.FirstOrDefault(x => x.Path == name);
        return f is null
            ? throw new CommandFailedException($"{name}: no such open file (-EBADF); create it with file_create")
            : (f.Fd, f.Path);
    }

    private static long Cached(Machine m, int fd) => m.Files.FirstOrDefault(f => f.Fd == fd)?.CachedPages ?? 0;

    // ---- reclaim, swap, OOM ----------------------------------------------------------------------------

    private static void RegisterReclaim(CommandRegistry registry)
    {
        registry.Add("kswapd_step", "kswapd_step: run kswapd once (balance_pgdat until a zone is above its high watermark); result: pages reclaimed", b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                bool pending = m.KswapdPending;
                long n = m.KswapdStep(GetCpu(ctx, cpu));
                ctx.Out.WriteLine($"kswapd0: {(pending ? "woken" : "not woken")}, reclaimed {n} pages");
                WriteZoneMarks(ctx.Out, m);
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("kswapd", "kswapd on|off: run kswapd on a host thread (on) or only by kswapd_step (off, the deterministic default)", b =>
        {
            var state = b.Argument("STATE", "on or off", CliValues.ParseOnOff);
            b.UsesMachine();
            return ctx =>
            {
                ctx.Machine.KswapdThread = ctx.GetValue(state);
                ctx.Out.WriteLine($"kswapd0: {(ctx.Machine.KswapdThread ? "running on a host thread" : "step mode (kswapd_step)")}");
            };
        }, CommandScope.Script);

        registry.Add("try_to_free_pages", "try_to_free_pages GFP [ORDER]: one direct reclaim as an allocation with GFP would run it; result: pages reclaimed", b =>
        {
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            var order = b.OptionalArgument("ORDER", CliValues.OrderHelp, CliValues.ParseOrder, 0);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                long n = ctx.Machine.TryToFreePages(GetCpu(ctx, cpu), ctx.GetValue(gfp), ctx.GetValue(order));
                ctx.Out.WriteLine($"try_to_free_pages({GfpFlags.Format(ctx.GetValue(gfp))}, {ctx.GetValue(order)}): reclaimed {n} pages");
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("drop_caches", "drop_caches 1|2|3: echo N > /proc/sys/vm/drop_caches (1 clean page cache, 2 slab via shrinkers, 3 both)", b =>
        {
            var mode = b.Argument("N", "1, 2, 3 (4 silences the log line)", ParseDropMode);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                long n = ctx.Machine.DropCaches(GetCpu(ctx, cpu), ctx.GetValue(mode));
                ctx.Out.WriteLine($"drop_caches {ctx.GetValue(mode)}: {n} pages freed");
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("lru", "lru: the node's LRU lists (pages), as nr_inactive_anon ... nr_unevictable", b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                m.LruAddDrain(GetCpu(ctx, cpu));
                foreach (var lru in Enum.GetValues<LruList>())
                    ctx.Out.WriteLine($"{LruName(lru),-18} {m.LruSize(lru),8}");
            };
        }, CommandScope.Script);

        registry.Add("shrinkers", "shrinkers: the registered shrinkers and the objects on the reclaimable caches", b =>
        {
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ctx.Out.WriteLine($"{"NAME",-24} {"FS",3} {"SEEKS",5} {"FREED",8} {"DEFERRED",8}");
                foreach (var s in m.Shrinkers)
                    ctx.Out.WriteLine($"{s.Name,-24} {(s.NeedsFs ? "yes" : "no"),3} {s.Seeks,5} {s.Freed,8} {s.NrDeferred,8}");
                var (dentries, inodes) = m.DcacheUnused;
                ctx.Out.WriteLine($"unused dentries {dentries}, unused inodes {inodes}, driver pool objects {m.DriverPoolCount}");
            };
        }, CommandScope.Script);

        Fill(registry, "dcache_fill", "dcache_fill N [GFP]: N unused dentries and inodes (reclaimable slab only the FS shrinker frees); result: how many",
            (m, c, n, gfp) => m.DcacheFill(c, n, gfp),
            m => $"unused dentries {m.DcacheUnused.Dentries}, unused inodes {m.DcacheUnused.Inodes}");
        Fill(registry, "driver_pool_fill", "driver_pool_fill N [GFP]: N objects in a driver's pool (reclaimable slab whose shrinker needs no __GFP_FS); result: how many",
            (m, c, n, gfp) => m.DriverPoolFill(c, n, gfp),
            m => $"{m.DriverPoolCount} objects in the pool");

        registry.Add("swapon", "swapon SIZE: an emulated swap partition of SIZE bytes (its slots live in host memory)", b =>
        {
            var size = b.Argument("SIZE", "Bytes (a number with an optional K/M/G suffix)", CliValues.ParseLength);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var r = m.Swapon(ctx.GetValue(size));
                if (!r.IsOk)
                    throw new CommandFailedException($"swapon({ctx.GetValue(size)}) = {r}");
                ctx.Out.Write(m.Swaps());
            };
        }, CommandScope.Script);

        registry.Add("oom_score_adj", "oom_score_adj PID [N]: read or set /proc/PID/oom_score_adj (-1000 never killed .. 1000)", b =>
        {
            var pid = PidArg(b);
            var adj = b.OptionalArgument<int?>("N", "The new value, -1000..1000", ParseAdj, null);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var p = GetProcess(ctx, pid);
                if (ctx.GetValue(adj) is int n)
                {
                    if (n is < -1000 or > 1000)
                        throw new UsageException($"oom_score_adj {n}: must be -1000..1000", "oom_score_adj");
                    m.SetOomScoreAdj(p.Pid, n);
                }
                ctx.Out.WriteLine($"pid {p.Pid} ({p.Comm}): oom_score_adj {m.GetOomScoreAdj(p.Pid)}, oom_score {m.OomScore(p.Pid)}");
                ctx.SetResult(m.GetOomScoreAdj(p.Pid).ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("show_mem", "show_mem: the Mem-Info summary the allocation-failure and OOM reports print", b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx => ctx.Out.Write(EndLine(ctx.Machine.ShowMem(GetCpu(ctx, cpu))));
        }, CommandScope.Script);

        registry.Add("might_sleep_strict", "might_sleep_strict on|off: a blocking allocation in atomic context fails (on) instead of only being reported (off)", b =>
        {
            var state = b.Argument("STATE", "on or off", CliValues.ParseOnOff);
            b.UsesMachine();
            return ctx =>
            {
                ctx.Machine.StrictMightSleep = ctx.GetValue(state);
                ctx.Out.WriteLine($"might_sleep: {(ctx.Machine.StrictMightSleep ? "strict (the allocation fails after the report)" : "report and proceed, as the kernel")}");
            };
        }, CommandScope.Script);
    }

    /// <summary>A command that fills a shrinkable cache with N objects and reports what it holds after.</summary>
    private static void Fill(CommandRegistry registry, string name, string help, Func<Machine, Cpu, int, Gfp, int> fill, Func<Machine, string> state) =>
        registry.Add(name, help, b =>
        {
            var count = b.Argument("N", "How many objects", CliValues.ParseInt);
            var gfp = b.OptionalArgument("GFP", CliValues.GfpHelp, CliValues.ParseGfp, Gfp.Kernel);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                int n = fill(m, GetCpu(ctx, cpu), NonNegative(ctx.GetValue(count), name), ctx.GetValue(gfp));
                ctx.Out.WriteLine($"{name}: {n} added; {state(m)}");
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

    private static void WriteZoneMarks(TextWriter w, Machine m)
    {
        foreach (var z in m.Zones.Where(z => z.IsPopulated))
            w.WriteLine($"  {z.Name,-8} free {z.FreePages,8}  min {z.WatermarkMin,6}  low {z.WatermarkLow,6}  high {z.WatermarkHigh,6}");
    }

    private static string LruName(LruList lru) => lru switch
    {
        LruList.InactiveAnon => "nr_inactive_anon",
        LruList.ActiveAnon => "nr_active_anon",
        LruList.InactiveFile => "nr_inactive_file",
        LruList.ActiveFile => "nr_active_file",
        _ => "nr_unevictable",
    };

    // ---- the CPU's context ---------------------------------------------------------------------------

    private static void RegisterContext(CommandRegistry registry)
    {
        Switch(registry, "local_irq_disable", "local_irq_disable: interrupts off on this CPU (atomic context)", c => c.LocalIrqDisable());
        Switch(registry, "local_irq_enable", "local_irq_enable: interrupts back on", c => c.LocalIrqEnable());
        Switch(registry, "preempt_disable", "preempt_disable: preemption off (preempt_count + 1)", c => c.PreemptDisable());
        Switch(registry, "preempt_enable", "preempt_enable: preempt_count - 1", c => c.PreemptEnable());
        Switch(registry, "irq_enter", "irq_enter: enter a hard interrupt handler (in_interrupt() from now on)", c => c.IrqEnter());
        Switch(registry, "irq_exit", "irq_exit: leave the interrupt handler", c => c.IrqExit());
        Switch(registry, "context", "context: this CPU's preempt_count, in_atomic(), in_interrupt(), irqs_disabled() and memalloc scope", _ => { });
        Named(registry, "spin_lock", "spin_lock LOCK: take a (named) spinlock: preemption off until spin_unlock", (c, n) => c.SpinLock(n));
        Named(registry, "spin_unlock", "spin_unlock LOCK: release it", (c, n) => c.SpinUnlock(n));

        Save(registry, "memalloc_noio_save", "memalloc_noio_save: from now on every allocation of this task behaves as GFP_NOIO; result: the flags to restore", c => c.MemallocNoioSave());
        Save(registry, "memalloc_nofs_save", "memalloc_nofs_save: from now on every allocation of this task behaves as GFP_NOFS; result: the flags to restore", c => c.MemallocNofsSave());
        Restore(registry, "memalloc_noio_restore", "memalloc_noio_restore [FLAGS]: end the NOIO scope (FLAGS from the save; default 0)", (c, f) => c.MemallocNoioRestore(f));
        Restore(registry, "memalloc_nofs_restore", "memalloc_nofs_restore [FLAGS]: end the NOFS scope (FLAGS from the save; default 0)", (c, f) => c.MemallocNofsRestore(f));
    }

    private static void Switch(CommandRegistry registry, string name, string help, Action<Cpu> action) =>
        registry.Add(name, help, b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var c = GetCpu(ctx, cpu);
                action(c);
                ctx.Out.WriteLine(ContextLine(c));
            };
        }, CommandScope.Script);

    private static void Named(CommandRegistry registry, string name, string help, Action<Cpu, string> action) =>
        registry.Add(name, help, b =>
        {
            var lockName = b.Argument("LOCK", "A name for the lock (e.g. zone->lock)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var c = GetCpu(ctx, cpu);
                action(c, ctx.GetValue(lockName));
                ctx.Out.WriteLine(ContextLine(c));
            };
        }, CommandScope.Script);

    private static void Save(CommandRegistry registry, string name, string help, Func<Cpu, uint> save) =>
        registry.Add(name, help, b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var c = GetCpu(ctx, cpu);
                uint flags = save(c);
                ctx.Out.WriteLine($"{name}() = 0x{flags:x}; {ContextLine(c)}");
                ctx.SetResult($"0x{flags:x}");
            };
        }, CommandScope.Script);

    private static void Restore(CommandRegistry registry, string name, string help, Action<Cpu, uint> restore) =>
        registry.Add(name, help, b =>
        {
            var flags = b.OptionalArgument("FLAGS", "The value the save returned", t => (uint)CliValues.ParseNumber(t, "flags"), 0u);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var c = GetCpu(ctx, cpu);
                restore(c, ctx.GetValue(flags));
                ctx.Out.WriteLine(ContextLine(c));
            };
        }, CommandScope.Script);

    /// <summary>The CPU's context in the kernel's terms, one line.</summary>
    internal static string ContextLine(Cpu c)
    {
        var scope = new List<string>();
        if (c.CurrentGfpContext(Gfp.Kernel) is var g && (g & Gfp.Io) == 0)
            scope.Add("NOIO");
        else if ((g & Gfp.Fs) == 0)
            scope.Add("NOFS");
        string locks = c.HeldLocks.Count == 0 ? "" : $", holding {string.Join(", ", c.HeldLocks)}";
        return $"cpu{c.Id}: preempt_count 0x{c.PreemptCount:x}, in_atomic() {B(c.InAtomic)}, in_interrupt() {B(c.InInterrupt)}, " +
               $"irqs_disabled() {B(c.IrqsDisabled)}, memalloc scope {(scope.Count == 0 ? "none" : scope[0])}{locks}";

        static int B(bool v) => v ? 1 : 0;
    }

    // ---- argument parsing ------------------------------------------------------------------------------

    private static int? ParseAdj(string text) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n)
            ? n
            : throw new UsageException($"'{text}': oom_score_adj takes a number from -1000 to 1000", "oom_score_adj");

    private static int ParseDropMode(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 4
            ? n
            : throw new UsageException($"'{text}': drop_caches takes 1 (page cache), 2 (slab), 3 (both) or 4 (quiet)");

    private static int NonNegative(int n, string command) =>
        n >= 0 ? n : throw new UsageException($"{command} {n}: a count is not negative", command);

    private static string EndLine(string text) => text.EndsWith('\n') ? text : text + "\n";
}
