using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

/// <summary>enum kmalloc_cache_type for the emulated configuration (CONFIG_ZONE_DMA, CONFIG_MEMCG on x86-64 only).</summary>
internal static class KmallocTypes
{
    public const int Normal = 0;
    public const int Reclaim = 1;
    public const int Dma = 2;
    public const int Cgroup = 3;
    /// <summary>NR_KMALLOC_TYPES on x86-64; i386 (no memcg) uses the first three.</summary>
    public const int Count = 4;

    public static readonly string[] Prefix = ["kmalloc-", "kmalloc-rcl-", "dma-kmalloc-", "kmalloc-cg-"];

    /// <summary>kmalloc_info[]: object size and short name by index (0 unused; 1 = 96, 2 = 192, then 2^index).</summary>
    public static readonly (uint Size, string Short)[] Info =
    [
        (0, "0"), (96, "96"), (192, "192"), (8, "8"), (16, "16"), (32, "32"), (64, "64"), (128, "128"),
        (256, "256"), (512, "512"), (1024, "1k"), (2048, "2k"), (4096, "4k"), (8192, "8k"),
    ];

    /// <summary>kmalloc_size_index[]: cache index for sizes 1..192, by (size - 1) / 8.</summary>
    public static ReadOnlySpan<byte> SizeIndex => [3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2];
}

