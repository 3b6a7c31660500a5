namespace KmemNative.Slab;

/// <summary>What SLUB found wrong (the reason of its report).</summary>
public enum SlabBug
{
    /// <summary>"Object already free": a double free.</summary>
    ObjectAlreadyFree,
    /// <summary>"Left Redzone overwritten": a write just before an object.</summary>
    LeftRedzoneOverwritten,
    /// <summary>"Right Redzone overwritten": a write just past an object.</summary>
    RightRedzoneOverwritten,
    /// <summary>"kmalloc Redzone overwritten": a write past the size asked of kmalloc, inside the object.</summary>
    KmallocRedzoneOverwritten,
    /// <summary>"Poison overwritten" / "End Poison overwritten": a write to a free object (use after free).</summary>
    PoisonOverwritten,
    /// <summary>"Object padding overwritten" / "Alignment padding overwritten" / "Padding overwritten".</summary>
    PaddingOverwritten,
    /// <summary>"Freechain corrupt" / "Freepointer corrupt": a free pointer that does not point at an object of its slab.</summary>
    FreechainCorrupt,
    /// <summary>
    /// "Invalid object pointer": a free of an address that is not the start of an object of the cache (inside an
    /// object, in another cache, outside any slab, outside the machine's memory).
    /// </summary>
    InvalidObjectPointer,
    /// <summary>"Objects remaining in X on __kmem_cache_shutdown()": kmem_cache_destroy() of a cache still in use.</summary>
    ObjectsRemaining,
    /// <summary>Slab metadata that contradicts itself ("Wrong object count", "inuse > max", "Not a valid slab page").</summary>
    SlabCorrupt,
}

/// <summary>One SLUB detection: what, where, and the report as the kernel prints it.</summary>
/// <param name="Bug">The kind of problem.</param>
/// <param name="Cache">The cache's name.</param>
/// <param name="Address">The object (or slab) the report is about.</param>
/// <param name="Report">The full report: the 77 '=' / BUG / 77 '-' header, details, hex dumps and FIX lines.</param>
public sealed record SlabBugReport(SlabBug Bug, string Cache, ulong Address, string Report);

/// <summary>
/// SLUB found corruption or misuse (slab_debug checks, or the checks the emulator always makes before it follows a
/// pointer). The cache was repaired the way the kernel repairs it (red zones restored, a corrupt free chain cut, a
/// bad slab marked full) before the exception was raised, so it stays consistent; the operation that found the
/// problem did not take place (an object that failed its checks is not freed).
/// </summary>
public sealed class SlabBugException : KmemException
{
    /// <summary>Creates the exception from the reports of one operation (the first is the main one).</summary>
    public SlabBugException(IReadOnlyList<SlabBugReport> reports)
        : base(string.Join("\n", reports.Select(r => r.Report)))
    {
        Reports = reports;
    }

    /// <summary>Every report the operation produced, in order.</summary>
    public IReadOnlyList<SlabBugReport> Reports { get; }

    /// <summary>The first problem found.</summary>
    public SlabBug Bug => Reports[0].Bug;

    /// <summary>The cache the first report is about.</summary>
    public string Cache => Reports[0].Cache;

    /// <summary>The address the first report is about.</summary>
    public ulong Address => Reports[0].Address;

    /// <summary>The reports as the kernel log would show them.</summary>
    public string Report => Message;
}

/// <summary>
/// kmem_cache_create() refused the request (bad name, size, alignment or flags; a cache of that name exists), or
/// a destroyed cache was used. Nothing was created or changed.
/// </summary>
public sealed class SlabCacheException(string message) : KmemException(message);

/// <summary>The kernel panicked (SLAB_PANIC on a cache that could not be created).</summary>
public sealed class KernelPanicException(string message) : KmemException("Kernel panic - not syncing: " + message);
