namespace KmemNative.Diagnostics;

// The reclaim subsystem's /proc files (issue #6).
public sealed partial class ProcFs
{
    private static readonly bool s_reclaimFiles = Register("swaps", p => p.Swaps());

    /// <summary>/proc/swaps: the header, then one line per swap device (Filename, Type, Size and Used in kB, Priority).</summary>
    public string Swaps() => _m.Swaps();
}
