using System.Globalization;
using System.Text;
using KmemNative.Mm;

namespace KmemNative;

// The process subsystem of a profile (issue #5): created with the first use, its slab caches with the first
// process (so a machine without processes keeps the boot state).
public sealed unsafe partial class Machine<TArch>
{
    private MmSubsystem<TArch>? _mmSub;
    private readonly Lock _mmSubLock = new();

    /// <summary>The process subsystem.</summary>
    internal MmSubsystem<TArch> MmSub
    {
        get
        {
            ThrowIfDisposed();
            if (Volatile.Read(ref _mmSub) is { } s)
                return s;
            lock (_mmSubLock)
            {
                if (_mmSub is null)
                {
                    var created = new MmSubsystem<TArch>(this);
                    Reclaim.AttachMm(created);
                    Volatile.Write(ref _mmSub, created);
                }
                return _mmSub;
            }
        }
    }

    /// <inheritdoc/>
    public override Process Spawn(Cpu cpu, string comm) => MmSub.Spawn(cpu, comm);

    /// <inheritdoc/>
    public override Process? FindProcess(int pid) => _mmSub?.FindTask(pid);

    /// <inheritdoc/>
    public override IReadOnlyList<Process> Processes => _mmSub is { } s ? s.Tasks : [];

    /// <inheritdoc/>
    public override SysResult FileCreate(Cpu cpu, string path, ulong size, bool readOnly = false) => MmSub.FileCreate(cpu, path, size, readOnly);

    /// <inheritdoc/>
    public override SysResult FileClose(Cpu cpu, int fd) => MmSub.FileClose(cpu, fd);

    /// <inheritdoc/>
    public override SysResult FileRead(Cpu cpu, int fd, ulong offset, Span<byte> buffer) => MmSub.FileRead(cpu, fd, offset, buffer);

    /// <inheritdoc/>
    public override IReadOnlyList<FileObjectInfo> Files => _mmSub is { } s ? s.FileList() : [];

    /// <inheritdoc/>
    public override int MaxMapCount
    {
        get => MmSub.MaxMapCount;
        set => MmSub.MaxMapCount = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), "vm.max_map_count must be positive");
    }

    /// <inheritdoc/>
    public override ulong MmapMinAddr
    {
        get => MmSub.MmapMinAddr;
        set => MmSub.MmapMinAddr = (value & 0xfff) == 0 ? value : value + 0xfff & ~0xfffUL;
    }

    /// <inheritdoc/>
    public override string? ReadPidFile(int pid, string file)
    {
        if (_mmSub is not { } s || s.FindTask(pid) is not { } t || t.MmState is not { } mm)
            return null;
        return file switch
        {
            "maps" => s.Maps(mm),
            "smaps" => s.Smaps(mm),
            "smaps_rollup" => s.SmapsRollup(mm),
            "status" => s.Status(t),
            "statm" => MmSubsystem<TArch>.Statm(mm),
            "stat" => s.Stat(t),
            "oom_score_adj" => string.Create(CultureInfo.InvariantCulture, $"{t.OomScoreAdj}\n"),
            "oom_score" => string.Create(CultureInfo.InvariantCulture, $"{Reclaim.OomScore(pid)}\n"),
            _ => null,
        };
    }

    /// <inheritdoc/>
    public override string Ps()
    {
        var sb = new StringBuilder();
        int w = TArch.PointerSize * 2;
        string task = "TASK".PadLeft((w + 4) / 2).PadRight(w);
        sb.Append(CultureInfo.InvariantCulture, $"   PID    PPID  CPU  {task}  ST  %MEM      VSZ      RSS  COMM\n");
        double total = TotalRamPages;
        foreach (var p in Processes)
        {
            var info = p.Mm;
            int cpu = Cpus.FirstOrDefault(c => c.Pid == p.Pid)?.Id ?? 0;
            ulong vszKb = info.TotalVm << 2, rssKb = (ulong)info.Rss << 2;
            sb.Append(CultureInfo.InvariantCulture,
                $"  {p.Pid,6} {p.ParentPid,7} {cpu,4}  {p.TaskAddress.ToString("x" + w, CultureInfo.InvariantCulture)}  IN {100.0 * info.Rss / total,5:0.0} {vszKb,8} {rssKb,8}  {p.Comm}\n");
        }
        return sb.ToString();
    }

    /// <inheritdoc/>
    public override IReadOnlyList<(int Pid, ulong Address)> Rmap(ulong pfn)
    {
        if (pfn >= MaxPfn)
            throw new PhysicalAddressException($"pfn 0x{pfn:x} is beyond max_pfn", pfn << 12);
        if (_mmSub is not { } s)
            return [];
        var found = new List<(int, ulong)>();
        s.RmapWalk(pfn, (mm, vma, addr, pte) =>
        {
            found.Add((mm.Owner?.Pid ?? 0, addr));
            return true;
        });
        return found;
    }

    /// <inheritdoc/>
    public override string VmReport(int pid)
    {
        if (_mmSub?.FindTask(pid) is not { } t || t.MmState is null)
            throw new KmemException($"no process {pid}");
        return _mmSub.VmCommand(t);
    }
}
