using System.Globalization;
using System.Text;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// The OOM killer (mm/oom_kill.c): out_of_memory() → select_bad_process() over every process with an mm, scored by
// oom_badness(); dump_header() with show_mem() and dump_tasks(); oom_kill_process() → __oom_kill_process(): the
// victim is marked (mark_oom_victim), its "Killed process" line printed, oom_kill counted, and its address space
// torn down at once (the oom_reaper's work; the emulator has no separate reaper thread). A victim whose mm is busy
// (it is the faulting task itself, or another thread holds its mmap_lock) dies when its current operation returns.
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>OOM_SCORE_ADJ_MIN: never chosen.</summary>
    internal const int OomScoreAdjMin = -1000;

    /// <summary>OOM_SCORE_ADJ_MAX.</summary>
    internal const int OomScoreAdjMax = 1000;

    /// <summary>The text of the last OOM kill report (dump_header to the reaper line), or null.</summary>
    internal string? LastOomReport { get; private set; }

    private TaskImpl<TArch>? CurrentTask(Cpu cpu) => cpu.Pid > 0 ? _mmSub?.FindTask(cpu.Pid) : null;

    /// <summary>tsk_is_oom_victim(current): the task running on the CPU was chosen by the OOM killer.</summary>
    public bool IsOomVictim(Cpu cpu) => CurrentTask(cpu)?.MmState is { OomVictim: true };

    /// <summary>
    /// oom_badness(): null when the task may not be chosen (OOM_SCORE_ADJ_MIN, no mm, already exiting, the init
    /// task); else rss + swap entries + page-table pages, plus oom_score_adj thousandths of
    /// <paramref name="totalpages"/>.
    /// </summary>
    internal static long? OomBadness(TaskImpl<TArch> task, long totalpages)
    {
        if (task.MmState is not { Dead: false } || task.Pid == 1)
            return null;
        long adj = task.OomScoreAdj;
        if (adj == OomScoreAdjMin)
            return null;
        var mm = task.Mm;
        long points = mm.Rss + mm.SwapEnts + (long)(mm.PgtablesBytes >> PageSize.Shift);
        adj *= totalpages / 1000;
        return points + adj;
    }

    /// <summary>totalpages of a CONSTRAINT_NONE OOM: all RAM plus all swap.</summary>
    internal long OomTotalPages => (long)_m.TotalRamPages + TotalSwapPages;

    /// <summary>
    /// out_of_memory(): current dying already → progress; a request without __GFP_FS → progress without a kill
    /// ("the OOM killer does not compensate for IO-less reclaim"); a victim still dying → wait for it; else the
    /// worst task is killed. With nothing to kill the report ends "Out of memory and no killable processes..." and
    /// false is returned (the kernel would panic: "System is deadlocked on memory").
    /// </summary>
    public bool OutOfMemory(Cpu cpu, Gfp gfp, int order, int highestZoneIdx, out bool killed)
    {
        killed = false;
        if (IsOomVictim(cpu))
            return true;
        if ((gfp & Gfp.Fs) == 0)
            return true;
        var mm = _mmSub;
        long totalpages = OomTotalPages;
        TaskImpl<TArch>? chosen = null;
        long chosenPoints = long.MinValue;
        if (mm is not null)
        {
            foreach (var t in mm.Tasks)
            {
                if (t.MmState is { OomVictim: true, Dead: false })
                    return true;    // select_bad_process() aborts: a victim is on its way out
                if (OomBadness(t, totalpages) is not { } points || points < chosenPoints)
                    continue;
                chosen = t;
                chosenPoints = points;
            }
        }
        var report = new List<string>();
        DumpHeader(cpu, gfp, order, chosen, report);
        if (chosen is null)
        {
            report.Add("Out of memory and no killable processes...");
            Emit(report, warn: true);
            LastOomReport = string.Join('\n', report);
            return false;
        }
        OomKillProcess(cpu, chosen, report);
        LastOomReport = string.Join('\n', report);
        killed = true;
        return true;
    }

    /// <summary>
    /// dump_header(): "&lt;comm&gt; invoked oom-killer" with the request, "COMPACTION is disabled!!!" for order &gt; 0,
    /// show_mem() for the request's zones, the task list (vm.oom_dump_tasks) and the victim summary.
    /// </summary>
    private void DumpHeader(Cpu cpu, Gfp gfp, int order, TaskImpl<TArch>? victim, List<string> lines)
    {
        int adj = CurrentTask(cpu)?.OomScoreAdj ?? 0;
        lines.Add(Inv($"{cpu.Comm} invoked oom-killer: gfp_mask=0x{(uint)gfp:x}({GfpFlags.Format(gfp)}), order={order}, oom_score_adj={adj}"));
        if (order != 0)
            lines.Add("COMPACTION is disabled!!!");
        ShowMem(cpu, GfpFlags.Zone<TArch>(gfp), lines);
        DumpTasks(lines);
        if (victim is not null)
            lines.Add(Inv($"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task={victim.Comm},pid={victim.Pid},uid=0"));
    }

    /// <summary>dump_tasks(): one line per process with an mm, in pages.</summary>
    private void DumpTasks(List<string> lines)
    {
        lines.Add("Tasks state (memory values in pages):");
        lines.Add("[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name");
        if (_mmSub is not { } sub)
            return;
        foreach (var t in sub.Tasks)
        {
            if (t.MmState is not { Dead: false })
                continue;
            var mm = t.Mm;
            lines.Add(Inv($"[{t.Pid,7}] {0,5} {t.Pid,5} {mm.TotalVm,8} {mm.Rss,8} {mm.AnonPages,8} {mm.FilePages,8} {mm.ShmemPages,9} {mm.PgtablesBytes,8} {mm.SwapEnts,8}         {t.OomScoreAdj,5} {t.Comm}"));
        }
    }

    /// <summary>
    /// __oom_kill_process(): mark the victim, count oom_kill, print "Out of memory: Killed process ...", then reap:
    /// its address space is torn down now (exit_mmap) when its mm can be taken, with the oom_reaper's line.
    /// </summary>
    private void OomKillProcess(Cpu cpu, TaskImpl<TArch> victim, List<string> lines)
    {
        var state = victim.MmState!;
        state.OomVictim = true;     // mark_oom_victim()
        cpu.Events[(int)VmEvent.OomKill]++;
        var mm = victim.Mm;
        lines.Add(Inv($"Out of memory: Killed process {victim.Pid} ({victim.Comm}) total-vm:{mm.TotalVm << 2}kB, anon-rss:{mm.AnonPages << 2}kB, file-rss:{mm.FilePages << 2}kB, shmem-rss:{mm.ShmemPages << 2}kB, UID:0 pgtables:{mm.PgtablesBytes >> 10}kB oom_score_adj:{victim.OomScoreAdj}"));
        Emit(lines, warn: false);
        int pid = victim.Pid;
        string comm = victim.Comm;
        if (_mmSub!.TryExitForOom(cpu, victim))
        {
            string reaped = Inv($"oom_reaper: reaped process {pid} ({comm}), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB");
            lines.Add(reaped);
            _m.Log.Info(reaped);
        }
    }

    /// <summary>The report goes to the kernel log: the header lines as warnings, the kill line as an error.</summary>
    private void Emit(List<string> lines, bool warn)
    {
        for (int i = 0; i < lines.Count; i++)
        {
            bool killLine = !warn && i == lines.Count - 1;
            if (killLine)
                _m.Log.Err(lines[i]);
            else if (i == 0 || lines[i].StartsWith("Out of memory and", StringComparison.Ordinal))
                _m.Log.Warn(lines[i]);
            else
                _m.Log.Info(lines[i]);
        }
    }

    /// <summary>echo N &gt; /proc/PID/oom_score_adj.</summary>
    internal void SetOomScoreAdj(int pid, int adj)
    {
        if (adj is < OomScoreAdjMin or > OomScoreAdjMax)
            throw new ArgumentOutOfRangeException(nameof(adj), adj, "oom_score_adj must be between -1000 and 1000");
        if (_mmSub?.FindTask(pid) is not { } t)
            throw new KmemException($"no process {pid}");
        t.OomScoreAdj = (short)adj;
    }

    /// <summary>/proc/PID/oom_score: 1000 + badness * 1000 / totalpages (0 for a task that may not be chosen).</summary>
    internal long OomScore(int pid)
    {
        if (_mmSub?.FindTask(pid) is not { } t)
            throw new KmemException($"no process {pid}");
        long total = OomTotalPages;
        if (OomBadness(t, total) is not { } points)
            return 0;
        return Math.Max(0, 1000 + points * 1000 / total);
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
