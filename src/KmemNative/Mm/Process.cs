using KmemNative.Paging;

namespace KmemNative.Mm;

/// <summary>
/// An emulated process: a <c>task_struct</c> and its <c>mm_struct</c> in the arena, with the memory system calls
/// (mmap, munmap, mprotect, brk, madvise, fork, exit) and user-mode access through the MMU. Create one with
/// <see cref="Machine.Spawn(Cpu, string)"/> or <see cref="Fork(Cpu)"/>.
/// </summary>
/// <remarks>
/// <para>System-call failures are results (<see cref="SysResult"/> with the kernel's <see cref="Errno"/>), and a
/// bad access is a <see cref="SigInfo"/> in an <see cref="AccessResult"/>; exceptions are for programming errors
/// (a process that has exited, a corrupted structure).</para>
/// <para>A process has one thread. Any host thread may call into it with the CPU it holds; calls on one process
/// are serialised by its mm's lock (mmap_lock).</para>
/// </remarks>
public abstract class Process
{
    private protected Process() { }

    /// <summary>The pid.</summary>
    public abstract int Pid { get; }

    /// <summary>The parent's pid (1 once the parent has exited: reparented to init).</summary>
    public abstract int ParentPid { get; }

    /// <summary>task->comm.</summary>
    public abstract string Comm { get; }

    /// <summary>False once the process has exited.</summary>
    public abstract bool IsAlive { get; }

    /// <summary>Kernel virtual address of the task_struct.</summary>
    public abstract ulong TaskAddress { get; }

    /// <summary>Kernel virtual address of the mm_struct.</summary>
    public abstract ulong MmAddress { get; }

    /// <summary>The page tables (mm->pgd).</summary>
    public abstract AddressSpace AddressSpace { get; }

    /// <summary>The mm's counters and layout, read from the mm_struct.</summary>
    public abstract MmInfo Mm { get; }

    /// <summary>The VMAs in address order, read from the list.</summary>
    public abstract IReadOnlyList<VmaInfo> Vmas { get; }

    /// <summary>Minor and major faults of the task (task->min_flt, task->maj_flt).</summary>
    public abstract (long Minor, long Major) Faults { get; }

    /// <summary>The signal the last failed fault raised, if any.</summary>
    public abstract SigInfo? LastSignal { get; }

    /// <summary>mmap(): returns the address or the error.</summary>
    /// <param name="cpu">The CPU to run on.</param>
    /// <param name="addr">A hint (0: the kernel chooses), or the address with MAP_FIXED.</param>
    /// <param name="len">Bytes (rounded up to pages).</param>
    /// <param name="prot">PROT_*.</param>
    /// <param name="flags">MAP_*.</param>
    /// <param name="fd">A descriptor from <see cref="Machine.FileCreate"/> (ignored with MAP_ANONYMOUS).</param>
    /// <param name="offset">The file offset (page aligned).</param>
    public abstract SysResult Mmap(Cpu cpu, ulong addr, ulong len, Prot prot, MapFlags flags, int fd = -1, ulong offset = 0);

    /// <summary>munmap().</summary>
    public abstract SysResult Munmap(Cpu cpu, ulong addr, ulong len);

    /// <summary>mprotect().</summary>
    public abstract SysResult Mprotect(Cpu cpu, ulong addr, ulong len, Prot prot);

    /// <summary>brk(): returns the new break, or the old one when the change is refused (brk never fails).</summary>
    public abstract ulong Brk(Cpu cpu, ulong addr);

    /// <summary>sbrk() as the C library implements it on brk(): returns the old break, or -ENOMEM.</summary>
    public SysResult Sbrk(Cpu cpu, long increment)
    {
        ulong old = Brk(cpu, 0);
        if (increment == 0)
            return SysResult.Ok(old);
        ulong want = (ulong)((long)old + increment);
        return Brk(cpu, want) == want ? SysResult.Ok(old) : SysResult.Fail(Errno.ENOMEM);
    }

    /// <summary>madvise().</summary>
    public abstract SysResult Madvise(Cpu cpu, ulong addr, ulong len, Madvise advice);

    /// <summary>fork(): a child with a copy-on-write copy of the address space; returns the child's pid or the error.</summary>
    public abstract SysResult Fork(Cpu cpu);

    /// <summary>exit(): the address space is torn down, the task released.</summary>
    public abstract void Exit(Cpu cpu);

    /// <summary>
    /// Runs the process on <paramref name="cpu"/>: switch_mm() to its page tables, current = this task. Accesses
    /// from that CPU then go through its address space and its fault handler.
    /// </summary>
    public abstract void SwitchTo(Cpu cpu);

    /// <summary>
    /// Accesses every page of [addr, addr+len) once, as the process in user mode (CPL 3) on <paramref name="cpu"/>:
    /// a read or instruction fetch of the page's first byte in range, or a write of <paramref name="value"/> there.
    /// Stops at the first page that raises a signal.
    /// </summary>
    public abstract AccessResult Touch(Cpu cpu, ulong addr, ulong len, MemoryAccess access, byte value = 0);

