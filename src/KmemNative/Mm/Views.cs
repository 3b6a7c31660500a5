using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

// The per-process /proc files (fs/proc/task_mmu.c, fs/proc/array.c) in Linux 6.18's formats, pagemap entries,
// and crash-style vtop/vm/ps views.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    private static string Fmt(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    // pagemap bits (fs/proc/task_mmu.c).
    internal const ulong PmPfnMask = (1UL << 55) - 1;
    internal const ulong PmSoftDirty = 1UL << 55;
    internal const ulong PmMmapExclusive = 1UL << 56;
    internal const ulong PmUffdWp = 1UL << 57;
    internal const ulong PmFile = 1UL << 61;
    internal const ulong PmSwap = 1UL << 62;
    internal const ulong PmPresent = 1UL << 63;

    /// <summary>The [vsyscall] gate VMA of x86-64 (get_gate_vma()).</summary>
    private const ulong VsyscallStart = 0xffff_ffff_ff60_0000UL;

    /// <summary>The VMAs of an mm (lock held).</summary>
    internal IReadOnlyList<VmaInfo> VmaList(MmState<TArch> mm)
    {
        var list = new List<VmaInfo>();
        for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
            list.Add(new VmaInfo(v, VmStart(v), VmEnd(v), VmFlagsOf(v), VmPageProt(v), VmPgoff(v), VmFile(v), VmAnonVma(v), VmaName(mm, v)));
        return list;
    }

    /// <summary>get_vma_name(): the file's path, [heap], [stack], or nothing.</summary>
    private string VmaName(MmState<TArch> mm, ulong vma)
    {
        ulong file = VmFile(vma);
        if (file != 0)
            return FileIdentity(file).Path;
        ulong start = VmStart(vma), end = VmEnd(vma);
        ulong brk = GetMmLong(mm.H, MmOff<TArch>.Brk), startBrk = GetMmLong(mm.H, MmOff<TArch>.StartBrk);
        if (start < brk && end > startBrk)
            return "[heap]";
        ulong startStack = GetMmLong(mm.H, MmOff<TArch>.StartStack);
        if (start <= startStack && end >= startStack)
            return "[stack]";
        return "";
    }

    /// <summary>show_vma_header_prefix() + the padded name: one /proc/PID/maps line.</summary>
    private static void MapsLine(StringBuilder sb, ulong start, ulong end, VmFlags flags, ulong pgoffBytes, uint dev, ulong ino, string name)
    {
        int lineStart = sb.Length;
        sb.Append(Fmt($"{start:x8}-{end:x8} "));
        sb.Append((flags & VmFlags.Read) != 0 ? 'r' : '-');
        sb.Append((flags & VmFlags.Write) != 0 ? 'w' : '-');
        sb.Append((flags & VmFlags.Exec) != 0 ? 'x' : '-');
        sb.Append((flags & VmFlags.MayShare) != 0 ? 's' : 'p');
        sb.Append(Fmt($" {pgoffBytes:x8} {dev >> 20:x2}:{dev & 0xfffff:x2} {ino} "));
        if (name.Length != 0)
        {
            // seq_setwidth(25 + sizeof(void *) * 6 - 1) then seq_pad(m, ' ').
            int width = 25 + TArch.PointerSize * 6 - 1;
            int used = sb.Length - lineStart;
            if (used < width)
                sb.Append(' ', width - used);
            sb.Append(' ').Append(name.Replace("\n", "\\012", StringComparison.Ordinal));
        }
        sb.Append('\n');
    }

    private void VmaMapsLine(StringBuilder sb, MmState<TArch> mm, ulong v)
    {
        ulong file = VmFile(v);
        uint dev = 0;
        ulong ino = 0, pgoff = 0;
        if (file != 0)
        {
            (dev, ino, _) = FileIdentity(file);
            pgoff = VmPgoff(v) << PageSize.Shift;
        }
        MapsLine(sb, VmStart(v), VmEnd(v), VmFlagsOf(v), pgoff, dev, ino, VmaName(mm, v));
    }

    /// <summary>/proc/PID/maps.</summary>
    internal string Maps(MmState<TArch> mm)
    {
        var sb = new StringBuilder();
        using (mm.Lock.Enter())
        {
            for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
                VmaMapsLine(sb, mm, v);
        }
        if (TArch.Kind == ArchKind.X86_64)
            MapsLine(sb, VsyscallStart, VsyscallStart + PageSize.Bytes, VmFlags.Exec, 0, 0, 0, "[vsyscall]");
        return sb.ToString();
    }

    private struct SmapsStats
    {
        public ulong Resident, SharedClean, SharedDirty, PrivateClean, PrivateDirty, Referenced, Anonymous;
        public ulong Pss, PssDirty, PssLocked, PssAnon, PssFile, PssShmem;
        public ulong Swap, SwapPss;
    }

    private const int PssShift = 12;

    /// <summary>smap_gather_stats() over one VMA: only normal pages count (the zero page does not).</summary>
    private SmapsStats GatherSmaps(MmState<TArch> mm, ulong vma)
    {
        var s = new SmapsStats();
        bool locked = (VmFlagsOf(vma) & VmFlags.Locked) != 0;
        for (ulong va = VmStart(vma), end = VmEnd(vma); va < end; va += PageSize.Bytes)
        {
            byte* pte = mm.As.PteOffset(va);
            if (pte == null)
            {
                va = (va | (PageTableSpan - 1));
                continue;
            }
            ulong e = TArch.LoadPte(pte);
            if (e != 0 && (e & (PteP | PteProtNone)) == 0)
            {
                // smaps_pte_entry(): a swap entry counts in Swap, and in SwapPss divided among its users.
                int users = SwapEntryUsers(e);
                s.Swap += PageSize.Bytes;
                s.SwapPss += users >= 2 ? (PageSize.Bytes << PssShift) / (ulong)users : PageSize.Bytes << PssShift;
                continue;
            }
            if ((e & (PteP | PteProtNone)) == 0 || (e & PteSpecial) != 0)
                continue;
            ulong pfn = (e & TArch.PtePfnMask) >> PageSize.Shift;
            if (pfn == ZeroPfn)
                continue;
            byte* d = Desc(pfn);
            bool anon = PageAnon(pfn);
            bool swapbacked = MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked);
            bool dirty = (e & PteD) != 0 || MemMap<TArch>.TestFlag(d, PageFlag.Dirty);
            const ulong size = PageSize.Bytes;
            if (anon)
                s.Anonymous += size;
            s.Resident += size;
            if ((e & PteA) != 0 || MemMap<TArch>.TestFlag(d, PageFlag.Referenced))
                s.Referenced += size;
            ulong pss;
            bool priv;
            if (Refcount(pfn) == 1)
            {
                pss = size << PssShift;
                priv = true;
            }
            else
            {
                int mapcount = Mapcount(pfn);
                pss = size << PssShift;
                if (mapcount >= 2)
                    pss /= (ulong)mapcount;
                priv = mapcount < 2;
            }
            s.Pss += pss;
            if (anon)
                s.PssAnon += pss;
            else if (swapbacked)
                s.PssShmem += pss;
            else
                s.PssFile += pss;
            if (locked)
                s.PssLocked += pss;
            if (dirty)
            {
                s.PssDirty += pss;
                if (priv)
                    s.PrivateDirty += size;
                else
                    s.SharedDirty += size;
            }
            else if (priv)
            {
                s.PrivateClean += size;
            }
            else
            {
                s.SharedClean += size;
            }
        }
        return s;
    }

    private static ulong PageTableSpan => 1UL << (12 + TArch.IndexBits);

    private static readonly string[] s_mnemonics = BuildMnemonics();

    private static string[] BuildMnemonics()
    {
        var m = new string[64];
        for (int i = 0; i < 64; i++)
            m[i] = "??";
        (VmFlags Flag, string Name)[] known =
        [
            (VmFlags.Read, "rd"), (VmFlags.Write, "wr"), (VmFlags.Exec, "ex"), (VmFlags.Shared, "sh"), (VmFlags.MayRead, "mr"),
            (VmFlags.MayWrite, "mw"), (VmFlags.MayExec, "me"), (VmFlags.MayShare, "ms"), (VmFlags.GrowsDown, "gd"),
            (VmFlags.PfnMap, "pf"), (VmFlags.Locked, "lo"), (VmFlags.Io, "io"), (VmFlags.SeqRead, "sr"), (VmFlags.RandRead, "rr"),
            (VmFlags.DontCopy, "dc"), (VmFlags.DontExpand, "de"), (VmFlags.LockOnFault, "lf"), (VmFlags.Account, "ac"),
            (VmFlags.NoReserve, "nr"), (VmFlags.Hugetlb, "ht"), (VmFlags.Sync, "sf"), (VmFlags.Arch1, "ar"), (VmFlags.WipeOnFork, "wf"),
            (VmFlags.DontDump, "dd"), (VmFlags.MixedMap, "mm"), (VmFlags.HugePage, "hg"), (VmFlags.NoHugePage, "nh"),
            (VmFlags.Mergeable, "mg"), (VmFlags.UffdMissing, "um"), (VmFlags.UffdWp, "uw"),
        ];
        foreach (var (flag, name) in known)
            m[System.Numerics.BitOperations.Log2((ulong)flag)] = name;
        // CONFIG_MEM_SOFT_DIRTY (x86-64 only); pkey bits 32-35 print nothing (ProtectionKey covers them).
        m[27] = TArch.Kind == ArchKind.X86_64 ? "sd" : "??";
        if (TArch.Kind == ArchKind.X86_64)
            for (int i = 32; i < 36; i++)
                m[i] = "";
        return m;
    }

    /// <summary>show_smap_vma_flags().</summary>
    internal static string VmFlagsLine(VmFlags flags)
    {
        var sb = new StringBuilder("VmFlags: ");
        for (int i = 0; i < TArch.BitsPerLong; i++)
        {
            if (s_mnemonics[i].Length == 0)
                continue;
            if (((ulong)flags & (1UL << i)) != 0)
                sb.Append(s_mnemonics[i]).Append(' ');
        }
        return sb.Append('\n').ToString();
    }

    /// <summary>/proc/PID/smaps.</summary>
    internal string Smaps(MmState<TArch> mm)
    {
        var sb = new StringBuilder();
        using (mm.Lock.Enter())
        {
            for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
            {
                VmaMapsLine(sb, mm, v);
                SmapBody(sb, VmEnd(v) - VmStart(v), GatherSmaps(mm, v), VmFlagsOf(v), rollup: false);
            }
        }
        if (TArch.Kind == ArchKind.X86_64)
        {
            MapsLine(sb, VsyscallStart, VsyscallStart + PageSize.Bytes, VmFlags.Exec, 0, 0, 0, "[vsyscall]");
            SmapBody(sb, PageSize.Bytes, default, VmFlags.Exec, rollup: false);
        }
        return sb.ToString();
    }

    /// <summary>/proc/PID/smaps_rollup.</summary>
    internal string SmapsRollup(MmState<TArch> mm)
    {
        var sb = new StringBuilder();
        var total = new SmapsStats();
        ulong first = 0, last = 0;
        using (mm.Lock.Enter())
        {
            for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
            {
                if (first == 0)
                    first = VmStart(v);
                last = VmEnd(v);
                var s = GatherSmaps(mm, v);
                total.Resident += s.Resident; total.SharedClean += s.SharedClean; total.SharedDirty += s.SharedDirty;
                total.PrivateClean += s.PrivateClean; total.PrivateDirty += s.PrivateDirty; total.Referenced += s.Referenced;
                total.Anonymous += s.Anonymous; total.Pss += s.Pss; total.PssDirty += s.PssDirty; total.PssLocked += s.PssLocked;
                total.PssAnon += s.PssAnon; total.PssFile += s.PssFile; total.PssShmem += s.PssShmem;
                total.Swap += s.Swap; total.SwapPss += s.SwapPss;
            }
        }
        MapsLine(sb, first, last, 0, 0, 0, 0, "[rollup]");
        SmapBody(sb, 0, total, 0, rollup: true);
        return sb.ToString();
    }

    private static void SmapBody(StringBuilder sb, ulong size, SmapsStats s, VmFlags flags, bool rollup)
    {
        void Dec(string label, ulong bytes) => sb.Append(label).Append(Fmt($"{bytes >> 10,8}")).Append(" kB\n");
        if (!rollup)
        {
            Dec("Size:           ", size);
            Dec("KernelPageSize: ", PageSize.Bytes);
            Dec("MMUPageSize:    ", PageSize.Bytes);
        }
        Dec("Rss:            ", s.Resident);
        Dec("Pss:            ", s.Pss >> PssShift);
        Dec("Pss_Dirty:      ", s.PssDirty >> PssShift);
        if (rollup)
        {
            Dec("Pss_Anon:       ", s.PssAnon >> PssShift);
            Dec("Pss_File:       ", s.PssFile >> PssShift);
            Dec("Pss_Shmem:      ", s.PssShmem >> PssShift);
        }
        Dec("Shared_Clean:   ", s.SharedClean);
        Dec("Shared_Dirty:   ", s.SharedDirty);
        Dec("Private_Clean:  ", s.PrivateClean);
        Dec("Private_Dirty:  ", s.PrivateDirty);
        Dec("Referenced:     ", s.Referenced);
        Dec("Anonymous:      ", s.Anonymous);
        Dec("KSM:            ", 0);
        Dec("LazyFree:       ", 0);
        Dec("AnonHugePages:  ", 0);
        Dec("ShmemPmdMapped: ", 0);
        Dec("FilePmdMapped:  ", 0);
        Dec("Shared_Hugetlb: ", 0);
        sb.Append("Private_Hugetlb: ").Append(Fmt($"{0,7}")).Append(" kB\n");
        Dec("Swap:           ", s.Swap);
        Dec("SwapPss:        ", s.SwapPss >> PssShift);
        Dec("Locked:         ", s.PssLocked >> PssShift);
        if (!rollup)
        {
            sb.Append("THPeligible:    ").Append(Fmt($"{0,8}")).Append('\n');
            sb.Append(VmFlagsLine(flags));
        }
    }

    // ---- status, statm, stat --------------------------------------------------------------------------

    /// <summary>max_threads / 2: RLIMIT_SIGPENDING (fork_init(): totalram / (8 * THREAD_SIZE / PAGE_SIZE)).</summary>
    private long SigPendingLimit()
    {
        long threadPages = TArch.Kind == ArchKind.X86_64 ? 4 : 2;
        long maxThreads = Math.Clamp((long)_m.TotalRamPages / (8 * threadPages), 20, 0x3fff_ffff);
        return maxThreads / 2;
    }

    /// <summary>/proc/PID/status (proc_pid_status()).</summary>
    internal string Status(TaskImpl<TArch> t)
    {
        var mm = t.MmState!;
        var sb = new StringBuilder();
        sb.Append("Name:\t").Append(t.Comm).Append('\n');
        sb.Append("Umask:\t0022\n");
        sb.Append("State:\tS (sleeping)\n");
        sb.Append(Fmt($"Tgid:\t{t.Pid}\nNgid:\t0\nPid:\t{t.Pid}\nPPid:\t{t.ParentPid}\nTracerPid:\t0\n"));
        sb.Append("Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n");
        sb.Append(Fmt($"FDSize:\t{TArch.BitsPerLong}\n"));
        sb.Append("Groups:\t \n");
        sb.Append(Fmt($"NStgid:\t{t.Pid}\nNSpid:\t{t.Pid}\nNSpgid:\t{t.Pgid}\nNSsid:\t{t.Sid}\n"));
        sb.Append("Kthread:\t0\n");
        using (mm.Lock.Enter())
            TaskMem(sb, mm);
        sb.Append("CoreDumping:\t0\n");
        sb.Append(TArch.Kind == ArchKind.X86_64 ? "THP_enabled:\t1\n" : "THP_enabled:\t0\n");
        sb.Append(TArch.Kind == ArchKind.X86_64 ? "untag_mask:\t0xffffffffffffffff\n" : "untag_mask:\t0xffffffff\n");
        sb.Append(Fmt($"Threads:\t1\nSigQ:\t0/{SigPendingLimit()}\n"));
        sb.Append("SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n");
        sb.Append("SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n");
        sb.Append("CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n");
        sb.Append("CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n");
        sb.Append("NoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n");
        sb.Append("Speculation_Store_Bypass:\tthread vulnerable\nSpeculationIndirectBranch:\tconditional enabled\n");
        int ncpu = _m.Cpus.Count;
        ulong mask = ncpu >= 64 ? ulong.MaxValue : (1UL << ncpu) - 1;
        sb.Append("Cpus_allowed:\t").Append(CpumaskHex(mask, ncpu)).Append('\n');
        sb.Append("Cpus_allowed_list:\t").Append(ncpu == 1 ? "0" : Fmt($"0-{ncpu - 1}")).Append('\n');
        if (TArch.Kind == ArchKind.X86_64)
            sb.Append("Mems_allowed:\t").Append(string.Join(',', Enumerable.Repeat("00000000", 31))).Append(",00000001\n");
        else
            sb.Append("Mems_allowed:\t1\n");
        sb.Append("Mems_allowed_list:\t0\n");
        sb.Append("voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n");
        if (TArch.Kind == ArchKind.X86_64)
            sb.Append("x86_Thread_features:\t\nx86_Thread_features_locked:\t\n");
        return sb.ToString();
    }

    /// <summary>%*pb of a cpumask of <paramref name="bits"/> bits: hex in 32-bit groups separated by commas.</summary>
    private static string CpumaskHex(ulong mask, int bits)
    {
        int chunks = (bits + 31) / 32;
        var parts = new List<string>();
        for (int i = chunks - 1; i >= 0; i--)
        {
            uint word = (uint)(mask >> (32 * i));
            int digits = i == chunks - 1 ? Math.Max(1, ((bits - 32 * i) + 3) / 4) : 8;
            parts.Add(word.ToString("x" + digits, CultureInfo.InvariantCulture));
        }
        return string.Join(',', parts);
    }

    /// <summary>task_mem(): the Vm*/Rss* lines.</summary>
    private static void TaskMem(StringBuilder sb, MmState<TArch> mm)
    {
        byte* m = mm.H;
        long anon = GetMmCounter(mm, MmCounter.AnonPages), file = GetMmCounter(mm, MmCounter.FilePages);
        long shmem = GetMmCounter(mm, MmCounter.ShmemPages), swap = GetMmCounter(mm, MmCounter.SwapEnts);
        ulong totalVm = GetMmLong(m, MmOff<TArch>.TotalVm);
        ulong hiwaterVm = Math.Max(totalVm, GetMmLong(m, MmOff<TArch>.HiwaterVm));
        ulong totalRss = (ulong)(anon + file + shmem);
        ulong hiwaterRss = Math.Max(totalRss, GetMmLong(m, MmOff<TArch>.HiwaterRss));
        ulong execVm = GetMmLong(m, MmOff<TArch>.ExecVm);
        ulong startCode = GetMmLong(m, MmOff<TArch>.StartCode), endCode = GetMmLong(m, MmOff<TArch>.EndCode);
        ulong text = PageAlign(endCode) - (startCode & ~(PageSize.Bytes - 1));
        text = Math.Min(text, execVm << PageSize.Shift);
        ulong lib = (execVm << PageSize.Shift) - text;
        void Pages(string label, ulong pages) => sb.Append(label).Append(Fmt($"{pages << (PageSize.Shift - 10),8}")).Append(" kB\n");
        void Kb(string label, ulong kb) => sb.Append(label).Append(Fmt($"{kb,8}")).Append(" kB\n");
        Pages("VmPeak:\t", hiwaterVm);
        Pages("VmSize:\t", totalVm);
        Pages("VmLck:\t", GetMmLong(m, MmOff<TArch>.LockedVm));
        Pages("VmPin:\t", *(ulong*)(m + MmOff<TArch>.PinnedVm));
        Pages("VmHWM:\t", hiwaterRss);
        Pages("VmRSS:\t", totalRss);
        Pages("RssAnon:\t", (ulong)anon);
        Pages("RssFile:\t", (ulong)file);
        Pages("RssShmem:\t", (ulong)shmem);
        Pages("VmData:\t", GetMmLong(m, MmOff<TArch>.DataVm));
        Pages("VmStk:\t", GetMmLong(m, MmOff<TArch>.StackVm));
        Kb("VmExe:\t", text >> 10);
        Kb("VmLib:\t", lib >> 10);
        Kb("VmPTE:\t", GetMmLong(m, MmOff<TArch>.PgtablesBytes) >> 10);
        Pages("VmSwap:\t", (ulong)swap);
        sb.Append("HugetlbPages:\t").Append(Fmt($"{0,8}")).Append(" kB\n");
    }

    /// <summary>/proc/PID/statm (task_statm()): size resident shared text lib data dt, in pages.</summary>
    internal static string Statm(MmState<TArch> mm)
    {
        using (mm.Lock.Enter())
        {
            byte* m = mm.H;
            long shared = GetMmCounter(mm, MmCounter.FilePages) + GetMmCounter(mm, MmCounter.ShmemPages);
            ulong text = (PageAlign(GetMmLong(m, MmOff<TArch>.EndCode)) - (GetMmLong(m, MmOff<TArch>.StartCode) & ~(PageSize.Bytes - 1))) >> PageSize.Shift;
            ulong data = GetMmLong(m, MmOff<TArch>.DataVm) + GetMmLong(m, MmOff<TArch>.StackVm);
            long resident = shared + GetMmCounter(mm, MmCounter.AnonPages);
            return Fmt($"{GetMmLong(m, MmOff<TArch>.TotalVm)} {resident} {shared} {text} 0 {data} 0\n");
        }
    }

    /// <summary>/proc/PID/stat (do_task_stat(), whole process): min_flt is field 10, maj_flt field 12.</summary>
    internal string Stat(TaskImpl<TArch> t)
    {
        var mm = t.MmState!;
        byte* m = mm.H;
        var (min, maj) = t.Faults;
        ulong L(int off) => GetMmLong(m, off);
        uint flags = *(uint*)(t.H + MmOff<TArch>.TaskFlags);
        string rsslim = TArch.PointerSize == 8 ? "18446744073709551615" : "4294967295";
        using (mm.Lock.Enter())
        {
            return Fmt($"{t.Pid} ({t.Comm}) S {t.ParentPid} {t.Pgid} {t.Sid} 0 -1 {flags} {min} 0 {maj} 0 0 0 0 0 20 0 1 0 0 ") +
                   Fmt($"{L(MmOff<TArch>.TotalVm) << PageSize.Shift} {GetMmRss(mm)} {rsslim} {L(MmOff<TArch>.StartCode)} {L(MmOff<TArch>.EndCode)} {L(MmOff<TArch>.StartStack)} 0 0 0 0 0 0 1 0 0 17 0 0 0 0 0 0 ") +
                   Fmt($"{L(MmOff<TArch>.StartData)} {L(MmOff<TArch>.EndData)} {L(MmOff<TArch>.StartBrk)} {L(MmOff<TArch>.ArgStart)} {L(MmOff<TArch>.ArgEnd)} {L(MmOff<TArch>.EnvStart)} {L(MmOff<TArch>.EnvEnd)} 0\n");
        }
    }

    // ---- pagemap ----------------------------------------------------------------------------------------

    /// <summary>
    /// pagemap_pmd_range()/pte_to_pagemap_entry()/pagemap_pte_hole(): one 64-bit entry per page (the reader is
    /// privileged, so PFNs are shown).
    /// </summary>
    internal ulong[] PagemapEntries(MmState<TArch> mm, ulong addr, int count)
    {
        var result = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            ulong va = addr + ((ulong)i << PageSize.Shift);
            if (va >= TArch.TaskSizeMax || va < addr)
                break;
            ulong vma = FindVma(mm, va);
            bool inVma = vma != 0 && VmStart(vma) <= va;
            byte* pte = inVma ? mm.As.PteOffset(va) : null;
            ulong e = pte == null ? 0 : TArch.LoadPte(pte);
            ulong flags = 0, frame = 0;
            if ((e & (PteP | PteProtNone)) != 0)
            {
                ulong pfn = (e & TArch.PtePfnMask) >> PageSize.Shift;
                frame = pfn;
                flags |= PmPresent;
                if ((e & PteSoftDirty) != 0 && PteSoftDirty != 0)
                    flags |= PmSoftDirty;
                bool normal = (e & PteSpecial) == 0 && pfn != ZeroPfn;
                if (normal && !PageAnon(pfn))
                    flags |= PmFile;
                if (normal && Mapcount(pfn) == 1)
                    flags |= PmMmapExclusive;
            }
            else if (e != 0)
            {
                // A swap entry: PM_SWAP, the frame field holds type | offset << MAX_SWAPFILES_SHIFT.
                frame = PagemapSwapFrame(e, ref flags);
            }
            if (inVma && (VmFlagsOf(vma) & VmSoftDirty) != 0 && VmSoftDirty != 0)
                flags |= PmSoftDirty;
            result[i] = (frame & PmPfnMask) | flags;
        }
        return result;
    }

    // ---- vtop, vm, checks ---------------------------------------------------------------------------------

    /// <summary>crash's vtop of a user address: the walk, the PTE, the VMA, the page.</summary>
    internal string UserVtop(MmState<TArch> mm, ulong addr)
    {
        var walk = Vtop<TArch>.Walk(_m, _m.Paging.Tables, mm.As.Pgd, mm.As.PgdVa, addr);
        ulong vma = FindVma(mm, addr);
        string? block = null;
        if (vma != 0 && VmStart(vma) <= addr)
            block = VmaHeader() + VmaRow(mm, vma);
        return Vtop<TArch>.Format(_m, walk, block);
    }

    /// <summary>crash's "VMA START END FLAGS FILE" header.</summary>
    internal static string VmaHeader()
    {
        int w = 2 * TArch.PointerSize, c = w / 2 + 4;
        return Center("VMA", w) + " " + "START".PadLeft(c) + " " + "END".PadLeft(c) + "FLAGS".PadLeft(9) + " FILE\n";
    }

    internal string VmaRow(MmState<TArch> mm, ulong vma)
    {
        int w = 2 * TArch.PointerSize;
        ulong file = VmFile(vma);
        string name = file != 0 ? FileIdentity(file).Path : "";
        int c = w / 2 + 4;
        string X(ulong v) => v.ToString("x", CultureInfo.InvariantCulture);
        return vma.ToString("x" + w, CultureInfo.InvariantCulture) + " " + X(VmStart(vma)).PadLeft(c) + " " + X(VmEnd(vma)).PadLeft(c) + " " +
               X((ulong)VmFlagsOf(vma)).PadLeft(8) + " " + name + "\n";
    }

    private static string Center(string s, int width)
    {
        int extra = Math.Max(0, width - s.Length);
        return new string(' ', extra / 2) + s + new string(' ', extra - extra / 2);
    }

    /// <summary>crash's vm: the task line, the mm line, the VMAs.</summary>
    internal string VmCommand(TaskImpl<TArch> t)
    {
        var mm = t.MmState!;
        int w = 2 * TArch.PointerSize;
        var sb = new StringBuilder();
        int cpu = _m.Cpus.FirstOrDefault(c => ReferenceEquals(c.ActiveMm, mm.As))?.Id ?? 0;
        sb.Append(Fmt($"PID: {t.Pid,-6} TASK: {t.Va.ToString("x" + w, CultureInfo.InvariantCulture)}  CPU: {cpu}   COMMAND: \"{t.Comm}\"\n"));
        sb.Append(Fmt($"{Center("MM", w)}  {Center("PGD", w)}  {"RSS",6}  {"TOTAL_VM",8}\n"));
        using (mm.Lock.Enter())
        {
            ulong rss = (ulong)GetMmRss(mm) << (PageSize.Shift - 10), total = GetMmLong(mm.H, MmOff<TArch>.TotalVm) << (PageSize.Shift - 10);
            sb.Append(Fmt($"{mm.Va.ToString("x" + w, CultureInfo.InvariantCulture)}  {mm.As.PgdVa.ToString("x" + w, CultureInfo.InvariantCulture)}  {rss + "k",6}  {total + "k",8}\n"));
            sb.Append(VmaHeader());
            for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
                sb.Append(VmaRow(mm, v));
        }
        return sb.ToString();
    }
}
