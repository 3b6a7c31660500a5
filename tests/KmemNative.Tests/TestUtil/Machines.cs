using KmemNative.Arch;

namespace KmemNative.Tests.TestUtil;

/// <summary>Small machines for tests (16-256 MiB arenas).</summary>
internal static class Machines
{
    public static Machine Boot(ArchKind arch, ulong mib, int cpus = 2) =>
        Machine.Boot(new MachineConfig { Arch = arch, MemBytes = mib << 20, Cpus = cpus });

    public static Machine I386(ulong mib = 64, int cpus = 2) => Boot(ArchKind.I386, mib, cpus);

    public static Machine X64(ulong mib = 64, int cpus = 2) => Boot(ArchKind.X86_64, mib, cpus);

    /// <summary>Both profiles, for theories.</summary>
    public static TheoryData<ArchKind> Arches => new() { ArchKind.I386, ArchKind.X86_64 };

    public static string DataFile(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Data", .. parts]);

    /// <summary>Buddy state as numbers: nr_free per zone per order.</summary>
    public static long[][] FreeAreas(Machine m) =>
        [.. m.Zones.Select(z => Enumerable.Range(0, 11).Select(o => z.NrFree(o)).ToArray())];
}
