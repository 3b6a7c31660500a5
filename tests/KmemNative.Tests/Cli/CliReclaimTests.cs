using KmemNative.Cli.Commands;

namespace KmemNative.Tests.Cli;

/// <summary>The memory-pressure commands in scripts (issue #6): page cache, shrinkers, kswapd, swap, OOM, the CPU's context, dmesg -c/-C.</summary>
public sealed class CliReclaimTests
{
    private static string[] Failures(CliResult r) =>
        [.. r.OutLines.Where(l => l.StartsWith("expected failure: ", StringComparison.Ordinal)).Select(l => l["expected failure: ".Length..])];

    [Fact]
    public void The_memory_pressure_study_script_shows_each_flags_outcome()
    {
        string text = StudyScripts.Get("06-memory-pressure.kmem")!;
        var r = CliRunner.RunScript(text);
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines.ToList();
        int Find(string prefix, int from = 0) => lines.FindIndex(from, l => l.StartsWith(prefix, StringComparison.Ordinal));

        // GFP_NOWAIT fails silently (no report follows), GFP_ATOMIC gets a page, GFP_NOIO fails with the report.
        int nowait = Find("error: alloc_pages(GFP_NOWAIT, 0) failed");
        Assert.Equal("error: alloc_pages(GFP_NOWAIT, 0) failed", lines[nowait]);
        Assert.StartsWith("page ", lines[nowait + 1]);
        Assert.StartsWith("error: alloc_pages(GFP_NOIO, 0) failed: hog: page allocation failure: order:0, mode:0xc00(GFP_NOIO), nodemask=(null)", lines[nowait + 2]);
        Assert.Equal("Mem-Info:", lines[nowait + 3]);
        // GFP_NOFS got its page from the driver pool's shrinker, not from the file system's.
        int nofsShrinkers = Find("NAME ", nowait);
        Assert.Matches(@"^sb-ext4\s+yes\s+2\s+0\s", lines[nofsShrinkers + 1]);
        Assert.Matches(@"^driver-pool\s+no\s+2\s+[1-9]\d*\s", lines[nofsShrinkers + 2]);
        // GFP_KERNEL then shrank the dcache too.
        int kernelShrinkers = Find("NAME ", nofsShrinkers + 1);
        Assert.Matches(@"^sb-ext4\s+yes\s+2\s+[1-9]\d*\s", lines[kernelShrinkers + 1]);
        // In the interrupt handler only the GFP_KERNEL allocation is reported, once.
        Assert.Single(lines, l => l.StartsWith("BUG: sleeping function called from invalid context", StringComparison.Ordinal));
        Assert.Contains("in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: 1000, name: hog", lines);
        // kswapd leaves each zone above its high watermark.
        foreach (var zone in lines.Where(l => l.StartsWith("  DMA", StringComparison.Ordinal) && l.Contains(" free ", StringComparison.Ordinal)))
        {
            var f = zone.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(long.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture) > long.Parse(f[8], System.Globalization.CultureInfo.InvariantCulture), zone);
        }
        // The OOM killer takes the hog, never sshd (-1000), then finds nothing to kill.
        Assert.Single(lines, l => l.StartsWith("Out of memory: Killed process", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Out of memory: Killed process 1000 (hog) total-vm:", StringComparison.Ordinal));
        Assert.Contains("Out of memory and no killable processes...", lines);
        Assert.StartsWith("consistent", lines[^1]);
    }

    [Fact]
    public void Page_cache_commands_read_write_and_sync()
    {
        var r = CliRunner.RunScript("""
            $fd = file_create /data/f 64K
            file_read /data/f 0 16K
            file_read $fd 8K 16K
            file_write /data/f 0 8K
            sync
            expect-fail file_read /nope 0 1
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("file_read /data/f 0+16384: 16384 bytes; page cache 4 pages (4 read in)", r.OutLines);
        Assert.Contains("file_read /data/f 8192+16384: 16384 bytes; page cache 6 pages (2 read in)", r.OutLines);
        Assert.Contains("file_write /data/f 0+8192: 8192 bytes; page cache 6 pages, nr_dirty 2", r.OutLines);
        Assert.Contains("sync: 2 pages written back", r.OutLines);
        Assert.Equal(["/nope: no such open file (-EBADF); create it with file_create"], Failures(r));
    }

    [Fact]
    public void Context_commands_track_preempt_count_and_refuse_unbalanced_switches()
    {
        var r = CliRunner.RunScript("""
            spin_lock zone->lock
            local_irq_disable
            expect-fail spin_lock zone->lock
            spin_unlock zone->lock
            local_irq_enable
            expect-fail irq_exit
            expect-fail spin_unlock other
            $f = memalloc_noio_save
            memalloc_noio_restore $f
            $g = memalloc_nofs_save
            context
            memalloc_nofs_restore $g
            """, "--arch", "i386", "--mem", "32M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var l = r.OutLines;
        Assert.Contains("cpu0: preempt_count 0x1, in_atomic() 1, in_interrupt() 0, irqs_disabled() 0, memalloc scope none, holding zone->lock", l);
        Assert.Contains("cpu0: preempt_count 0x1, in_atomic() 1, in_interrupt() 0, irqs_disabled() 1, memalloc scope none, holding zone->lock", l);
        Assert.Contains("memalloc_noio_save() = 0x0; cpu0: preempt_count 0x0, in_atomic() 0, in_interrupt() 0, irqs_disabled() 0, memalloc scope NOIO", l);
        Assert.Contains("cpu0: preempt_count 0x0, in_atomic() 0, in_interrupt() 0, irqs_disabled() 0, memalloc scope NOFS", l);
        Assert.Equal("cpu0: preempt_count 0x0, in_atomic() 0, in_interrupt() 0, irqs_disabled() 0, memalloc scope none", l[^1]);
        var failures = Failures(r);
        Assert.Equal(3, failures.Length);
        Assert.Contains("recursive locking", failures[0]);
        Assert.Contains("irq_exit() outside an interrupt handler", failures[1]);
        Assert.Contains("spin_unlock(other): the lock is not held", failures[2]);
    }

    [Fact]
    public void Dmesg_c_prints_then_clears_and_capital_c_only_clears()
    {
        var r = CliRunner.RunScript("""
            dmesg -C
            swapon 1M
            dmesg -c
            dmesg
            swapon 2M
            """, "--arch", "x86_64", "--mem", "64M");
        // The second swapon fails (one device): the script stops there with exit 1.
        Assert.Equal(1, r.ExitCode);
        var l = r.OutLines.ToList();
        int adding = l.FindIndex(x => x.StartsWith("Adding 1020k swap on /dev/sda2.", StringComparison.Ordinal));
        Assert.True(adding > 0);
        // Nothing from the boot log after dmesg -C, and the plain dmesg after -c prints nothing at all.
        Assert.DoesNotContain(l.Skip(adding), x => x.StartsWith("Linux version", StringComparison.Ordinal));
        Assert.Single(l, x => x.StartsWith("Adding 1020k swap", StringComparison.Ordinal));
        Assert.Contains("swapon(2097152) = -EBUSY (Device or resource busy)", r.Err);
    }

    [Fact]
    public void Bad_arguments_stop_the_script_with_a_clear_message()
    {
        (string Line, string Message)[] cases =
        [
            ("drop_caches 5", "'5': drop_caches takes 1 (page cache), 2 (slab), 3 (both) or 4 (quiet)"),
            ("kswapd maybe", "'maybe' is not on or off"),
            ("dcache_fill -3", "'-3' is not a valid number"),
            ("alloc_pages_bulk GFP_KERNEL -1", "'-1' is not a valid number"),
            ("oom_score_adj 4242", "no process 4242 (-ESRCH)"),
        ];
        foreach (var (line, message) in cases)
        {
            var r = CliRunner.RunScript(line, "--arch", "x86_64", "--mem", "64M");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Err);
        }
        var adj = CliRunner.RunScript("""
            $p = spawn a
            oom_score_adj $p 1001
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(1, adj.ExitCode);
        Assert.Contains("oom_score_adj 1001: must be -1000..1000", adj.Err);
    }

    [Fact]
    public void Oom_score_adj_reads_and_sets_and_drop_caches_frees_the_clean_page_cache()
    {
        var r = CliRunner.RunScript("""
            $p = spawn a
            oom_score_adj $p -1000
            oom_score_adj $p
            $fd = file_create /data/f 1M
            file_read /data/f 0 1M
            $n = drop_caches 1
            lru
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(2, r.OutLines.Count(l => l == "pid 1000 (a): oom_score_adj -1000, oom_score 0"));
        // The 256 clean page-cache pages go (and the page cache index kmalloc()ed for them, once the inode is evicted).
        int freed = int.Parse(r.OutLines.Single(l => l.StartsWith("drop_caches 1: ", StringComparison.Ordinal)).Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(freed, 256, 320);
        Assert.Contains(r.OutLines, l => l.StartsWith("nr_inactive_file", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal));
    }
}
