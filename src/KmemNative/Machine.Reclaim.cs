using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Reclaim;

namespace KmemNative;

// Memory reclaim of a profile (issue #6): created at the end of boot and attached to the page allocator's slow path;
// attached to the process subsystem when that is created.
public sealed unsafe partial class Machine<TArch>
{
    private ReclaimSubsystem<TArch> _reclaim = null!;

    /// <summary>The reclaim subsystem (LRU lists, vmscan, kswapd, shrinkers, swap, OOM killer).</summary>
    internal ReclaimSubsystem<TArch> Reclaim => _reclaim;

    private void InitReclaim()
    {
        _reclaim = new ReclaimSubsystem<TArch>(this);
        _reclaim.Attach();
    }

    /// <inheritdoc/>
    public override SysResult FileWrite(Cpu cpu, int fd, ulong offset, ReadOnlySpan<byte> data) => MmSub.FileWrite(cpu, fd, offset, data);

    /// <inheritdoc/>
    public override int FileDescriptor(string path) => _mmSub?.FdOfPath(path) ?? -1;

    /// <inheritdoc/>
    public override long Sync(Cpu cpu)
    {
        ThrowIfDisposed();
        return _reclaim.Sync(cpu);
    }

    /// <inheritdoc/>
    public override void SetOomScoreAdj(int pid, int adj) => _reclaim.SetOomScoreAdj(pid, adj);

    /// <inheritdoc/>
    public override int GetOomScoreAdj(int pid) =>
        _mmSub?.FindTask(pid) is { } t ? t.OomScoreAdj : throw new KmemException($"no process {pid}");

    /// <inheritdoc/>
    public override long OomScore(int pid) => _reclaim.OomScore(pid);

    /// <inheritdoc/>
    public override long KswapdStep(Cpu cpu)
    {
        ThrowIfDisposed();
        return _reclaim.KswapdRun(cpu);
    }

    /// <inheritdoc/>
    public override bool KswapdThread
    {
        get => _reclaim.KswapdThreadRunning;
        set
        {
            ThrowIfDisposed();
            _reclaim.SetKswapdThread(value);
        }
    }

    /// <inheritdoc/>
    public override bool KswapdPending => _reclaim.KswapdPending;

    /// <inheritdoc/>
    public override long KswapdWakeups => _reclaim.KswapdWakeups;

    /// <inheritdoc/>
    public override long DropCaches(Cpu cpu, int mode)
    {
        ThrowIfDisposed();
        return _reclaim.DropCaches(cpu, mode);
    }

    /// <inheritdoc/>
    public override long TryToFreePages(Cpu cpu, Gfp gfp, int order = 0)
    {
        ThrowIfDisposed();
        uint saved = cpu.TaskFlags;
        cpu.SetTaskFlags(saved | Cpu.PfMemalloc);
        try
        {
            return _reclaim.TryToFreePages(cpu, gfp, order, GfpFlags.Zone<TArch>(gfp));
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
        return _reclaim.Swapon(bytes);
    }

    /// <inheritdoc/>
    public override long SwapTotalPages => _reclaim.TotalSwapPages;

    /// <inheritdoc/>
    public override long SwapFreePages => _reclaim.NrSwapPages;

    /// <inheritdoc/>
    public override string Swaps() => _reclaim.ProcSwaps();

    /// <inheritdoc/>
    public override string? LastAllocFailureReport => _reclaim.LastAllocFailureReport;

    /// <inheritdoc/>
    public override string? LastOomReport => _reclaim.LastOomReport;

    /// <inheritdoc/>
    public override string ShowMem(Cpu cpu)
    {
        var lines = new List<string>();
        _reclaim.ShowMem(cpu, _zones.Length - 1, lines);
        return string.Join('\n', lines) + "\n";
    }

    /// <inheritdoc/>
    public override int DcacheFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel) => _reclaim.Vfs.Fill(cpu, count, gfp);

    /// <inheritdoc/>
    public override void DcacheTouch(int count) => _reclaim.Vfs.Touch(count);

    /// <inheritdoc/>
    public override (int Dentries, int Inodes) DcacheUnused => (_reclaim.Vfs.Dentries, _reclaim.Vfs.Inodes);

    /// <inheritdoc/>
    public override int DriverPoolFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel) => _reclaim.Pool.Fill(cpu, count, gfp);

    /// <inheritdoc/>
    public override int DriverPoolCount => _reclaim.Pool.Count();

    /// <inheritdoc/>
    public override IReadOnlyList<Shrinker> Shrinkers => _reclaim.Shrinkers;

    /// <inheritdoc/>
    public override void RegisterShrinker(Shrinker shrinker) => _reclaim.RegisterShrinker(shrinker);

    /// <inheritdoc/>
    public override bool UnregisterShrinker(Shrinker shrinker) => _reclaim.UnregisterShrinker(shrinker);

    /// <inheritdoc/>
    public override void LruAddDrain(Cpu cpu) => _reclaim.LruAddDrainAll(cpu);

    /// <inheritdoc/>
    public override long LruSize(LruList lru) => _reclaim.NodeStatRead((NodeStat)(int)lru);

    /// <inheritdoc/>
    public override IReadOnlyList<ulong> LruPages(LruList lru) => _reclaim.LruPages((int)lru);
}
