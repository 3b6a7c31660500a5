using System.Globalization;
using System.Text;

namespace KmemNative.Slab;

/// <summary>
/// <c>slab_flags_t</c>: the flags of <c>kmem_cache_create()</c> and the debug flags <c>slab_debug=</c> adds, with
/// the bit numbers of <c>enum _slab_flag_bits</c> (include/linux/slab.h, Linux 6.18).
/// </summary>
/// <remarks>
/// The enum's bit numbers depend on the kernel configuration; these are the emulated one: CONFIG_DEBUG_OBJECTS,
/// CONFIG_FAILSLAB, CONFIG_KASAN_GENERIC and CONFIG_KFENCE off; CONFIG_MEMCG on (so <c>_SLAB_ACCOUNT</c> has a
/// bit; the i386 profile, which has no memcg, keeps the same numbering and never sets it); CONFIG_SLAB_OBJ_EXT on.
/// </remarks>
[Flags]
public enum SlabFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>SLAB_CONSISTENCY_CHECKS (slab_debug F): expensive checks on every alloc and free.</summary>
    ConsistencyChecks = 1u << 0,
    /// <summary>SLAB_RED_ZONE (slab_debug Z): red zones around every object.</summary>
    RedZone = 1u << 1,
    /// <summary>SLAB_POISON (slab_debug P): poison free objects (0x6b, last byte 0xa5) and padding (0x5a).</summary>
    Poison = 1u << 2,
    /// <summary>SLAB_KMALLOC: a kmalloc cache.</summary>
    Kmalloc = 1u << 3,
    /// <summary>SLAB_HWCACHE_ALIGN: align objects on a cache line (halved while the object fits in half).</summary>
    HwcacheAlign = 1u << 4,
    /// <summary>SLAB_CACHE_DMA: slabs from ZONE_DMA.</summary>
    CacheDma = 1u << 5,
    /// <summary>SLAB_CACHE_DMA32: slabs from ZONE_DMA32.</summary>
    CacheDma32 = 1u << 6,
    /// <summary>SLAB_STORE_USER (slab_debug U): record who allocated and freed each object.</summary>
    StoreUser = 1u << 7,
    /// <summary>SLAB_PANIC: panic if kmem_cache_create() fails.</summary>
    Panic = 1u << 8,
    /// <summary>
    /// SLAB_TYPESAFE_BY_RCU: the slab's pages are returned to the page allocator only after an RCU grace period,
    /// so a freed object keeps its type (it may be reused for another object of the same cache at once). The
    /// emulator has no RCU: the free pointer moves outside the object (as in the kernel) and slab pages are freed
    /// immediately, which is what a grace period that has already elapsed looks like.
    /// </summary>
    TypesafeByRcu = 1u << 9,
    /// <summary>SLAB_TRACE (slab_debug T): log every alloc and free.</summary>
    Trace = 1u << 10,
    /// <summary>SLAB_NOLEAKTRACE: no kmemleak tracking (and no U from a global slab_debug).</summary>
    NoLeakTrace = 1u << 11,
    /// <summary>SLAB_NO_MERGE: never merge with a compatible cache.</summary>
    NoMerge = 1u << 12,
    /// <summary>SLAB_ACCOUNT: charge objects to the memory cgroup (kmalloc-cg-* caches).</summary>
    Account = 1u << 13,
    /// <summary>SLAB_NO_USER_FLAGS: ignore slab_debug= for this cache.</summary>
    NoUserFlags = 1u << 14,
    /// <summary>SLAB_RECLAIM_ACCOUNT: objects are reclaimable (NR_SLAB_RECLAIMABLE, __GFP_RECLAIMABLE pages).</summary>
    ReclaimAccount = 1u << 15,
    /// <summary>__OBJECT_POISON (internal): the object itself is poisoned (SLAB_POISON without RCU or ctor).</summary>
    ObjectPoison = 1u << 16,
    /// <summary>__CMPXCHG_DOUBLE (internal): freelist and counters are updated with a double-word compare-and-swap.</summary>
    CmpxchgDouble = 1u << 17,
    /// <summary>SLAB_NO_OBJ_EXT.</summary>
    NoObjExt = 1u << 18,
}

/// <summary>Names, masks and text forms of <see cref="SlabFlags"/>.</summary>
public static class SlabFlagsText
{
    /// <summary>DEBUG_DEFAULT_FLAGS: what slab_debug without options turns on (FZPU).</summary>
    public const SlabFlags DebugDefault = SlabFlags.ConsistencyChecks | SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser;

    /// <summary>SLAB_DEBUG_FLAGS: flags that take a cache off the lockless fast paths.</summary>
    public const SlabFlags DebugFlags = SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser | SlabFlags.Trace | SlabFlags.ConsistencyChecks;

