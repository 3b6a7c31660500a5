using System.Diagnostics;
using System.Globalization;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Trace;

/// <summary>
/// Writes the emulator's kmem events in the kernel's ftrace text format — same header, same columns, same field
/// order and GFP strings as a real <c>trace</c> file — so ftrace tooling (and <c>kmem replay</c>) can read them.
/// Addresses are the emulator's own (direct-map objects, vmemmap descriptors).
/// </summary>
/// <remarks>
/// <para>Thread-safe: lines from several CPUs are serialised. The caller owns <paramref name="output"/>.</para>
/// <para>Besides the kernel's events the writer puts emulator annotations in comment lines, which every ftrace
/// reader skips: <c># kmemnative: machine ...</c> after the header (the machine that wrote the trace) and
/// <c># kmemnative: kmem_cache_create ...</c> / <c>kmem_cache_destroy ...</c> where caches come and go (see
/// <see cref="TraceAnnotation"/>). <c>kmem replay</c> honours them.</para>
/// </remarks>
public sealed class FtraceWriter(TextWriter output, Machine machine) : IKmemTracer
{
    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long _baseUs = 1_000_000; // start the clock at 1 s so timestamps look like a booted kernel's
    private char[] _buf = new char[512];
    private int _len;
    private long _lastUs;

    /// <summary>The call site printed for events (the emulator has no kernel symbols): replays pass the traced one.</summary>
    public string CallSite { get; set; } = "kmemnative+0x0/0x0";

    /// <summary>
    /// When set, the timestamp (microseconds) printed for the next events instead of the wall clock: a replay passes
    /// the traced event's time, so the written trace keeps the recording's timeline.
    /// </summary>
    public long? TimestampUs { get; set; }

    /// <summary>The irq/preempt flags column printed (the traced one in a replay).</summary>
    public string FlagsColumn { get; set; } = ".....";

    /// <summary>Events written.</summary>
    public long Count { get; private set; }

    /// <summary>
    /// Attaches the writer to its machine as <see cref="Machine.Tracer"/>. The slab allocator is initialised first
    /// (kmem_cache_init() runs on first use): its boot-time caches are part of every machine, not of the workload.
    /// </summary>
    public void Attach()
    {
        _ = machine.KmemCaches;
        machine.Tracer = this;
    }

    /// <summary>Writes the tracer header the kernel's trace file starts with, then the machine annotation.</summary>
    public void WriteHeader()
    {
        lock (_lock)
        {
            output.Write("# tracer: nop\n#\n");
            output.Write(string.Create(CultureInfo.InvariantCulture, $"# entries-in-buffer/entries-written: 0/0   #P:{machine.Cpus.Count}\n"));
            output.Write("#\n#                                _-----=> irqs-off/BH-disabled\n" +
                         "#                               / _----=> need-resched\n" +
                         "#                              | / _---=> hardirq/softirq\n" +
                         "#                              || / _--=> preempt-depth\n" +
                         "#                              ||| / _-=> migrate-disable\n" +
                         "#                              |||| /     delay\n" +
                         "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n" +
                         "#              | |         |   |||||     |         |\n");
            output.Write(TraceAnnotation.FormatMachine(machine.Config));
            output.Write('\n');
        }
    }

    // ---- line assembly into one reused buffer (no allocation per event) ------------------------------------

