using System.Globalization;
using KmemNative.PageAlloc;

namespace KmemNative.Reclaim;

/// <summary>
/// Who may sleep, and what an allocation may do, given the CPU's context: current_gfp_context()
/// (include/linux/sched/mm.h) and might_alloc() → __might_sleep() → __might_resched() (kernel/sched/core.c).
/// Called out of line by the page and slab allocators when <see cref="Cpu.AllocContext"/> is non-zero.
/// </summary>
internal static class AllocContext
{
    /// <summary>
    /// Where might_alloc() expands might_sleep_if() in 6.18: the file:line every blocking allocation in atomic context
    /// is reported at (the page allocator's prepare_alloc_pages() and the slab's slab_pre_alloc_hook() both inline it).
    /// </summary>
    public const string MightAllocSite = "include/linux/sched/mm.h:323";

    /// <summary>
    /// current_gfp_context(): inside memalloc_noio_save() the request loses __GFP_IO and __GFP_FS, inside
    /// memalloc_nofs_save() it loses __GFP_FS — so everything the scope calls obeys it, whatever flags it passes.
    /// </summary>
    public static Gfp CurrentGfpContext(Cpu cpu, Gfp gfp)
    {
        uint pf = cpu.TaskFlags;
        if ((pf & Cpu.PfMemallocNoio) != 0)
            gfp &= ~(Gfp.Io | Gfp.Fs);
        else if ((pf & Cpu.PfMemallocNofs) != 0)
            gfp &= ~Gfp.Fs;
        return gfp;
    }

    /// <summary>
    /// might_alloc(): a request that may block (__GFP_DIRECT_RECLAIM) made with preemption or interrupts disabled
    /// gets the kernel's "sleeping function called from invalid context" report (once per allocation: an
    /// allocation the slab allocator passes on to the page allocator is not reported twice). On a machine with
    /// <see cref="Machine.StrictMightSleep"/> the allocation is then refused with
    /// <see cref="SleepInAtomicException"/>; otherwise it proceeds, as the kernel's does.
    /// </summary>
    /// <exception cref="SleepInAtomicException">Strict machine, blocking request in atomic context.</exception>
    public static void MightAlloc(Cpu cpu, Gfp gfp, string function)
    {
        if ((gfp & Gfp.DirectReclaim) == 0 || cpu.MightSleepReporting != 0)
            return;
        if (cpu.PreemptCount == 0 && !cpu.IrqsDisabled)
            return;
        ReportMightSleep(cpu, MightAllocSite);
        if (cpu.Machine.StrictMightSleep)
            throw new SleepInAtomicException(string.Create(CultureInfo.InvariantCulture,
                $"{function}({GfpFlags.Format(gfp)}) may sleep but cpu{cpu.Id} is in atomic context (in_atomic(): {(cpu.InAtomic ? 1 : 0)}, irqs_disabled(): {(cpu.IrqsDisabled ? 1 : 0)})"));
    }

    /// <summary>
    /// __might_resched()'s report (CONFIG_DEBUG_ATOMIC_SLEEP, PREEMPT_RCU): the site, the context, preempt_count
    /// against the expected 0, the RCU nesting depth and (lockdep) the locks held; then add_taint(TAINT_WARN).
    /// No stack dump.
    /// </summary>
    public static void ReportMightSleep(Cpu cpu, string site)
    {
        var m = cpu.Machine;
        var log = m.Log;
        log.Err($"BUG: sleeping function called from invalid context at {site}");
        log.Err(string.Create(CultureInfo.InvariantCulture,
            $"in_atomic(): {(cpu.InAtomic ? 1 : 0)}, irqs_disabled(): {(cpu.IrqsDisabled ? 1 : 0)}, non_block: 0, pid: {cpu.Pid}, name: {cpu.Comm}"));
        log.Err(string.Create(CultureInfo.InvariantCulture, $"preempt_count: {cpu.PreemptCount:x}, expected: 0"));
        log.Err("RCU nest depth: 0, expected: 0");
        // debug_show_held_locks() (lockdep): the spinlocks this CPU's task holds, outermost first.
        var locks = cpu.HeldLocks;
        if (locks.Count > 0)
        {
            log.Err(string.Create(CultureInfo.InvariantCulture, $"{locks.Count} lock{(locks.Count == 1 ? "" : "s")} held by {cpu.Comm}/{cpu.Pid}:"));
            for (int i = 0; i < locks.Count; i++)
                log.Err(string.Create(CultureInfo.InvariantCulture, $" #{i}: ({locks[i]})"));
        }
        m.AddTaint(Machine.TaintWarn);
    }
}
