using KmemNative.PageAlloc;

namespace KmemNative.Trace;

/// <summary>
/// Recognises the page allocations the traced kernel's slab allocator made for its own slabs.
/// </summary>
/// <remarks>
/// <para>Why it matters: SLUB gets slab pages from the buddy allocator, and <c>mm_page_alloc</c> traces them like
/// any other page allocation, usually right before the <c>kmem_cache_alloc</c>/<c>kmalloc</c> that needed them.
/// The emulator replays that <c>kmem_cache_alloc</c> through its own SLUB, which allocates its own slab pages;
/// replaying the traced slab pages as well would count slab memory twice. So they are skipped, and so is their
/// <c>mm_page_free</c> when <c>__free_slab()</c> gives them back (recognised by pfn).</para>
/// <para>The rule follows allocate_slab() (mm/slub.c): the first attempt is made with
/// <c>(flags | __GFP_NOWARN | __GFP_NORETRY) &amp; ~__GFP_NOFAIL</c>, where flags are the caller's reclaim and
/// constraint bits plus <c>s-&gt;allocflags</c> (__GFP_COMP, GFP_DMA/GFP_DMA32, __GFP_RECLAIMABLE), and kmalloc_fix_flags()
/// has removed __GFP_HIGHMEM and __GFP_DMA32 before (slab memory is never highmem) — nor is it ever
/// __GFP_MOVABLE. So: an <c>mm_page_alloc</c> with both __GFP_NOWARN and __GFP_NORETRY, without __GFP_HIGHMEM and
/// without __GFP_MOVABLE, is a slab page. When that first attempt fails (<c>page=0</c>), allocate_slab() retries at
/// the cache's minimum order with the plain flags: the next <c>mm_page_alloc</c> on the same CPU of a lower order
/// (still neither highmem nor movable) is that retry, a slab page too.</para>
/// <para>On trace A (3,723 such events) every one is confirmed by the objects that follow: each of those pages
/// receives at least one traced slab object, and no slab object of the trace lies in a page allocation the rule
/// left alone. Page-cache readahead (<c>GFP_NOFS|__GFP_HIGHMEM|__GFP_MOVABLE|__GFP_NOWARN|__GFP_NORETRY...</c>)
/// and <c>GFP_HIGHUSER_MOVABLE|...|__GFP_NORETRY</c> also carry NOWARN|NORETRY but are movable/highmem, which is why
/// the rule needs both exclusions. A <c>kvmalloc()</c> that falls to a large kmalloc (GFP_KERNEL|__GFP_NOWARN|
/// __GFP_NORETRY|__GFP_COMP, order ≥ 2) matches the rule as well; it is owned by the <c>kmalloc</c> event that
/// follows it either way, so it is skipped rightly (the replay looks ahead one event on the CPU for that case and
/// counts it as a large-kmalloc page).</para>
/// </remarks>
public static class SlabPageHeuristic
{
    /// <summary>__GFP_NOWARN | __GFP_NORETRY: what allocate_slab() adds to its first attempt.</summary>
    public const Gfp SlabFirstAttempt = Gfp.NoWarn | Gfp.NoRetry;

    /// <summary>What a slab page never has.</summary>
    public const Gfp NeverSlab = Gfp.HighMem | Gfp.Movable;

    /// <summary>True when an <c>mm_page_alloc</c> with these flags is allocate_slab()'s first attempt.</summary>
    public static bool IsSlabPage(Gfp gfp) => (gfp & SlabFirstAttempt) == SlabFirstAttempt && (gfp & NeverSlab) == 0;

    /// <summary>
    /// True when an <c>mm_page_alloc</c> following a failed first attempt of order <paramref name="failedOrder"/>
    /// on the same CPU is allocate_slab()'s minimum-order retry.
    /// </summary>
    public static bool IsSlabRetry(Gfp gfp, int order, int failedOrder) => order < failedOrder && (gfp & NeverSlab) == 0;
}
