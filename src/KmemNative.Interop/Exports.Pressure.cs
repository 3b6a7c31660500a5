using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Mm;
using KmemNative.PageAlloc;

namespace KmemNative.Interop;

// Memory pressure: kmem.h's MEMORY PRESSURE section on the reclaim API (issue #6): files and their page cache,
// sync, swapon, kswapd in step mode, direct reclaim, drop_caches, the reclaimable slab fillers, the OOM score, the
// CPU context switches (irq_enter/exit, local_irq_disable/enable, memalloc_noio/nofs scopes) and the last
// allocation-failure report. System-call style results (file calls, swapon) come back as the kernel's -errno with the
// call in the message; an unbalanced context switch (irq_exit outside a handler) is -EINVAL, never an abort.
internal static unsafe partial class Exports
{
    // ---- files and the page cache --------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_file_create")]
    public static int FileCreate(CpuHandle cpu, byte* path, ulong size, int* fd)
    {
        try
        {
            if (fd == null)
                return LastError.Set(Errno.EINVAL, "kmem_file_create: out is NULL");
            *fd = -1;
            if (RunOn(cpu, "kmem_file_create") is not { } c)
                return LastError.Code;
            if (Utf8(path) is not { Length: > 0 } p)
                return LastError.Set(Errno.EINVAL, "kmem_file_create: path is NULL or empty");
            var r = c.M.Machine.FileCreate(c.Cpu, p, size);
            if (!r.IsOk)
                return SyscallFailure("kmem_file_create", $"open(\"{p}\", O_CREAT) of {size} bytes", r);
            *fd = (int)r.Value;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_file_create");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_file_close")]
    public static int FileClose(CpuHandle cpu, int fd)
    {
        try
        {
            if (RunOn(cpu, "kmem_file_close") is not { } c)
                return LastError.Code;
            var r = c.M.Machine.FileClose(c.Cpu, fd);
            return r.IsOk ? 0 : SyscallFailure("kmem_file_close", $"close({fd})", r);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_file_close");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_file_read")]
    public static long FileRead(CpuHandle cpu, int fd, ulong offset, void* buf, ulong len)
    {
        try
        {
            if (RunOn(cpu, "kmem_file_read") is not { } c)
                return LastError.Code;
            if (BadBuffer("kmem_file_read", buf, len) is int rc)
                return rc;
            var r = c.M.Machine.FileRead(c.Cpu, fd, offset, new Span<byte>(buf, (int)len));
            return r.IsOk ? (long)r.Value : SyscallFailure("kmem_file_read", $"pread({fd}, buf, {len}, {offset})", r);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_file_read");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_file_write")]
    public static long FileWrite(CpuHandle cpu, int fd, ulong offset, void* buf, ulong len)
    {
        try
        {
            if (RunOn(cpu, "kmem_file_write") is not { } c)
                return LastError.Code;
            if (BadBuffer("kmem_file_write", buf, len) is int rc)
                return rc;
            var r = c.M.Machine.FileWrite(c.Cpu, fd, offset, new ReadOnlySpan<byte>(buf, (int)len));
            return r.IsOk ? (long)r.Value : SyscallFailure("kmem_file_write", $"pwrite({fd}, buf, {len}, {offset})", r);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_file_write");
        }
    }

