using System.Text.RegularExpressions;

namespace KmemNative.Tests.Cli;

/// <summary>The slab commands in scripts and on the command line.</summary>
public sealed class CliSlabTests
{
    [Fact]
    public void Kmalloc_family_prints_the_tracepoint_fields_and_stores_the_address()
    {
        var r = CliRunner.RunScript("""
            $p = kmalloc 11 GFP_KERNEL_ACCOUNT|__GFP_ZERO
            $q = kzalloc 72 GFP_KERNEL
            ksize $q
            $big = kmalloc 10000 GFP_KERNEL
            $r = krealloc $q 90 GFP_KERNEL
            $s = krealloc $r 200 GFP_KERNEL
            kfree $p
            kfree $s
            kfree $big
            kfree 0
            check
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^kmalloc: ptr=ffff888[0-9a-f]{9} bytes_req=11 bytes_alloc=16 gfp_flags=GFP_KERNEL_ACCOUNT\|__GFP_ZERO node=-1 accounted=true$", r.OutLines[0]);
        Assert.Matches(@"^kmalloc: ptr=[0-9a-f]{16} bytes_req=72 bytes_alloc=96 gfp_flags=GFP_KERNEL\|__GFP_ZERO node=-1 accounted=false$", r.OutLines[1]);
        Assert.Equal("96", r.OutLines[2]);
        Assert.Matches(@"bytes_req=10000 bytes_alloc=16384 ", r.OutLines[3]);
        Assert.EndsWith("(in place)", r.OutLines[4]);
        Assert.EndsWith("(moved)", r.OutLines[5]);
        Assert.Contains("bytes_alloc=256", r.OutLines[5]);
        Assert.StartsWith("consistent", r.OutLines[^1]);
    }

    [Fact]
    public void A_cache_with_sheaves_shows_them_in_kmem_dash_S()
    {
        var r = CliRunner.RunScript("""
            kmem_cache_create sheaved 64 --sheaf-capacity 4
            $a = kmem_cache_alloc sheaved GFP_KERNEL
            $b = kmem_cache_alloc sheaved GFP_KERNEL
            kmem_cache_free sheaved $a
            kmem -S sheaved
            kmem $a
            slab sheaved
            kmem_cache_free sheaved $b
            kmem_cache_destroy sheaved
            check
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var o = r.OutLines;
        Assert.EndsWith(" sheaf_capacity=4", o[0]);
        Assert.Contains(o, l => Regex.IsMatch(l, @"^  CPU 0 SHEAVES: ffff888[0-9a-f]{9}$"));
        Assert.Contains(o, l => Regex.IsMatch(l, @"^    main  ffff888[0-9a-f]{9}  3/4$"));
        Assert.Contains("    spare (none)", o);
        Assert.Contains(o, l => Regex.IsMatch(l, @"^  NODE 0 BARN: ffff888[0-9a-f]{9}  full 0  empty 1$"));
        Assert.Contains(o, l => Regex.IsMatch(l, @"^     ffff888[0-9a-f]{9}  \(cpu 0 main sheaf\)$"));
        Assert.Contains(o, l => l.Contains("free (in cpu 0's main sheaf)", StringComparison.Ordinal));
        Assert.Contains("/sys/kernel/slab/sheaved/sheaf_capacity: 4", o);
        Assert.StartsWith("consistent", o[^1]);
    }

    [Fact]
    public void Kmem_cache_commands_create_allocate_list_and_destroy()
    {
        var r = CliRunner.RunScript("""
            $c = kmem_cache_create my_cache 100 0 SLAB_HWCACHE_ALIGN
            $o = kmem_cache_alloc my_cache GFP_KERNEL
            $o2 = kmem_cache_alloc $c GFP_KERNEL
            kmem_cache_free my_cache $o2
            kmem -s my_cache
            kmem -S my_cache
            kmem -s $o
            kmem $o+4
            slab my_cache
            expect-fail kmem_cache_destroy my_cache
            kmem_cache_free my_cache $o
            kmem_cache_destroy my_cache
            expect-fail kmem_cache_alloc my_cache GFP_KERNEL
            check
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var o = r.OutLines;
        Assert.Matches(@"^kmem_cache_create: my_cache kmem_cache=ffff888[0-9a-f]{9} object_size=100 size=128 align=64 offset=48 objs_per_slab=32 order=0 flags=SLAB_HWCACHE_ALIGN\|__CMPXCHG_DOUBLE$", o[0]);
        Assert.Matches(@"^kmem_cache_alloc: ptr=[0-9a-f]{16} name=my_cache bytes_req=100 bytes_alloc=128 gfp_flags=GFP_KERNEL node=-1 accounted=false$", o[1]);
        int h = Array.IndexOf(o, "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME");
        Assert.Matches(@"^ffff888[0-9a-f]{9}      100          1        32      1     4k  my_cache$", o[h + 1]);
        // kmem -S: the CPU slab with the allocated object in brackets and the freed one cached by CPU 0.
        Assert.Contains("  CPU 0 KMEM_CACHE_CPU:", o);
        Assert.Contains("    SLAB              MEMORY            NODE  TOTAL  ALLOCATED  FREE", o);
        Assert.Contains(o, l => Regex.IsMatch(l, @"^    ffffea[0-9a-f]{10}  ffff888[0-9a-f]{9}     0     32          1    31$"));
        Assert.Contains(o, l => Regex.IsMatch(l, @"^    \[ffff888[0-9a-f]{9}\]$"));
        Assert.Contains(o, l => Regex.IsMatch(l, @"^     ffff888[0-9a-f]{9}  \(cpu 0 cache\)$"));
        Assert.Contains("  KMEM_CACHE_NODE   NODE  SLABS  PARTIAL  PER-CPU", o);
        Assert.Contains(o, l => Regex.IsMatch(l, @"^  ffff888[0-9a-f]{9}     0      1        0        1$"));
        Assert.Contains("  NODE 0 PARTIAL:", o);
        // kmem ADDR: what the kernel says about it.
        Assert.Contains(o, l => Regex.IsMatch(l, @"^ffff888[0-9a-f]{9}: slab my_cache start ffff888[0-9a-f]{9} pointer offset 4 size 100$"));
        Assert.Contains("/sys/kernel/slab/my_cache/objs_per_slab: 32", o);
        Assert.Contains("/sys/kernel/slab/my_cache/hwcache_align: 1", o);
        Assert.Contains(o, l => l.StartsWith("expected failure: =====", StringComparison.Ordinal));
        Assert.Contains("BUG my_cache (Not tainted): Objects remaining in my_cache on __kmem_cache_shutdown()", o);
        Assert.Contains(o, l => l.StartsWith("expected failure: no slab cache 'my_cache'", StringComparison.Ordinal));
        Assert.StartsWith("consistent", o[^1]);
    }

    [Fact]
    public void Proc_slabinfo_on_the_command_line_has_the_real_header()
    {
        var r = CliRunner.Run("proc", "slabinfo", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        var real = File.ReadAllLines(TestUtil.Machines.DataFile("proc-6.18", "slabinfo"));
        Assert.Equal(real[0], r.OutLines[0]);
        Assert.Equal(real[1], r.OutLines[1]);
        Assert.Equal("kmem_cache            64     64    256   16    1 : tunables    0    0    0 : slabdata      4      4      0", r.OutLines[^1]);
    }

    [Fact]
    public void Slab_debug_before_boot_is_a_boot_parameter()
    {
        var r = CliRunner.RunScript("""
            slab_debug P,kmalloc-64
            boot --arch i386 --mem 64M
            slab kmalloc-64
            slab kmalloc-128
            """);
        Assert.Equal("", r.Err);
        Assert.Equal("slab_debug=P,kmalloc-64 (boot parameter)", r.OutLines[0]);
        Assert.Contains("/sys/kernel/slab/kmalloc-64/poison: 1", r.OutLines);
        Assert.Contains("/sys/kernel/slab/kmalloc-128/poison: 0", r.OutLines);
        var bad = CliRunner.RunScript("slab_debug FQ\n");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("slab_debug option 'Q' unknown", bad.Err);
    }

    [Fact]
    public void Kmem_needs_an_option_or_an_address()
    {
        var r = CliRunner.RunScript("kmem\n");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("kmem needs -s, -S or an address", r.Err);
        var r2 = CliRunner.RunScript("kmem -x\n");
        Assert.Contains("unknown option '-x'", r2.Err);
    }

    [Fact]
    public void Red_zone_study_script_is_deterministic_and_shows_the_catch()
    {
        string text = KmemNative.Cli.Commands.StudyScripts.Get("02-slab-redzone.kmem")!;
        var first = CliRunner.RunScript(text);
        var second = CliRunner.RunScript(text);
        Assert.Equal("", first.Err);
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(first.Out, second.Out);
        var o = first.OutLines;
        Assert.Contains("expected failure: " + new string('=', 77), o);
        Assert.Contains("BUG kmalloc-32 (Not tainted): kmalloc Redzone overwritten", o);
        Assert.Contains(o, l => Regex.IsMatch(l, @"^0x(ffff888[0-9a-f]{9})-0x\1 @offset=50\. First byte 0x12 instead of 0xcc$"));
        Assert.Contains(o, l => l.StartsWith("Allocated in kmalloc+0x0/0x40 age=", StringComparison.Ordinal));
        Assert.Contains(o, l => l.StartsWith("FIX kmalloc-32: Restoring kmalloc Redzone 0x", StringComparison.Ordinal));
        Assert.Contains(o, l => l.StartsWith("FIX kmalloc-32: Object at 0x", StringComparison.Ordinal) && l.EndsWith(" not freed", StringComparison.Ordinal));
        Assert.StartsWith("consistent", o[^1]);
    }
}