    /// <summary>Reads user memory as the process (user mode, faults handled); stops at a signal.</summary>
    public abstract AccessResult Read(Cpu cpu, ulong addr, Span<byte> buffer);

    /// <summary>Writes user memory as the process (user mode, faults handled); stops at a signal.</summary>
    public abstract AccessResult Write(Cpu cpu, ulong addr, ReadOnlySpan<byte> data);

    /// <summary>/proc/PID/pagemap entries for <paramref name="count"/> pages from the page of <paramref name="addr"/>.</summary>
    public abstract ulong[] Pagemap(ulong addr, int count);

    /// <summary>
    /// read() of /proc/PID/pagemap at byte <paramref name="offset"/>: 8 bytes per page, little endian; the offset
    /// and the length must be multiples of 8 (-EINVAL); nothing is read at or beyond TASK_SIZE.
    /// </summary>
    public abstract SysResult ReadPagemap(ulong offset, Span<byte> buffer);

    /// <summary>Walks the page tables for a user address and prints it like crash's vtop (with the VMA).</summary>
    public abstract string Vtop(ulong addr);

    /// <summary>Checks the VMA list and tree, the counters and every PTE against its VMA (validate_mm()).</summary>
    /// <exception cref="MmCorruptException">Something disagrees.</exception>
    public abstract void Validate();

    /// <inheritdoc/>
    public override string ToString() => $"{Comm}[{Pid}]";
}

/// <summary>One VMA as /proc/PID/maps would describe it, plus its address in the arena.</summary>
/// <param name="Address">Kernel virtual address of the vm_area_struct.</param>
/// <param name="Start">vm_start.</param>
/// <param name="End">vm_end (first address outside).</param>
/// <param name="Flags">vm_flags.</param>
/// <param name="PageProt">vm_page_prot.</param>
/// <param name="Pgoff">vm_pgoff (pages).</param>
/// <param name="File">vm_file (0 for anonymous memory).</param>
/// <param name="AnonVma">anon_vma (0 until the first write fault).</param>
/// <param name="Name">The name in /proc/PID/maps ("" for none).</param>
public sealed record VmaInfo(ulong Address, ulong Start, ulong End, VmFlags Flags, ulong PageProt, ulong Pgoff, ulong File, ulong AnonVma, string Name)
{
    /// <summary>Pages spanned.</summary>
    public ulong Pages => (End - Start) >> 12;

    /// <summary>The permissions column of /proc/PID/maps: r, w, x, then s (VM_MAYSHARE) or p.</summary>
    public string Perms => string.Create(4, Flags, static (span, f) =>
    {
        span[0] = (f & VmFlags.Read) != 0 ? 'r' : '-';
        span[1] = (f & VmFlags.Write) != 0 ? 'w' : '-';
        span[2] = (f & VmFlags.Exec) != 0 ? 'x' : '-';
        span[3] = (f & VmFlags.MayShare) != 0 ? 's' : 'p';
    });
}

/// <summary>The mm_struct's counters and layout.</summary>
/// <param name="TotalVm">total_vm (pages).</param>
/// <param name="DataVm">data_vm.</param>
/// <param name="ExecVm">exec_vm.</param>
/// <param name="StackVm">stack_vm.</param>
/// <param name="LockedVm">locked_vm.</param>
/// <param name="MapCount">map_count.</param>
/// <param name="AnonPages">MM_ANONPAGES.</param>
/// <param name="FilePages">MM_FILEPAGES.</param>
/// <param name="ShmemPages">MM_SHMEMPAGES.</param>
/// <param name="SwapEnts">MM_SWAPENTS.</param>
/// <param name="PgtablesBytes">pgtables_bytes.</param>
/// <param name="MmapBase">mmap_base.</param>
/// <param name="TaskSize">task_size.</param>
/// <param name="StartBrk">start_brk.</param>
/// <param name="Brk">brk.</param>
/// <param name="StartStack">start_stack.</param>
/// <param name="StartCode">start_code.</param>
/// <param name="EndCode">end_code.</param>
/// <param name="StartData">start_data.</param>
/// <param name="EndData">end_data.</param>
/// <param name="ArgStart">arg_start.</param>
/// <param name="ArgEnd">arg_end.</param>
/// <param name="EnvStart">env_start.</param>
/// <param name="EnvEnd">env_end.</param>
/// <param name="Users">mm_users.</param>
/// <param name="Count">mm_count.</param>
public sealed record MmInfo(
    ulong TotalVm, ulong DataVm, ulong ExecVm, ulong StackVm, ulong LockedVm, int MapCount,
    long AnonPages, long FilePages, long ShmemPages, long SwapEnts, ulong PgtablesBytes,
    ulong MmapBase, ulong TaskSize, ulong StartBrk, ulong Brk, ulong StartStack,
    ulong StartCode, ulong EndCode, ulong StartData, ulong EndData,
    ulong ArgStart, ulong ArgEnd, ulong EnvStart, ulong EnvEnd, int Users, int Count)
{
    /// <summary>get_mm_rss().</summary>
    public long Rss => AnonPages + FilePages + ShmemPages;
}
