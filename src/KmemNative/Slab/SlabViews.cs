namespace KmemNative.Slab;

/// <summary>One line of /proc/slabinfo (get_slabinfo()).</summary>
/// <param name="Name">Cache name.</param>
/// <param name="ActiveObjs">Objects not free on a partial slab (objects cached on CPU freelists count as active, as in the kernel).</param>
/// <param name="NumObjs">Objects in all slabs.</param>
/// <param name="ObjSize">s-&gt;size.</param>
/// <param name="ObjPerSlab">oo_objects(s-&gt;oo).</param>
/// <param name="PagesPerSlab">1 &lt;&lt; oo_order(s-&gt;oo).</param>
/// <param name="ActiveSlabs">nr_slabs.</param>
/// <param name="NumSlabs">nr_slabs.</param>
public sealed record SlabInfo(string Name, long ActiveObjs, long NumObjs, int ObjSize, int ObjPerSlab, int PagesPerSlab, long ActiveSlabs, long NumSlabs);

/// <summary>A user track (slab_debug=U): where, on which CPU, by which task, and when an object was allocated or freed.</summary>
/// <param name="CallSite">%pS of the call site.</param>
/// <param name="Cpu">smp_processor_id().</param>
/// <param name="Pid">current-&gt;pid.</param>
/// <param name="When">jiffies.</param>
public sealed record SlabTrack(string CallSite, int Cpu, int Pid, ulong When);

/// <summary>
/// What an address is, when it belongs to a slab (kmem_obj_info()): the cache, the object containing it, where in
/// the object it points, whether the object is allocated, and its tracks with slab_debug=U.
/// </summary>
/// <param name="Cache">The cache.</param>
/// <param name="Address">The address asked about.</param>
/// <param name="ObjectStart">The object's first byte (after its left red zone).</param>
/// <param name="PointerOffset">Address - ObjectStart (negative inside the left red zone).</param>
/// <param name="Allocated">False when the object is on a freelist.</param>
/// <param name="CpuCache">The CPU whose lockless freelist holds the (free) object, or null.</param>
/// <param name="Slab">Kernel address of the slab (its head struct page).</param>
/// <param name="SlabMemory">page_address() of the slab.</param>
/// <param name="Index">obj_to_index().</param>
/// <param name="AllocTrack">The allocation track, or null.</param>
/// <param name="FreeTrack">The free track, or null.</param>
/// <param name="Sheaf">For a free object cached in a sheaf: "main", "spare" (of CPU <paramref name="CpuCache"/>) or "barn".</param>
public sealed record SlabObjectInfo(KmemCache Cache, ulong Address, ulong ObjectStart, long PointerOffset, bool Allocated, int? CpuCache,
    ulong Slab, ulong SlabMemory, int Index, SlabTrack? AllocTrack, SlabTrack? FreeTrack, string? Sheaf = null);

/// <summary>One object of a slab in a <c>kmem -S</c> listing.</summary>
/// <param name="Address">The object.</param>
/// <param name="Allocated">In use.</param>
/// <param name="CpuCache">The CPU whose freelist (or sheaf) caches it, or null.</param>
/// <param name="Sheaf">For an object cached in a sheaf (counted in use by its slab, free for users): "main", "spare" or "barn".</param>
public readonly record struct SlabObjectState(ulong Address, bool Allocated, int? CpuCache, string? Sheaf = null);

/// <summary>One slab as crash's <c>kmem -S</c> shows it.</summary>
/// <param name="Slab">Kernel address of the head struct page.</param>
/// <param name="Memory">page_address() of the slab.</param>
/// <param name="Total">slab-&gt;objects.</param>
/// <param name="Allocated">Objects on no freelist and in no sheaf.</param>
/// <param name="Free">Objects on the slab's or a CPU's freelist, or in a sheaf.</param>
/// <param name="Frozen">slab-&gt;frozen: a CPU slab.</param>
/// <param name="Order">Slab order.</param>
/// <param name="Objects">Every object in address order.</param>
public sealed record SlabState(ulong Slab, ulong Memory, int Total, int Allocated, int Free, bool Frozen, int Order, IReadOnlyList<SlabObjectState> Objects);

