using System.Globalization;
using System.Text;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// slab_debug: red zones, poisoning, user tracking, the consistency checks, and the reports in the kernel's layout
// (mm/slub.c: slab_bug, print_trailer, check_bytes_and_report, object_err, slab_err, slab_fix).
internal sealed unsafe partial class SlabAllocator<TArch>
{
    /// <summary>Reports produced by the current public operation on this thread (nested calls share them).</summary>
    private sealed class OpState
    {
        public int Depth;
        public readonly List<SlabBugReport> Reports = [];
        /// <summary>slab_add_kunit_errors() count: one per BUG report and one per FIX line.</summary>
        public int Errors;
    }

    [ThreadStatic] private static OpState? t_op;

    private static void BeginOp()
    {
        var op = t_op ??= new OpState();
        if (op.Depth++ == 0)
        {
            op.Reports.Clear();
            op.Errors = 0;
        }
    }

    /// <summary>Ends an operation; the outermost one raises what was found.</summary>
    private static void EndOp()
    {
        var op = t_op!;
        if (--op.Depth == 0 && op.Reports.Count > 0)
        {
            var reports = op.Reports.ToArray();
            op.Reports.Clear();
            throw new SlabBugException(reports);
        }
    }

    /// <summary>Ends an outermost operation returning its reports instead of raising them (validate).</summary>
    private static (SlabBugReport[] Reports, int Errors) EndOpCollect()
    {
        var op = t_op!;
        op.Depth--;
        var result = (op.Reports.ToArray(), op.Errors);
        op.Reports.Clear();
        op.Errors = 0;
        return result;
    }

    private void Report(SlabBug bug, string cache, ulong address, string text)
    {
        var op = t_op ??= new OpState();
        op.Reports.Add(new SlabBugReport(bug, cache, address, text));
        op.Errors++;
        _m.Log.Err(text);
    }

    private void AppendToLastReport(string text)
    {
        var op = t_op!;
        if (op.Reports.Count > 0)
            op.Reports[^1] = op.Reports[^1] with { Report = op.Reports[^1].Report + "\n" + text };
        _m.Log.Warn(text);
        _m.AddTaint(Machine.TaintWarn);
    }

    /// <summary>slab_fix(): "FIX cache: what was done", attached to the report it repairs.</summary>
    private void SlabFix(KmemCache s, string message)
    {
        string line = $"FIX {s.Name}: {message}";
        var op = t_op ??= new OpState();
        op.Errors++;
        if (op.Reports.Count > 0)
            op.Reports[^1] = op.Reports[^1] with { Report = op.Reports[^1].Report + "\n" + line };
        _m.Log.Err(line);
    }

    /// <summary>%p with no_hash_pointers (slab_debug turns it on): the raw address, zero-padded.</summary>
    private static string P(ulong v) => v.ToString(TArch.PointerSize == 8 ? "x16" : "x8", CultureInfo.InvariantCulture);

    /// <summary>slab_bug(): the header every SLUB report starts with.</summary>
    private void SlabBugHeader(StringBuilder sb, KmemCache s, string reason)
    {
        sb.Append(new string('=', 77)).Append('\n');
        sb.Append("BUG ").Append(s.Name).Append(" (").Append(_m.TaintText).Append("): ").Append(reason).Append('\n');
        sb.Append(new string('-', 77)).Append("\n\n");
    }

    /// <summary>object_err(): the header and the object's trailer.</summary>
    private void ObjectErr(KmemCache s, ulong slabVa, ulong obj, string reason, SlabBug bug, bool printTrailer)
    {
        var sb = new StringBuilder();
        SlabBugHeader(sb, s, reason);
        if (printTrailer && IsObjectOf(s, SlabHost(slabVa), obj))
            PrintTrailer(sb, s, slabVa, obj);
        else
            PrintSlabInfo(sb, slabVa);
        Report(bug, s.Name, obj, sb.ToString().TrimEnd('\n'));
        _m.AddTaint(Machine.TaintBadPage);
    }

