using KmemNative.Mm;

namespace KmemNative;

// The process subsystem's API (issue #5): spawning processes, finding them, the file objects behind
// file-backed mappings, and the vm sysctls. The system calls themselves are on Process. Implemented by
// Machine<TArch> (Machine.Mm.cs).
public abstract partial class Machine
{
    /// <summary>
    /// Starts a process running /usr/bin/<paramref name="comm"/>: a task_struct and an mm_struct from their slab
    /// caches, a pgd sharing the kernel half, and the standard layout (text and data mapped from the program file,
    /// bss, brk, the stack with argv and envp). The process is scheduled on <paramref name="cpu"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An empty name, or one with '/' or a newline.</exception>
    /// <exception cref="KmemException">Out of memory or pids.</exception>
    public abstract Process Spawn(Cpu cpu, string comm);

    /// <summary>Spawn on the calling thread's CPU.</summary>
    public Process Spawn(string comm) => Spawn(ThisCpu, comm);

    /// <summary>The live process with this pid, or null.</summary>
    public abstract Process? FindProcess(int pid);

    /// <summary>The live processes by pid.</summary>
    public abstract IReadOnlyList<Process> Processes { get; }

    /// <summary>Creates a regular file of <paramref name="size"/> bytes (its contents a fixed pattern) and opens it; returns the descriptor.</summary>
    public abstract SysResult FileCreate(Cpu cpu, string path, ulong size, bool readOnly = false);

    /// <summary>close(): the descriptor goes; the file lives while mappings hold it, then its page cache is dropped.</summary>
    public abstract SysResult FileClose(Cpu cpu, int fd);

    /// <summary>
    /// pread() (filemap_read()): the file's bytes through its page cache; pages not cached are read in first (a
    /// GFP_HIGHUSER_MOVABLE allocation, which may reclaim), and each page read is marked accessed (a second read
    /// moves it to the active list). ENOMEM when a page cannot be allocated.
    /// </summary>
    public abstract SysResult FileRead(Cpu cpu, int fd, ulong offset, Span<byte> buffer);

    /// <summary>The file objects (open descriptors, program files, shmem objects).</summary>
    public abstract IReadOnlyList<FileObjectInfo> Files { get; }

    /// <summary>vm.max_map_count (default 65530).</summary>
    public abstract int MaxMapCount { get; set; }

    /// <summary>vm.mmap_min_addr (default 65536).</summary>
    public abstract ulong MmapMinAddr { get; set; }

    /// <summary>A per-process /proc file (maps, smaps, smaps_rollup, status, statm, stat, oom_score, oom_score_adj), or null when no such process or file.</summary>
    public abstract string? ReadPidFile(int pid, string file);

    /// <summary>crash's ps: one line per process.</summary>
    public abstract string Ps();

    /// <summary>
    /// rmap_walk(): every (pid, user address) that maps the page (anonymous pages through their anon_vma chain,
    /// page-cache pages through i_mmap).
    /// </summary>
    public abstract IReadOnlyList<(int Pid, ulong Address)> Rmap(ulong pfn);

    /// <summary>crash's vm for a process: its task, mm and VMAs with their kernel addresses.</summary>
    /// <exception cref="KmemException">No such process.</exception>
    public abstract string VmReport(int pid);
}
