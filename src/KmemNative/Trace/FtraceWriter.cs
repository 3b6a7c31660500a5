using System.Diagnostics;
using System.Globalization;
using System.Text;
using KmemNative.PageAlloc;

namespace KmemNative.Trace;

/// <summary>
/// Writes the emulator's kmem events in the kernel's ftrace text format — same header, same columns, same field
/// order and GFP strings as a real <c>trace</c> file — so ftrace tooling (and <c>kmem replay</c>) can read them.
/// Addresses are the emulator's own (direct-map objects, vmemmap descriptors).
/// </summary>
/// <remarks>Thread-safe: lines from several CPUs are serialised. The caller owns <paramref name="output"/>.</remarks>
public sealed class FtraceWriter(TextWriter output, Machine machine) : IKmemTracer
{
    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly StringBuilder _line = new(256);
    private readonly long _baseUs = 1_000_000; // start the clock at 1 s so timestamps look like a booted kernel's

    /// <summary>The call site printed for events (the emulator has no kernel symbols): replays pass the traced one.</summary>
    public string CallSite { get; set; } = "kmemnative+0x0/0x0";

    /// <summary>Events written.</summary>
    public long Count { get; private set; }

    /// <summary>Writes the tracer header the kernel's trace file starts with.</summary>
    public void WriteHeader()
    {
        lock (_lock)
        {
            output.Write("# tracer: nop\n#\n");
            output.Write(Fmt($"# entries-in-buffer/entries-written: 0/0   #P:{machine.Cpus.Count}\n"));
            output.Write("#\n#                                _-----=> irqs-off/BH-disabled\n" +
                         "#                               / _----=> need-resched\n" +
                         "#                              | / _---=> hardirq/softirq\n" +
                         "#                              || / _--=> preempt-depth\n" +
                         "#                              ||| / _-=> migrate-disable\n" +
                         "#                              |||| /     delay\n" +
                         "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n" +
                         "#              | |         |   |||||     |         |\n");
        }
    }

    private static string Fmt(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private void Emit(Cpu cpu, string evt, string fields, long? timestampUs = null)
    {
        lock (_lock)
        {
            long us = timestampUs ?? _baseUs + (long)_clock.Elapsed.TotalMicroseconds;
            _line.Clear();
            string comm = cpu.Comm.Length > 16 ? cpu.Comm[..16] : cpu.Comm;
            _line.Append(comm.PadLeft(16)).Append('-').Append(cpu.Pid.ToString(CultureInfo.InvariantCulture).PadRight(7))
                 .Append(" [").Append(cpu.Id.ToString("000", CultureInfo.InvariantCulture)).Append("] ..... ")
                 .Append((us / 1_000_000).ToString(CultureInfo.InvariantCulture).PadLeft(5)).Append('.')
                 .Append((us % 1_000_000).ToString("000000", CultureInfo.InvariantCulture)).Append(": ")
                 .Append(evt).Append(": ").Append(fields).Append('\n');
            output.Write(_line);
            Count++;
        }
    }

    private static string Ptr(ulong p) => p.ToString("x16", CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public void Kmalloc(Cpu cpu, ulong ptr, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted) =>
        Emit(cpu, "kmalloc", Fmt($"call_site={CallSite} ptr={Ptr(ptr)} bytes_req={bytesReq} bytes_alloc={bytesAlloc} gfp_flags={GfpFlags.Format(gfp)} node=-1 accounted={(accounted ? "true" : "false")}"));

    /// <inheritdoc/>
    public void Kfree(Cpu cpu, ulong ptr) => Emit(cpu, "kfree", Fmt($"call_site={CallSite} ptr={Ptr(ptr)}"));

    /// <inheritdoc/>
    public void KmemCacheAlloc(Cpu cpu, ulong ptr, string cache, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted) =>
        Emit(cpu, "kmem_cache_alloc", Fmt($"call_site={CallSite} ptr={Ptr(ptr)} name={cache} bytes_req={bytesReq} bytes_alloc={bytesAlloc} gfp_flags={GfpFlags.Format(gfp)} node=-1 accounted={(accounted ? "true" : "false")}"));

    /// <inheritdoc/>
    public void KmemCacheFree(Cpu cpu, ulong ptr, string cache) =>
        Emit(cpu, "kmem_cache_free", Fmt($"call_site={CallSite} ptr={Ptr(ptr)} name={cache}"));

    /// <inheritdoc/>
    public void MmPageAlloc(Cpu cpu, ulong? pfn, int order, int migratetype, Gfp gfp) =>
        Emit(cpu, "mm_page_alloc", Fmt($"page={(pfn is { } p ? Ptr(machine.PageDescriptorAddress(p)) : Ptr(0))} pfn=0x{pfn ?? 0:x} order={order} migratetype={migratetype} gfp_flags={GfpFlags.Format(gfp)}"));

    /// <inheritdoc/>
    public void MmPageFree(Cpu cpu, ulong pfn, int order) =>
        Emit(cpu, "mm_page_free", Fmt($"page={Ptr(machine.PageDescriptorAddress(pfn))} pfn=0x{pfn:x} order={order}"));
}
