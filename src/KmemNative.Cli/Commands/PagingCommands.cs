using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>
/// x86 paging: <c>ptdump</c>, <c>vtop</c>, <c>pte</c>, <c>hexdump</c>, <c>layout</c>, <c>classify</c> (CLI and scripts) and
/// the kernel calls <c>vmalloc</c>, <c>vfree</c>, <c>kmap</c>, <c>kunmap</c>, <c>kmap_local_page</c>, <c>kunmap_local</c>,
/// <c>read</c>, <c>write</c>, <c>invlpg</c>, <c>tlb</c> (scripts).
/// </summary>
internal sealed class PagingCommands : ICommandModule
{
    private const string AddrHelp = "A virtual address (0x... or decimal)";

    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("ptdump", "Dump the kernel page tables in the format of /sys/kernel/debug/page_tables/kernel, then the W+X check", b =>
        {
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                // The tables the CPU runs on: init_mm's unless a process address space is loaded there.
                var (text, wx) = m.Ptdump(GetCpu(ctx, cpu).ActiveMm);
                ctx.Out.Write(text);
                ctx.Out.WriteLine(m.CheckWxLine(wx) ?? "(W+X check skipped: 2-level paging has no NX bit, as mark_rodata_ro() skips it without NX)");
                ctx.SetResult(wx.ToString(CultureInfo.InvariantCulture));
            };
        });

        registry.Add("vtop", "Translate a virtual address walking the page tables level by level, printed like crash's vtop", b =>
        {
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var cpu = CpuOption(b);
            var pid = b.Option("--pid", "Walk that process's page tables (user address: the VMA is shown too)", CliValues.ParseInt, "PID", () => -1);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong va = ctx.GetValue(addr);
                CheckCanonical(m, va, "vtop");
                if (ctx.GetValue(pid) >= 0)
                {
                    var p = m.FindProcess(ctx.GetValue(pid)) ?? throw new CommandFailedException($"no process {ctx.GetValue(pid)} (-ESRCH)");
                    ctx.Out.Write(p.Vtop(va));
                    if (m.WalkPageTables(va, p.AddressSpace).Physical is { } ppa)
                        ctx.SetResult(CliValues.Hex(ppa));
                    return;
                }
                var mm = GetCpu(ctx, cpu).ActiveMm;
                var walk = m.WalkPageTables(va, mm);
                ctx.Out.Write(m.Vtop(va, mm));
                if (walk.Physical is { } pa)
                    ctx.SetResult(CliValues.Hex(pa));
            };
        });

        registry.Add("pte", "Decode a raw page-table entry: crash's flag names, pfn, physical address, page size, every bit", b =>
        {
            var value = b.Argument("VALUE", "The raw entry (0x... or decimal)", t => CliValues.ParseNumber(t, "entry value"));
            var level = b.Option("--level", "The level the entry is from: pgd, p4d, pud, pmd or pte [default: pte]", ParseLevel, "LEVEL", () => 4);
            var json = b.Flag("--json", "Print {\"flags\":[...],\"pfn\":N,\"phys\":N,\"leaf\":bool,\"page_size\":N}");
            b.UsesMachine();
            return ctx =>
            {
                // Decoding needs the layout only: the CLI does not boot a machine for it.
                var arch = ctx.InScript ? ctx.Machine.Arch : ctx.MachineConfig.Arch;
                PteDecoding d;
                try
                {
                    d = PteDecoder.Decode(arch, ctx.GetValue(value), ctx.GetValue(level));
                }
                catch (ArgumentException e)
                {
                    throw new UsageException(e.Message, "pte");
                }
                ctx.Out.Write(ctx.GetValue(json) ? d.ToJson() + "\n" : d.ToString());
                ctx.SetResult(CliValues.Hex(d.Phys));
            };
        });

        registry.Add("hexdump", "Dump memory as xxd does (xxd -r restores it): at a virtual address through the MMU, or with --phys", b =>
        {
            var addr = b.Argument("ADDR", "The first address (virtual, or physical with --phys)", CliValues.ParseAddress);
            var len = new System.CommandLine.Argument<ulong>("LEN")
            {
                Description = "Bytes to dump [default: 256]",
                HelpName = "LEN",
                Arity = System.CommandLine.ArgumentArity.ZeroOrOne,
                DefaultValueFactory = _ => 256,
                CustomParser = r =>
                {
                    try
                    {
                        return r.Tokens.Count == 0 ? 256 : CliValues.ParseLength(r.Tokens[0].Value);
                    }
                    catch (UsageException e)
                    {
                        r.AddError(e.Message);
                        return 0;
                    }
                },
            };
            b.Command.Add(len);
            var phys = b.Flag("--phys", "ADDR is a physical address (the arena, no MMU)");
            var relative = b.Flag("--relative", "Offsets from 0 instead of the address (for xxd -r of x86-64 kernel addresses, which are no file offsets)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong a = ctx.GetValue(addr), n = ctx.GetValue(len);
                if (n > 1UL << 30)
                    throw new UsageException($"LEN {n} is too large (at most 1 GiB)", "hexdump");
                var buffer = new byte[n];
                if (ctx.GetValue(phys))
                {
                    if (!m.Memory.IsRam(a, Math.Max(n, 1)))
                        throw new CommandFailedException($"physical range 0x{a:x}+0x{n:x} is not RAM");
                    m.Memory.Read(a, buffer);
                }
                else
                {
                    CheckCanonical(m, a, "hexdump");
                    try
                    {
                        m.ReadVirtual(GetCpu(ctx, cpu), a, buffer);
                    }
                    catch (PageFaultException e)
                    {
                        throw new CommandFailedException($"0x{a:x}+0x{n:x}: {e.Message}");
                    }
                }
                ctx.Out.Write(Hexdump.Format(ctx.GetValue(relative) ? 0 : a, buffer));
            };
        });

        registry.Add("layout", "The kernel's virtual address map: each area with its range, and high_memory / VMALLOC_START", b =>
        {
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                int w = m.Arch == ArchKind.I386 ? 8 : 16;
                foreach (var area in m.KernelAreas)
                {
                    string end = area.End == 0 ? new string('f', w) : (area.End - 1).ToString("x" + w, CultureInfo.InvariantCulture);
                    ctx.Out.WriteLine($"{area.Start.ToString("x" + w, CultureInfo.InvariantCulture)}-{end}  {KindName(area.Kind)}");
                }
                ctx.Out.WriteLine($"high_memory 0x{m.HighMemory:x}  VMALLOC_START 0x{m.VmallocStart:x}  VMALLOC_END 0x{m.VmallocEnd:x}");
            };
        });

        registry.Add("classify", "Say what a virtual address is: user, logical (linear map), vmalloc, pkmap, fixmap...", b =>
        {
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong va = ctx.GetValue(addr);
                var kind = m.ClassifyAddress(va);
                string more = kind switch
                {
                    AddressKind.Logical when m.VirtAddrValid(va) => $": __pa() = 0x{m.Pa(va):x}, pfn 0x{m.Pa(va) >> PageSize.Shift:x}",
                    AddressKind.KernelText when m.VirtAddrValid(va) => $": __pa() = 0x{m.Pa(va):x}",
                    _ => "",
                };
                ctx.Out.WriteLine($"0x{va:x}: {KindName(kind)}{more}");
                ctx.SetResult(kind.ToString().ToLowerInvariant());
            };
        });

        RegisterKernelCalls(registry);
    }

    private static void RegisterKernelCalls(CommandRegistry registry)
    {
        registry.Add("vmalloc", "vmalloc(SIZE): virtually contiguous memory from scattered pages; result: its address", b =>
        {
            var size = b.Argument("SIZE", "Bytes (a number with an optional K/M suffix)", CliValues.ParseLength);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                int mark = m.Log.Count;
                ulong va = m.Vmalloc(ctx.GetValue(size));
                if (va == 0)
                    throw new CommandFailedException($"vmalloc({ctx.GetValue(size)}) failed" + (m.Log.Since(mark).LastOrDefault() is { } l ? ": " + l : ""));
                var area = m.VmallocAreas.First(a => a.Address == va);
                ctx.Out.WriteLine($"vmalloc {CliValues.Hex(va)}-{CliValues.Hex(area.End)} {area.Pfns.Count} pages: pfn {string.Join(' ', area.Pfns.Take(8).Select(CliValues.Hex))}{(area.Pfns.Count > 8 ? " ..." : "")}");
                ctx.SetResult(CliValues.Hex(va));
            };
        }, CommandScope.Script);

        registry.Add("vfree", "vfree(ADDR): unmap a vmalloc area, flush the TLBs, free its pages", b =>
        {
            var addr = b.Argument("ADDR", "An address vmalloc returned", CliValues.ParseAddress);
            b.UsesMachine();
            return ctx => ctx.Machine.Vfree(ctx.GetValue(addr));
        }, CommandScope.Script);

        registry.Add("kmap", "kmap(PAGE): a kernel address for a page (a pkmap slot for HIGHMEM); result: the address", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var p = ctx.GetValue(page).Resolve(m);
                ulong va = m.Kmap(m.ThisCpu, p);
                ctx.Out.WriteLine($"kmap pfn {CliValues.Hex(p.Pfn)} -> {CliValues.Hex(va)} ({KindName(m.ClassifyAddress(va))})");
                ctx.SetResult(CliValues.Hex(va));
            };
        }, CommandScope.Script);

        registry.Add("kunmap", "kunmap(PAGE): drop a kmap use (the pkmap slot is unmapped lazily, when the window wraps)", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                m.Kunmap(m.ThisCpu, ctx.GetValue(page).Resolve(m));
            };
        }, CommandScope.Script);

        registry.Add("kmap_flush_unused", "kmap_flush_unused(): unmap the pkmap slots no one uses and flush the TLBs", b =>
        {
            b.UsesMachine();
            return ctx => ctx.Machine.KmapFlushUnused(ctx.Machine.ThisCpu);
        }, CommandScope.Script);

        registry.Add("kmap_local_page", "kmap_local_page(PAGE): a CPU-local mapping through a fixmap slot; result: the address", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var p = ctx.GetValue(page).Resolve(m);
                ulong va = m.KmapLocalPage(m.ThisCpu, p);
                ctx.Out.WriteLine($"kmap_local_page pfn {CliValues.Hex(p.Pfn)} -> {CliValues.Hex(va)} ({KindName(m.ClassifyAddress(va))})");
                ctx.SetResult(CliValues.Hex(va));
            };
        }, CommandScope.Script);

        registry.Add("kunmap_local", "kunmap_local(ADDR): undo the innermost kmap_local_page of this CPU", b =>
        {
            var addr = b.Argument("ADDR", "An address kmap_local_page returned", CliValues.ParseAddress);
            b.UsesMachine();
            return ctx => ctx.Machine.KunmapLocal(ctx.Machine.ThisCpu, ctx.GetValue(addr));
        }, CommandScope.Script);

        registry.Add("read", "read ADDR SIZE: load through the MMU as the kernel (SIZE 1, 2, 4 or 8: a number; other sizes: xxd lines)", b =>
        {
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var size = b.Argument("SIZE", "Bytes", CliValues.ParseLength);
            var user = b.Flag("--user", "Access with user privilege (CPL 3)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong va = ctx.GetValue(addr), n = ctx.GetValue(size);
                var mode = ctx.GetValue(user) ? PrivilegeMode.User : PrivilegeMode.Supervisor;
                if (n == 0 || n > 1UL << 20)
                    throw new UsageException($"SIZE {n}: between 1 byte and 1 MiB", "read");
                try
                {
                    if (n is 1 or 2 or 4 or 8)
                    {
                        ulong v = m.ReadVirtualUInt(GetCpu(ctx, cpu), va, (int)n, mode);
                        ctx.Out.WriteLine($"{CliValues.Hex(va)}: {CliValues.Hex(v)}");
                        ctx.SetResult(CliValues.Hex(v));
                        return;
                    }
                    var buffer = new byte[n];
                    m.ReadVirtual(GetCpu(ctx, cpu), va, buffer, mode);
                    ctx.Out.Write(Hexdump.Format(va, buffer));
                }
                catch (PageFaultException e)
                {
                    throw new CommandFailedException(e.Message);
                }
            };
        }, CommandScope.Script);

        registry.Add("write", "write ADDR VALUE|BYTES: store through the MMU as the kernel: a number (--size bytes, default sizeof(long)), hex:0a0b.. or str:TEXT", b =>
        {
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var value = b.Argument("VALUE", "A number, hex:BYTES (hex digit pairs) or str:TEXT");
            var size = b.Option("--size", "Store width for a number: 1, 2, 4 or 8", CliValues.ParseInt, "N");
            var user = b.Flag("--user", "Access with user privilege (CPL 3)");
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong va = ctx.GetValue(addr);
                string text = ctx.GetValue(value);
                var mode = ctx.GetValue(user) ? PrivilegeMode.User : PrivilegeMode.Supervisor;
                try
                {
                    if (text.StartsWith("hex:", StringComparison.Ordinal) || text.StartsWith("str:", StringComparison.Ordinal))
                    {
                        byte[] bytes = ParseBytes(text);
                        m.WriteVirtual(GetCpu(ctx, cpu), va, bytes, mode);
                        ctx.Out.WriteLine($"wrote {bytes.Length} bytes at {CliValues.Hex(va)}");
                        return;
                    }
                    ulong v = CliValues.ParseNumber(text, "value");
                    int n = ctx.IsGiven(size) ? ctx.GetValue(size) : m.Arch == ArchKind.I386 ? 4 : 8;
                    if (n is not (1 or 2 or 4 or 8))
                        throw new UsageException($"--size {n}: stores are 1, 2, 4 or 8 bytes", "write");
                    if (n < 8 && v >> (8 * n) != 0)
                        throw new UsageException($"{text} does not fit in {n} bytes", "write");
                    m.WriteVirtualUInt(GetCpu(ctx, cpu), va, n, v, mode);
                    ctx.Out.WriteLine($"{CliValues.Hex(va)}: {CliValues.Hex(v)} ({n} bytes)");
                }
                catch (PageFaultException e)
                {
                    throw new CommandFailedException(e.Message);
                }
            };
        }, CommandScope.Script);

        registry.Add("invlpg", "invlpg ADDR: drop one page's translation from this CPU's TLB", b =>
        {
            var addr = b.Argument("ADDR", AddrHelp, CliValues.ParseAddress);
            var cpu = CpuOption(b);
            b.UsesMachine();
            return ctx => ctx.Machine.Invlpg(GetCpu(ctx, cpu), ctx.GetValue(addr));
        }, CommandScope.Script);

        registry.Add("tlb", "Show a CPU's TLB: control registers, hit/miss/walk/flush counts and the valid entries", b =>
        {
            var cpu = CpuOption(b);
            var debug = b.Option("--debug", "Turn TLB debug mode (every hit cross-checked against a walk) on or off", CliValues.ParseOnOff, "on|off");
            var stats = b.Option("--stats", "Turn TLB statistics mode (hits counted; on in kmem) on or off", CliValues.ParseOnOff, "on|off");
            var flush = b.Flag("--flush", "flush_tlb_all() first");
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                if (ctx.IsGiven(debug))
                    m.TlbDebug = ctx.GetValue(debug);
                if (ctx.IsGiven(stats))
                    m.TlbStatistics = ctx.GetValue(stats);
                if (ctx.GetValue(flush))
                    m.FlushTlbAll();
                WriteTlb(ctx.Out, m, GetCpu(ctx, cpu));
            };
        }, CommandScope.Script);
    }

    private static void WriteTlb(TextWriter w, Machine m, Cpu c)
    {
        var s = c.TlbStatistics;
        int width = m.Arch == ArchKind.I386 ? 8 : 16;
        w.WriteLine($"cpu{c.Id}: CR3 {CliValues.Hex(c.Cr3)}  CR0.WP {B(c.Cr0Wp)}  CR4.PGE {B(c.Cr4Pge)}  CR4.PSE {B(c.Cr4Pse)}  EFER.NXE {B(c.EferNxe)}  debug {(c.TlbDebug ? "on" : "off")}");
        string hits = m.TlbStatistics || m.TlbDebug ? s.Hits.ToString(CultureInfo.InvariantCulture) : "(not counted: statistics off)";
        w.WriteLine($"  hits {hits}  misses {s.Misses}  walks {s.Walks}  faults {s.Faults}  flushes: full {s.FullFlushes}, page {s.PageFlushes}, range {s.RangeFlushes}, shootdowns {s.Shootdowns}");
        var entries = c.TlbEntries;
        w.WriteLine($"  {entries.Count} entries");
        if (entries.Count == 0)
            return;
        w.WriteLine($"  {"MODE",-4} {"SLOT",4}  {"VIRTUAL".PadRight(width)}  {"PHYSICAL",-12} {"SIZE",5}  RWXG");
        foreach (var e in entries.OrderBy(e => e.Mode).ThenBy(e => e.Virtual))
        {
            string size = e.PageSize >= 1UL << 30 ? $"{e.PageSize >> 30}G" : e.PageSize >= 1UL << 20 ? $"{e.PageSize >> 20}M" : $"{e.PageSize >> 10}K";
            string perms = $"{(e.Readable ? 'r' : '-')}{(e.Writable ? 'w' : '-')}{(e.Executable ? 'x' : '-')}{(e.Global ? 'g' : '-')}";
            w.WriteLine($"  {(e.Mode == PrivilegeMode.User ? "user" : "sup"),-4} {e.Index,4}  {e.Virtual.ToString("x" + width, CultureInfo.InvariantCulture)}  {CliValues.Hex(e.Physical),-12} {size,5}  {perms}");
        }

        static int B(bool v) => v ? 1 : 0;
    }

    private static System.CommandLine.Option<int> CpuOption(CommandBuilder b) =>
        b.Option("--cpu", "The CPU to run on [default: the session's CPU]", CliValues.ParseInt, "N", () => -1);

    private static Cpu GetCpu(CommandContext ctx, System.CommandLine.Option<int> cpu)
    {
        var m = ctx.Machine;
        int id = ctx.GetValue(cpu);
        if (id < 0)
            return m.ThisCpu;
        if (id >= m.Cpus.Count)
            throw new UsageException($"--cpu {id}: the machine has {m.Cpus.Count} CPUs");
        return m.GetCpu(id);
    }

    private static void CheckCanonical(Machine m, ulong va, string command)
    {
        if (m.ClassifyAddress(va) == AddressKind.NonCanonical)
            throw new UsageException(m.Arch == ArchKind.I386
                ? $"0x{va:x} is not a 32-bit address"
                : $"0x{va:x} is not a canonical address (bits 63:47 must all equal bit 47)", command);
    }

    private static int ParseLevel(string text)
    {
        try
        {
            return PteDecoder.ParseLevel(text);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message.Split(" (Parameter", 2)[0]);
        }
    }


    private static byte[] ParseBytes(string text)
    {
        if (text.StartsWith("str:", StringComparison.Ordinal))
            return Encoding.UTF8.GetBytes(text[4..]);
        string hex = text[4..].Replace(":", "", StringComparison.Ordinal).Replace(",", "", StringComparison.Ordinal);
        if (hex.Length == 0 || hex.Length % 2 != 0)
            throw new UsageException($"'{text}': hex: takes pairs of hex digits, e.g. hex:deadbeef");
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            throw new UsageException($"'{text}': hex: takes pairs of hex digits, e.g. hex:deadbeef");
        }
    }

    private static string KindName(AddressKind kind) => kind switch
    {
        AddressKind.User => "user space",
        AddressKind.NonCanonical => "non-canonical",
        AddressKind.Logical => "logical address (linear map)",
        AddressKind.Vmalloc => "virtual address (vmalloc area)",
        AddressKind.Pkmap => "virtual address (persistent kmap window)",
        AddressKind.Fixmap => "virtual address (fixmap)",
        AddressKind.KernelText => "kernel text mapping",
        AddressKind.Modules => "module area",
        AddressKind.Vmemmap => "vmemmap (struct page array)",
        AddressKind.CpuEntryArea => "cpu_entry_area",
        AddressKind.LdtRemap => "LDT remap",
        AddressKind.Espfix => "ESPfix stacks",
        AddressKind.Efi => "EFI runtime services",
        AddressKind.GuardHole => "hypervisor guard hole",
        _ => "unused kernel address",
    };
}
