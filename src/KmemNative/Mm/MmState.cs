using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.Paging;

namespace KmemNative.Mm;

/// <summary>
/// The host side of one <c>mm_struct</c>: its address in the arena, its page tables, and the lock that stands for
/// mmap_lock (taken for writing by every operation here, faults included: one CPU at a time per address space).
/// Everything the kernel keeps in the mm_struct is in the arena; this object only caches the last VMA found.
/// </summary>
internal sealed unsafe class MmState<TArch> where TArch : struct, IArch
{
    public MmState(ulong va, byte* host, UserAddressSpace<TArch> addressSpace)
    {
        Va = va;
        H = host;
        As = addressSpace;
    }

    /// <summary>Kernel virtual address of the mm_struct.</summary>
    public ulong Va { get; }

    /// <summary>Host pointer of the mm_struct.</summary>
    public byte* H { get; }

    /// <summary>The page tables (mm-&gt;pgd).</summary>
    public UserAddressSpace<TArch> As { get; }

    /// <summary>mmap_lock (taken exclusively; never recursively).</summary>
    public readonly MmapLock Lock = new();

    /// <summary>The task this mm belongs to (no threads: one task per mm), whose fault counters faults bump.</summary>
    public TaskImpl<TArch>? Owner;

    /// <summary>True once exit_mmap() ran.</summary>
    public bool Dead;

    /// <summary>
    /// mark_oom_victim(): the OOM killer chose this mm's task and SIGKILL is pending. Its teardown waits until the
    /// operation that holds mmap_lock returns (the kernel's victim dies on its way back to user space); meanwhile
    /// its allocations may use ALLOC_OOM reserves.
    /// </summary>
    public volatile bool OomVictim;

    /// <summary>The thread handling a page fault of this mm right now (it holds mmap_lock), or null.</summary>
    public volatile Thread? FaultThread;

    /// <summary>The page-aligned address of that fault: reclaim leaves its PTE alone.</summary>
    public ulong FaultAddress;

    /// <summary>The signal the last failed fault raised (what a SIGSEGV handler would see in its siginfo).</summary>
    public SigInfo? LastSignal;

    // mmap_cache: the VMA the last find_vma() returned and its range.
    public ulong CacheVma;
    public ulong CacheStart;
    public ulong CacheSpan;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetCache(ulong vma, ulong start, ulong end)
    {
        CacheVma = vma;
        CacheStart = start;
        CacheSpan = end - start;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void InvalidateCache() => CacheSpan = 0;
}

/// <summary>
/// mmap_lock: a test-and-set lock (one compare-and-swap to take, a release store to drop, spinning then yielding
/// when contended). Every operation on an address space, the page-fault handler included, takes it; it is not
/// recursive, and nothing that holds it accesses user memory through the MMU.
/// </summary>
internal sealed class MmapLock
{
    private int _held;

    /// <summary>mmap_write_lock(): returns a scope whose Dispose is mmap_write_unlock().</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Scope Enter()
    {
        if (Interlocked.CompareExchange(ref _held, 1, 0) != 0)
            EnterContended();
        return new Scope(this);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterContended()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _held) != 0 || Interlocked.CompareExchange(ref _held, 1, 0) != 0)
            spin.SpinOnce();
    }

    /// <summary>True while some thread holds it.</summary>
    public bool IsHeld => Volatile.Read(ref _held) != 0;

    /// <summary>mmap_write_trylock(): take it only if free (reclaim must not wait for a fault that may be waiting for reclaim).</summary>
    public bool TryEnter() => Interlocked.CompareExchange(ref _held, 1, 0) == 0;

    /// <summary>mmap_write_unlock() after a successful <see cref="TryEnter"/>.</summary>
    public void Exit() => Volatile.Write(ref _held, 0);

    /// <summary>The held lock; disposing releases it.</summary>
    public readonly ref struct Scope(MmapLock owner)
    {
        /// <summary>mmap_write_unlock().</summary>
        public void Dispose() => Volatile.Write(ref owner._held, 0);
    }
}

/// <summary>A process structure in the arena does not hold together (a corrupted link or counter).</summary>
public sealed class MmCorruptException(string message) : KmemException(message);
