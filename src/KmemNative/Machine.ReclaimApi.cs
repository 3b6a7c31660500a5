using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Reclaim;

namespace KmemNative;

/// <summary>enum lru_list: the node's LRU lists.</summary>
public enum LruList
{
    /// <summary>LRU_INACTIVE_ANON.</summary>
    InactiveAnon = 0,
    /// <summary>LRU_ACTIVE_ANON.</summary>
    ActiveAnon = 1,
    /// <summary>LRU_INACTIVE_FILE.</summary>
    InactiveFile = 2,
    /// <summary>LRU_ACTIVE_FILE.</summary>
    ActiveFile = 3,
    /// <summary>LRU_UNEVICTABLE.</summary>
    Unevictable = 4,
}

// Memory pressure (issue #6): the page cache's writes, kswapd, direct reclaim, shrinkers, drop_caches, swap, the OOM
// killer and the reports of a failed allocation. Implemented by Machine<TArch> (Machine.Reclaim.cs). The CPU context
// switches (local_irq_disable, spin_lock, irq_enter, memalloc_noio_save...) are on Cpu.
public abstract partial class Machine
{
    /// <summary>
    /// A blocking allocation (__GFP_DIRECT_RECLAIM) in atomic context is reported ("BUG: sleeping function called
    /// from invalid context") and then proceeds, as in the kernel; with this set it is refused with
    /// <see cref="SleepInAtomicException"/> after the report.
    /// </summary>
    public bool StrictMightSleep { get; set; }

    /// <summary>kswapd_test_hopeless(): kswapd failed MAX_RECLAIM_RETRIES runs in a row (zoneinfo's node_unreclaimable).</summary>
    internal abstract bool NodeHopeless { get; }

    /// <summary>
    /// write() (pwrite): copies <paramref name="data"/> into the file's page cache at <paramref name="offset"/>
    /// (pages read in or created as needed) and marks the pages dirty (Dirty: in meminfo, nr_dirty). Files keep their
    /// size: bytes past the end are not written. The bytes reach the file's "disk" by writeback (reclaim's flusher,
    /// <see cref="Sync"/>).
    /// </summary>
    public abstract SysResult FileWrite(Cpu cpu, int fd, ulong offset, ReadOnlySpan<byte> data);

    /// <summary>The descriptor of an open file by its path (as given to <see cref="FileCreate"/>), or -1.</summary>
    public abstract int FileDescriptor(string path);

    /// <summary>
    /// The script form of write(): <paramref name="length"/> bytes of <paramref name="value"/> into the open file
    /// <paramref name="path"/> at <paramref name="offset"/> (dirtying its page cache). EBADF when no such file is open.
    /// </summary>
    public SysResult FileWrite(Cpu cpu, string path, ulong offset, ulong length, byte value = 0x5a)
    {
        int fd = FileDescriptor(path);
        if (fd < 0)
            return SysResult.Fail(Errno.EBADF);
        if (length > int.MaxValue)
            return SysResult.Fail(Errno.EINVAL);
        var data = new byte[length];
        Array.Fill(data, value);
        return FileWrite(cpu, fd, offset, data);
    }

    /// <summary>
    /// The script form of read(): reads <paramref name="length"/> bytes of the open file <paramref name="path"/> at
    /// <paramref name="offset"/> through its page cache (pages missing from it are read in; a second read activates
    /// a page) and returns how many were read. EBADF when no such file is open.
    /// </summary>
    public SysResult FileRead(Cpu cpu, string path, ulong offset, ulong length)
    {
        int fd = FileDescriptor(path);
        if (fd < 0)
            return SysResult.Fail(Errno.EBADF);
        if (length > int.MaxValue)
            return SysResult.Fail(Errno.EINVAL);
        return FileRead(cpu, fd, offset, new byte[length]);
    }

    /// <summary>sync(): every dirty page-cache page is written back and the I/O completed. Returns the pages written.</summary>
    public abstract long Sync(Cpu cpu);

    /// <summary>echo N &gt; /proc/PID/oom_score_adj (-1000 = never chosen by the OOM killer .. 1000).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside -1000..1000.</exception>
    /// <exception cref="KmemException">No such process.</exception>
    public abstract void SetOomScoreAdj(int pid, int adj);

    /// <summary>/proc/PID/oom_score_adj.</summary>
    public abstract int GetOomScoreAdj(int pid);

    /// <summary>/proc/PID/oom_score: 1000 + oom_badness() * 1000 / totalpages, 0 for a task that is never chosen.</summary>
    public abstract long OomScore(int pid);

    /// <summary>
    /// One run of kswapd in step mode (the default): balance_pgdat() for the pending wakeup (or order 0 when none)
    /// until some eligible zone is above its high watermark. Returns the pages reclaimed (0 when balanced already).
    /// </summary>
    public abstract long KswapdStep(Cpu cpu);