    /// <summary>slab_err(): the header and the slab's line.</summary>
    private void SlabErr(KmemCache s, ulong slabVa, string reason, SlabBug bug, ulong address)
    {
        var sb = new StringBuilder();
        SlabBugHeader(sb, s, reason);
        PrintSlabInfo(sb, slabVa);
        Report(bug, s.Name, address, sb.ToString().TrimEnd('\n'));
        _m.AddTaint(Machine.TaintBadPage);
    }

    /// <summary>print_slab_info(): "Slab 0x... objects=N used=N fp=0x... flags=0x...(...)".</summary>
    private void PrintSlabInfo(StringBuilder sb, ulong slabVa)
    {
        byte* slab = SlabHost(slabVa);
        ulong c = Ld(slab + HotSlab<TArch>.SlabCounters);
        sb.Append("Slab 0x").Append(P(slabVa)).Append(" objects=").Append(SlabCounters.Objects(c))
          .Append(" used=").Append(SlabCounters.Inuse(c)).Append(" fp=0x").Append(P(Ld(slab + HotSlab<TArch>.SlabFreelist)))
          .Append(" flags=").Append(BadPageReport<TArch>.FormatFlags(MemMap<TArch>.Flags(slab))).Append('\n');
    }

    /// <summary>print_trailer(): tracking, slab, object line, then the red zones, object and padding in hex.</summary>
    private void PrintTrailer(StringBuilder sb, KmemCache s, ulong slabVa, ulong p)
    {
        ulong addr = PageAddress(PfnOfSlab(slabVa));
        PrintTracking(sb, s, p);
        PrintSlabInfo(sb, slabVa);
        sb.Append("Object 0x").Append(P(p)).Append(" @offset=").Append(p - addr).Append(" fp=0x").Append(P(GetFreePointer(s, p))).Append("\n\n");
        if ((s.Flags & SlabFlags.RedZone) != 0)
            PrintSection(sb, "Redzone  ", p - (ulong)s.RedLeftPad, s.RedLeftPad);
        else if (p > addr + 16)
            PrintSection(sb, "Bytes b4 ", p - 16, 16);
        PrintSection(sb, "Object   ", p, Math.Min(s.ObjectSize, PageSize.Int));
        if ((s.Flags & SlabFlags.RedZone) != 0)
            PrintSection(sb, "Redzone  ", p + (ulong)s.ObjectSize, s.Inuse - s.ObjectSize);
        int off = InfoEnd(s);
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            off += 2 * _l.Track.Size;
        if (HasOrigSize(s))
            off += sizeof(uint);
        if (off != SizeFromObject(s))
            PrintSection(sb, "Padding  ", p + (ulong)off, SizeFromObject(s) - off);
    }

    /// <summary>print_hex_dump(KERN_ERR, text, DUMP_PREFIX_ADDRESS, 16, 1, addr, len, true).</summary>
    private void PrintSection(StringBuilder sb, string text, ulong va, int length)
    {
        byte* p = HostOfLinear(va);
        for (int i = 0; i < length; i += 16)
        {
            int n = Math.Min(16, length - i);
            sb.Append(text).Append(P(va + (ulong)i)).Append(": ");
            HexLine(sb, p + i, n);
            sb.Append('\n');
        }
    }

    /// <summary>hex_dump_to_buffer() with rowsize 16, groupsize 1 and ASCII: the ASCII column starts at 49.</summary>
    internal static void HexLine(StringBuilder sb, byte* p, int n)
    {
        int start = sb.Length;
        for (int j = 0; j < n; j++)
        {
            if (j > 0)
                sb.Append(' ');
            sb.Append(p[j].ToString("x2", CultureInfo.InvariantCulture));
        }
        while (sb.Length - start < 49)
            sb.Append(' ');
        for (int j = 0; j < n; j++)
            sb.Append(p[j] is >= 0x20 and < 0x7f ? (char)p[j] : '.');
    }

    // ---- object layout helpers ------------------------------------------------------------------------------

    /// <summary>freeptr_outside_object().</summary>
    private static bool FreeptrOutside(KmemCache s) => s.Offset >= s.Inuse;

    /// <summary>get_info_end(): end of object, red zone and an outside free pointer.</summary>
    private static int InfoEnd(KmemCache s) => FreeptrOutside(s) ? s.Inuse + TArch.PointerSize : s.Inuse;

