using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Reclaim;

namespace KmemNative;

// Memory reclaim of a profile (issue #6): created at the end of boot and attached to the page allocator's slow path;
// attached to the process subsystem when that is created.
public sealed unsafe partial class Machine<TArch>
{
    private ReclaimSubsystem<TArch>? _reclaim;

    /// <summary>The reclaim subsystem (LRU lists, vmscan, kswapd, shrinkers, swap, OOM killer).</summary>
    internal ReclaimSubsystem<TArch> Reclaim => _reclaim!;

    /// <inheritdoc/>
    private protected override void StopBackgroundThreads() => _reclaim?.SetKswapdThread(false);

    private void InitReclaim()
    {
        _reclaim = new ReclaimSubsystem<TArch>(this);
        _reclaim.Attach();
    }

    /// <inheritdoc/>
    internal override bool NodeHopeless => _reclaim is { Hopeless: true };

    /// <inheritdoc/>
    public override SysResult FileWrite(Cpu cpu, int fd, ulong offset, ReadOnlySpan<byte> data) => MmSub.FileWrite(cpu, fd, offset, data);

    /// <inheritdoc/>
    public override int FileDescriptor(string path) => _mmSub?.FdOfPath(path) ?? -1;

    /// <inheritdoc/>
    public override long Sync(Cpu cpu)
    {
        ThrowIfDisposed();
        return Reclaim.Sync(cpu);
    }

    /// <inheritdoc/>
    public override void SetOomScoreAdj(int pid, int adj) => Reclaim.SetOomScoreAdj(pid, adj);

    /// <inheritdoc/>
    public override int GetOomScoreAdj(int pid) =>
        _mmSub?.FindTask(pid) is { } t ? t.OomScoreAdj : throw new KmemException($"no process {pid}");

    /// <inheritdoc/>
    public override long OomScore(int pid) => Reclaim.OomScore(pid);

    /// <inheritdoc/>
    public override long KswapdStep(Cpu cpu)
    {
        ThrowIfDisposed();
        return Reclaim.KswapdRun(cpu);
    }

    /// <inheritdoc/>
    public override bool KswapdThread
    {
        get => Reclaim.KswapdThreadRunning;
        set
        {
            ThrowIfDisposed();
            Reclaim.SetKswapdThread(value);
        }
    }

    /// <inheritdoc/>
    public override bool KswapdPending => Reclaim.KswapdPending;

    /// <inheritdoc/>
    public override long KswapdWakeups => Reclaim.KswapdWakeups;

    /// <inheritdoc/>
    public override long DropCaches(Cpu cpu, int mode)
    {
        ThrowIfDisposed();
        return Reclaim.DropCaches(cpu, mode);
    }

    /// <inheritdoc/>
    public override long TryToFreePages(Cpu cpu, Gfp gfp, int order = 0)
    {
        ThrowIfDisposed();
        uint saved = cpu.TaskFlags;
        cpu.SetTaskFlags(saved | Cpu.PfMemalloc);
        try
        {
            return Reclaim.TryToFreePages(cpu, gfp, order, GfpFlags.Zone<TArch>(gfp));
        }
        finally
        {
            cpu.SetTaskFlags(saved);
        }
    }

    /// <inheritdoc/>
    public override SysResult Swapon(ulong bytes)
    {
        ThrowIfDisposed();
        return Reclaim.Swapon(bytes);
    }

    /// <inheritdoc/>
    public override long SwapTotalPages => Reclaim.TotalSwapPages;

    /// <inheritdoc/>
    public override long SwapFreePages => Reclaim.NrSwapPages;

    /// <inheritdoc/>
    public override string Swaps() => Reclaim.ProcSwaps();

    /// <inheritdoc/>
    public override string? LastAllocFailureReport => Reclaim.LastAllocFailureReport;

    /// <inheritdoc/>
    public override long AllocFailureReportCount => Reclaim.AllocFailureReports;

    /// <inheritdoc/>
    public override string? LastOomReport => Reclaim.LastOomReport;

    /// <inheritdoc/>
    public override string ShowMem(Cpu cpu)
    {
        var lines = new List<string>();
        Reclaim.ShowMem(cpu, _zones.Length - 1, lines);
        return string.Join('\n', lines) + "\n";
    }

    /// <inheritdoc/>
    public override int DcacheFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel) => Reclaim.Vfs.Fill(cpu, count, gfp);

    /// <inheritdoc/>
    public override void DcacheTouch(int count) => Reclaim.Vfs.Touch(count);

    /// <inheritdoc/>
    public override (int Dentries, int Inodes) DcacheUnused => (Reclaim.Vfs.Dentries, Reclaim.Vfs.Inodes);

    /// <inheritdoc/>
    public override int DriverPoolFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel) => Reclaim.Pool.Fill(cpu, count, gfp);

    /// <inheritdoc/>
    public override int DriverPoolCount => Reclaim.Pool.Count();

    /// <inheritdoc/>
    public override IReadOnlyList<Shrinker> Shrinkers => Reclaim.Shrinkers;

    /// <inheritdoc/>
    public override void RegisterShrinker(Shrinker shrinker) => Reclaim.RegisterShrinker(shrinker);

    /// <inheritdoc/>
    public override bool UnregisterShrinker(Shrinker shrinker) => Reclaim.UnregisterShrinker(shrinker);

    /// <inheritdoc/>
    public override void LruAddDrain(Cpu cpu) => Reclaim.LruAddDrainAll(cpu);

    /// <inheritdoc/>
    public override long LruSize(LruList lru) => Reclaim.NodeStatRead((NodeStat)(int)lru);

    /// <inheritdoc/>
    public override IReadOnlyList<ulong> LruPages(LruList lru) => Reclaim.LruPages((int)lru);
}