    /// <summary>SLAB_NO_CMPXCHG: debug flags under which freelist updates take the node's list_lock.</summary>
    public const SlabFlags NoCmpxchg = SlabFlags.ConsistencyChecks | SlabFlags.StoreUser | SlabFlags.Trace;

    /// <summary>DEBUG_METADATA_FLAGS: debug flags that add metadata to objects (dropped by slab_debug O when they raise the order).</summary>
    public const SlabFlags DebugMetadata = SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.StoreUser;

    /// <summary>SLAB_FLAGS_PERMITTED: what kmem_cache_create() accepts from callers.</summary>
    public const SlabFlags Permitted = SlabFlags.HwcacheAlign | SlabFlags.CacheDma | SlabFlags.CacheDma32 | SlabFlags.Panic |
        SlabFlags.TypesafeByRcu | SlabFlags.NoMerge | SlabFlags.ReclaimAccount | SlabFlags.Account | SlabFlags.NoLeakTrace |
        SlabFlags.NoUserFlags | SlabFlags.NoObjExt | SlabFlags.Kmalloc | DebugFlags;

    private static readonly (SlabFlags Flag, string Name)[] s_names =
    [
        (SlabFlags.ConsistencyChecks, "SLAB_CONSISTENCY_CHECKS"), (SlabFlags.RedZone, "SLAB_RED_ZONE"),
        (SlabFlags.Poison, "SLAB_POISON"), (SlabFlags.Kmalloc, "SLAB_KMALLOC"), (SlabFlags.HwcacheAlign, "SLAB_HWCACHE_ALIGN"),
        (SlabFlags.CacheDma, "SLAB_CACHE_DMA"), (SlabFlags.CacheDma32, "SLAB_CACHE_DMA32"), (SlabFlags.StoreUser, "SLAB_STORE_USER"),
        (SlabFlags.Panic, "SLAB_PANIC"), (SlabFlags.TypesafeByRcu, "SLAB_TYPESAFE_BY_RCU"), (SlabFlags.Trace, "SLAB_TRACE"),
        (SlabFlags.NoLeakTrace, "SLAB_NOLEAKTRACE"), (SlabFlags.NoMerge, "SLAB_NO_MERGE"), (SlabFlags.Account, "SLAB_ACCOUNT"),
        (SlabFlags.NoUserFlags, "SLAB_NO_USER_FLAGS"), (SlabFlags.ReclaimAccount, "SLAB_RECLAIM_ACCOUNT"),
        (SlabFlags.ObjectPoison, "__OBJECT_POISON"), (SlabFlags.CmpxchgDouble, "__CMPXCHG_DOUBLE"), (SlabFlags.NoObjExt, "SLAB_NO_OBJ_EXT"),
    ];

    /// <summary>The kernel names joined by <c>|</c>, <c>0</c> for none.</summary>
    public static string Format(SlabFlags flags)
    {
        if (flags == 0)
            return "0";
        var sb = new StringBuilder();
        uint rest = (uint)flags;
        foreach (var (flag, name) in s_names)
        {
            if ((rest & (uint)flag) == 0)
                continue;
            if (sb.Length > 0)
                sb.Append('|');
            sb.Append(name);
            rest &= ~(uint)flag;
        }
        if (rest != 0)
            sb.Append(sb.Length > 0 ? "|" : "").Append("0x").Append(rest.ToString("x", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>
    /// Parses names joined by <c>|</c> (<c>SLAB_HWCACHE_ALIGN|SLAB_PANIC</c>; the <c>SLAB_</c> prefix is optional,
    /// case is ignored), a number, or <c>0</c>.
    /// </summary>
    /// <exception cref="FormatException">A part is neither a known name nor a number.</exception>
    public static SlabFlags Parse(string text)
    {
        uint value = 0;
        foreach (var raw in text.Split('|'))
        {
            string part = raw.Trim();
            if (part.Length == 0)
                throw new FormatException($"empty part in slab flags '{text}'");
            if (part.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                    ? uint.TryParse(part.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint n)
                    : uint.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out n))
            {
                value |= n;
                continue;
            }
            string name = part.StartsWith("SLAB_", StringComparison.OrdinalIgnoreCase) ? part : "SLAB_" + part;
            var match = s_names.FirstOrDefault(s => s.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (match.Name is null)
                throw new FormatException($"unknown slab flag '{part}' (expected names like SLAB_HWCACHE_ALIGN or SLAB_RECLAIM_ACCOUNT, or a number)");
            value |= (uint)match.Flag;
        }
        return (SlabFlags)value;
    }
}
