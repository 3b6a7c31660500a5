namespace KmemNative.Bench;

internal static partial class Targets
{
    // Issue #5: the emulated demand fault against the host kernel's anonymous fault measured in the same run
    // (≥ 10x the host's fault rate = at most 0.1x its time per fault); fork, COW and munmap recorded.
    private static readonly Goal[] MmGoals =
    [
        new("MmFaultBench", "EmulatedFault", "HostFault", 0.1, "#5 demand fault >= 10x the host's fault rate"),
        new("MmForkBench", "Fork64M", "HostFault64M", double.NaN, "#5 fork of a 64 MiB touched process (recorded)"),
        new("MmForkBench", "CowFault", "HostFault64M", double.NaN, "#5 COW fault after fork vs a host anonymous fault, per page (recorded)"),
        new("MmForkBench", "Munmap64M", "HostFault64M", double.NaN, "#5 munmap of 64 MiB touched (recorded)"),
    ];
}
