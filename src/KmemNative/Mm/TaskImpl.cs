using System.Text;
using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

/// <summary>A process of a profile: the task_struct in the arena, its mm, and the system calls.</summary>
internal sealed unsafe class TaskImpl<TArch> : Process where TArch : struct, IArch
{
    private readonly MmSubsystem<TArch> _sub;
    private readonly byte* _h;
    private int _parentPid;

    internal TaskImpl(MmSubsystem<TArch> sub, ulong va, byte* host, int pid, string comm, MmState<TArch> mm, int parentPid)
    {
        _sub = sub;
        Va = va;
        _h = host;
        Pid = pid;
        Comm = comm;
        MmState = mm;
        _parentPid = parentPid;
    }

    internal ulong Va { get; }

    /// <summary>Process group and session (the pid of their leaders): a spawned process leads its own, a child inherits them.</summary>
    internal int Pgid, Sid;

    /// <summary>signal-&gt;oom_score_adj: -1000 (never chosen by the OOM killer) .. 1000; inherited by fork.</summary>
    internal short OomScoreAdj;

    internal byte* H => _h;

    /// <summary>task->mm (null once exited).</summary>
    internal MmState<TArch>? MmState { get; set; }

    public override int Pid { get; }

    public override int ParentPid => _parentPid;

    internal void Reparent(int pid) => _parentPid = pid;

    public override string Comm { get; }

    public override bool IsAlive => MmState is not null;

    public override ulong TaskAddress => Va;

    public override ulong MmAddress => Live.Va;

    public override AddressSpace AddressSpace => Live.As;

    private MmState<TArch> Live => MmState ?? throw new KmemException($"process {Pid} ({Comm}) has exited");

    /// <summary>mm_account_fault(): current->min_flt++ or maj_flt++.</summary>
    internal void CountFault(bool major)
    {
        int off = major ? MmOff<TArch>.TaskMajFlt : MmOff<TArch>.TaskMinFlt;
        TArch.StoreLong(_h + off, TArch.LoadLong(_h + off) + 1);
    }

    public override (long Minor, long Major) Faults =>
        ((long)TArch.LoadLong(_h + MmOff<TArch>.TaskMinFlt), (long)TArch.LoadLong(_h + MmOff<TArch>.TaskMajFlt));

    public override SigInfo? LastSignal => MmState?.LastSignal;

    MmInfo Info()
    {
        var mm = Live;
        byte* m = mm.H;
        ulong L(int off) => TArch.LoadLong(m + off);
        return new MmInfo(
            L(MmOff<TArch>.TotalVm), L(MmOff<TArch>.DataVm), L(MmOff<TArch>.ExecVm), L(MmOff<TArch>.StackVm), L(MmOff<TArch>.LockedVm),
            MmSubsystem<TArch>.MapCount(mm),
            MmSubsystem<TArch>.GetMmCounter(mm, MmSubsystem<TArch>.MmCounter.AnonPages),
            MmSubsystem<TArch>.GetMmCounter(mm, MmSubsystem<TArch>.MmCounter.FilePages),
            MmSubsystem<TArch>.GetMmCounter(mm, MmSubsystem<TArch>.MmCounter.ShmemPages),
            MmSubsystem<TArch>.GetMmCounter(mm, MmSubsystem<TArch>.MmCounter.SwapEnts),
            L(MmOff<TArch>.PgtablesBytes), L(MmOff<TArch>.MmapBase), L(MmOff<TArch>.TaskSize),
            L(MmOff<TArch>.StartBrk), L(MmOff<TArch>.Brk), L(MmOff<TArch>.StartStack),
            L(MmOff<TArch>.StartCode), L(MmOff<TArch>.EndCode), L(MmOff<TArch>.StartData), L(MmOff<TArch>.EndData),
            L(MmOff<TArch>.ArgStart), L(MmOff<TArch>.ArgEnd), L(MmOff<TArch>.EnvStart), L(MmOff<TArch>.EnvEnd),
            *(int*)(m + MmOff<TArch>.MmUsers), *(int*)(m + MmOff<TArch>.MmCount));
    }