    /// <summary><see cref="KswapdStep(Cpu)"/> on the calling thread's CPU.</summary>
    public long KswapdStep() => KswapdStep(ThisCpu);

    /// <summary>
    /// kswapd on|off: true runs kswapd on a host thread that balances the node as soon as the allocator wakes it (it
    /// borrows a CPU no other thread holds); false (the default) is step mode, deterministic.
    /// </summary>
    public abstract bool KswapdThread { get; set; }

    /// <summary>kswapd was woken (a request fell below the low watermark) and has not run since.</summary>
    public abstract bool KswapdPending { get; }

    /// <summary>How many times the allocator woke kswapd.</summary>
    public abstract long KswapdWakeups { get; }

    /// <summary>
    /// echo <paramref name="mode"/> &gt; /proc/sys/vm/drop_caches: 1 frees the clean page cache, 2 the reclaimable
    /// slab objects (shrinkers), 3 both; 4 silences the log line. Returns the pages freed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not 1..4.</exception>
    public abstract long DropCaches(Cpu cpu, int mode);

    /// <summary>
    /// try_to_free_pages(): one direct-reclaim invocation for a request with <paramref name="gfp"/> (honouring
    /// __GFP_IO/__GFP_FS and the CPU's memalloc scope), without allocating. Returns the pages reclaimed.
    /// </summary>
    public abstract long TryToFreePages(Cpu cpu, Gfp gfp, int order = 0);

    /// <summary>
    /// swapon: an emulated swap partition of <paramref name="bytes"/> (its slots in host memory; the first page is
    /// the header). EINVAL when smaller than two pages, EBUSY when a device exists already (one only).
    /// </summary>
    public abstract SysResult Swapon(ulong bytes);

    /// <summary>SwapTotal in pages.</summary>
    public abstract long SwapTotalPages { get; }

    /// <summary>SwapFree in pages.</summary>
    public abstract long SwapFreePages { get; }

    /// <summary>/proc/swaps.</summary>
    public abstract string Swaps();

    /// <summary>
    /// The last allocation-failure report ("&lt;comm&gt;: page allocation failure: order:N, mode:0x...(flags),
    /// nodemask=(null)" and the Mem-Info summary), or null when no allocation has failed with a warning.
    /// </summary>
    public abstract string? LastAllocFailureReport { get; }

    /// <summary>How many allocation-failure reports were printed (compare before and after a call to tell whether it produced one).</summary>
    public abstract long AllocFailureReportCount { get; }

    /// <summary>The last OOM killer report (from "invoked oom-killer" to the kill or "no killable processes"), or null.</summary>
    public abstract string? LastOomReport { get; }

    /// <summary>show_mem(): the Mem-Info summary the failure and OOM reports print, for every zone.</summary>
    public abstract string ShowMem(Cpu cpu);

    /// <summary>
    /// Fills the emulated file system's dentry and inode caches with <paramref name="count"/> unused entries (as a
    /// directory walk leaves them): reclaimable slab that only the file-system shrinker frees, and only with
    /// __GFP_FS. Returns how many were added (fewer when memory ran out).
    /// </summary>
    public abstract int DcacheFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel);

    /// <summary>Marks the <paramref name="count"/> most recent dentries referenced (they survive one more shrinker pass).</summary>
    public abstract void DcacheTouch(int count);

    /// <summary>The unused dentries and inodes on the file system's LRUs.</summary>
    public abstract (int Dentries, int Inodes) DcacheUnused { get; }

    /// <summary>
    /// Fills the emulated driver pool (reclaimable slab whose shrinker does not need __GFP_FS) with
    /// <paramref name="count"/> objects. Returns how many were added.
    /// </summary>
    public abstract int DriverPoolFill(Cpu cpu, int count, Gfp gfp = Gfp.Kernel);

    /// <summary>Objects in the driver pool.</summary>
    public abstract int DriverPoolCount { get; }

    /// <summary>The registered shrinkers.</summary>
    public abstract IReadOnlyList<Shrinker> Shrinkers { get; }

    /// <summary>shrinker_register(): reclaim will call it from now on.</summary>
    public abstract void RegisterShrinker(Shrinker shrinker);

    /// <summary>shrinker_free(); false when it was not registered.</summary>
    public abstract bool UnregisterShrinker(Shrinker shrinker);

    /// <summary>lru_add_drain_all(): pages waiting in the CPUs' lru_add batches (up to 31 each) go onto the LRU lists now.</summary>
    public abstract void LruAddDrain(Cpu cpu);

    /// <summary>The number of pages on an LRU list (nr_inactive_anon ... nr_unevictable).</summary>
    public abstract long LruSize(LruList lru);

    /// <summary>The pages (PFNs) of an LRU list, most recently added first.</summary>
    public abstract IReadOnlyList<ulong> LruPages(LruList lru);
}