    private static int SizeFromObject(KmemCache s) => (s.Flags & SlabFlags.RedZone) != 0 ? s.Size - s.RedLeftPad : s.Size;

    /// <summary>slub_debug_orig_size(): kmalloc caches with SLAB_STORE_USER remember the size asked for.</summary>
    private static bool HasOrigSize(KmemCache s) =>
        (s.Flags & (SlabFlags.StoreUser | SlabFlags.Kmalloc)) == (SlabFlags.StoreUser | SlabFlags.Kmalloc);

    private ulong TrackVa(KmemCache s, ulong obj, TrackItem item) => obj + (ulong)InfoEnd(s) + (ulong)((int)item * _l.Track.Size);

    private void SetOrigSize(KmemCache s, ulong obj, uint size)
    {
        if (HasOrigSize(s))
            *(uint*)HostOfLinear(obj + (ulong)InfoEnd(s) + (ulong)(2 * _l.Track.Size)) = size;
    }

    private uint GetOrigSize(KmemCache s, ulong obj) =>
        HasOrigSize(s) ? *(uint*)HostOfLinear(obj + (ulong)InfoEnd(s) + (ulong)(2 * _l.Track.Size)) : (uint)s.ObjectSize;

    /// <summary>init_object(): left red zone, poison (0x6b.. 0xa5) or nothing, right red zone (and kmalloc red zone).</summary>
    private void InitObject(KmemCache s, ulong obj, byte val)
    {
        byte* p = HostOfLinear(obj);
        int poisonSize = s.ObjectSize;
        if ((s.Flags & SlabFlags.RedZone) != 0)
        {
            new Span<byte>(p - s.RedLeftPad, s.RedLeftPad).Fill(val);
            if (HasOrigSize(s) && val == SlabPoison.RedActive)
                poisonSize = (int)Math.Min(GetOrigSize(s, obj), (uint)s.ObjectSize);
        }
        if ((s.Flags & SlabFlags.ObjectPoison) != 0 && poisonSize > 0)
        {
            new Span<byte>(p, poisonSize - 1).Fill(SlabPoison.Free);
            p[poisonSize - 1] = SlabPoison.End;
        }
        if ((s.Flags & SlabFlags.RedZone) != 0)
            new Span<byte>(p + poisonSize, s.Inuse - poisonSize).Fill(val);
    }

    private void InitTracking(KmemCache s, ulong obj)
    {
        if ((s.Flags & SlabFlags.StoreUser) != 0)
            new Span<byte>(HostOfLinear(TrackVa(s, obj, TrackItem.Alloc)), 2 * _l.Track.Size).Clear();
    }

    /// <summary>set_track(): who (call site), where (cpu), which task (pid), when (jiffies).</summary>
    private void SetTrack(Cpu cpu, KmemCache s, ulong obj, TrackItem item, string site)
    {
        byte* t = HostOfLinear(TrackVa(s, obj, item));
        var L = _l.Track;
        St(t + L.Offset("addr"), CallSiteAddress(cpu.Caller ?? site));
        *(int*)(t + L.Offset("cpu")) = cpu.Id;
        *(int*)(t + L.Offset("pid")) = cpu.Pid;
        St(t + L.Offset("when"), _m.TickJiffies());
    }

    /// <summary>A track as recorded in the arena.</summary>
    internal (ulong Addr, int Cpu, int Pid, ulong When) ReadTrack(KmemCache s, ulong obj, TrackItem item)
    {
        byte* t = HostOfLinear(TrackVa(s, obj, item));
        var L = _l.Track;
        return (Ld(t + L.Offset("addr")), *(int*)(t + L.Offset("cpu")), *(int*)(t + L.Offset("pid")), Ld(t + L.Offset("when")));
    }

    /// <summary>print_tracking(): "Allocated in SITE age=N cpu=N pid=N" and "Freed in ...".</summary>
    private void PrintTracking(StringBuilder sb, KmemCache s, ulong obj)
    {
        if ((s.Flags & SlabFlags.StoreUser) == 0)
            return;
        ulong now = _m.Jiffies;
        foreach (var (item, label) in new[] { (TrackItem.Alloc, "Allocated"), (TrackItem.Free, "Freed") })
        {
            var t = ReadTrack(s, obj, item);
            if (t.Addr == 0)
                continue;
            sb.Append(label).Append(" in ").Append(CallSiteText(t.Addr)).Append(" age=").Append(Mask(now - t.When))
              .Append(" cpu=").Append((uint)t.Cpu).Append(" pid=").Append(t.Pid).Append('\n');
        }
    }