    public override MmInfo Mm => Info();

    public override IReadOnlyList<VmaInfo> Vmas
    {
        get
        {
            var mm = Live;
            using (mm.Lock.Enter())
                return _sub.VmaList(mm);
        }
    }

    public override SysResult Mmap(Cpu cpu, ulong addr, ulong len, Prot prot, MapFlags flags, int fd = -1, ulong offset = 0)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.DoMmap(cpu, mm, addr, len, prot, flags, fd, offset);
    }

    public override SysResult Munmap(Cpu cpu, ulong addr, ulong len)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.DoMunmap(cpu, mm, addr, len);
    }

    public override SysResult Mprotect(Cpu cpu, ulong addr, ulong len, Prot prot)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.DoMprotect(cpu, mm, addr, len, prot);
    }

    public override ulong Brk(Cpu cpu, ulong addr)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.DoBrk(cpu, mm, addr);
    }

    public override SysResult Madvise(Cpu cpu, ulong addr, ulong len, Madvise advice)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.DoMadvise(cpu, mm, addr, len, advice);
    }

    public override SysResult Fork(Cpu cpu) => _sub.Fork(cpu, this);

    public override void Exit(Cpu cpu) => _sub.Exit(cpu, this);

    public override void SwitchTo(Cpu cpu)
    {
        var mm = Live;
        if (!ReferenceEquals(cpu.ActiveMm, mm.As))
            _sub.Machine.SwitchMm(cpu, mm.As);
        cpu.Pid = Pid;
        cpu.Comm = Comm;
    }

    public override AccessResult Touch(Cpu cpu, ulong addr, ulong len, MemoryAccess access, byte value = 0)
    {
        var mm = Live;
        SwitchTo(cpu);
        var (min0, maj0) = Faults;
        long pages = 0;
        SigInfo? sig = null;
        var mmu = _sub.Machine.Mmu;
        ulong end = addr + len;
        if (end < addr)
            end = ulong.MaxValue;
        for (ulong page = addr & ~(PageSize.Bytes - 1); page < end; page += PageSize.Bytes)
        {
            ulong va = Math.Max(page, addr);
            try
            {
                switch (access)
                {
                    case MemoryAccess.Write:
                        mmu.WriteU8(cpu, va, value, PrivilegeMode.User);
                        break;
                    case MemoryAccess.Execute:
                        mmu.Translate(cpu, va, MemoryAccess.Execute, PrivilegeMode.User);
                        break;
                    default:
                        mmu.ReadU8(cpu, va, PrivilegeMode.User);
                        break;
                }
            }
            catch (PageFaultException e)
            {
                sig = SignalFor(mm, e);
                break;
            }
            pages++;
            if (mm.OomVictim)
                break;  // SIGKILL from the OOM killer, delivered on the way back to user mode
            if (page + PageSize.Bytes < page)
                break;
        }
        var (min1, maj1) = Faults;
        return new AccessResult(pages, min1 - min0, maj1 - maj0, Killed(cpu, mm, sig));
    }

    /// <summary>
    /// An OOM victim whose teardown had to wait for this operation dies now: the access reports SIGKILL and the
    /// process exits (its memory freed) as the kernel's task does when the signal is delivered.
    /// </summary>
    private SigInfo? Killed(Cpu cpu, MmState<TArch> mm, SigInfo? sig)
    {
        if (!mm.OomVictim)
            return sig;
        var kill = new SigInfo(Signal.SIGKILL, SiCode.None, sig?.Address ?? 0, sig?.ErrorCode ?? 0);
        mm.LastSignal = kill;
        _sub.ExitIfKilled(cpu, this);
        return kill;
    }

    private static SigInfo SignalFor(MmState<TArch> mm, PageFaultException e)
    {
        if (mm.LastSignal is { } s && s.Address == e.Address)
            return s;
        // A fault the handler never saw (#GP on a non-canonical address, a kernel address).
        var code = e.Fault.Kind == FaultKind.PageFault && (e.Fault.ErrorCode & PfErrorCode.Prot) != 0 ? SiCode.SEGV_ACCERR : SiCode.SEGV_MAPERR;
        var sig = new SigInfo(Signal.SIGSEGV, code, e.Address, (uint)e.Fault.ErrorCode);
        mm.LastSignal = sig;
        return sig;
    }

    public override AccessResult Read(Cpu cpu, ulong addr, Span<byte> buffer)
    {
        var mm = Live;
        SwitchTo(cpu);
        var (min0, maj0) = Faults;
        var mmu = _sub.Machine.Mmu;
        int done = 0;
        SigInfo? sig = null;
        try
        {
            while (done < buffer.Length)
            {
                ulong a = addr + (ulong)done;
                int chunk = Math.Min(buffer.Length - done, PageSize.Int - (int)(a & 0xfff));
                mmu.Read(cpu, a, buffer.Slice(done, chunk), PrivilegeMode.User);
                done += chunk;
            }
        }
        catch (PageFaultException e)
        {
            sig = SignalFor(mm, e);
        }
        var (min1, maj1) = Faults;
        return new AccessResult((done + PageSize.Int - 1) / PageSize.Int, min1 - min0, maj1 - maj0, Killed(cpu, mm, sig));
    }

    public override AccessResult Write(Cpu cpu, ulong addr, ReadOnlySpan<byte> data)
    {
        var mm = Live;
        SwitchTo(cpu);
        var (min0, maj0) = Faults;
        var mmu = _sub.Machine.Mmu;
        int done = 0;
        SigInfo? sig = null;
        try
        {
            while (done < data.Length)
            {
                ulong a = addr + (ulong)done;
                int chunk = Math.Min(data.Length - done, PageSize.Int - (int)(a & 0xfff));
                mmu.Write(cpu, a, data.Slice(done, chunk), PrivilegeMode.User);
                done += chunk;
            }
        }
        catch (PageFaultException e)
        {
            sig = SignalFor(mm, e);
        }
        var (min1, maj1) = Faults;
        return new AccessResult((done + PageSize.Int - 1) / PageSize.Int, min1 - min0, maj1 - maj0, Killed(cpu, mm, sig));
    }

    public override ulong[] Pagemap(ulong addr, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.PagemapEntries(mm, addr & ~(PageSize.Bytes - 1), count);
    }

    public override SysResult ReadPagemap(ulong offset, Span<byte> buffer)
    {
        var mm = Live;
        if (offset % 8 != 0 || buffer.Length % 8 != 0)
            return SysResult.Fail(Errno.EINVAL);
        ulong taskSize = TArch.TaskSizeMax;
        ulong svpfn = offset / 8;
        if (svpfn >= taskSize >> PageSize.Shift)
            return SysResult.Ok(0);
        ulong maxPages = (taskSize >> PageSize.Shift) - svpfn;
        int count = (int)Math.Min((ulong)(buffer.Length / 8), maxPages);
        ulong[] e;
        using (mm.Lock.Enter())
            e = _sub.PagemapEntries(mm, svpfn << PageSize.Shift, count);
        for (int i = 0; i < count; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer.Slice(i * 8, 8), e[i]);
        return SysResult.Ok((ulong)count * 8);
    }

    public override string Vtop(ulong addr)
    {
        var mm = Live;
        using (mm.Lock.Enter())
            return _sub.UserVtop(mm, addr);
    }

    public override void Validate()
    {
        var mm = Live;
        using (mm.Lock.Enter())
            _sub.ValidateProcess(mm);
    }

    /// <summary>task->comm as stored (16 bytes, NUL-padded).</summary>
    internal static void WriteComm(byte* h, string comm)
    {
        var span = new Span<byte>(h + MmOff<TArch>.TaskComm, 16);
        span.Clear();
        Encoding.ASCII.GetBytes(comm.AsSpan(0, Math.Min(comm.Length, 15)), span);
    }
}
