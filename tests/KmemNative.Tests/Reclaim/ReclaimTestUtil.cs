using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.Mm;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>
/// The shared starting state of the pressure tests: a machine whose free memory has been pushed just below the
/// min watermark by pinned kernel pages, with exactly these things left to reclaim — dirty page cache of one file,
/// FS-shrinkable slab (unused dentries and inodes), non-FS shrinkable slab (the driver pool) and the anonymous memory
/// of one process with swap space to put it in.
/// </summary>
internal sealed class PressureState : IDisposable
{
    public required Machine M { get; init; }
    public required Cpu Cpu { get; init; }
    public required Process Hog { get; init; }
    public required int Fd { get; init; }
    public required List<ulong> Pinned { get; init; }
    public required int LogMark { get; init; }

    /// <summary>Size of the dirty file.</summary>
    public const ulong FileBytes = 4 << 20;

    /// <summary>Anonymous memory of the hog process.</summary>
    public const ulong AnonBytes = 4 << 20;

    public const int Dentries = 1500;
    public const int PoolObjects = 600;

    public static PressureState Build(ArchKind arch, bool withPool = true)
    {
        var m = Machines.Boot(arch, 64, cpus: 1);
        var cpu = m.GetCpu(0);
        Assert.True(m.Swapon(8 << 20).IsOk);
        var hog = m.Spawn(cpu, "hog");
        ulong anon = hog.MapAnon(cpu, AnonBytes);
        Assert.True(hog.Touch(cpu, anon, AnonBytes, MemoryAccess.Write).IsOk);
        int fd = (int)m.FileCreate(cpu, "/data/dirty", FileBytes).Unwrap();
        var data = new byte[FileBytes];
        for (int i = 0; i < data.Length; i++)
            data[i] = (byte)(i * 7 + 3);
        Assert.Equal(FileBytes, m.FileWrite(cpu, fd, 0, data).Unwrap());
        Assert.Equal(Dentries, m.DcacheFill(cpu, Dentries));
        if (withPool)
            Assert.Equal(PoolObjects, m.DriverPoolFill(cpu, PoolObjects));
        m.LruAddDrain(cpu);
        // Pin everything else: unmovable kernel pages taken without reclaim until the min watermark stops them.
        var pinned = new List<ulong>();
        while (true)
        {
            var page = m.AllocPages(cpu, Gfp.NoWait, 0);
            if (page is null)
                break;
            pinned.Add(page.Value.Pfn);
        }
        // Nothing ran: kswapd is in step mode, nothing reclaimed yet.
        Assert.Equal(0, cpu.Event(VmEvent.PgstealDirect) + cpu.Event(VmEvent.PgstealKswapd));
        return new PressureState { M = m, Cpu = cpu, Hog = hog, Fd = fd, Pinned = pinned, LogMark = m.Log.Lines.Count };
    }

    public IReadOnlyList<string> NewLog => M.Log.Since(LogMark);

    public void Dispose() => M.Dispose();
}

/// <summary>Helpers the pressure tests share.</summary>
internal static class PressureHelpers
{
    /// <summary>
    /// Writes every page of two 40 MiB anonymous mappings of <paramref name="p"/> (more than a 64 MiB machine and its
    /// swap hold): the result of the first access that failed (the OOM killer's SIGKILL), or of the second mapping.
    /// </summary>
    public static AccessResult TouchTwoMappingsOf40M(Process p, Cpu cpu)
    {
        ulong a = p.MapAnon(cpu, 40 << 20);
        ulong b = p.MapAnon(cpu, 40 << 20);
        var r = p.Touch(cpu, a, 40 << 20, MemoryAccess.Write);
        return r.IsOk ? p.Touch(cpu, b, 40 << 20, MemoryAccess.Write) : r;
    }
}