    private static ulong Mask(ulong v) => TArch.PointerSize == 8 ? v : v & 0xffff_ffff;

    /// <summary>trace(): SLAB_TRACE logs each alloc and free.</summary>
    private void Trace(KmemCache s, ulong slabVa, ulong obj, bool alloc)
    {
        if ((s.Flags & SlabFlags.Trace) == 0)
            return;
        byte* slab = SlabHost(slabVa);
        var sb = new StringBuilder();
        sb.Append("TRACE ").Append(s.Name).Append(alloc ? " alloc" : " free").Append(" 0x").Append(P(obj))
          .Append(" inuse=").Append(SlabCounters.Inuse(Ld(slab + HotSlab<TArch>.SlabCounters)))
          .Append(" fp=0x").Append(P(Ld(slab + HotSlab<TArch>.SlabFreelist))).Append('\n');
        if (!alloc)
            PrintSection(sb, "Object ", obj, s.ObjectSize);
        _m.Log.Info(sb.ToString().TrimEnd('\n'));
    }

    // ---- the checks -----------------------------------------------------------------------------------------

    private static SlabBug BugOf(string what) => what switch
    {
        "Left Redzone" => SlabBug.LeftRedzoneOverwritten,
        "Right Redzone" => SlabBug.RightRedzoneOverwritten,
        "kmalloc Redzone" => SlabBug.KmallocRedzoneOverwritten,
        "Poison" or "End Poison" => SlabBug.PoisonOverwritten,
        _ => SlabBug.PaddingOverwritten,
    };

    /// <summary>check_bytes_and_report(): the first byte that differs is reported, then the range restored.</summary>
    private bool CheckBytesAndReport(KmemCache s, ulong slabVa, ulong obj, string what, ulong start, byte value, int bytes)
    {
        if (bytes <= 0)
            return true;
        byte* p = HostOfLinear(start);
        int fault = new ReadOnlySpan<byte>(p, bytes).IndexOfAnyExcept(value);
        if (fault < 0)
            return true;
        int end = bytes;
        while (end > fault && p[end - 1] == value)
            end--;
        ulong addr = PageAddress(PfnOfSlab(slabVa));
        var sb = new StringBuilder();
        SlabBugHeader(sb, s, what + " overwritten");
        sb.Append("0x").Append(P(start + (ulong)fault)).Append("-0x").Append(P(start + (ulong)end - 1))
          .Append(" @offset=").Append(start + (ulong)fault - addr).Append(". First byte 0x").Append(p[fault].ToString("x", CultureInfo.InvariantCulture))
          .Append(" instead of 0x").Append(value.ToString("x", CultureInfo.InvariantCulture)).Append('\n');
        PrintTrailer(sb, s, slabVa, obj);
        Report(BugOf(what), s.Name, obj, sb.ToString().TrimEnd('\n'));
        _m.AddTaint(Machine.TaintBadPage);
        // restore_bytes()
        SlabFix(s, $"Restoring {what} 0x{P(start + (ulong)fault)}-0x{P(start + (ulong)end - 1)}=0x{value:x}");
        new Span<byte>(p + fault, end - fault).Fill(value);
        return false;
    }