/// <summary>A cache's slabs and per-CPU/per-node state, for <c>kmem -S</c>.</summary>
/// <param name="Cache">The cache.</param>
/// <param name="CpuSlabs">Per CPU: its kmem_cache_cpu address and its CPU slab (or null).</param>
/// <param name="NodeVa">Address of the kmem_cache_node.</param>
/// <param name="NrSlabs">n-&gt;nr_slabs.</param>
/// <param name="NrPartial">n-&gt;nr_partial.</param>
/// <param name="Partial">The node's partial slabs in list order.</param>
/// <param name="Full">Full slabs (the n-&gt;full list for debug caches with SLAB_STORE_USER, else found by scanning mem_map).</param>
/// <param name="FullTracked">True when <paramref name="Full"/> is the kernel's own n-&gt;full list.</param>
/// <param name="Sheaves">Per CPU its sheaves, for a cache with sheaves (else empty).</param>
/// <param name="Barn">The node's barn (n-&gt;barn), or null.</param>
public sealed record CacheState(KmemCache Cache, IReadOnlyList<(int Cpu, ulong KmemCacheCpu, SlabState? Slab)> CpuSlabs, ulong NodeVa,
    long NrSlabs, long NrPartial, IReadOnlyList<SlabState> Partial, IReadOnlyList<SlabState> Full, bool FullTracked,
    IReadOnlyList<CpuSheavesState>? Sheaves = null, BarnState? Barn = null)
{
    /// <summary>Objects in all slabs.</summary>
    public long Total => AllSlabs.Sum(s => (long)s.Total);

    /// <summary>Allocated objects in all slabs (crash's ALLOCATED: CPU-cached objects count as free).</summary>
    public long Allocated => AllSlabs.Sum(s => (long)s.Allocated);

    /// <summary>Every slab of the cache, once.</summary>
    public IEnumerable<SlabState> AllSlabs =>
        CpuSlabs.Where(c => c.Slab is not null).Select(c => c.Slab!).Concat(Partial).Concat(Full).DistinctBy(s => s.Slab);
}

/// <summary>A CPU's slub_percpu_sheaves.</summary>
/// <param name="Cpu">The CPU.</param>
/// <param name="Address">Address of its struct slub_percpu_sheaves in the per-CPU area.</param>
/// <param name="Main">pcs-&gt;main (a struct slab_sheaf).</param>
/// <param name="MainSize">Objects in the main sheaf.</param>
/// <param name="Spare">pcs-&gt;spare, or 0.</param>
/// <param name="SpareSize">Objects in the spare sheaf.</param>
public sealed record CpuSheavesState(int Cpu, ulong Address, ulong Main, int MainSize, ulong Spare, int SpareSize);

/// <summary>A node's struct node_barn.</summary>
/// <param name="Address">Its address.</param>
/// <param name="Full">The full sheaves (sheaves_full).</param>
/// <param name="Empty">The empty sheaves (sheaves_empty).</param>
public sealed record BarnState(ulong Address, IReadOnlyList<ulong> Full, IReadOnlyList<ulong> Empty);

/// <summary>What validate_slab_cache() found.</summary>
/// <param name="Reports">The reports, in order (each repaired).</param>
/// <param name="Errors">The count the kernel's KUnit tests compare (one per BUG and one per FIX line).</param>
public sealed record SlabValidation(IReadOnlyList<SlabBugReport> Reports, int Errors);

/// <summary>What the slab consistency check counted.</summary>
/// <param name="Caches">Caches checked.</param>
/// <param name="Slabs">Slabs found.</param>
/// <param name="Objects">Objects in them.</param>
/// <param name="Allocated">Allocated objects.</param>
/// <param name="SlabPages">Pages held by slabs.</param>
/// <param name="LargeKmallocPages">Pages held by large kmalloc allocations.</param>
public sealed record SlabConsistencyReport(int Caches, long Slabs, long Objects, long Allocated, long SlabPages, long LargeKmallocPages);