// The kmalloc family (include/linux/slab.h, mm/slab_common.c, mm/slub.c): size classes, the caches per type,
// large allocations straight from the page allocator, ksize, krealloc and friends.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    private readonly KmemCache?[] _kmalloc;                        // kmalloc_caches[type][index]
    private readonly KmemCache[] _smallNormal = new KmemCache[24]; // kmalloc-N for sizes 1..192, KMALLOC_NORMAL

    /// <summary>NR_KMALLOC_TYPES of the profile.</summary>
    private static int TypeCount => TArch.Kind == ArchKind.X86_64 ? KmallocTypes.Count : KmallocTypes.Count - 1;

    /// <summary>KMALLOC_NOT_NORMAL_BITS: __GFP_RECLAIMABLE, __GFP_DMA, and __GFP_ACCOUNT with memcg.</summary>
    /// <remarks>A static readonly field: a JIT-time constant, where a property might not be inlined inside the fast path.</remarks>
    private static readonly uint NotNormalBits =
        (uint)(Gfp.Reclaimable | Gfp.Dma) | (TArch.Kind == ArchKind.X86_64 ? (uint)Gfp.Account : 0);

    /// <summary>kmalloc_type().</summary>
    internal static int KmallocType(Gfp gfp)
    {
        if (((uint)gfp & NotNormalBits) == 0)
            return KmallocTypes.Normal;
        if ((gfp & Gfp.Dma) != 0)
            return KmallocTypes.Dma;
        if (TArch.Kind != ArchKind.X86_64 || (gfp & Gfp.Reclaimable) != 0)
            return KmallocTypes.Reclaim;
        return KmallocTypes.Cgroup;
    }

    /// <summary>kmalloc_index(): 1..192 by the table, above by fls(size - 1).</summary>
    internal static int KmallocIndex(ulong size) =>
        size <= 192 ? KmallocTypes.SizeIndex[(int)((size - 1) >> 3)] : 64 - BitOperations.LeadingZeroCount(size - 1);

    /// <summary>kmalloc_slab(): the cache a request of 1..8192 bytes is served from.</summary>
    internal KmemCache KmallocSlab(ulong size, Gfp gfp) =>
        _kmalloc[KmallocType(gfp) * SlubConst.KmallocCacheNum + KmallocIndex(size)]!;

    /// <summary>A kmalloc cache by type and index (null where the profile has none).</summary>
    internal KmemCache? KmallocCache(int type, int index) => _kmalloc[type * SlubConst.KmallocCacheNum + index];

    /// <summary>create_kmalloc_caches(): per type 96 and 192 first, then 8 .. 8k; newest first in slab_caches.</summary>
    private void CreateKmallocCaches(Cpu cpu)
    {
        for (int type = 0; type < TypeCount; type++)
        {
            NewKmallocCache(cpu, 1, type);
            NewKmallocCache(cpu, 2, type);
            for (int i = SlubConst.KmallocShiftLow; i <= SlubConst.KmallocShiftHigh; i++)
                NewKmallocCache(cpu, i, type);
        }
        for (int i = 0; i < _smallNormal.Length; i++)
            _smallNormal[i] = KmallocCache(KmallocTypes.Normal, KmallocTypes.SizeIndex[i])!;
    }

    /// <summary>new_kmalloc_cache() + create_kmalloc_cache() + create_boot_cache().</summary>
    private void NewKmallocCache(Cpu cpu, int idx, int type)
    {
        SlabFlags flags = type switch
        {
            KmallocTypes.Reclaim => SlabFlags.ReclaimAccount,
            KmallocTypes.Cgroup => SlabFlags.Account,
            KmallocTypes.Dma => SlabFlags.CacheDma,
            // With memcg the normal caches are never merged.
            _ => TArch.Kind == ArchKind.X86_64 ? SlabFlags.NoMerge : 0,
        };
        flags |= SlabFlags.Kmalloc;
        var (size, shortName) = KmallocTypes.Info[idx];
        string name = KmallocTypes.Prefix[type] + shortName;
        ulong va = AllocForKernel(cpu, _kmemCache, zero: true);
        var s = new KmemCache(_m, name, va, HostOfLinear(va)) { NameVa = StaticString(name), KmallocSlot = type * SlubConst.KmallocCacheNum + idx };
        // kmalloc caches guarantee the largest power-of-two divisor of the size as alignment.
        uint align = Math.Max(8u, 1u << BitOperations.TrailingZeroCount(size));
        s.Align = (int)CalculateAlignment(flags, align, size);
        s.ObjectSize = (int)size;
        if (!OpenCache(cpu, s, flags, early: false))
            throw new KernelPanicException($"kmalloc_caches: cannot create {name}");
        PublishCache(s);
        _kmalloc[s.KmallocSlot] = s;
    }

    // ---- kmalloc() --------------------------------------------------------------------------------------

    /// <summary>
    /// kmalloc() on <paramref name="cpu"/>. The common case (1..192 bytes, no DMA/reclaimable/accounted flags) is
    /// one table load and the cache fast path; everything else goes through <see cref="KmallocSlow"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Kmalloc(Cpu cpu, ulong size, Gfp gfp)
    {
        if (size - 1 < 192 && ((uint)gfp & NotNormalBits) == 0)
        {
            // size - 1 < 192: the index is below 24, the table's length.
            KmemCache s = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_smallNormal), (nint)((size - 1) >> 3));
            return TryPopCpuFreelist(cpu, s, gfp, out ulong obj) ? obj : AllocSlow(cpu, s, gfp, (uint)size, "kmalloc");
        }
        return KmallocSlow(cpu, size, gfp);
    }

    /// <summary>__do_kmalloc_node(): large requests, kmalloc(0), the other types and sizes.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong KmallocSlow(Cpu cpu, ulong size, Gfp gfp)
    {
        EnsureInit(cpu);
        if (size > SlubConst.KmallocMaxCacheSize)
            return KmallocLarge(cpu, size, gfp);
        if (size == 0)
            return SlubConst.ZeroSizePtr;
        KmemCache s = KmallocSlab(size, gfp);
        return TryPopCpuFreelist(cpu, s, gfp, out ulong obj) ? obj : AllocSlow(cpu, s, gfp, (uint)size, "kmalloc");
    }

    /// <summary>
    /// __kmalloc_large_node(): above KMALLOC_MAX_CACHE_SIZE a compound page of order get_order(size), typed
    /// large_kmalloc and counted in NR_SLAB_UNRECLAIMABLE.
    /// </summary>
    private ulong KmallocLarge(Cpu cpu, ulong size, Gfp gfp)
    {
        CheckCpu(cpu);
        if (size > SlubConst.KmallocMaxSize)
            throw new InvalidAllocationException($"kmalloc({size}): larger than KMALLOC_MAX_SIZE ({SlubConst.KmallocMaxSize})");
        int order = PageSize.GetOrder(size);
        ulong pfn = _pages.AllocPages(cpu, FixFlags(gfp) | Gfp.Comp, order);
        if (pfn == PageAllocator<TArch>.NoPage)
            return 0;
        MemMap<TArch>.PageType(_mm.Desc(pfn)) = (uint)PageBits.PgtyLargeKmalloc << 24;
        _m.ModNodeState(NodeStat.NrSlabUnreclaimable, 1L << order);
        return PageAddress(pfn);
    }

    /// <summary>What kmalloc(size, gfp) would hand out: the cache's object stride, or PAGE_SIZE &lt;&lt; order (bytes_alloc).</summary>
    public ulong KmallocBytes(ulong size, Gfp gfp)
    {
        if (size > SlubConst.KmallocMaxCacheSize)
            return PageSize.Bytes << PageSize.GetOrder(size);
        return size == 0 ? 0 : (ulong)KmallocSlab(size, gfp).Size;
    }

    // ---- object lookup ------------------------------------------------------------------------------------

    /// <summary>What an address is, without changing anything: a slab object, a large kmalloc, or neither.</summary>
    internal bool TryResolve(ulong va, out KmemCache? cache, out ulong slabVa, out ulong objStart, out ulong largePfn)
    {
        cache = null;
        slabVa = 0;
        objStart = 0;
        largePfn = ulong.MaxValue;
        if (!TryHostOfLinear(va, 1, out _))
            return false;
        ulong headPfn = CompoundHeadPfn((va - TArch.PageOffset) >> PageSize.Shift);
        byte* head = _mm.Desc(headPfn);
        uint type = MemMap<TArch>.PageType(head) >> 24;
        if (type == PageBits.PgtyLargeKmalloc)
        {
            largePfn = headPfn;
            return true;
        }
        if (type != PageBits.PgtySlab)
            return false;
        cache = CacheAt(Ld(head + HotSlab<TArch>.SlabCache));
        if (cache is null)
            return false;
        slabVa = _mm.DescVa(headPfn);
        ulong first = PageAddress(headPfn) + (ulong)cache.RedLeftPad;
        uint objects = SlabCounters.Objects(Ld(head + HotSlab<TArch>.SlabCounters));
        // obj_to_index() on the address with its left red zone: the object whose stride contains va.
        ulong index = (va - PageAddress(headPfn)) / (ulong)cache.Size;
        if (index >= objects)
            return false;
        objStart = first + index * (ulong)cache.Size;
        return true;
    }

    /// <summary>ksize() / __ksize(): the usable size of an allocation (0 for ZERO_SIZE_PTR and NULL).</summary>
    public ulong Ksize(Cpu cpu, ulong obj)
    {
        if (obj <= SlubConst.ZeroSizePtr)
            return 0;
        if (!TryResolve(obj, out var s, out _, out ulong start, out ulong large) || (s is not null && start != obj) ||
            (s is null && PageAddress(large) != obj))
        {
            BeginOp();
            try
            {
                if (!TryHostOfLinear(obj, 1, out _))
                    ReportBadAddress(null, obj, "ksize");
                else
                    ReportNotSlab(null, obj, CompoundHeadPfn((obj - TArch.PageOffset) >> PageSize.Shift), "ksize");
            }
            finally
            {
                EndOp();
            }
            return 0;
        }
        if (s is null)
            return PageSize.Bytes << SlabOrder(_mm.Desc(large));
        // skip_orig_size_check(): the caller may now use all of it.
        SetOrigSize(s, obj, (uint)s.ObjectSize);
        return SlabKsize(s);
    }

    /// <summary>slab_ksize().</summary>
    private static ulong SlabKsize(KmemCache s)
    {
        if ((s.Flags & (SlabFlags.RedZone | SlabFlags.Poison)) != 0)
            return (ulong)s.ObjectSize;
        if ((s.Flags & (SlabFlags.TypesafeByRcu | SlabFlags.StoreUser)) != 0)
            return (ulong)s.Inuse;
        return (ulong)s.Size;
    }

    /// <summary>
    /// krealloc(): in place when the new size still fits the object (zeroing the grown part for __GFP_ZERO and
    /// moving the kmalloc red zone), otherwise kmalloc + copy + kfree.
    /// </summary>
    public ulong Krealloc(Cpu cpu, ulong p, ulong newSize, Gfp gfp)
    {
        if (newSize == 0)
        {
            Kfree(cpu, p);
            return SlubConst.ZeroSizePtr;
        }
        ulong ks = 0, orig = 0;
        KmemCache? s = null;
        if (p > SlubConst.ZeroSizePtr)
        {
            if (!TryResolve(p, out s, out _, out ulong start, out ulong large) || (s is not null && start != p) ||
                (s is null && PageAddress(large) != p))
            {
                // What kfree() would say about it.
                FreeSlow(cpu, null, p, "krealloc");
                throw new SlabBugException([new SlabBugReport(SlabBug.InvalidObjectPointer, "kmalloc", p, $"krealloc: 0x{P(p)} is not a kmalloc allocation")]);
            }
            if (s is null)
            {
                ks = PageSize.Bytes << SlabOrder(_mm.Desc(large));
            }
            else
            {
                ks = (ulong)s.ObjectSize;
                orig = HasOrigSize(s) ? GetOrigSize(s, p) : 0;
            }
            if (newSize <= ks)
            {
                byte* h = HostOfLinear(p);
                if ((gfp & Gfp.Zero) != 0)
                {
                    if (orig != 0 && orig < newSize)
                        new Span<byte>(h + orig, (int)(newSize - orig)).Clear();
                    else
                        new Span<byte>(h + newSize, (int)(ks - newSize)).Clear();
                }
                if (s is not null && HasOrigSize(s))
                {
                    SetOrigSize(s, p, (uint)newSize);
                    if ((s.Flags & SlabFlags.RedZone) != 0 && newSize < ks)
                        new Span<byte>(h + newSize, (int)(ks - newSize)).Fill(SlabPoison.RedActive);
                }
                return p;
            }
        }
        ulong ret = Kmalloc(cpu, newSize, gfp);
        if (ret != 0 && p > SlubConst.ZeroSizePtr)
        {
            ulong copy = orig != 0 ? orig : ks;
            Buffer.MemoryCopy(HostOfLinear(p), HostOfLinear(ret), (long)newSize, (long)Math.Min(copy, newSize));
            Kfree(cpu, p);
        }
        return ret;
    }

    /// <summary>kfree_sensitive(): zero the whole usable size (ksize), then kfree().</summary>
    public void KfreeSensitive(Cpu cpu, ulong p)
    {
        ulong ks = Ksize(cpu, p);
        if (ks != 0)
            new Span<byte>(HostOfLinear(p), (int)ks).Clear();
        Kfree(cpu, p);
    }

    /// <summary>kmemdup(): kmalloc(len) and a copy of <paramref name="len"/> bytes at kernel address <paramref name="src"/>.</summary>
    public ulong Kmemdup(Cpu cpu, ulong src, ulong len, Gfp gfp)
    {
        if (len != 0 && !TryHostOfLinear(src, len, out _))
            throw new VirtualAddressException($"kmemdup: 0x{src:x}+{len} is not direct-mapped RAM", src);
        ulong p = Kmalloc(cpu, len, gfp);
        if (p > SlubConst.ZeroSizePtr)
            Buffer.MemoryCopy(HostOfLinear(src), HostOfLinear(p), (long)len, (long)len);
        return p;
    }

    /// <summary>kmemdup() of host bytes.</summary>
    public ulong Kmemdup(Cpu cpu, ReadOnlySpan<byte> data, Gfp gfp)
    {
        ulong p = Kmalloc(cpu, (ulong)data.Length, gfp);
        if (p > SlubConst.ZeroSizePtr)
            data.CopyTo(new Span<byte>(HostOfLinear(p), data.Length));
        return p;
    }

    /// <summary>kstrdup(): a NUL-terminated copy (UTF-8) in a kmalloc object; NULL for a null string.</summary>
    public ulong Kstrdup(Cpu cpu, string? text, Gfp gfp)
    {
        if (text is null)
            return 0;
        byte[] bytes = Encoding.UTF8.GetBytes(text + "\0");
        return Kmemdup(cpu, bytes, gfp);
    }

    /// <summary>kmalloc_array(): n * size with an overflow check (NULL on overflow, as in the kernel).</summary>
    public ulong KmallocArray(Cpu cpu, ulong n, ulong size, Gfp gfp)
    {
        if (size != 0 && n > ulong.MaxValue / size)
            return 0;
        return Kmalloc(cpu, n * size, gfp);
    }

    /// <summary>A NUL-terminated string at a kernel address (names of caches), read with bounds checks.</summary>
    internal string ReadCString(ulong va, int max = 256)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < max; i++)
        {
            if (!TryHostOfLinear(va + (ulong)i, 1, out byte* h) || *h == 0)
                break;
            sb.Append((char)*h);
        }
        return sb.ToString();
    }

    private ulong KstrdupInternal(Cpu cpu, string text, Gfp gfp) => Kstrdup(cpu, text, gfp);

    private void KfreeInternal(Cpu cpu, ulong p) => Kfree(cpu, p);

    private void KmemCacheFreeInternal(Cpu cpu, KmemCache s, ulong p) => Free(cpu, s, p);
}