    /// <summary>
    /// check_object(): red zones (and the kmalloc red zone past the size asked for), poison of a free object,
    /// padding, and the free pointer. Every problem is reported and repaired; false if there was any.
    /// </summary>
    private bool CheckObject(KmemCache s, ulong slabVa, ulong obj, byte val)
    {
        bool ok = true;
        ulong end = obj + (ulong)s.ObjectSize;
        if ((s.Flags & SlabFlags.RedZone) != 0)
        {
            ok &= CheckBytesAndReport(s, slabVa, obj, "Left Redzone", obj - (ulong)s.RedLeftPad, val, s.RedLeftPad);
            ok &= CheckBytesAndReport(s, slabVa, obj, "Right Redzone", end, val, s.Inuse - s.ObjectSize);
            if (HasOrigSize(s) && val == SlabPoison.RedActive)
            {
                uint orig = GetOrigSize(s, obj);
                if ((uint)s.ObjectSize > orig)
                    ok &= CheckBytesAndReport(s, slabVa, obj, "kmalloc Redzone", obj + orig, val, s.ObjectSize - (int)orig);
            }
        }
        else if ((s.Flags & SlabFlags.Poison) != 0 && s.ObjectSize < s.Inuse)
        {
            ok &= CheckBytesAndReport(s, slabVa, obj, "Alignment padding", end, SlabPoison.Inuse, s.Inuse - s.ObjectSize);
        }
        if ((s.Flags & SlabFlags.Poison) != 0)
        {
            if (val != SlabPoison.RedActive && (s.Flags & SlabFlags.ObjectPoison) != 0)
            {
                ok &= CheckBytesAndReport(s, slabVa, obj, "Poison", obj, SlabPoison.Free, s.ObjectSize - 1);
                ok &= CheckBytesAndReport(s, slabVa, obj, "End Poison", end - 1, SlabPoison.End, 1);
            }
            ok &= CheckPadBytes(s, slabVa, obj);
        }
        // While allocated, a free pointer inside the object is the caller's data.
        if (FreeptrOutside(s) || val != SlabPoison.RedActive)
        {
            ulong fp = GetFreePointer(s, obj);
            if (fp != 0 && !IsObjectOf(s, SlabHost(slabVa), fp))
            {
                ObjectErr(s, slabVa, obj, "Freepointer corrupt", SlabBug.FreechainCorrupt, printTrailer: true);
                SetFreePointer(s, obj, 0);
                ok = false;
            }
        }
        return ok;
    }

    /// <summary>check_pad_bytes(): the padding after the metadata must still be POISON_INUSE.</summary>
    private bool CheckPadBytes(KmemCache s, ulong slabVa, ulong obj)
    {
        int off = InfoEnd(s);
        if ((s.Flags & SlabFlags.StoreUser) != 0)
        {
            off += 2 * _l.Track.Size;
            if ((s.Flags & SlabFlags.Kmalloc) != 0)
                off += sizeof(uint);
        }
        if (SizeFromObject(s) == off)
            return true;
        return CheckBytesAndReport(s, slabVa, obj, "Object padding", obj + (ulong)off, SlabPoison.Inuse, SizeFromObject(s) - off);
    }

    /// <summary>slab_pad_check(): the bytes past the last object of a poisoned slab.</summary>
    private void SlabPadCheck(KmemCache s, ulong slabVa)
    {
        if ((s.Flags & SlabFlags.Poison) == 0)
            return;
        ulong start = PageAddress(PfnOfSlab(slabVa));
        int length = PageSize.Int << SlabOrder(SlabHost(slabVa));
        int remainder = length % s.Size;
        if (remainder == 0)
            return;
        ulong pad = start + (ulong)(length - remainder);
        byte* p = HostOfLinear(pad);
        int fault = new ReadOnlySpan<byte>(p, remainder).IndexOfAnyExcept(SlabPoison.Inuse);
        if (fault < 0)
            return;
        int end = remainder;
        while (end > fault && p[end - 1] == SlabPoison.Inuse)
            end--;
        var sb = new StringBuilder();
        SlabBugHeader(sb, s, $"Padding overwritten. 0x{P(pad + (ulong)fault)}-0x{P(pad + (ulong)end - 1)} @offset={pad + (ulong)fault - start}");
        PrintSlabInfo(sb, slabVa);
        PrintSection(sb, "Padding ", pad, remainder);
        Report(SlabBug.PaddingOverwritten, s.Name, pad + (ulong)fault, sb.ToString().TrimEnd('\n'));
        _m.AddTaint(Machine.TaintBadPage);
        SlabFix(s, $"Restoring slab padding 0x{P(pad + (ulong)fault)}-0x{P(pad + (ulong)end - 1)}=0x{SlabPoison.Inuse:x}");
        new Span<byte>(p + fault, end - fault).Fill(SlabPoison.Inuse);
    }

