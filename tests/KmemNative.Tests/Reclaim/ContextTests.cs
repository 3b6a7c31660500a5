using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>Who may sleep: the CPU context switches and might_alloc()'s report (issue #6 §4).</summary>
public class ContextTests
{
    private const string BugLine = "BUG: sleeping function called from invalid context at include/linux/sched/mm.h:323";

    private static int Bugs(Machine m) => m.Log.Lines.Count(l => l.StartsWith("BUG: sleeping function", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_kernel_in_an_interrupt_handler_is_reported_and_proceeds(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var cpu = m.GetCpu(0);
        int mark = m.Log.Lines.Count;
        cpu.IrqEnter();
        Assert.True(cpu.InInterrupt);
        Assert.True(cpu.InAtomic);
        Assert.True(cpu.IrqsDisabled);
        Assert.Equal(0x10000, cpu.PreemptCount);
        var page = m.AllocPages(cpu, Gfp.Kernel, 0);
        cpu.IrqExit();
        Assert.NotNull(page);   // the kernel goes on after the report
        var log = m.Log.Since(mark);
        int i = log.ToList().IndexOf(BugLine);
        Assert.True(i >= 0, string.Join("\n", log));
        Assert.Equal($"in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: {cpu.Pid}, name: {cpu.Comm}", log[i + 1]);
        Assert.Equal("preempt_count: 10000, expected: 0", log[i + 2]);
        Assert.Contains('W', m.TaintText);
        Assert.False(cpu.InInterrupt);
        Assert.False(cpu.IrqsDisabled);
        Assert.Equal(0, cpu.PreemptCount);
        m.FreePages(cpu, page!.Value, 0);
        m.CheckConsistency();
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Gfp_atomic_and_nowait_are_silent_in_an_interrupt_handler(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var cpu = m.GetCpu(0);
        cpu.IrqEnter();
        var a = m.AllocPages(cpu, Gfp.Atomic, 0);
        var b = m.AllocPages(cpu, Gfp.NoWait, 0);
        ulong k = m.Kmalloc(cpu, 64, Gfp.Atomic);
        cpu.IrqExit();
        Assert.NotNull(a);
        Assert.NotNull(b);
        Assert.NotEqual(0UL, k);
        Assert.Equal(0, Bugs(m));
        Assert.Equal("Not tainted", m.TaintText);
        m.Kfree(cpu, k);
        m.FreePages(cpu, a!.Value, 0);
        m.FreePages(cpu, b!.Value, 0);
    }

    [Fact]
    public void Spinlock_and_irq_disabled_sections_report_their_own_state()
    {
        using var m = Machines.X64(32);
        var cpu = m.GetCpu(0);
        cpu.SpinLock("zone->lock");
        Assert.True(cpu.InAtomic);
        Assert.False(cpu.InInterrupt);
        Assert.Equal(["zone->lock"], cpu.HeldLocks);
        ulong obj = m.Kmalloc(cpu, 128, Gfp.Kernel);
        cpu.SpinUnlock("zone->lock");
        cpu.LocalIrqDisable();
        var page = m.AllocPages(cpu, Gfp.Kernel, 0);
        cpu.LocalIrqEnable();
        var lines = m.Log.Lines.Where(l => l.StartsWith("in_atomic()", StringComparison.Ordinal)).ToList();
        // kmalloc() reports once (not again for the slab page it may allocate underneath).
        Assert.Equal(2, Bugs(m));
        Assert.StartsWith("in_atomic(): 1, irqs_disabled(): 0,", lines[0]);
        int held = m.Log.Lines.ToList().IndexOf($"1 lock held by {cpu.Comm}/{cpu.Pid}:");
        Assert.True(held > 0);
        Assert.Equal(" #0: (zone->lock)", m.Log.Lines[held + 1]);
        Assert.StartsWith("in_atomic(): 0, irqs_disabled(): 1,", lines[1]);
        Assert.Empty(cpu.HeldLocks);
        m.Kfree(cpu, obj);
        m.FreePages(cpu, page!.Value, 0);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Strict_machine_refuses_the_blocking_allocation_and_changes_nothing(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        m.StrictMightSleep = true;
        var cpu = m.GetCpu(0);
        var before = Machines.FreeAreas(m);
        long allocated = m.CheckConsistency().Total.Allocated;
        cpu.SpinLock("lock");
        var e = Assert.Throws<SleepInAtomicException>(() => m.AllocPages(cpu, Gfp.Kernel, 0));
        Assert.Contains("atomic context", e.Message);
        Assert.Throws<SleepInAtomicException>(() => m.Kmalloc(cpu, 32, Gfp.KernelAccount));
        // A non-blocking request is fine even on a strict machine.
        var ok = m.AllocPages(cpu, Gfp.Atomic, 0);
        cpu.SpinUnlock("lock");
        Assert.NotNull(ok);
        m.FreePages(cpu, ok!.Value, 0);
        m.DrainAllPages();
        Assert.Equal(before, Machines.FreeAreas(m));
        Assert.Equal(allocated, m.CheckConsistency().Total.Allocated);
        Assert.Equal(2, Bugs(m));
    }

    [Fact]
    public void Unbalanced_context_switches_are_refused()
    {
        using var m = Machines.X64(32);
        var cpu = m.GetCpu(0);
        Assert.Throws<ContextException>(cpu.IrqExit);
        Assert.Throws<ContextException>(cpu.PreemptEnable);
        Assert.Throws<ContextException>(() => cpu.SpinUnlock("never"));
        cpu.SpinLock("a");
        Assert.Throws<ContextException>(() => cpu.SpinLock("a"));
        cpu.IrqEnter();
        Assert.Throws<ContextException>(cpu.LocalIrqEnable);
        cpu.IrqExit();
        cpu.SpinUnlock("a");
        Assert.Equal(0, cpu.PreemptCount);
        Assert.False(cpu.IrqsDisabled);
    }

    [Fact]
    public void Irq_exit_restores_the_interrupted_irq_state()
    {
        using var m = Machines.X64(32);
        var cpu = m.GetCpu(0);
        cpu.LocalIrqDisable();
        cpu.IrqEnter();
        cpu.IrqEnter();     // a nested interrupt
        Assert.Equal(0x20000, cpu.PreemptCount);
        cpu.IrqExit();
        cpu.IrqExit();
        Assert.True(cpu.IrqsDisabled);      // as before the interrupt
        cpu.LocalIrqEnable();
        Assert.False(cpu.IrqsDisabled);
    }

    [Fact]
    public void Memalloc_scopes_strip_io_and_fs_and_nest()
    {
        using var m = Machines.X64(32);
        var cpu = m.GetCpu(0);
        uint nofs = cpu.MemallocNofsSave();
        Assert.Equal(Gfp.NoFs, cpu.CurrentGfpContext(Gfp.Kernel));
        uint noio = cpu.MemallocNoioSave();
        Assert.Equal(Gfp.NoIo, cpu.CurrentGfpContext(Gfp.Kernel));
        Assert.Equal(Gfp.Atomic, cpu.CurrentGfpContext(Gfp.Atomic));
        uint inner = cpu.MemallocNoioSave();    // nested: restoring the inner scope keeps the outer one
        cpu.MemallocNoioRestore(inner);
        Assert.Equal(Gfp.NoIo, cpu.CurrentGfpContext(Gfp.Kernel));
        cpu.MemallocNoioRestore(noio);
        Assert.Equal(Gfp.NoFs, cpu.CurrentGfpContext(Gfp.Kernel));
        cpu.MemallocNofsRestore(nofs);
        Assert.Equal(Gfp.Kernel, cpu.CurrentGfpContext(Gfp.Kernel));
        // A scope is not atomic context: no report.
        cpu.MemallocNoioSave();
        var p = m.AllocPages(cpu, Gfp.Kernel, 0);
        Assert.NotNull(p);
        Assert.Equal(0, Bugs(m));
        m.FreePages(cpu, p!.Value, 0);
    }
}
