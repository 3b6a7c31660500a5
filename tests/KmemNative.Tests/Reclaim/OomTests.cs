using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.Mm;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>The OOM killer: victim selection by oom_badness() and oom_score_adj, the report, the retry (issue #6 §3).</summary>
public class OomTests
{
    private sealed class OomState : IDisposable
    {
        public required Machine M;
        public required Cpu Cpu;
        public required Process Small, Big, Mid;
        public void Dispose() => M.Dispose();
    }

    /// <summary>Three processes with 1, 8 and 4 MiB of anonymous memory, no swap, the rest of memory pinned.</summary>
    private static OomState Build(ArchKind arch, Action<Machine, Process, Process, Process>? adjust = null)
    {
        var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        Process Make(string comm, ulong bytes)
        {
            var p = m.Spawn(cpu, comm);
            ulong a = p.MapAnon(cpu, bytes);
            Assert.True(p.Touch(cpu, a, bytes, MemoryAccess.Write).IsOk);
            return p;
        }
        var small = Make("small", 1 << 20);
        var big = Make("big", 8 << 20);
        var mid = Make("mid", 4 << 20);
        adjust?.Invoke(m, small, big, mid);
        while (m.AllocPages(cpu, Gfp.NoWait, 0) is not null)
        {
        }
        cpu.Comm = "allocator";
        cpu.Pid = 0;
        return new OomState { M = m, Cpu = cpu, Small = small, Big = big, Mid = mid };
    }

    private static long Events(Machine m, VmEvent e) => m.Cpus.Sum(c => c.Event(e));

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void The_largest_process_is_killed_and_the_allocation_succeeds(ArchKind arch)
    {
        using var s = Build(arch);
        var m = s.M;
        var info = s.Big.Mm;
        int pid = s.Big.Pid;
        var page = m.AllocPages(s.Cpu, Gfp.Kernel, 0);
        Assert.NotNull(page);
        Assert.Equal(1, Events(m, VmEvent.OomKill));
        Assert.False(s.Big.IsAlive);
        Assert.True(s.Small.IsAlive && s.Mid.IsAlive);
        var report = m.LastOomReport!.Split('\n');
        Assert.Equal("allocator invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", report[0]);
        Assert.Equal("Mem-Info:", report[1]);
        Assert.Contains("Tasks state (memory values in pages):", report);
        Assert.Contains($"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=big,pid={pid},uid=0", report);
        string kill = report.Single(l => l.StartsWith("Out of memory: Killed process", StringComparison.Ordinal));
        Assert.StartsWith($"Out of memory: Killed process {pid} (big) total-vm:{info.TotalVm * 4}kB, anon-rss:{info.AnonPages * 4}kB, file-rss:", kill);
        Assert.EndsWith($"shmem-rss:0kB, UID:0 pgtables:{info.PgtablesBytes / 1024}kB oom_score_adj:0", kill);
        Assert.Equal($"oom_reaper: reaped process {pid} (big), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", report[^1]);
        Assert.Contains(kill, m.Log.Lines);
        // The dump lists every process with its rss (pages) and oom_score_adj.
        Assert.Contains(report, l => l.StartsWith($"[{pid,7}]     0 {pid,5} ", StringComparison.Ordinal) && l.EndsWith("0 big", StringComparison.Ordinal));
        Assert.Contains("oom_kill 1", m.Proc.Read("vmstat"));
        m.FreePages(s.Cpu, page!.Value, 0);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Oom_score_adj_minus_1000_is_never_chosen(ArchKind arch)
    {
        using var s = Build(arch, (m, small, big, mid) => m.SetOomScoreAdj(big.Pid, -1000));
        Assert.Equal(-1000, s.M.GetOomScoreAdj(s.Big.Pid));
        Assert.Equal(0, s.M.OomScore(s.Big.Pid));
        Assert.NotNull(s.M.AllocPages(s.Cpu, Gfp.Kernel, 0));
        Assert.True(s.Big.IsAlive);
        Assert.False(s.Mid.IsAlive);
        Assert.True(s.Small.IsAlive);
        s.M.CheckConsistency();
    }

    [Fact]
    public void A_positive_oom_score_adj_makes_a_small_process_the_victim()
    {
        using var s = Build(ArchKind.X86_64, (m, small, big, mid) => m.SetOomScoreAdj(small.Pid, 500));
        // oom_score: 1000 + badness * 1000 / totalpages; +500 adds half of all RAM + swap to small's badness.
        Assert.True(s.M.OomScore(s.Small.Pid) > s.M.OomScore(s.Big.Pid));
        Assert.True(s.M.OomScore(s.Big.Pid) > s.M.OomScore(s.Mid.Pid));
        Assert.NotNull(s.M.AllocPages(s.Cpu, Gfp.Kernel, 0));
        Assert.False(s.Small.IsAlive);
        Assert.True(s.Big.IsAlive && s.Mid.IsAlive);
        Assert.EndsWith("oom_score_adj:500", s.M.Log.Lines.Single(l => l.StartsWith("Out of memory: Killed", StringComparison.Ordinal)));
    }

    [Fact]
    public void Oom_score_adj_is_range_checked_and_inherited_by_fork()
    {
        using var s = Build(ArchKind.X86_64);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.M.SetOomScoreAdj(s.Big.Pid, 1001));
        Assert.Throws<KmemException>(() => s.M.SetOomScoreAdj(9999, 0));
        s.M.SetOomScoreAdj(s.Small.Pid, -300);
        var child = s.M.FindProcess((int)s.Small.Fork(s.Cpu).Unwrap())!;
        Assert.Equal(-300, s.M.GetOomScoreAdj(child.Pid));
    }

    [Fact]
    public void With_every_process_protected_there_is_no_victim_and_the_allocation_fails()
    {
        using var s = Build(ArchKind.X86_64, (m, small, big, mid) =>
        {
            foreach (var p in new[] { small, big, mid })
                m.SetOomScoreAdj(p.Pid, -1000);
        });
        var m = s.M;
        Assert.Null(m.AllocPages(s.Cpu, Gfp.Kernel, 0));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        Assert.Equal(3, m.Processes.Count);
        Assert.EndsWith("Out of memory and no killable processes...", m.LastOomReport);
        Assert.StartsWith("allocator: page allocation failure: order:0, mode:0xcc0(GFP_KERNEL), nodemask=(null)", m.LastAllocFailureReport);
        m.CheckConsistency();
    }

    [Theory]
    [InlineData(Gfp.Kernel | Gfp.NoRetry, 0)]
    [InlineData(Gfp.Kernel | Gfp.RetryMayFail, 0)]
    [InlineData(Gfp.Kernel, 4)]
    public void Noretry_retry_mayfail_and_costly_orders_fail_without_oom(Gfp gfp, int order)
    {
        using var s = Build(ArchKind.X86_64);
        var m = s.M;
        Assert.Null(m.AllocPages(s.Cpu, gfp, order));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        Assert.Equal(3, m.Processes.Count);
        Assert.Contains($"page allocation failure: order:{order}, mode:0x{(uint)gfp:x}({GfpFlags.Format(gfp)})", m.LastAllocFailureReport);
        m.CheckConsistency();
    }

    [Fact]
    public void A_failing_kmalloc_prints_the_page_allocation_failure_of_its_slab()
    {
        using var s = Build(ArchKind.X86_64);
        var m = s.M;
        long before = m.AllocFailureReportCount;
        Assert.Equal(0UL, m.Kmalloc(s.Cpu, 8192, Gfp.Kernel | Gfp.NoRetry));
        Assert.Equal(before + 1, m.AllocFailureReportCount);
        // The slab's fallback attempt at its minimum order carries the caller's flags (the first, at the preferred
        // order, was __GFP_NOWARN).
        Assert.Matches(@"^allocator: page allocation failure: order:\d, mode:0x[0-9a-f]+\(GFP_KERNEL\|__GFP_NORETRY[^)]*\), nodemask=\(null\)\nMem-Info:", m.LastAllocFailureReport);
        Assert.Equal(0, Events(m, VmEvent.OomKill));
    }

    [Fact]
    public void Nowarn_silences_the_failure_report()
    {
        using var s = Build(ArchKind.X86_64);
        int mark = s.M.Log.Lines.Count;
        Assert.Null(s.M.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoRetry | Gfp.NoWarn, 0));
        Assert.Null(s.M.LastAllocFailureReport);
        Assert.DoesNotContain(s.M.Log.Since(mark), l => l.Contains("page allocation failure", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Nofail_with_nothing_reclaimable_succeeds_after_an_oom_kill(ArchKind arch)
    {
        using var s = Build(arch);
        var m = s.M;
        var page = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 0);
        Assert.NotNull(page);
        Assert.Equal(1, Events(m, VmEvent.OomKill));
        Assert.False(s.Big.IsAlive);
        m.CheckConsistency();
    }

    [Fact]
    public void Nofail_above_order_1_warns_once_in_the_slow_path()
    {
        using var s = Build(ArchKind.X86_64);
        var m = s.M;
        // With plenty of memory the fast path serves it without a word (the check is in the slow path since 6.12).
        // Under pressure: the WARN_ON_ONCE, then reclaim and the OOM killer until it succeeds.
        var p = m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 2);
        Assert.NotNull(p);
        var warnings = m.Log.Lines.Where(l => l.StartsWith("WARNING: CPU: 0 PID: 0 at ", StringComparison.Ordinal)).ToList();
        Assert.Single(warnings);
        Assert.Contains("__GFP_NOFAIL order > 1", warnings[0]);
        Assert.Contains('W', m.TaintText);
        m.FreePages(s.Cpu, p!.Value, 2);
        while (m.AllocPages(s.Cpu, Gfp.NoWait, 0) is not null)
        {
        }
        Assert.NotNull(m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 2));
        Assert.Single(m.Log.Lines, l => l.StartsWith("WARNING:", StringComparison.Ordinal));
    }

    [Fact]
    public void Nofail_without_direct_reclaim_warns_and_fails()
    {
        using var s = Build(ArchKind.X86_64);
        var m = s.M;
        // "All existing users of the __GFP_NOFAIL are blockable": a non-blocking one cannot loop, so it fails.
        Assert.Null(m.AllocPages(s.Cpu, Gfp.NoWait | Gfp.NoFail, 0));
        Assert.Contains(m.Log.Lines, l => l.StartsWith("WARNING: CPU: 0 PID: 0 at ", StringComparison.Ordinal) &&
                                          l.Contains("__GFP_NOFAIL without __GFP_DIRECT_RECLAIM", StringComparison.Ordinal));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        Assert.Equal(0, Events(m, VmEvent.PgscanDirect));
    }

    [Fact]
    public void Nofail_with_no_victim_dips_into_the_reserves_and_finally_reports_the_deadlock()
    {
        using var s = Build(ArchKind.X86_64, (m, small, big, mid) =>
        {
            foreach (var p in new[] { small, big, mid })
                m.SetOomScoreAdj(p.Pid, -1000);
        });
        var m = s.M;
        long reports = m.AllocFailureReportCount;
        // No victim: __alloc_pages_may_oom() warns once and lets __GFP_NOFAIL ignore the watermarks.
        Assert.NotNull(m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 0));
        Assert.Contains(m.Log.Lines, l => l.StartsWith("WARNING:", StringComparison.Ordinal) && l.Contains("without an OOM kill", StringComparison.Ordinal));
        Assert.Equal(0, Events(m, VmEvent.OomKill));
        // When even the reserves are gone the kernel would loop forever; the emulator says so.
        var e = Assert.Throws<AllocationDeadlockException>(() =>
        {
            for (int i = 0; i < 100_000; i++)
                m.AllocPages(s.Cpu, Gfp.Kernel | Gfp.NoFail, 0);
        });
        Assert.Contains("__GFP_NOFAIL", e.Message);
        Assert.Equal(3, m.Processes.Count);
        Assert.Equal(reports, m.AllocFailureReportCount);   // NOFAIL never reports a failure: it does not fail
        m.CheckConsistency();
    }

    [Fact]
    public void A_victim_killed_in_its_own_fault_dies_when_the_access_returns()
    {
        using var m = Machines.X64(64, cpus: 1);
        var cpu = m.GetCpu(0);
        var other = m.Spawn(cpu, "other");
        ulong o = other.MapAnon(cpu, 2 << 20);
        Assert.True(other.Touch(cpu, o, 2 << 20, MemoryAccess.Write).IsOk);
        var hog = m.Spawn(cpu, "hog");
        // The hog faults memory in until the OOM killer picks it: its own mm is busy (the fault holds mmap_lock),
        // so it is marked and dies as the access returns, with SIGKILL.
        var r = PressureHelpers.TouchTwoMappingsOf40M(hog, cpu);
        Assert.Equal(Signal.SIGKILL, r.Signal?.Signal);
        Assert.False(hog.IsAlive);
        Assert.True(other.IsAlive);
        Assert.True(Events(m, VmEvent.OomKill) >= 1);
        Assert.Contains(m.Log.Lines, l => l.StartsWith($"Out of memory: Killed process {hog.Pid} (hog)", StringComparison.Ordinal));
        m.CheckConsistency();
    }
}