    /// <summary>A caller buffer for one span: -EFAULT for NULL with a length, -EINVAL beyond 2 GiB; null when fine.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int? BadBuffer(string function, void* buf, ulong len)
    {
        if (buf == null && len != 0)
            return LastError.Set(Errno.EFAULT, $"{function}: buf is NULL with len {len}");
        if (len > int.MaxValue)
            return LastError.Set(Errno.EINVAL, $"{function}: len {len} is above {int.MaxValue}: split the call");
        return null;
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_sync")]
    public static long Sync(CpuHandle cpu)
    {
        try
        {
            return RunOn(cpu, "kmem_sync") is { } c ? c.M.Machine.Sync(c.Cpu) : LastError.Code;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_sync");
        }
    }

    // ---- swap, kswapd, direct reclaim, drop_caches -------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_swapon")]
    public static int Swapon(CpuHandle cpu, ulong bytes)
    {
        try
        {
            if (RunOn(cpu, "kmem_swapon") is not { } c)
                return LastError.Code;
            var r = c.M.Machine.Swapon(bytes);
            return r.IsOk ? 0 : SyscallFailure("kmem_swapon", r.Error == Mm.Errno.EBUSY
                ? $"swapon of {bytes} bytes: a swap device exists already (one only)"
                : $"swapon of {bytes} bytes (at least two pages: the header and one slot)", r);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_swapon");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_kswapd_step")]
    public static long KswapdStep(CpuHandle cpu)
    {
        try
        {
            return RunOn(cpu, "kmem_kswapd_step") is { } c ? c.M.Machine.KswapdStep(c.Cpu) : LastError.Code;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_kswapd_step");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_kswapd_pending")]
    public static int KswapdPending(MachineHandle h)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_kswapd_pending", "machine");
            return m.Machine.KswapdPending ? 1 : 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_kswapd_pending");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_try_to_free_pages")]
    public static long TryToFreePages(CpuHandle cpu, uint gfp, int order)
    {
        try
        {
            if (RunOn(cpu, "kmem_try_to_free_pages") is not { } c)
                return LastError.Code;
            if ((uint)order > PhysMem.PageSize.MaxOrder)
                return LastError.Set(Errno.EINVAL, $"kmem_try_to_free_pages: order {order} is outside 0..{PhysMem.PageSize.MaxOrder} (MAX_PAGE_ORDER)");
            return c.M.Machine.TryToFreePages(c.Cpu, (Gfp)gfp, order);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_try_to_free_pages");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_drop_caches")]
    public static long DropCaches(CpuHandle cpu, int mode)
    {
        try
        {
            if (RunOn(cpu, "kmem_drop_caches") is not { } c)
                return LastError.Code;
            if (mode is < 1 or > 4)
                return LastError.Set(Errno.EINVAL, $"kmem_drop_caches: mode {mode} is outside 1..4 (1 page cache, 2 slab, 3 both, 4 quiet)");
            return c.M.Machine.DropCaches(c.Cpu, mode);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_drop_caches");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_lru_add_drain")]
    public static int LruAddDrain(CpuHandle cpu)
    {
        try
        {
            if (RunOn(cpu, "kmem_lru_add_drain") is not { } c)
                return LastError.Code;
            c.M.Machine.LruAddDrain(c.Cpu);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_lru_add_drain");
        }
    }

    // ---- reclaimable slab ----------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_dcache_fill")]
    public static int DcacheFill(CpuHandle cpu, int count, uint gfp) =>
        FillCache(cpu, count, gfp, "kmem_dcache_fill", static (m, c, n, g) => m.DcacheFill(c, n, g));

    [UnmanagedCallersOnly(EntryPoint = "kmem_driver_pool_fill")]
    public static int DriverPoolFill(CpuHandle cpu, int count, uint gfp) =>
        FillCache(cpu, count, gfp, "kmem_driver_pool_fill", static (m, c, n, g) => m.DriverPoolFill(c, n, g));

    /// <summary>Adds <paramref name="count"/> objects to a shrinkable cache; returns how many were added.</summary>
    private static int FillCache(CpuHandle cpu, int count, uint gfp, string function, Func<Machine, Cpu, int, Gfp, int> fill)
    {
        try
        {
            if (RunOn(cpu, function) is not { } c)
                return LastError.Code;
            if (count < 0)
                return LastError.Set(Errno.EINVAL, $"{function}: count {count} is negative");
            return fill(c.M.Machine, c.Cpu, count, (Gfp)gfp);
        }
        catch (Exception e)
        {
            return LastError.Set(e, function);
        }
    }

    // ---- the OOM killer's view of a process ----------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_set_oom_score_adj")]
    public static int ProcessSetOomScoreAdj(CpuHandle cpu, ProcessHandle h, int adj)
    {
        try
        {
            if (RunOn(cpu, "kmem_process_set_oom_score_adj") is not { } c || ProcessOf(c, h, "kmem_process_set_oom_score_adj") is not { } p)
                return LastError.Code;
            if (adj is < -1000 or > 1000)
                return LastError.Set(Errno.EINVAL, $"kmem_process_set_oom_score_adj: {adj} is outside -1000..1000 (OOM_SCORE_ADJ_MIN..MAX)");
            c.M.Machine.SetOomScoreAdj(p.Process.Pid, adj);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_set_oom_score_adj");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_process_oom_score")]
    public static int ProcessOomScore(CpuHandle cpu, ProcessHandle h, long* score)
    {
        try
        {
            if (score == null)
                return LastError.Set(Errno.EINVAL, "kmem_process_oom_score: out is NULL");
            *score = 0;
            if (RunOn(cpu, "kmem_process_oom_score") is not { } c || ProcessOf(c, h, "kmem_process_oom_score") is not { } p)
                return LastError.Code;
            *score = c.M.Machine.OomScore(p.Process.Pid);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_process_oom_score");
        }
    }

    // ---- CPU context ---------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_irq_enter")]
    public static int IrqEnter(CpuHandle cpu) => Context(cpu, "kmem_irq_enter", 0, null);

    [UnmanagedCallersOnly(EntryPoint = "kmem_irq_exit")]
    public static int IrqExit(CpuHandle cpu) => Context(cpu, "kmem_irq_exit", 1, null);

    [UnmanagedCallersOnly(EntryPoint = "kmem_local_irq_disable")]
    public static int LocalIrqDisable(CpuHandle cpu) => Context(cpu, "kmem_local_irq_disable", 2, null);

    [UnmanagedCallersOnly(EntryPoint = "kmem_local_irq_enable")]
    public static int LocalIrqEnable(CpuHandle cpu) => Context(cpu, "kmem_local_irq_enable", 3, null);

    [UnmanagedCallersOnly(EntryPoint = "kmem_memalloc_noio_save")]
    public static int MemallocNoioSave(CpuHandle cpu, uint* flags) => Context(cpu, "kmem_memalloc_noio_save", 4, flags);

    [UnmanagedCallersOnly(EntryPoint = "kmem_memalloc_noio_restore")]
    public static int MemallocNoioRestore(CpuHandle cpu, uint flags) => Context(cpu, "kmem_memalloc_noio_restore", 5, &flags);

    [UnmanagedCallersOnly(EntryPoint = "kmem_memalloc_nofs_save")]
    public static int MemallocNofsSave(CpuHandle cpu, uint* flags) => Context(cpu, "kmem_memalloc_nofs_save", 6, flags);

    [UnmanagedCallersOnly(EntryPoint = "kmem_memalloc_nofs_restore")]
    public static int MemallocNofsRestore(CpuHandle cpu, uint flags) => Context(cpu, "kmem_memalloc_nofs_restore", 7, &flags);

    /// <summary>
    /// One context switch of the CPU (the Cpu.Context API). The save calls write their cookie to *flags (NULL is
    /// -EINVAL); the restore calls take it from *flags. A ContextException (irq_exit outside a handler,
    /// local_irq_enable inside one) becomes -EINVAL with the kernel-style message.
    /// </summary>
    private static int Context(CpuHandle cpu, string function, int op, uint* flags)
    {
        try
        {
            if (op is 4 or 6)
            {
                if (flags == null)
                    return LastError.Set(Errno.EINVAL, $"{function}: out is NULL");
                *flags = 0;
            }
            if (RunOn(cpu, function) is not { } c)
                return LastError.Code;
            var x = c.Cpu;
            switch (op)
            {
                case 0: x.IrqEnter(); break;
                case 1: x.IrqExit(); break;
                case 2: x.LocalIrqDisable(); break;
                case 3: x.LocalIrqEnable(); break;
                case 4: *flags = x.MemallocNoioSave(); break;
                case 5: x.MemallocNoioRestore(*flags); break;
                case 6: *flags = x.MemallocNofsSave(); break;
                default: x.MemallocNofsRestore(*flags); break;
            }
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, function);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_current_gfp_context")]
    public static long CurrentGfpContext(CpuHandle cpu, uint gfp)
    {
        try
        {
            return RunOn(cpu, "kmem_current_gfp_context") is { } c ? (long)(uint)c.Cpu.CurrentGfpContext((Gfp)gfp) : LastError.Code;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_current_gfp_context");
        }
    }

    // ---- reports -------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_alloc_failure_report")]
    public static long AllocFailureReport(MachineHandle h, byte* buf, nuint size) =>
        CopyReport(h, buf, size, "kmem_alloc_failure_report", static m => m.LastAllocFailureReport,
            "no allocation has failed with a warning on this machine");

    [UnmanagedCallersOnly(EntryPoint = "kmem_alloc_failure_count")]
    public static long AllocFailureCount(MachineHandle h)
    {
        try
        {
            return Handles.Machine(h) is { } m ? m.Machine.AllocFailureReportCount : LastError.BadHandle("kmem_alloc_failure_count", "machine");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_alloc_failure_count");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_oom_report")]
    public static long OomReport(MachineHandle h, byte* buf, nuint size) =>
        CopyReport(h, buf, size, "kmem_oom_report", static m => m.LastOomReport, "the OOM killer has not run on this machine");

    /// <summary>A machine's last report into the caller's buffer (snprintf-style), or -ENOENT while there is none.</summary>
    private static long CopyReport(MachineHandle h, byte* buf, nuint size, string function, Func<Machine, string?> report, string none)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle(function, "machine");
            return report(m.Machine) is { } text ? WriteText(text, buf, size) : LastError.Set(Errno.ENOENT, $"{function}: {none}");
        }
        catch (Exception e)
        {
            return LastError.Set(e, function);
        }
    }
}
