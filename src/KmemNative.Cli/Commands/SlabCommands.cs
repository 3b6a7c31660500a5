using System.Globalization;
using System.Text;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Cli.Commands;

/// <summary>
/// The slab allocator's calls with the kernel's names and argument order (kmalloc, kmem_cache_alloc...), memory
/// access for studying objects (rd, memset), and the views: <c>slab NAME</c> (/sys/kernel/slab/NAME) and crash's
/// <c>kmem -s</c> / <c>kmem -S</c> / <c>kmem ADDR</c>.
/// </summary>
internal sealed class SlabCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        RegisterKmalloc(registry);
        RegisterCaches(registry);
        RegisterViews(registry);
        RegisterMemory(registry);
    }

    private static void RegisterKmalloc(CommandRegistry registry)
    {
        registry.Add("kmalloc", "kmalloc(SIZE, GFP): allocate from the kmalloc caches (page allocator above 8 KiB); result: the address", b =>
        {
            var size = b.Argument("SIZE", "Bytes (0 returns ZERO_SIZE_PTR)", t => CliValues.ParseNumber(t, "size"));
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            b.UsesMachine();
            return ctx => Kmalloc(ctx, "kmalloc", ctx.GetValue(size), ctx.GetValue(gfp));
        }, CommandScope.Script);

        registry.Add("kzalloc", "kzalloc(SIZE, GFP): kmalloc with __GFP_ZERO; result: the address", b =>
        {
            var size = b.Argument("SIZE", "Bytes", t => CliValues.ParseNumber(t, "size"));
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            b.UsesMachine();
            return ctx => Kmalloc(ctx, "kmalloc", ctx.GetValue(size), ctx.GetValue(gfp) | Gfp.Zero);
        }, CommandScope.Script);

        registry.Add("krealloc", "krealloc(ADDR, SIZE, GFP): resize in place when it fits, else move; result: the new address", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            var size = b.Argument("SIZE", "New size in bytes (0 frees)", t => CliValues.ParseNumber(t, "size"));
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong old = ctx.GetValue(addr), n = ctx.GetValue(size);
                ulong p = m.Krealloc(old, n, ctx.GetValue(gfp));
                if (p == 0)
                    throw new CommandFailedException($"krealloc(0x{old:x}, {n}): out of memory (the old object is unchanged)");
                string how = p == old ? "in place" : old <= 16 ? "new" : "moved";
                ctx.Out.WriteLine($"{SlabText.KmallocLine(m, "krealloc", p, n, ctx.GetValue(gfp))} ({how})");
                ctx.SetResult(CliValues.Hex(p));
            };
        }, CommandScope.Script);

        registry.Add("ksize", "ksize(ADDR): the usable size of an allocation; result: the size", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            b.UsesMachine();
            return ctx =>
            {
                ulong n = ctx.Machine.Ksize(ctx.GetValue(addr));
                ctx.Out.WriteLine(n.ToString(CultureInfo.InvariantCulture));
                ctx.SetResult(n.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("kfree", "kfree(ADDR): free a kmalloc allocation (NULL and ZERO_SIZE_PTR do nothing)", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            b.UsesMachine();
            return ctx => ctx.Machine.Kfree(ctx.GetValue(addr));
        }, CommandScope.Script);
    }

    private static void Kmalloc(CommandContext ctx, string name, ulong size, Gfp gfp)
    {
        var m = ctx.Machine;
        int mark = m.Log.Count;
        ulong p = m.Kmalloc(size, gfp);
        if (p == 0)
            throw new CommandFailedException($"{name}({size}, {GfpFlags.Format(gfp)}) failed: out of memory" + LogSince(m, mark));
        ctx.Out.WriteLine(SlabText.KmallocLine(m, name, p, size, gfp));
        ctx.SetResult(CliValues.Hex(p));
    }

    private static string LogSince(Machine m, int mark)
    {
        var lines = m.Log.Since(mark);
        return lines.Count == 0 ? "" : "\n" + string.Join('\n', lines);
    }

    private static void RegisterCaches(CommandRegistry registry)
    {
        registry.Add("kmem_cache_create", "kmem_cache_create(NAME, SIZE, ALIGN, FLAGS): create a slab cache; result: its struct kmem_cache address", b =>
        {
            var name = b.Argument("NAME", "Cache name (no spaces)");
            var size = b.Argument("SIZE", "Object size in bytes", t => (uint)CliValues.ParseInt(t));
            var align = b.OptionalArgument("ALIGN", "Alignment (0 or a power of two) [default: 0]", t => (uint)CliValues.ParseInt(t), 0u);
            var flags = b.OptionalArgument("FLAGS", "SLAB_* flags joined by '|' (SLAB_HWCACHE_ALIGN|SLAB_RECLAIM_ACCOUNT) [default: 0]", SlabFlagsText.Parse, SlabFlags.None);
            var sheaves = b.Option("--sheaf-capacity", "kmem_cache_args.sheaf_capacity: per-CPU sheaves of N objects in front of the slabs [default: 0, none]",
                t => (uint)CliValues.ParseInt(t), "N");
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var args = new KmemCacheArgs { Align = ctx.GetValue(align), SheafCapacity = ctx.GetValue(sheaves) };
                var s = m.KmemCacheCreate(ctx.GetValue(name), ctx.GetValue(size), args, ctx.GetValue(flags))
                    ?? throw new CommandFailedException($"kmem_cache_create({ctx.GetValue(name)}): out of memory");
                ctx.Out.WriteLine($"kmem_cache_create: {s.Name} kmem_cache={SlabText.P(m, s.Va)} object_size={s.ObjectSize} size={s.Size} align={s.Align} " +
                                  $"offset={s.Offset} objs_per_slab={s.ObjectsPerSlab} order={s.Order} flags={SlabFlagsText.Format(s.Flags)}" +
                                  (s.SheafCapacity != 0 ? $" sheaf_capacity={s.SheafCapacity}" : ""));
                ctx.SetResult(CliValues.Hex(s.Va));
            };
        }, CommandScope.Script);

        registry.Add("kmem_cache_alloc", "kmem_cache_alloc(CACHE, GFP): allocate an object; result: its address", b =>
        {
            var cache = b.Argument("CACHE", SlabText.CacheHelp);
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var s = SlabText.Cache(m, ctx.GetValue(cache));
                int mark = m.Log.Count;
                ulong p = m.KmemCacheAlloc(s, ctx.GetValue(gfp));
                if (p == 0)
                    throw new CommandFailedException($"kmem_cache_alloc({s.Name}): out of memory" + LogSince(m, mark));
                ctx.Out.WriteLine($"kmem_cache_alloc: ptr={SlabText.P(m, p)} name={s.Name} bytes_req={s.ObjectSize} bytes_alloc={s.Size} " +
                                  $"gfp_flags={GfpFlags.Format(ctx.GetValue(gfp))} node=-1 accounted={SlabText.Accounted(m, ctx.GetValue(gfp), s)}");
                ctx.SetResult(CliValues.Hex(p));
            };
        }, CommandScope.Script);

        registry.Add("kmem_cache_free", "kmem_cache_free(CACHE, ADDR): free an object of the cache", b =>
        {
            var cache = b.Argument("CACHE", SlabText.CacheHelp);
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            b.UsesMachine();
            return ctx => ctx.Machine.KmemCacheFree(SlabText.Cache(ctx.Machine, ctx.GetValue(cache)), ctx.GetValue(addr));
        }, CommandScope.Script);

        registry.Add("kmem_cache_destroy", "kmem_cache_destroy(CACHE): release an empty cache (objects left are reported)", b =>
        {
            var cache = b.Argument("CACHE", SlabText.CacheHelp);
            b.UsesMachine();
            return ctx => ctx.Machine.KmemCacheDestroy(SlabText.Cache(ctx.Machine, ctx.GetValue(cache)));
        }, CommandScope.Script);

        registry.Add("kmem_cache_shrink", "kmem_cache_shrink(CACHE): free the cache's empty slabs; result: 0 when none is left", b =>
        {
            var cache = b.Argument("CACHE", SlabText.CacheHelp);
            b.UsesMachine();
            return ctx =>
            {
                int r = ctx.Machine.KmemCacheShrink(SlabText.Cache(ctx.Machine, ctx.GetValue(cache)));
                ctx.SetResult(r.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("validate_slab_cache", "validate_slab_cache(CACHE): check every slab and object (/sys/kernel/slab/CACHE/validate)", b =>
        {
            var cache = b.Argument("CACHE", SlabText.CacheHelp);
            b.UsesMachine();
            return ctx =>
            {
                var v = ctx.Machine.KmemCacheValidate(SlabText.Cache(ctx.Machine, ctx.GetValue(cache)));
                foreach (var r in v.Reports)
                    ctx.Out.WriteLine(r.Report);
                ctx.Out.WriteLine($"{v.Errors} error(s)");
                ctx.SetResult(v.Errors.ToString(CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("slab_debug", "slab_debug OPTIONS[,CACHES]: the slab_debug= boot option (F Z P U T O -); before boot it is a boot parameter, after it re-lays out empty caches", b =>
        {
            var options = b.OptionalArgument("OPTIONS", "Options and caches, e.g. FZPU,kmalloc-32 or P,kmalloc-*;F,dentry (empty: FZPU everywhere)", t => t, "");
            return ctx =>
            {
                string text = ctx.GetValue(options);
                try
                {
                    SlabDebugOptions.Parse(text);
                }
                catch (FormatException e)
                {
                    throw new UsageException(e.Message, "slab_debug");
                }
                if (ctx.BootedMachine is null)
                {
                    ctx.Session.Defaults = ctx.Session.Defaults with { SlabDebug = text };
                    ctx.Out.WriteLine($"slab_debug={text} (boot parameter)");
                    return;
                }
                var (changed, busy) = ctx.Machine.SlabDebug(text);
                var sb = new StringBuilder($"slab_debug={text}:");
                sb.Append(changed.Count == 0 ? " no cache changed" : " " + string.Join(' ', changed.Select(c => c.Name)));
                if (busy.Count > 0)
                    sb.Append("; busy (objects allocated, unchanged): ").Append(string.Join(' ', busy.Select(c => c.Name)));
                ctx.Out.WriteLine(sb.ToString());
            };
        }, CommandScope.Script);
    }

    private static void RegisterViews(CommandRegistry registry)
    {
        registry.Add("slab", "Show /sys/kernel/slab/NAME/: sizes, order, objects, slabs, debug flags", b =>
        {
            var cache = b.Argument("NAME", SlabText.CacheHelp);
            b.UsesMachine();
            return ctx =>
            {
                var s = SlabText.Cache(ctx.Machine, ctx.GetValue(cache));
                foreach (var (name, value) in ctx.Machine.SlabSysfs(s))
                    ctx.Out.WriteLine($"/sys/kernel/slab/{s.Name}/{name}: {value}");
            };
        });

        // crash's syntax: "kmem" is also the CLI's own name, so the command is a raw script command parsed here.
        registry.AddRaw("kmem", "kmem -s [NAME|ADDR] | kmem -S [NAME|ADDR] | kmem ADDR",
            "crash's kmem: -s lists caches (or the cache, slab and object of ADDR), -S shows every slab and object, ADDR alone says what it is",
            (ctx, args) =>
            {
                bool small = false, big = false;
                string arg = "";
                foreach (string a in args)
                {
                    if (a == "-s")
                        small = true;
                    else if (a == "-S")
                        big = true;
                    else if (a.StartsWith('-') && !CliValues.TryParseNumber(a, out _))
                        throw new UsageException($"kmem: unknown option '{a}' (expected -s or -S)", "kmem");
                    else if (arg.Length == 0)
                        arg = a;
                    else
                        throw new UsageException($"kmem: unexpected argument '{a}'", "kmem");
                }
                Kmem(ctx, small, big, arg);
            });

        registry.Add("kmem_dump_obj", "mem_dump_obj(ADDR): what the kernel says an address is (slab, start, offset, size, allocation site)", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            b.UsesMachine();
            return ctx => ctx.Out.WriteLine(ctx.Machine.KmemDumpObj(ctx.GetValue(addr)));
        });
    }

    private static void Kmem(CommandContext ctx, bool small, bool big, string arg)
    {
        var m = ctx.Machine;
        if (small && big)
            throw new UsageException("-s and -S cannot be combined", "kmem");
        KmemCache? named = arg.Length == 0 ? null : m.FindKmemCache(arg);
        ulong addr = 0;
        if (arg.Length != 0 && named is null)
        {
            try
            {
                addr = SlabText.ParseAddress(arg);
            }
            catch (UsageException)
            {
                throw new CommandFailedException($"no slab cache '{arg}' (and not an address)");
            }
            named = m.KmemCaches.FirstOrDefault(c => c.Va == addr);
        }

        if (!small && !big)
        {
            if (arg.Length == 0)
                throw new UsageException("kmem needs -s, -S or an address", "kmem");
            WhatIs(ctx, addr);
            return;
        }
        if (small)
        {
            if (named is null && addr != 0)
            {
                var info = m.KmemObjInfo(addr) ?? throw new CommandFailedException($"0x{addr:x}: {m.KmemDumpObj(addr)}");
                ctx.Out.Write(SlabText.ObjectLines(m, info));
                return;
            }
            ctx.Out.WriteLine(SlabText.CacheHeader(m));
            foreach (var s in named is null ? m.KmemCaches : [named])
                ctx.Out.WriteLine(SlabText.CacheLine(m, m.KmemCacheState(s)));
            return;
        }
        if (named is null && addr != 0)
        {
            var info = m.KmemObjInfo(addr) ?? throw new CommandFailedException($"0x{addr:x}: {m.KmemDumpObj(addr)}");
            named = info.Cache;
        }
        ctx.Out.WriteLine(SlabText.CacheHeader(m));
        foreach (var s in named is null ? m.KmemCaches : [named])
            ctx.Out.Write(SlabText.CacheDetail(m, m.KmemCacheState(s)));
    }

    /// <summary>kmem ADDR: mem_dump_obj()'s verdict, then the slab view or the page.</summary>
    private static void WhatIs(CommandContext ctx, ulong addr)
    {
        var m = ctx.Machine;
        ctx.Out.WriteLine($"{SlabText.P(m, addr)}: {m.KmemDumpObj(addr)}");
        if (m.KmemObjInfo(addr) is { } info)
        {
            ctx.Out.Write(SlabText.ObjectLines(m, info));
            string state = info.Allocated ? "allocated"
                : info.Sheaf is { } where ? (info.CpuCache is { } sc ? $"free (in cpu {sc}'s {where} sheaf)" : "free (in a full sheaf of the barn)")
                : info.CpuCache is { } c ? $"free (on cpu {c}'s freelist)" : "free";
            ctx.Out.WriteLine($"  object {info.Index} of the slab, {state}, offset {info.PointerOffset} into it");
            if (info.AllocTrack is { } a)
                ctx.Out.WriteLine($"  allocated at {a.CallSite} cpu={a.Cpu} pid={a.Pid} jiffies={a.When}");
            if (info.FreeTrack is { } f)
                ctx.Out.WriteLine($"  freed at {f.CallSite} cpu={f.Cpu} pid={f.Pid} jiffies={f.When}");
            return;
        }
        if (m.VirtAddrValid(addr))
        {
            var page = m.VirtToPage(addr);
            var d = page.Descriptor;
            string type = d.PageType is { } t ? PhysMem.PageBits.PageTypeName(t) ?? "0x" + t.ToString("x", CultureInfo.InvariantCulture) : "none";
            ctx.Out.WriteLine($"  page {CliValues.Hex(d.Address)} pfn {CliValues.Hex(d.Pfn)} page_type {type} flags {d.FlagsText}");
        }
    }

    private static void RegisterMemory(CommandRegistry registry)
    {
        registry.Add("rd", "Read kernel memory at a direct-map address and print it as a hex dump (crash's rd)", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            var count = b.OptionalArgument("COUNT", "Bytes to show [default: 64]", t => CliValues.ParseInt(t), 64);
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                ulong va = ctx.GetValue(addr);
                int n = ctx.GetValue(count);
                if (n is <= 0 or > 1 << 20)
                    throw new UsageException("COUNT must be 1..1048576", "rd");
                var bytes = new byte[n];
                m.Memory.Read(m.Pa(va), bytes);
                for (int i = 0; i < n; i += 16)
                {
                    var line = new StringBuilder();
                    line.Append(SlabText.P(m, va + (ulong)i)).Append(":  ");
                    int k = Math.Min(16, n - i);
                    for (int j = 0; j < k; j++)
                        line.Append(bytes[i + j].ToString("x2", CultureInfo.InvariantCulture)).Append(j == 7 ? "  " : " ");
                    line.Append(new string(' ', (16 - k) * 3 + (k <= 7 ? 1 : 0)));
                    line.Append(' ');
                    for (int j = 0; j < k; j++)
                        line.Append(bytes[i + j] is >= 0x20 and < 0x7f ? (char)bytes[i + j] : '.');
                    ctx.Out.WriteLine(line.ToString().TrimEnd());
                }
            };
        });

        registry.Add("memset", "memset(ADDR, BYTE, COUNT): write COUNT copies of BYTE at a direct-map address (to study what the checks catch)", b =>
        {
            var addr = b.Argument("ADDR", SlabText.AddrHelp, SlabText.ParseAddress);
            var value = b.Argument("BYTE", "The byte value (0..255, e.g. 0x12)", t => CliValues.ParseNumber(t, "byte") is var v && v <= 255 ? (byte)v : throw new UsageException($"{t} is not a byte"));
            var count = b.Argument("COUNT", "Bytes to write", t => CliValues.ParseInt(t));
            b.UsesMachine();
            return ctx =>
            {
                var m = ctx.Machine;
                var bytes = new byte[ctx.GetValue(count)];
                Array.Fill(bytes, ctx.GetValue(value));
                m.Memory.Write(m.Pa(ctx.GetValue(addr)), bytes);
            };
        }, CommandScope.Script);
    }
}
