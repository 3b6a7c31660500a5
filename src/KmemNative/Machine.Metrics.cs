namespace KmemNative;

// Live counters (System.Diagnostics.Metrics, meter "KmemNative"): a booted machine joins the instruments of
// Diagnostics/KmemMetrics.cs, Dispose() leaves them. Nothing here runs on an allocation or translation path.
public abstract partial class Machine
{
    /// <summary>The <c>machine</c> tag of this machine's measurements: unique in the process, in boot order.</summary>
    public int MetricsId { get; internal set; } = -1;

    private static T Published<T>(T machine) where T : Machine
    {
        Diagnostics.KmemMetrics.Register(machine);
        return machine;
    }
}
