namespace KmemNative.Slab;

/// <summary>
/// <c>struct kmem_cache_args</c> (include/linux/slab.h, 6.18): the optional arguments of
/// <c>kmem_cache_create(name, size, &amp;args, flags)</c>.
/// </summary>
/// <remarks>
/// useroffset/usersize (hardened usercopy whitelisting) and freeptr_offset (SLAB_TYPESAFE_BY_RCU caches placing
/// the free pointer themselves) are not emulated.
/// </remarks>
public sealed record KmemCacheArgs
{
    /// <summary>@align: the required alignment of objects (0: the default).</summary>
    public uint Align { get; init; }

    /// <summary>@ctor: run on every object when its slab is created (and never again while the slab lives).</summary>
    public Action<ulong>? Ctor { get; init; }

    /// <summary>
    /// @sheaf_capacity: with a non-zero value, allocations and frees go through per-CPU arrays of that many
    /// object pointers ("sheaves": a main and a spare per CPU) backed by a per-node "barn" of full and empty
    /// sheaves; sheaves are refilled from and flushed to slabs in bulk. Ignored when slab_debug flags apply.
    /// </summary>
    public uint SheafCapacity { get; init; }
}