    /// <summary>check_slab(): a slab page whose counters fit its order.</summary>
    private bool CheckSlab(KmemCache s, ulong slabVa)
    {
        byte* slab = SlabHost(slabVa);
        if (MemMap<TArch>.PageType(slab) >> 24 != PageBits.PgtySlab)
        {
            SlabErr(s, slabVa, "Not a valid slab page", SlabBug.SlabCorrupt, slabVa);
            return false;
        }
        ulong c = Ld(slab + HotSlab<TArch>.SlabCounters);
        uint maxobj = OrderObjects(SlabOrder(slab), (uint)s.Size);
        if (SlabCounters.Objects(c) > maxobj)
        {
            SlabErr(s, slabVa, $"objects {SlabCounters.Objects(c)} > max {maxobj}", SlabBug.SlabCorrupt, slabVa);
            return false;
        }
        if (SlabCounters.Inuse(c) > SlabCounters.Objects(c))
        {
            SlabErr(s, slabVa, $"inuse {SlabCounters.Inuse(c)} > max {SlabCounters.Objects(c)}", SlabBug.SlabCorrupt, slabVa);
            return false;
        }
        SlabPadCheck(s, slabVa);
        return true;
    }

    /// <summary>
    /// on_freelist(): is <paramref name="search"/> on the slab's freelist? Walking it repairs what it finds: a
    /// corrupt link is cut, a wrong object count adjusted. With search = 0 it validates the freelist.
    /// </summary>
    private bool OnFreelist(KmemCache s, ulong slabVa, ulong search)
    {
        byte* slab = SlabHost(slabVa);
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        int nr = 0;
        ulong fp = Ld(slab + HotSlab<TArch>.SlabFreelist);
        ulong obj = 0;
        while (fp != 0 && nr <= objects)
        {
            if (fp == search)
                return true;
            if (!IsObjectOf(s, slab, fp))
            {
                if (obj != 0)
                {
                    ObjectErr(s, slabVa, obj, "Freechain corrupt", SlabBug.FreechainCorrupt, printTrailer: true);
                    SetFreePointer(s, obj, 0);
                }
                else
                {
                    SlabErr(s, slabVa, "Freepointer corrupt", SlabBug.FreechainCorrupt, fp);
                    St(slab + HotSlab<TArch>.SlabFreelist, 0);
                    St(slab + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(Ld(slab + HotSlab<TArch>.SlabCounters), objects));
                    SlabFix(s, "Freelist cleared");
                    return false;
                }
                break;
            }
            obj = fp;
            fp = GetFreePointer(s, obj);
            nr++;
        }
        uint maxObjects = Math.Min(OrderObjects(SlabOrder(slab), (uint)s.Size), (uint)SlubConst.MaxObjsPerPage);
        ulong counters = Ld(slab + HotSlab<TArch>.SlabCounters);
        if (SlabCounters.Objects(counters) != maxObjects)
        {
            SlabErr(s, slabVa, $"Wrong number of objects. Found {SlabCounters.Objects(counters)} but should be {maxObjects}", SlabBug.SlabCorrupt, slabVa);
            counters = SlabCounters.Make(SlabCounters.Inuse(counters), maxObjects, SlabCounters.Frozen(counters));
            St(slab + HotSlab<TArch>.SlabCounters, counters);
            SlabFix(s, "Number of objects adjusted");
        }
        uint counted = SlabCounters.Objects(counters) - (uint)nr;
        if (SlabCounters.Inuse(counters) != counted)
        {
            SlabErr(s, slabVa, $"Wrong object count. Counter is {SlabCounters.Inuse(counters)} but counted were {counted}", SlabBug.SlabCorrupt, slabVa);
            St(slab + HotSlab<TArch>.SlabCounters, SlabCounters.WithInuse(counters, counted));
            SlabFix(s, "Object count adjusted");
        }
        return search == 0;
    }