    private void Reserve(int n)
    {
        if (_len + n > _buf.Length)
            Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _len + n));
    }

    private void Put(string s)
    {
        Reserve(s.Length);
        s.CopyTo(0, _buf, _len, s.Length);
        _len += s.Length;
    }

    private void Put(char c)
    {
        Reserve(1);
        _buf[_len++] = c;
    }

    private void PutNum(long v, string? format = null)
    {
        Reserve(24);
        v.TryFormat(_buf.AsSpan(_len), out int n, format, CultureInfo.InvariantCulture);
        _len += n;
    }

    private void PutHex(ulong v, bool pad16)
    {
        Reserve(18);
        v.TryFormat(_buf.AsSpan(_len), out int n, pad16 ? "x16" : "x", CultureInfo.InvariantCulture);
        _len += n;
    }

    private void PutPadLeft(string s, int width)
    {
        for (int i = s.Length; i < width; i++)
            Put(' ');
        Put(s);
    }

    /// <summary>"            bash-2129    [001] .....   154.212930: EVENT: " — the columns before the fields.</summary>
    private void Begin(Cpu cpu, string evt)
    {
        long us = TimestampUs ?? _baseUs + (long)_clock.Elapsed.TotalMicroseconds;
        // Timestamps never go backwards within one trace buffer.
        if (us < _lastUs)
            us = _lastUs;
        _lastUs = us;
        _len = 0;
        string comm = cpu.Comm.Length > 16 ? cpu.Comm[..16] : cpu.Comm;
        PutPadLeft(comm, 16);
        Put('-');
        int start = _len;
        PutNum(cpu.Pid);
        for (int i = _len - start; i < 7; i++)
            Put(' ');
        Put(" [");
        PutNum(cpu.Id, "000");
        Put("] ");
        Put(FlagsColumn);
        Put(' ');
        start = _len;
        PutNum(us / 1_000_000);
        int digits = _len - start;
        if (digits < 5)
        {
            // Right-align the seconds in five columns, as ftrace's "%5lu".
            Reserve(5);
            Array.Copy(_buf, start, _buf, start + 5 - digits, digits);
            _buf.AsSpan(start, 5 - digits).Fill(' ');
            _len = start + 5;
        }
        Put('.');
        PutNum(us % 1_000_000, "000000");
        Put(": ");
        Put(evt);
        Put(": ");
    }

    private void End()
    {
        Put('\n');
        output.Write(_buf, 0, _len);
        Count++;
    }

    private void Site(ulong ptr)
    {
        Put("call_site=");
        Put(CallSite);
        Put(" ptr=");
        PutHex(ptr, pad16: true);
    }

    private void Gfp(Gfp gfp)
    {
        Put(" gfp_flags=");
        Put(GfpFlags.Format(gfp));
    }

    private void Accounted(bool accounted) => Put(accounted ? " node=-1 accounted=true" : " node=-1 accounted=false");

    /// <inheritdoc/>
    public void Kmalloc(Cpu cpu, ulong ptr, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted)
    {
        lock (_lock)
        {
            Begin(cpu, "kmalloc");
            Site(ptr);
            Put(" bytes_req=");
            PutNum(bytesReq);
            Put(" bytes_alloc=");
            PutNum(bytesAlloc);
            Gfp(gfp);
            Accounted(accounted);
            End();
        }
    }

    /// <inheritdoc/>
    public void Kfree(Cpu cpu, ulong ptr)
    {
        lock (_lock)
        {
            Begin(cpu, "kfree");
            Site(ptr);
            End();
        }
    }

    /// <inheritdoc/>
    public void KmemCacheAlloc(Cpu cpu, ulong ptr, string cache, long bytesReq, long bytesAlloc, Gfp gfp, bool accounted)
    {
        lock (_lock)
        {
            Begin(cpu, "kmem_cache_alloc");
            Site(ptr);
            Put(" name=");
            Put(cache);
            Put(" bytes_req=");
            PutNum(bytesReq);
            Put(" bytes_alloc=");
            PutNum(bytesAlloc);
            Gfp(gfp);
            Accounted(accounted);
            End();
        }
    }

    /// <inheritdoc/>
    public void KmemCacheFree(Cpu cpu, ulong ptr, string cache)
    {
        lock (_lock)
        {
            Begin(cpu, "kmem_cache_free");
            Site(ptr);
            Put(" name=");
            Put(cache);
            End();
        }
    }

    /// <inheritdoc/>
    public void MmPageAlloc(Cpu cpu, ulong? pfn, int order, int migratetype, Gfp gfp)
    {
        lock (_lock)
        {
            Begin(cpu, "mm_page_alloc");
            Put("page=");
            // A failed allocation prints page=0000000000000000 pfn=0x0 (the kernel's NULL page, pfn 0).
            PutHex(pfn is { } p ? machine.PageDescriptorAddress(p) : 0, pad16: true);
            Put(" pfn=0x");
            PutHex(pfn ?? 0, pad16: false);
            Put(" order=");
            PutNum(order);
            Put(" migratetype=");
            PutNum(migratetype);
            Gfp(gfp);
            End();
        }
    }

    /// <inheritdoc/>
    public void MmPageFree(Cpu cpu, ulong pfn, int order)
    {
        lock (_lock)
        {
            Begin(cpu, "mm_page_free");
            Put("page=");
            PutHex(machine.PageDescriptorAddress(pfn), pad16: true);
            Put(" pfn=0x");
            PutHex(pfn, pad16: false);
            Put(" order=");
            PutNum(order);
            End();
        }
    }

    /// <inheritdoc/>
    public void KmemCacheCreate(Cpu cpu, KmemCache cache)
    {
        lock (_lock)
            output.Write(TraceAnnotation.FormatCreate(cpu.Id, cache) + "\n");
    }

    /// <inheritdoc/>
    public void KmemCacheDestroy(Cpu cpu, KmemCache cache)
    {
        lock (_lock)
            output.Write(TraceAnnotation.FormatDestroy(cpu.Id, cache.Name) + "\n");
    }
}
