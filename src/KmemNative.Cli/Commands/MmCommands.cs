using System.Globalization;
using KmemNative.Mm;
using KmemNative.Paging;

namespace KmemNative.Cli.Commands;

/// <summary>
/// Processes (issue #5), as script commands in the kernel's argument order: <c>spawn</c>, <c>mmap</c>, <c>munmap</c>,
/// <c>mprotect</c>, <c>brk</c>, <c>sbrk</c>, <c>madvise</c>, <c>touch</c>, <c>fork</c>, <c>exit</c>, <c>pagemap</c>, <c>ps</c>,
/// <c>vm</c>, <c>file_create</c>, <c>file_close</c>, <c>files</c>, <c>sysctl</c>. A failing system call fails the command
/// with the kernel's error (<c>-EEXIST (File exists)</c>), a bad access with the signal it raised.
/// </summary>
internal sealed class MmCommands : ICommandModule
{
    private const string PidHelp = "The process id (from spawn or fork)";
    private const string AddrHelp = "A user virtual address (0x... or decimal)";
    private const string LenHelp = "Bytes (a number with an optional K/M/G suffix)";

    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("spawn", "spawn COMM: start a process running /usr/bin/COMM (text, data, bss, heap, stack); result: its pid", b =>
        {
            var comm = b.Argument("COMM", "The command name (task->comm, at most 15 characters are kept)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                string name = ctx.GetValue(comm);
                if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal))
                    throw new UsageException($"'{name}': a command name is not empty and has no '/'", "spawn");
                var p = ctx.Machine.Spawn(GetCpu(ctx, cpu), name);
                ctx.Out.WriteLine($"spawn {p.Comm}: pid {p.Pid}, mm {CliValues.Hex(p.MmAddress)}, task {CliValues.Hex(p.TaskAddress)}");
                ctx.SetResult(p.Pid.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("mmap", "mmap PID ADDR LEN PROT FLAGS [FD [OFF]]: map memory (ADDR 0: the kernel chooses); result: the address", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", "0, a hint, or the address with MAP_FIXED", CliValues.ParseAddress);
            var len = b.Argument("LEN", LenHelp, CliValues.ParseLength);
            var prot = b.Argument("PROT", "PROT_READ|PROT_WRITE|PROT_EXEC, PROT_NONE or a number", ParseProt);
            var flags = b.Argument("FLAGS", "MAP_PRIVATE|MAP_ANONYMOUS, MAP_SHARED, MAP_FIXED, MAP_POPULATE... or a number", ParseMapFlags);
            var fd = b.OptionalArgument("FD", "A descriptor from file_create (ignored with MAP_ANONYMOUS) [default: -1]", ParseFd, -1);
            var off = b.OptionalArgument("OFF", "File offset in bytes (page aligned) [default: 0]", t => CliValues.ParseNumber(t, "offset"), 0UL);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len), o = ctx.GetValue(off);
                var pr = ctx.GetValue(prot);
                var fl = ctx.GetValue(flags);
                int f = ctx.GetValue(fd);
                var r = p.Mmap(GetCpu(ctx, cpu), a, n, pr, fl, f, o);
                string call = $"mmap({CliValues.Hex(a)}, {n}, {MmFlagsText.Format(pr)}, {MmFlagsText.Format(fl)}, {f}, {o})";
                Report(ctx, call, r);
                ctx.SetResult(CliValues.Hex(r.Value));
            };
        }, CommandScope.Script);

        registry.Add("munmap", "munmap PID ADDR LEN: unmap [ADDR, ADDR+LEN) (splitting VMAs; pages and page tables freed)", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var len = b.Argument("LEN", LenHelp, CliValues.ParseLength);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len);
                Report(ctx, $"munmap({CliValues.Hex(a)}, {n})", p.Munmap(GetCpu(ctx, cpu), a, n));
            };
        }, CommandScope.Script);

        registry.Add("mprotect", "mprotect PID ADDR LEN PROT: change the protection of [ADDR, ADDR+LEN) (PTEs updated, TLBs flushed)", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var len = b.Argument("LEN", LenHelp, CliValues.ParseLength);
            var prot = b.Argument("PROT", "PROT_READ|PROT_WRITE|PROT_EXEC, PROT_NONE or a number", ParseProt);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len);
                var pr = ctx.GetValue(prot);
                Report(ctx, $"mprotect({CliValues.Hex(a)}, {n}, {MmFlagsText.Format(pr)})", p.Mprotect(GetCpu(ctx, cpu), a, n, pr));
            };
        }, CommandScope.Script);

        registry.Add("brk", "brk PID ADDR: move the program break (0 queries it); result: the break (the old one when refused)", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", "The new break", CliValues.ParseAddress);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr);
                ulong r = p.Brk(GetCpu(ctx, cpu), a);
                ctx.Out.WriteLine($"brk({CliValues.Hex(a)}) = {CliValues.Hex(r)}");
                ctx.SetResult(CliValues.Hex(r));
            };
        }, CommandScope.Script);

        registry.Add("sbrk", "sbrk PID INCREMENT: grow (or, with a leading '-', shrink) the heap; result: the old break", b =>
        {
            var pid = PidArg(b);
            var inc = b.Argument("INCREMENT", "Bytes, optionally negative (-4K)", ParseSignedLength);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                long n = ctx.GetValue(inc);
                var r = p.Sbrk(GetCpu(ctx, cpu), n);
                Report(ctx, $"sbrk({n})", r);
                ctx.SetResult(CliValues.Hex(r.Value));
            };
        }, CommandScope.Script);

        registry.Add("madvise", "madvise PID ADDR LEN ADVICE: MADV_DONTNEED zaps the pages; MADV_DONTFORK, MADV_WIPEONFORK...", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var len = b.Argument("LEN", LenHelp, CliValues.ParseLength);
            var advice = b.Argument("ADVICE", "MADV_DONTNEED, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK", ParseMadvise);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len);
                var adv = ctx.GetValue(advice);
                Report(ctx, $"madvise({CliValues.Hex(a)}, {n}, {MmFlagsText.Format(adv)})", p.Madvise(GetCpu(ctx, cpu), a, n, adv));
            };
        }, CommandScope.Script);

        registry.Add("touch", "touch PID ADDR LEN read|write|exec: access every page as the process (user mode, through the MMU)", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var len = b.Argument("LEN", LenHelp, CliValues.ParseLength);
            var access = b.Argument("ACCESS", "read, write or exec", ParseAccess);
            var value = b.Option("--value", "The byte a write stores [default: 0]", t => ParseByte(t), "N", () => (byte)0);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len);
                var acc = ctx.GetValue(access);
                var r = p.Touch(GetCpu(ctx, cpu), a, n, acc, ctx.GetValue(value));
                string what = $"touch {p.Pid} {CliValues.Hex(a)}+{CliValues.Hex(n)} {acc.ToString().ToLowerInvariant()}: {r.Pages} pages, {r.MinorFaults} minor faults, {r.MajorFaults} major faults";
                if (r.Signal is { } sig)
                    throw new CommandFailedException($"{what}, then {sig}");
                ctx.Out.WriteLine(what);
                ctx.SetResult(r.Pages.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("fork", "fork PID: a child with a copy-on-write copy of the address space; result: the child's pid", b =>
        {
            var pid = PidArg(b);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                var r = p.Fork(GetCpu(ctx, cpu));
                if (!r.IsOk)
                    throw new CommandFailedException($"fork() = {r}");
                ctx.Out.WriteLine($"fork {p.Pid}: child pid {r.Value}");
                ctx.SetResult(r.Value.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("exit", "exit PID: the process exits; its address space is torn down", b =>
        {
            var pid = PidArg(b);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                p.Exit(GetCpu(ctx, cpu));
                ctx.Out.WriteLine($"exit {p.Pid} ({p.Comm})");
            };
        }, CommandScope.Script);

        registry.Add("pagemap", "pagemap PID ADDR [COUNT]: /proc/PID/pagemap entries decoded (PFN, present, swapped, file, exclusive, soft-dirty)", b =>
        {
            var pid = PidArg(b);
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var count = b.OptionalArgument("COUNT", "Pages [default: 1]", CliValues.ParseInt, 1);
            var raw = b.Flag("--raw", "Print the file's bytes as xxd does instead (8 bytes per page, little endian)");
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ulong a = ctx.GetValue(addr) & ~0xfffUL;
                int n = ctx.GetValue(count);
                if (n is < 1 or > 1 << 20)
                    throw new UsageException($"COUNT {n}: between 1 and {1 << 20} pages", "pagemap");
                if (ctx.GetValue(raw))
                {
                    var buffer = new byte[n * 8];
                    var r = p.ReadPagemap((a >> 12) * 8, buffer);
                    if (!r.IsOk)
                        throw new CommandFailedException($"read(/proc/{p.Pid}/pagemap) = {r}");
                    ctx.Out.Write(Hexdump.Format((a >> 12) * 8, buffer.AsSpan(0, (int)r.Value)));
                    return;
                }
                var entries = p.Pagemap(a, n);
                int w = ctx.Machine.Arch == Arch.ArchKind.I386 ? 8 : 16;
                ctx.Out.WriteLine($"{"ADDRESS".PadRight(w)}  {"ENTRY",-16}  {"PFN",-10}  FLAGS");
                for (int i = 0; i < entries.Length; i++)
                    ctx.Out.WriteLine(DecodeLine(a + ((ulong)i << 12), entries[i], w));
                ctx.SetResult(CliValues.Hex(entries.Length > 0 ? entries[0] : 0));
            };
        }, CommandScope.Script);

        registry.Add("ps", "List the processes like crash's ps (pid, parent, task_struct, memory)", b =>
        {
            b.UsesMachine();
            return ctx => ctx.Out.Write(ctx.Machine.Ps());
        }, CommandScope.Script);

        registry.Add("vm", "vm PID: crash's vm: the task, its mm_struct and pgd, and every vm_area_struct with its address", b =>
        {
            var pid = PidArg(b);
            b.UsesMachine();
            return ctx =>
            {
                var p = GetProcess(ctx, pid);
                ctx.Out.Write(ctx.Machine.VmReport(p.Pid));
                ctx.SetResult(CliValues.Hex(p.MmAddress));
            };
        }, CommandScope.Script);

        RegisterFiles(registry);
    }

    private static void RegisterFiles(CommandRegistry registry)
    {
        registry.Add("file_create", "file_create NAME SIZE: a regular file to map (contents: a fixed pattern); result: its descriptor", b =>
        {
            var name = b.Argument("NAME", "The path /proc/PID/maps shows (e.g. /data/file)");
            var size = b.Argument("SIZE", LenHelp, CliValues.ParseLength);
            var ro = b.Flag("--readonly", "Open it O_RDONLY (MAP_SHARED with PROT_WRITE then fails with EACCES)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var r = m.FileCreate(GetCpu(ctx, cpu), ctx.GetValue(name), ctx.GetValue(size), ctx.GetValue(ro));
                if (!r.IsOk)
                    throw new CommandFailedException($"open({ctx.GetValue(name)}) = {r}");
                var info = m.Files.First(f => f.Fd == (int)r.Value);
                ctx.Out.WriteLine($"file_create {info.Path}: fd {r.Value}, {info.Size} bytes, inode {info.Inode}, struct file {CliValues.Hex(info.FileAddress)}");
                ctx.SetResult(r.Value.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("file_close", "file_close FD: close a descriptor (the file lives while mappings hold it)", b =>
        {
            var fd = b.Argument("FD", "A descriptor from file_create", ParseFd);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var r = ctx.Machine.FileClose(GetCpu(ctx, cpu), ctx.GetValue(fd));
                if (!r.IsOk)
                    throw new CommandFailedException($"close({ctx.GetValue(fd)}) = {r}");
            };
        }, CommandScope.Script);

        registry.Add("files", "List the file objects: descriptor, inode, size, cached pages, struct file address, path", b =>
        {
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                int w = m.Arch == Arch.ArchKind.I386 ? 8 : 16;
                ctx.Out.WriteLine($"{"FD",3} {"INODE",8} {"SIZE",10} {"CACHED",7}  {"FILE".PadRight(w)}  PATH");
                foreach (var f in m.Files)
                {
                    string fd = f.Fd < 0 ? "-" : f.Fd.ToString(CultureInfo.InvariantCulture);
                    ctx.Out.WriteLine($"{fd,3} {f.Inode,8} {f.Size,10} {f.CachedPages,7}  {f.FileAddress.ToString("x" + w, CultureInfo.InvariantCulture)}  {f.Path}");
                }
            };
        }, CommandScope.Script);

        registry.Add("sysctl", "sysctl NAME [VALUE]: read or set vm.max_map_count or vm.mmap_min_addr", b =>
        {
            var name = b.Argument("NAME", "vm.max_map_count or vm.mmap_min_addr");
            var value = b.OptionalArgument("VALUE", "The new value", t => CliValues.ParseNumber(t, "value"), ulong.MaxValue);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong v = ctx.GetValue(value);
                switch (ctx.GetValue(name))
                {
                    case "vm.max_map_count":
                        if (v != ulong.MaxValue)
                            m.MaxMapCount = v is > 0 and <= int.MaxValue ? (int)v : throw new UsageException($"vm.max_map_count {v}: between 1 and {int.MaxValue}", "sysctl");
                        ctx.Out.WriteLine($"vm.max_map_count = {m.MaxMapCount}");
                        ctx.SetResult(m.MaxMapCount.ToString(CultureInfo.InvariantCulture));
                        break;
                    case "vm.mmap_min_addr":
                        if (v != ulong.MaxValue)
                            m.MmapMinAddr = v;
                        ctx.Out.WriteLine($"vm.mmap_min_addr = {m.MmapMinAddr}");
                        ctx.SetResult(m.MmapMinAddr.ToString(CultureInfo.InvariantCulture));
                        break;
                    default:
                        throw new UsageException($"unknown sysctl '{ctx.GetValue(name)}' (vm.max_map_count, vm.mmap_min_addr)", "sysctl");
                }
            };
        }, CommandScope.Script);
    }

    /// <summary>One decoded pagemap line: address, raw entry, PFN, flag names.</summary>
    private static string DecodeLine(ulong va, ulong e, int w)
    {
        var bits = new List<string>();
        if ((e & 1UL << 63) != 0) bits.Add("present");
        if ((e & 1UL << 62) != 0) bits.Add("swapped");
        if ((e & 1UL << 61) != 0) bits.Add("file/shared-anon");
        if ((e & 1UL << 58) != 0) bits.Add("guard");
        if ((e & 1UL << 57) != 0) bits.Add("uffd-wp");
        if ((e & 1UL << 56) != 0) bits.Add("exclusive");
        if ((e & 1UL << 55) != 0) bits.Add("soft-dirty");
        string pfn = (e & (3UL << 62)) != 0 ? CliValues.Hex(e & ((1UL << 55) - 1)) : "-";
        return $"{va.ToString("x" + w, CultureInfo.InvariantCulture)}  {e:x16}  {pfn,-10}  {(bits.Count == 0 ? "(none)" : string.Join(' ', bits))}";
    }

    private static void Report(CommandContext ctx, string call, SysResult r)
    {
        string line = $"{call} = {r}";
        if (!r.IsOk)
            throw new CommandFailedException(line);
        ctx.Out.WriteLine(line);
    }

    internal static System.CommandLine.Argument<int> PidArg(CommandBuilder b) => b.Argument("PID", PidHelp, CliValues.ParseInt);

    internal static Process GetProcess(CommandContext ctx, System.CommandLine.Argument<int> pid)
    {
        int id = ctx.GetValue(pid);
        return ctx.Machine.FindProcess(id) ?? throw new CommandFailedException($"no process {id} (-ESRCH)");
    }

    internal static System.CommandLine.Option<int> CpuOption(CommandBuilder b) =>
        b.Option("--cpu", "The CPU to run on [default: the session's CPU]", CliValues.ParseInt, "N", () => -1);

    internal static Cpu GetCpu(CommandContext ctx, System.CommandLine.Option<int> cpu)
    {
        var m = ctx.Machine;
        int id = ctx.GetValue(cpu);
        if (id < 0)
            return m.ThisCpu;
        if (id >= m.Cpus.Count)
            throw new UsageException($"--cpu {id}: the machine has {m.Cpus.Count} CPUs");
        return m.GetCpu(id);
    }

    private static Prot ParseProt(string text) => Wrap(() => MmFlagsText.ParseProt(text));

    private static MapFlags ParseMapFlags(string text) => Wrap(() => MmFlagsText.ParseMapFlags(text));

    private static Madvise ParseMadvise(string text) => Wrap(() => MmFlagsText.ParseMadvise(text));

    private static T Wrap<T>(Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (FormatException e)
        {
            throw new UsageException(e.Message);
        }
    }

    internal static int ParseFd(string text)
    {
        if (text == "-1")
            return -1;
        return CliValues.ParseInt(text);
    }

    private static byte ParseByte(string text)
    {
        ulong v = CliValues.ParseNumber(text, "byte");
        return v <= 255 ? (byte)v : throw new UsageException($"{text} does not fit in a byte");
    }

    private static MemoryAccess ParseAccess(string text) => text.ToLowerInvariant() switch
    {
        "read" or "r" => MemoryAccess.Read,
        "write" or "w" => MemoryAccess.Write,
        "exec" or "x" or "execute" => MemoryAccess.Execute,
        _ => throw new UsageException($"'{text}' is not read, write or exec"),
    };

    private static long ParseSignedLength(string text)
    {
        bool neg = text.StartsWith('-');
        ulong v = CliValues.ParseLength(neg ? text[1..] : text);
        if (v > long.MaxValue)
            throw new UsageException($"'{text}' is too large");
        return neg ? -(long)v : (long)v;
    }
}