    /// <summary>alloc_debug_processing(): the checks on the object being handed out, then its setup.</summary>
    private bool AllocDebugProcessing(Cpu cpu, KmemCache s, ulong slabVa, ulong obj, uint origSize)
    {
        if ((s.Flags & SlabFlags.ConsistencyChecks) != 0)
        {
            if (!CheckSlab(s, slabVa))
                return false;
            if (!CheckObject(s, slabVa, obj, SlabPoison.RedInactive))
                return false;
        }
        Trace(s, slabVa, obj, alloc: true);
        SetOrigSize(s, obj, origSize);
        InitObject(s, obj, SlabPoison.RedActive);
        return true;
    }

    /// <summary>freelist_corrupted(): a link leaving the slab is cut (the objects after it are lost, as in the kernel).</summary>
    private void ReportFreechain(KmemCache s, ulong slabVa, ulong before, ulong bad, string reason)
    {
        if (before != 0)
            ObjectErr(s, slabVa, before, reason, SlabBug.FreechainCorrupt, printTrailer: true);
        else
            SlabErr(s, slabVa, $"Freepointer corrupt: 0x{P(bad)} is not an object of this slab", SlabBug.FreechainCorrupt, bad);
        SlabFix(s, "Isolate corrupted freechain");
    }

    /// <summary>A free of an address outside the machine's direct map: the page fault the kernel would take.</summary>
    private void ReportBadAddress(KmemCache? s, ulong obj, string site)
    {
        string text = $"BUG: unable to handle page fault for address: {P(obj)}\n" +
                      "#PF: supervisor read access in kernel mode\n" +
                      "#PF: error_code(0x0000) - not-present page\n" +
                      $"({site}: 0x{P(obj)} is outside the direct map of this machine's RAM)";
        Report(SlabBug.InvalidObjectPointer, s?.Name ?? "kmalloc", obj, text);
    }

    /// <summary>A free of memory that is not a slab object: virt_to_cache()'s warning, or kfree()'s dump_page().</summary>
    private void ReportNotSlab(KmemCache? s, ulong obj, ulong pfn, string site)
    {
        var sb = new StringBuilder();
        sb.Append("------------[ cut here ]------------\n");
        if (s is not null)
        {
            sb.Append("virt_to_cache: Object is not a Slab page!\n");
        }
        else
        {
            sb.Append("WARNING: CPU: ").Append(_m.Cpus[0].Id).Append(" at mm/slub.c free_large_kmalloc\n");
            sb.Append(site).Append("(0x").Append(P(obj)).Append(")\n");
        }
        BadPageReport<TArch>.DumpPage(sb, _mm, pfn);
        sb.Append("page dumped because: Not a kmalloc allocation");
        Report(SlabBug.InvalidObjectPointer, s?.Name ?? "kmalloc", obj, sb.ToString());
        _m.AddTaint(Machine.TaintWarn);
    }

    /// <summary>list_slab_objects(): the slab's error line, then every object still allocated.</summary>
    private void ListSlabObjects(KmemCache s, ulong slabVa, string text)
    {
        byte* slab = SlabHost(slabVa);
        var free = FreeObjectsOf(s, slabVa);
        var sb = new StringBuilder();
        SlabBugHeader(sb, s, text);
        PrintSlabInfo(sb, slabVa);
        ulong addr = PageAddress(PfnOfSlab(slabVa));
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        ulong p = addr + (ulong)s.RedLeftPad;
        for (uint i = 0; i < objects; i++, p += (ulong)s.Size)
        {
            if (free.Contains(p))
                continue;
            sb.Append("Object 0x").Append(P(p)).Append(" @offset=").Append(p - addr).Append('\n');
            PrintTracking(sb, s, p);
        }
        Report(SlabBug.ObjectsRemaining, s.Name, slabVa, sb.ToString().TrimEnd('\n'));
        _m.AddTaint(Machine.TaintBadPage);
    }

    /// <summary>__fill_map(): the objects on the slab's freelist (and, for a CPU slab, on the CPU's freelist).</summary>
    internal HashSet<ulong> FreeObjectsOf(KmemCache s, ulong slabVa)
    {
        byte* slab = SlabHost(slabVa);
        var free = new HashSet<ulong>();
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        for (ulong fp = Ld(slab + HotSlab<TArch>.SlabFreelist); fp != 0 && free.Count <= objects && IsObjectOf(s, slab, fp); fp = GetFreePointer(s, fp))
        {
            if (!free.Add(fp))
                break;
        }
        return free;
    }
}
