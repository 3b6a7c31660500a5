using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

// Process creation (a fork of nothing plus an exec: mm_alloc(), the ELF-like layout of load_elf_binary() and
// setup_arg_pages()), fork (dup_mm / dup_mmap / copy_page_range) and exit (exit_mm / mmput / exit_mmap / mmdrop,
// release_task).
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>Where non-PIE executables are linked: 0x400000 (x86-64 ld) / 0x08048000 (i386 ld).</summary>
    internal static ulong TextStart => TArch.Kind == ArchKind.X86_64 ? 0x40_0000UL : 0x0804_8000UL;

    /// <summary>The emulated program's sections: 64 KiB of text, 8 KiB of data, 8 KiB of bss.</summary>
    internal const ulong TextBytes = 0x1_0000, DataBytes = 0x2000, BssBytes = 0x2000;

    /// <summary>STACK_TOP = TASK_SIZE (no randomization).</summary>
    internal static ulong StackTop => TArch.TaskSizeMax;

    /// <summary>The initial stack: one argument page plus setup_arg_pages()'s 128 KiB.</summary>
    internal const ulong InitialStackBytes = PageSize.Bytes + 131072;

    /// <summary>
    /// mmap_base() without randomization: TASK_SIZE minus the stack gap (RLIMIT_STACK + stack_guard_gap, clamped
    /// to at least 128 MiB and at most 5/6 of the address space).
    /// </summary>
    internal static ulong MmapBase(ulong taskSize)
    {
        ulong gap = RlimitStack + StackGuardGap;
        ulong gapMin = 128UL << 20, gapMax = taskSize / 6 * 5;
        gap = Math.Clamp(gap, gapMin, gapMax);
        return PageAlign(taskSize - gap);
    }

    /// <summary>A new process running /usr/bin/COMM (what fork() of init plus execve() leave behind).</summary>
    internal TaskImpl<TArch> Spawn(Cpu cpu, string comm)
    {
        ArgumentException.ThrowIfNullOrEmpty(comm);
        if (comm.Contains('/', StringComparison.Ordinal) || comm.Contains('\n', StringComparison.Ordinal))
            throw new ArgumentException($"'{comm}': a command name has no '/' or newline", nameof(comm));
        EnsureInit(cpu);
        string name = comm.Length > 15 ? comm[..15] : comm;
        int pid = ReservePid();
        if (pid < 0)
            throw new KmemException("fork(): no free pid (-EAGAIN)");
        var mm = MmAlloc(cpu) ?? throw new KmemException("fork(): out of memory for an mm_struct (-ENOMEM)");
        ulong taskVa = Zalloc(cpu, TaskCache);
        if (taskVa == 0)
        {
            MmFree(cpu, mm);
            throw new KmemException("fork(): out of memory for a task_struct (-ENOMEM)");
        }
        var task = InitTask(taskVa, pid, name, mm, parent: null);
        mm.Owner = task;
        Errno err;
        using (mm.Lock.Enter())
            err = ExecLayout(cpu, mm, "/usr/bin/" + comm);
        if (err != Errno.None)
        {
            ExitMmap(cpu, mm);
            MmFree(cpu, mm);
            Free(cpu, TaskCache, taskVa);
            throw new KmemException($"execve(/usr/bin/{comm}): -{err} ({ErrnoText.Message(err)})");
        }
        AddTask(task);
        WriteArgsAndEnv(cpu, task, mm, "/usr/bin/" + comm, [name], ["HOME=/", "TERM=linux", "PATH=/usr/local/bin:/usr/bin:/bin"]);
        return task;
    }

    private TaskImpl<TArch> InitTask(ulong taskVa, int pid, string comm, MmState<TArch> mm, TaskImpl<TArch>? parent)
    {
        byte* h = Obj(taskVa, L.Task.Size);
        *(int*)(h + MmOff<TArch>.TaskUsage) = 1;
        *(int*)(h + MmOff<TArch>.TaskPid) = pid;
        *(int*)(h + MmOff<TArch>.TaskTgid) = pid;
        *(uint*)(h + MmOff<TArch>.TaskFlags) = parent is null ? 0u : 0x40u; // PF_FORKNOEXEC for a forked child
        TArch.StoreLong(h + MmOff<TArch>.TaskMm, mm.Va);
        TArch.StoreLong(h + MmOff<TArch>.TaskActiveMm, mm.Va);
        TArch.StoreLong(h + MmOff<TArch>.TaskGroupLeader, taskVa);
        TArch.StoreLong(h + MmOff<TArch>.TaskRealParent, parent?.Va ?? 0);
        TArch.StoreLong(h + MmOff<TArch>.TaskParent, parent?.Va ?? 0);
        _m.MemMap.InitListHead(taskVa + (ulong)MmOff<TArch>.TaskTasks);
        _m.MemMap.InitListHead(taskVa + (ulong)MmOff<TArch>.TaskChildren);
        _m.MemMap.InitListHead(taskVa + (ulong)MmOff<TArch>.TaskSibling);
        if (parent is not null)
            _m.MemMap.ListAddTail(taskVa + (ulong)MmOff<TArch>.TaskSibling, parent.Va + (ulong)MmOff<TArch>.TaskChildren);
        TaskImpl<TArch>.WriteComm(h, comm);
        return new TaskImpl<TArch>(this, taskVa, h, pid, comm, mm, parent?.Pid ?? 1)
        {
            Pgid = parent?.Pgid ?? pid,
            Sid = parent?.Sid ?? pid,
        };
    }

    /// <summary>mm_alloc() + mm_init(): a zeroed mm_struct with a new pgd, one user and one reference.</summary>
    private MmState<TArch>? MmAlloc(Cpu cpu)
    {
        ulong va = Zalloc(cpu, MmCache);
        if (va == 0)
            return null;
        UserAddressSpace<TArch> space;
        try
        {
            space = (UserAddressSpace<TArch>)_m.CreateAddressSpace(cpu);
        }
        catch (KmemException)
        {
            Free(cpu, MmCache, va);
            return null;
        }
        byte* h = Obj(va, L.MmObjectSize);
        var mm = new MmState<TArch>(va, h, space);
        InitMmFields(mm);
        SetMmLong(h, MmOff<TArch>.MmapBase, MmapBase(TArch.TaskSizeMax));
        SetMmLong(h, MmOff<TArch>.MmapLegacyBase, TaskUnmappedBase);
        if (TArch.Kind == ArchKind.X86_64)
        {
            // The compat bases of 32-bit syscalls: task_size_32bit() = IA32_PAGE_OFFSET (0xFFFFe000).
            SetMmLong(h, L.MmStruct.Offset("mmap_compat_base"), MmapBase(0xFFFF_E000));
            SetMmLong(h, L.MmStruct.Offset("mmap_compat_legacy_base"), PageAlign(0xFFFF_E000UL / 3));
        }
        SetMmLong(h, MmOff<TArch>.TaskSize, TArch.TaskSizeMax);
        // MMF_DUMP_FILTER_DEFAULT (0x33 << 2) and MMF_TOPDOWN (bit 31 since 6.10).
        SetMmLong(h, MmOff<TArch>.MmFlags, (0x33UL << 2) | (1UL << 31));
        space.FaultHandler = (Cpu c, in PageFault f) => HandleFault(mm, c, f);
        return mm;
    }

    /// <summary>mm_init()'s resets: no VMAs, one user, one reference, pgd, empty counters.</summary>
    private static void InitMmFields(MmState<TArch> mm)
    {
        byte* h = mm.H;
        SetMmLong(h, MmOff<TArch>.Mmap, 0);
        SetMmLong(h, MmOff<TArch>.MmRb, 0);
        SetMmLong(h, MmOff<TArch>.HighestVmEnd, 0);
        SetMmLong(h, MmOff<TArch>.Pgd, mm.As.PgdVa);
        *(int*)(h + MmOff<TArch>.MmUsers) = 1;
        *(int*)(h + MmOff<TArch>.MmCount) = 1;
        *(int*)(h + MmOff<TArch>.MapCount) = 0;
        SetMmLong(h, MmOff<TArch>.PgtablesBytes, 0);
        SetMmLong(h, MmOff<TArch>.LockedVm, 0);
        *(ulong*)(h + MmOff<TArch>.PinnedVm) = 0;
        new Span<byte>(h + MmOff<TArch>.RssStat, 4 * TArch.PointerSize).Clear();
        ulong mmlist = mm.Va + (ulong)MmOff<TArch>.Mmlist;
        SetMmLong(h, MmOff<TArch>.Mmlist, mmlist);
        SetMmLong(h, MmOff<TArch>.Mmlist + TArch.PointerSize, mmlist);
        // def_flags keeps only VM_NOHUGEPAGE (VM_INIT_DEF_MASK).
        SetMmLong(h, MmOff<TArch>.DefFlags, GetMmLong(h, MmOff<TArch>.DefFlags) & (ulong)VmFlags.NoHugePage);
    }

    /// <summary>__mmdrop(): check_mm(), pgd_free(), the exe_file reference, free_mm().</summary>
    private void MmFree(Cpu cpu, MmState<TArch> mm)
    {
        string[] names = ["MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES"];
        for (int i = 0; i < 4; i++)
        {
            long v = GetMmCounter(mm, (MmCounter)i);
            if (v != 0)
                _m.Log.Err($"BUG: Bad rss-counter state mm:{mm.Va:x16} type:{names[i]} val:{v}");
        }
        mm.As.Dispose();
        SyncPgtablesBytes(mm);
        long pt = (long)GetMmLong(mm.H, MmOff<TArch>.PgtablesBytes);
        if (pt != 0)
            _m.Log.Err($"BUG: non-zero pgtables_bytes on freeing mm: {pt}");
        ulong exe = GetMmLong(mm.H, MmOff<TArch>.ExeFile);
        if (exe != 0)
        {
            SetMmLong(mm.H, MmOff<TArch>.ExeFile, 0);
            Fput(cpu, exe);
        }
        Free(cpu, MmCache, mm.Va);
    }

    /// <summary>
    /// load_elf_binary() + setup_arg_pages() for the emulated program: text and data mapped privately from the
    /// program file, bss as brk memory, the brk right after it, the stack VMA below STACK_TOP.
    /// </summary>
    private Errno ExecLayout(Cpu cpu, MmState<TArch> mm, string path)
    {
        byte* h = mm.H;
        ulong exe = OpenExe(cpu, path, TextBytes + DataBytes);
        if (exe == 0)
            return Errno.ENOMEM;
        ulong text = TextStart, data = text + TextBytes, bss = data + DataBytes, bssEnd = bss + BssBytes;
        var r = DoMmapFile(cpu, mm, exe, text, TextBytes, Prot.Read | Prot.Exec, MapFlags.Private | MapFlags.Fixed | MapFlags.DenyWrite, 0);
        if (r.IsOk)
            r = DoMmapFile(cpu, mm, exe, data, DataBytes, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Fixed, TextBytes >> PageSize.Shift);
        if (!r.IsOk)
        {
            Fput(cpu, exe);
            return r.Error;
        }
        // set_mm_exe_file(), then the exec's own reference goes.
        SetMmLong(h, MmOff<TArch>.ExeFile, exe);
        ulong dataVma = FindVma(mm, data);
        var err = DoBrkFlags(cpu, mm, dataVma, dataVma, bss, BssBytes);
        if (err != Errno.None)
            return err;
        SetMmLong(h, MmOff<TArch>.StartCode, text);
        SetMmLong(h, MmOff<TArch>.EndCode, text + TextBytes);
        SetMmLong(h, MmOff<TArch>.StartData, data);
        SetMmLong(h, MmOff<TArch>.EndData, data + DataBytes);
        SetMmLong(h, MmOff<TArch>.StartBrk, bssEnd);
        SetMmLong(h, MmOff<TArch>.Brk, bssEnd);

        // The stack: __bprm_mm_init()'s one page at STACK_TOP, expanded by 128 KiB (VM_STACK_FLAGS, soft-dirty).
        ulong stackStart = StackTop - InitialStackBytes;
        long pages = (long)(InitialStackBytes >> PageSize.Shift);
        if (!VmEnoughMemory(pages))
            return Errno.ENOMEM;
        ulong stack = VmAreaAlloc(cpu, mm);
        if (stack == 0)
        {
            VmAcctMemory(-pages);
            return Errno.ENOMEM;
        }
        SetVmStart(stack, stackStart);
        SetVmEnd(stack, StackTop);
        SetVmPgoff(stack, stackStart >> PageSize.Shift);
        SetVmFlags(stack, VmFlags.StackFlags | VmSoftDirty);
        VmaLinkAll(mm, stack, LastVma(mm));
        VmStatAccount(mm, VmFlags.StackFlags, pages);
        SetMmLong(h, MmOff<TArch>.HiwaterVm, GetMmLong(h, MmOff<TArch>.TotalVm));
        return Errno.None;
    }

    /// <summary>
    /// The exec's argument page: the file name, environment and argument strings at the top of the stack (as
    /// copy_strings() leaves them), then create_elf_tables(): the platform string, AT_RANDOM bytes, auxv, envp,
    /// argv and argc below, 16-byte aligned. Written through the MMU as copy_to_user() would, so the page faults in.
    /// </summary>
    private void WriteArgsAndEnv(Cpu cpu, TaskImpl<TArch> task, MmState<TArch> mm, string filename, string[] argv, string[] envp)
    {
        task.SwitchTo(cpu);
        int ps = TArch.PointerSize;
        ulong p = StackTop - (ulong)ps;
        ulong Put(string s)
        {
            byte[] b = Encoding.ASCII.GetBytes(s + "\0");
            p -= (ulong)b.Length;
            CopyOut(cpu, p, b);
            return p;
        }
        ulong execfn = Put(filename);
        ulong envEnd = execfn;
        var envAddrs = new ulong[envp.Length];
        for (int i = envp.Length - 1; i >= 0; i--)
            envAddrs[i] = Put(envp[i]);
        ulong envStart = envp.Length > 0 ? envAddrs[0] : envEnd;
        var argAddrs = new ulong[argv.Length];
        for (int i = argv.Length - 1; i >= 0; i--)
            argAddrs[i] = Put(argv[i]);
        ulong argStart = argv.Length > 0 ? argAddrs[0] : envStart;
        byte* h = mm.H;
        SetMmLong(h, MmOff<TArch>.ArgStart, argStart);
        SetMmLong(h, MmOff<TArch>.ArgEnd, envStart);
        SetMmLong(h, MmOff<TArch>.EnvStart, envStart);
        SetMmLong(h, MmOff<TArch>.EnvEnd, envEnd);

        // create_elf_tables().
        p &= ~15UL; // arch_align_stack() without randomization
        ulong platform = Put(TArch.Kind == ArchKind.X86_64 ? "x86_64" : "i686");
        p -= 16;
        byte[] random = new byte[16];
        for (int i = 0; i < 16; i++)
            random[i] = (byte)(0xa5 ^ (i * 17));
        CopyOut(cpu, p, random);
        ulong atRandom = p;
        ulong[] auxv =
        [
            16, 0,                                  // AT_HWCAP
            6, PageSize.Bytes,                      // AT_PAGESZ
            17, 100,                                // AT_CLKTCK
            3, TextStart + 64,                      // AT_PHDR
            4, TArch.Kind == ArchKind.X86_64 ? 56UL : 32UL, // AT_PHENT
            5, 4,                                   // AT_PHNUM
            7, 0,                                   // AT_BASE
            8, 0,                                   // AT_FLAGS
            9, TextStart + 0x1000,                  // AT_ENTRY
            11, 1000, 12, 1000, 13, 1000, 14, 1000, // AT_UID, AT_EUID, AT_GID, AT_EGID
            23, 0,                                  // AT_SECURE
            25, atRandom,                           // AT_RANDOM
            31, execfn,                             // AT_EXECFN
            15, platform,                           // AT_PLATFORM
            0, 0,                                   // AT_NULL
        ];
        int items = 1 + argv.Length + 1 + envp.Length + 1 + auxv.Length;
        ulong sp = (p - (ulong)(items * ps)) & ~15UL;
        var words = new List<ulong> { (ulong)argv.Length };
        words.AddRange(argAddrs);
        words.Add(0);
        words.AddRange(envAddrs);
        words.Add(0);
        words.AddRange(auxv);
        byte[] table = new byte[words.Count * ps];
        for (int i = 0; i < words.Count; i++)
        {
            if (ps == 8)
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(table.AsSpan(i * 8), words[i]);
            else
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(i * 4), (uint)words[i]);
        }
        CopyOut(cpu, sp, table);
        SetMmLong(h, MmOff<TArch>.StartStack, sp);
        for (int i = 0; i < auxv.Length && i < 52; i++)
            SetMmLong(h, MmOff<TArch>.SavedAuxv + i * ps, auxv[i]);
    }

    private void CopyOut(Cpu cpu, ulong to, ReadOnlySpan<byte> bytes)
    {
        if (_m.Mmu.CopyToUser(cpu, to, bytes, out ulong fault) != 0)
            throw new KmemException($"execve(): copy_to_user() faulted at 0x{fault:x} while setting up the stack");
    }

    // ---- fork -------------------------------------------------------------------------------------

    /// <summary>fork(): copy_process() with CLONE_VM clear: a new task with dup_mm() of the parent's.</summary>
    internal SysResult Fork(Cpu cpu, TaskImpl<TArch> parent)
    {
        var pmm = parent.MmState ?? throw new KmemException($"process {parent.Pid} has exited");
        int pid = ReservePid();
        if (pid < 0)
            return SysResult.Fail(Errno.EAGAIN);
        ulong taskVa = Zalloc(cpu, TaskCache);
        if (taskVa == 0)
            return SysResult.Fail(Errno.ENOMEM);
        TaskImpl<TArch> child;
        using (pmm.Lock.Enter())
        {
            var mm = MmAlloc(cpu);
            if (mm is null)
            {
                Free(cpu, TaskCache, taskVa);
                return SysResult.Fail(Errno.ENOMEM);
            }
            // dup_mm(): memcpy(mm, oldmm), then mm_init()'s resets.
            new ReadOnlySpan<byte>(pmm.H, L.MmStruct.Size).CopyTo(new Span<byte>(mm.H, L.MmStruct.Size));
            InitMmFields(mm);
            ulong exe = GetMmLong(mm.H, MmOff<TArch>.ExeFile);
            if (exe != 0)
                GetFile(exe);
            child = InitTask(taskVa, pid, parent.Comm, mm, parent);
            child.OomScoreAdj = parent.OomScoreAdj;
            mm.Owner = child;
            var err = DupMmap(cpu, mm, pmm);
            if (err != Errno.None)
            {
                ExitMmap(cpu, mm);
                MmFree(cpu, mm);
                _m.MemMap.ListDel(taskVa + (ulong)MmOff<TArch>.TaskSibling);
                Free(cpu, TaskCache, taskVa);
                return SysResult.Fail(err);
            }
            SetMmLong(mm.H, MmOff<TArch>.HiwaterRss, (ulong)GetMmRss(mm));
            SetMmLong(mm.H, MmOff<TArch>.HiwaterVm, GetMmLong(mm.H, MmOff<TArch>.TotalVm));
            // The parent's PTEs lost write permission: flush_tlb_mm(oldmm).
            _m.Mmu.FlushRange(pmm.As, 0, TArch.TaskSizeMax, cpu);
        }
        AddTask(child);
        return SysResult.Ok((ulong)pid);
    }

    /// <summary>
    /// dup_mmap(): every VMA copied (VM_DONTCOPY ones skipped, VM_WIPEONFORK ones empty), joined to the parent's
    /// anon_vmas, and the page tables of anonymous VMAs copied write-protected (copy_page_range()).
    /// </summary>
    private Errno DupMmap(Cpu cpu, MmState<TArch> mm, MmState<TArch> oldmm)
    {
        ulong prev = 0;
        for (ulong mpnt = FirstVma(oldmm); mpnt != 0; mpnt = VmNext(mpnt))
        {
            VmFlags flags = VmFlagsOf(mpnt);
            long pages = (long)VmaPages(mpnt);
            if ((flags & VmFlags.DontCopy) != 0)
            {
                VmStatAccount(mm, flags, -pages);
                continue;
            }
            if ((flags & VmFlags.Account) != 0 && !VmEnoughMemory(pages))
                return Errno.ENOMEM;
            ulong tmp = VmAreaDup(cpu, mpnt, mm);
            if (tmp == 0)
            {
                if ((flags & VmFlags.Account) != 0)
                    VmAcctMemory(-pages);
                return Errno.ENOMEM;
            }
            bool ok = (flags & VmFlags.WipeOnFork) != 0 ? ClearAnonVma(tmp) : AnonVmaFork(cpu, tmp, mpnt);
            if (!ok)
            {
                SetVmAnonVma(tmp, 0);
                TArch.StoreLong(VmaH(tmp) + MmOff<TArch>.VmFile, 0);
                VmAreaFree(cpu, tmp);
                if ((flags & VmFlags.Account) != 0)
                    VmAcctMemory(-pages);
                return Errno.ENOMEM;
            }
            SetVmFlags(tmp, flags & ~(VmFlags.Locked | VmFlags.LockOnFault));
            ulong file = VmFile(tmp);
            if (file != 0)
                GetFile(file);
            VmaLinkAll(mm, tmp, prev);
            prev = tmp;
            if ((flags & VmFlags.WipeOnFork) == 0 && !CopyPageRange(cpu, mm, tmp, oldmm, mpnt))
                return Errno.ENOMEM;
        }
        return Errno.None;
    }

    private bool ClearAnonVma(ulong vma)
    {
        SetVmAnonVma(vma, 0);
        return true;
    }

    /// <summary>
    /// copy_page_range() / copy_pte_range() / copy_present_pte(): only VMAs with an anon_vma are copied (file and
    /// shmem VMAs refault in the child). Anonymous pages are shared: refcount and mapcount +1, PG_anon_exclusive
    /// cleared, and both PTEs write-protected for a COW mapping; the zero page's special PTE is copied as is.
    /// </summary>
    private bool CopyPageRange(Cpu cpu, MmState<TArch> dst, ulong dstVma, MmState<TArch> src, ulong srcVma)
    {
        if (VmAnonVma(srcVma) == 0 && (VmFlagsOf(srcVma) & (VmFlags.PfnMap | VmFlags.MixedMap)) == 0)
            return true;
        VmFlags flags = VmFlagsOf(srcVma);
        bool cow = (flags & (VmFlags.Shared | VmFlags.MayWrite)) == VmFlags.MayWrite;
        bool shared = (flags & VmFlags.Shared) != 0;
        bool shmem = VmFile(srcVma) != 0 && FileIsShmem(VmFile(srcVma));
        ulong start = VmStart(srcVma), end = VmEnd(srcVma);
        ulong span = 1UL << (12 + TArch.IndexBits);
        long anon = 0, file = 0, swapents = 0;
        for (ulong va = start; va < end;)
        {
            byte* spte = src.As.PteOffset(va);
            ulong tableEnd = Math.Min(end, (va & ~(span - 1)) + span);
            if (spte == null)
            {
                va = tableEnd;
                continue;
            }
            byte* dpte = null;
            for (; va < tableEnd; va += PageSize.Bytes, spte += 1 << TArch.PteShift, dpte = dpte == null ? null : dpte + (1 << TArch.PteShift))
            {
                ulong e = TArch.LoadPte(spte);
                if (e == 0)
                    continue;
                if (dpte == null)
                {
                    dpte = dst.As.PteAlloc(cpu, va);
                    if (dpte == null)
                        return false;
                }
                if ((e & (PteP | PteProtNone)) == 0)
                {
                    // copy_nonpresent_pte(): a swap entry gains a reference; neither side stays exclusive.
                    if (!CopySwapPte(spte, dpte, e))
                        return false;
                    swapents++;
                    continue;
                }
                ulong pfn = (e & TArch.PtePfnMask) >> PageSize.Shift;
                bool special = (e & PteSpecial) != 0 || pfn == ZeroPfn;
                if (!special)
                {
                    GetPageRef(pfn);
                    MapcountInc(pfn);
                    if (PageAnon(pfn))
                    {
                        MemMap<TArch>.ClearFlag(Desc(pfn), PageFlag.Owner2);
                        anon++;
                    }
                    else
                    {
                        file++;
                    }
                }
                if (cow && (e & PteRw) != 0)
                {
                    e &= ~PteRw;
                    TArch.StorePte(spte, e); // ptep_set_wrprotect() on the parent
                }
                if (shared)
                    e &= ~PteD;   // pte_mkclean()
                TArch.StorePte(dpte, e & ~PteA); // pte_mkold()
            }
        }
        SyncPgtablesBytes(dst);
        if (anon != 0)
            AddMmCounter(dst, MmCounter.AnonPages, anon);
        if (file != 0)
            AddMmCounter(dst, shmem ? MmCounter.ShmemPages : MmCounter.FilePages, file);
        if (swapents != 0)
            AddMmCounter(dst, MmCounter.SwapEnts, swapents);
        return true;
    }

    // ---- exit -------------------------------------------------------------------------------------

    /// <summary>do_exit(): exit_mm() (mmput: exit_mmap + mmdrop), then release_task(): children go to init.</summary>
    internal void Exit(Cpu cpu, TaskImpl<TArch> task)
    {
        var mm = task.MmState ?? throw new KmemException($"process {task.Pid} has already exited");
        using (mm.Lock.Enter())
        {
            if (mm.Dead)
                throw new KmemException($"process {task.Pid} has already exited");
            LeaveCpus(cpu, mm);
            mm.Dead = true;
            ExitMmap(cpu, mm);
        }
        ReleaseExited(cpu, task, mm);
    }

    /// <summary>
    /// The exit that the OOM killer does to its victim (SIGKILL delivered at once, the oom_reaper's work done in
    /// the same breath): only if the victim's mmap_lock and the CPUs running it can be taken without waiting. False
    /// leaves the victim marked (<see cref="MmState{TArch}.OomVictim"/>) to die when its current operation returns.
    /// </summary>
    internal bool TryExitForOom(Cpu cpu, TaskImpl<TArch> task)
    {
        var mm = task.MmState;
        if (mm is null)
            return true;
        if (!mm.Lock.TryEnter())
            return false;
        try
        {
            if (mm.Dead)
                return true;
            if (!TryLeaveCpus(cpu, mm))
                return false;
            mm.Dead = true;
            ExitMmap(cpu, mm);
        }
        finally
        {
            mm.Lock.Exit();
        }
        ReleaseExited(cpu, task, mm);
        return true;
    }

    /// <summary>An OOM victim whose kill had to wait: it exits now that its operation returned (do_exit on SIGKILL).</summary>
    internal bool ExitIfKilled(Cpu cpu, TaskImpl<TArch> task)
    {
        if (task.MmState is not { OomVictim: true } mm || mm.Lock.IsHeld)
            return false;
        Exit(cpu, task);
        return true;
    }

    /// <summary>LeaveCpus() for the OOM killer: refuses (false) instead of throwing when another thread holds a CPU running the mm.</summary>
    private bool TryLeaveCpus(Cpu cpu, MmState<TArch> mm)
    {
        foreach (var c in _m.Cpus)
        {
            if (!ReferenceEquals(c.ActiveMm, mm.As) || ReferenceEquals(c, cpu))
                continue;
            if (!_m.TryClaimCpu(c, out bool mine))
                return false;
            if (!mine)
                _m.UnclaimCpu(c);
        }
        LeaveCpus(cpu, mm);
        return true;
    }

    /// <summary>mmdrop() and release_task() after exit_mmap(): the mm and task_struct go, children are reparented.</summary>
    private void ReleaseExited(Cpu cpu, TaskImpl<TArch> task, MmState<TArch> mm)
    {
        MmFree(cpu, mm);
        task.MmState = null;
        // release_task(): off the parent's children list; our children are reparented to init (pid 1).
        var memMap = _m.MemMap;
        memMap.ListDel(task.Va + (ulong)MmOff<TArch>.TaskSibling);
        foreach (var t in Tasks)
        {
            if (t.ParentPid == task.Pid)
            {
                t.Reparent(1);
                memMap.ListDel(t.Va + (ulong)MmOff<TArch>.TaskSibling);
                memMap.InitListHead(t.Va + (ulong)MmOff<TArch>.TaskSibling);
                TArch.StoreLong(t.H + MmOff<TArch>.TaskRealParent, 0);
                TArch.StoreLong(t.H + MmOff<TArch>.TaskParent, 0);
            }
        }
        RemoveTask(task);
        foreach (var c in _m.Cpus)
        {
            if (c.Pid == task.Pid)
            {
                c.Pid = 0;
                c.Comm = "swapper/" + c.Id;
            }
        }
        Free(cpu, TaskCache, task.Va);
    }

    /// <summary>
    /// The CPUs still running the mm switch to init_mm first (the kernel's lazy-TLB switch at exit): the calling
    /// thread's CPU and every CPU no other live thread holds. A CPU another thread holds refuses the exit.
    /// </summary>
    private void LeaveCpus(Cpu cpu, MmState<TArch> mm)
    {
        foreach (var c in _m.Cpus)
        {
            if (!ReferenceEquals(c.ActiveMm, mm.As))
                continue;
            if (ReferenceEquals(c, cpu))
            {
                _m.SwitchMm(c, _m.InitMm);
                continue;
            }
            if (!_m.TryClaimCpu(c, out bool mine))
                throw new CpuUnavailableException($"the process runs on cpu{c.Id}, which another thread holds: exit it from there");
            _m.SwitchMm(c, _m.InitMm);
            if (!mine)
                _m.UnclaimCpu(c);
        }
    }

    /// <summary>
    /// exit_mmap(): every VMA zapped (RSS counters, mapcounts and references drop; pages nobody else holds are
    /// freed), every VMA removed, the commit charge returned. The page tables go with the pgd in mmdrop.
    /// </summary>
    private void ExitMmap(Cpu cpu, MmState<TArch> mm)
    {
        UpdateHiwaterRss(mm);
        UpdateHiwaterVm(mm);
        long unaccount = 0;
        var vmas = new List<ulong>();
        for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
        {
            vmas.Add(v);
            ZapVmaRange(cpu, mm, v, VmStart(v), VmEnd(v));
            if ((VmFlagsOf(v) & VmFlags.Account) != 0)
                unaccount += (long)VmaPages(v);
        }
        _m.Mmu.FlushRange(mm.As, 0, TArch.TaskSizeMax, cpu);
        foreach (ulong v in vmas)
            RemoveVma(cpu, v);
        if (vmas.Count != MapCount(mm))
            _m.Log.Err($"BUG: exit_mmap: {vmas.Count} VMAs but map_count {MapCount(mm)}");
        SetMmLong(mm.H, MmOff<TArch>.Mmap, 0);
        SetMmLong(mm.H, MmOff<TArch>.MmRb, 0);
        SetMmLong(mm.H, MmOff<TArch>.HighestVmEnd, 0);
        *(int*)(mm.H + MmOff<TArch>.MapCount) = 0;
        *(int*)(mm.H + MmOff<TArch>.MmUsers) = 0;
        mm.InvalidateCache();
        VmAcctMemory(-unaccount);
    }
}
