using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Slab;

namespace KmemNative.Interop;

// The page allocator, kmalloc and slab caches. The hot exports (kmem_cache_alloc/free, kmem_kmalloc/kfree) resolve
// their handles with one array read and compare each, call Machine<TArch> directly (its fast paths inline here),
// allocate nothing and reach a catch block only when something threw.
internal static unsafe partial class Exports
{
    private const ulong NoPage = ulong.MaxValue;

    // ---- page allocator ------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_alloc_pages")]
    public static long AllocPages(CpuHandle cpu, uint gfp, uint order)
    {
        try
        {
            if (RunOn(cpu, "kmem_alloc_pages") is not { } c)
                return LastError.Code;
            var m = c.M;
            if (order > PhysMem.PageSize.MaxOrder)
                return LastError.Set(Errno.EINVAL, $"kmem_alloc_pages: order {order} is outside 0..{PhysMem.PageSize.MaxOrder} (MAX_PAGE_ORDER)");
            ulong pfn = m.X64 is { } x ? x.AllocPagesPfn(c.Cpu, (Gfp)gfp, (int)order) : m.I386!.AllocPagesPfn(c.Cpu, (Gfp)gfp, (int)order);
            return pfn == NoPage ? NoMemory("kmem_alloc_pages", order) : (long)pfn;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_alloc_pages");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int NoMemory(string function, uint order) =>
        LastError.Set(Errno.ENOMEM, $"{function}: page allocation failure: order:{order}: no free block (see kmem_dmesg)");

    [UnmanagedCallersOnly(EntryPoint = "kmem_free_pages")]
    public static int FreePages(CpuHandle cpu, ulong pfn, uint order)
    {
        try
        {
            if (RunOn(cpu, "kmem_free_pages") is not { } c)
                return LastError.Code;
            if (order > PhysMem.PageSize.MaxOrder)
                return LastError.Set(Errno.EINVAL, $"kmem_free_pages: order {order} is outside 0..{PhysMem.PageSize.MaxOrder}");
            if (pfn >= c.M.Machine.MaxPfn)
                return LastError.Set(Errno.EFAULT, $"kmem_free_pages: pfn 0x{pfn:x} is beyond max_pfn 0x{c.M.Machine.MaxPfn:x}");
            var m = c.M;
            if (m.X64 is { } x)
                x.FreePagesPfn(c.Cpu, pfn, (int)order);
            else
                m.I386!.FreePagesPfn(c.Cpu, pfn, (int)order);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_free_pages");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_get_free_pages")]
    public static void* GetFreePages(CpuHandle cpu, uint gfp, uint order)
    {
        try
        {
            if (RunOn(cpu, "kmem_get_free_pages") is not { } c)
                return null;
            if (order > PhysMem.PageSize.MaxOrder)
            {
                LastError.Set(Errno.EINVAL, $"kmem_get_free_pages: order {order} is outside 0..{PhysMem.PageSize.MaxOrder}");
                return null;
            }
            ulong va = c.M.Machine.GetFreePages(c.Cpu, (Gfp)gfp, (int)order);
            if (va == 0)
            {
                NoMemory("kmem_get_free_pages", order);
                return null;
            }
            return c.M.HostOf(va);
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_get_free_pages");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_free_pages_ptr")]
    public static int FreePagesPtr(CpuHandle cpu, void* p, uint order)
    {
        try
        {
            if (RunOn(cpu, "kmem_free_pages_ptr") is not { } c)
                return LastError.Code;
            if (p == null)
                return 0;
            if (order > PhysMem.PageSize.MaxOrder)
                return LastError.Set(Errno.EINVAL, $"kmem_free_pages_ptr: order {order} is outside 0..{PhysMem.PageSize.MaxOrder}");
            if (!InLowmem(c.M, p))
                return LastError.Set(Errno.EFAULT, $"kmem_free_pages_ptr: {(nint)p:x} is not a host pointer into the machine's lowmem");
            c.M.Machine.FreePages(c.Cpu, c.M.VaOf(p), (int)order);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_free_pages_ptr");
        }
    }

    private static bool InLowmem(MachineEntry m, void* p) => (ulong)((byte*)p - m.Arena) < m.LowmemBytes;

    // ---- kmalloc -------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_kmalloc")]
    public static void* Kmalloc(CpuHandle cpu, nuint size, uint gfp)
    {
        try
        {
            if (RunOn(cpu, "kmem_kmalloc") is not { } c)
                return null;
            var m = c.M;
            ulong va = m.X64 is { } x ? x.Kmalloc(c.Cpu, size, (Gfp)gfp) : m.I386!.Kmalloc(c.Cpu, size, (Gfp)gfp);
            if (va == 0)
                return KmallocFailed("kmem_kmalloc", size);
            return m.HostOf(va);
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_kmalloc");
            return null;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* KmallocFailed(string function, nuint size)
    {
        LastError.Set(Errno.ENOMEM, $"{function}({size}): out of memory");
        return null;
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_kzalloc")]
    public static void* Kzalloc(CpuHandle cpu, nuint size, uint gfp)
    {
        try
        {
            if (RunOn(cpu, "kmem_kzalloc") is not { } c)
                return null;
            ulong va = c.M.Machine.Kmalloc(c.Cpu, size, (Gfp)gfp | Gfp.Zero);
            return va == 0 ? KmallocFailed("kmem_kzalloc", size) : c.M.HostOf(va);
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_kzalloc");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_krealloc")]
    public static void* Krealloc(CpuHandle cpu, void* p, nuint size, uint gfp)
    {
        try
        {
            if (RunOn(cpu, "kmem_krealloc") is not { } c)
                return null;
            ulong va = c.M.Machine.Krealloc(c.Cpu, c.M.VaOf(p), size, (Gfp)gfp);
            return va == 0 ? KmallocFailed("kmem_krealloc", size) : c.M.HostOf(va);
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_krealloc");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_ksize")]
    public static long Ksize(CpuHandle cpu, void* p)
    {
        try
        {
            if (RunOn(cpu, "kmem_ksize") is not { } c)
                return LastError.Code;
            return (long)c.M.Machine.Ksize(c.Cpu, c.M.VaOf(p));
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_ksize");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_kfree")]
    public static int Kfree(CpuHandle cpu, void* p)
    {
        try
        {
            if (RunOn(cpu, "kmem_kfree") is not { } c)
                return LastError.Code;
            var m = c.M;
            if (m.X64 is { } x)
                x.Kfree(c.Cpu, m.VaOf(p));
            else
                m.I386!.Kfree(c.Cpu, m.VaOf(p));
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_kfree");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_kfree_bulk")]
    public static int KfreeBulk(CpuHandle cpu, nuint n, void** p)
    {
        try
        {
            if (RunOn(cpu, "kmem_kfree_bulk") is not { } c)
                return LastError.Code;
            if (n != 0 && p == null)
                return LastError.Set(Errno.EFAULT, "kmem_kfree_bulk: the array is NULL");
            Span<ulong> chunk = stackalloc ulong[64];
            for (nuint i = 0; i < n; i += 64)
            {
                int k = (int)Math.Min(64, n - i);
                for (int j = 0; j < k; j++)
                    chunk[j] = c.M.VaOf(p[i + (nuint)j]);
                c.M.Machine.KfreeBulk(c.Cpu, chunk[..k]);
            }
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_kfree_bulk");
        }
    }

    // ---- slab caches ---------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_create")]
    public static int CacheCreate(CpuHandle cpu, byte* name, uint size, KmemCacheArgsNative* args, uint flags, CacheHandle* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_cache_create: out is NULL");
            *result = default;
            if (RunOn(cpu, "kmem_cache_create") is not { } c)
                return LastError.Code;
            if (Utf8(name) is not { } n)
                return LastError.Set(Errno.EINVAL, "kmem_cache_create: name is NULL");
            var m = c.M;
            var a = new KmemCacheArgs();
            if (args != null)
            {
                var ctor = args->Ctor;
                byte* arena = m.Arena;
                ulong pageOffset = m.PageOffset;
                a = new KmemCacheArgs
                {
                    Align = args->Align,
                    SheafCapacity = args->SheafCapacity,
                    Ctor = ctor == null ? null : va => ctor(arena + (va - pageOffset)),
                };
            }
            var s = m.Machine.KmemCacheCreate(c.Cpu, n, size, a, (SlabFlags)flags);
            if (s is null)
                return LastError.Set(Errno.ENOMEM, $"kmem_cache_create({n}): out of memory");
            if (Handles.AddCache(m, s) is not { } e)
            {
                m.Machine.KmemCacheDestroy(c.Cpu, s);
                return LastError.Set(Errno.ENOSPC, $"kmem_cache_create({n}): {Handles.MaxCaches} cache handles are in use");
            }
            *result = new CacheHandle(e.Handle);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_create");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_find")]
    public static int CacheFind(MachineHandle h, byte* name, CacheHandle* result)
    {
        try
        {
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_cache_find: out is NULL");
            *result = default;
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_cache_find", "machine");
            string? n = Utf8(name);
            if (n is null || m.Machine.FindKmemCache(n) is not { } s)
                return LastError.Set(Errno.ENOENT, $"kmem_cache_find: no cache named '{n}'");
            if (Handles.AddCache(m, s) is not { } e)
                return LastError.Set(Errno.ENOSPC, $"kmem_cache_find: {Handles.MaxCaches} cache handles are in use");
            *result = new CacheHandle(e.Handle);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_find");
        }
    }

    /// <summary>Resolves a cache handle for a call on <paramref name="c"/>; null after recording -EBADF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CacheEntry? CacheOn(CpuEntry c, CacheHandle h, string function)
    {
        var k = Handles.Cache(h);
        if (k is null || !ReferenceEquals(k.M, c.M))
        {
            CacheFailure(k, function);
            return null;
        }
        return k;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CacheFailure(CacheEntry? k, string function)
    {
        if (k is null)
            LastError.BadHandle(function, "cache");
        else
            LastError.Set(Errno.EBADF, $"{function}: the cache {k.Cache.Name} belongs to another machine than the CPU");
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_destroy")]
    public static int CacheDestroy(CpuHandle cpu, CacheHandle cache)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_destroy") is not { } c || CacheOn(c, cache, "kmem_cache_destroy") is not { } k)
                return LastError.Code;
            c.M.Machine.KmemCacheDestroy(c.Cpu, k.Cache);
            Handles.RemoveCache(k);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_destroy");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_shrink")]
    public static int CacheShrink(CpuHandle cpu, CacheHandle cache)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_shrink") is not { } c || CacheOn(c, cache, "kmem_cache_shrink") is not { } k)
                return LastError.Code;
            return c.M.Machine.KmemCacheShrink(c.Cpu, k.Cache) == 0 ? 0 : 1;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_shrink");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_alloc")]
    public static void* CacheAlloc(CpuHandle cpu, CacheHandle cache, uint gfp)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_alloc") is not { } c || CacheOn(c, cache, "kmem_cache_alloc") is not { } k)
                return null;
            var m = c.M;
            ulong va = m.X64 is { } x ? x.KmemCacheAlloc(c.Cpu, k.Cache, (Gfp)gfp) : m.I386!.KmemCacheAlloc(c.Cpu, k.Cache, (Gfp)gfp);
            if (va == 0)
                return KmallocFailed("kmem_cache_alloc", (nuint)k.Cache.ObjectSize);
            return m.Arena + (va - m.PageOffset);
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_cache_alloc");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_free")]
    public static int CacheFree(CpuHandle cpu, CacheHandle cache, void* p)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_free") is not { } c || CacheOn(c, cache, "kmem_cache_free") is not { } k)
                return LastError.Code;
            var m = c.M;
            // NULL frees nothing; any other pointer becomes its linear-map address (garbage for a pointer outside
            // the arena, which SLUB then reports as an invalid object pointer).
            ulong va = p == null ? 0 : (ulong)((byte*)p - m.Arena) + m.PageOffset;
            if (m.X64 is { } x)
                x.KmemCacheFree(c.Cpu, k.Cache, va);
            else
                m.I386!.KmemCacheFree(c.Cpu, k.Cache, va);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_free");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_alloc_bulk")]
    public static long CacheAllocBulk(CpuHandle cpu, CacheHandle cache, uint gfp, nuint n, void** p)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_alloc_bulk") is not { } c || CacheOn(c, cache, "kmem_cache_alloc_bulk") is not { } k)
                return 0;
            if (n == 0)
                return 0;
            if (p == null || n > int.MaxValue)
            {
                LastError.Set(Errno.EINVAL, "kmem_cache_alloc_bulk: the array is NULL or too large");
                return 0;
            }
            // The guest addresses are written into the caller's array (void* and ulong have the same size on the
            // 64-bit hosts the library supports), then turned into host pointers in place.
            var objs = new Span<ulong>(p, (int)n);
            int got = c.M.Machine.KmemCacheAllocBulk(c.Cpu, k.Cache, (Gfp)gfp, objs);
            if (got == 0)
            {
                LastError.Set(Errno.ENOMEM, $"kmem_cache_alloc_bulk({k.Cache.Name}, {n}): out of memory");
                return 0;
            }
            for (int i = 0; i < got; i++)
                p[i] = c.M.HostOf(objs[i]);
            return got;
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_cache_alloc_bulk");
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_free_bulk")]
    public static int CacheFreeBulk(CpuHandle cpu, CacheHandle cache, nuint n, void** p)
    {
        try
        {
            if (RunOn(cpu, "kmem_cache_free_bulk") is not { } c || CacheOn(c, cache, "kmem_cache_free_bulk") is not { } k)
                return LastError.Code;
            if (n != 0 && p == null)
                return LastError.Set(Errno.EFAULT, "kmem_cache_free_bulk: the array is NULL");
            Span<ulong> chunk = stackalloc ulong[128];
            for (nuint i = 0; i < n; i += 128)
            {
                int cnt = (int)Math.Min(128, n - i);
                for (int j = 0; j < cnt; j++)
                    chunk[j] = c.M.VaOf(p[i + (nuint)j]);
                c.M.Machine.KmemCacheFreeBulk(c.Cpu, k.Cache, chunk[..cnt]);
            }
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_free_bulk");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_info")]
    public static int CacheInfo(CacheHandle cache, KmemCacheInfo* info)
    {
        try
        {
            if (Handles.Cache(cache) is not { } k)
                return LastError.BadHandle("kmem_cache_info", "cache");
            if (info == null || info->Size < (uint)sizeof(KmemCacheInfo))
                return LastError.Set(Errno.EINVAL, $"kmem_cache_info: info is NULL or info->size is below {sizeof(KmemCacheInfo)}");
            var s = k.Cache;
            var si = k.M.Machine.Slabinfo(s);
            var r = new KmemCacheInfo
            {
                Size = (uint)sizeof(KmemCacheInfo),
                ObjectSize = (uint)s.ObjectSize,
                Stride = (uint)s.Size,
                Align = (uint)s.Align,
                Offset = (uint)s.Offset,
                Order = (uint)s.Order,
                ObjectsPerSlab = (uint)s.ObjectsPerSlab,
                Flags = (uint)s.Flags,
                KmemCache = s.Va,
                ActiveObjs = (ulong)si.ActiveObjs,
                NumObjs = (ulong)si.NumObjs,
                NumSlabs = (ulong)si.NumSlabs,
            };
            CopyName(s.Name, r.Name, 64);
            *info = r;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_info");
        }
    }

    private static void CopyName(string text, byte* dst, int capacity)
    {
        var span = new Span<byte>(dst, capacity);
        span.Clear();
        int n = System.Text.Encoding.UTF8.GetBytes(text.AsSpan(0, Math.Min(text.Length, capacity - 1)), span[..(capacity - 1)]);
        dst[Math.Min(n, capacity - 1)] = 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cache_fast_init")]
    public static int CacheFastInit(CpuHandle cpu, CacheHandle cache, KmemCacheFast* f)
    {
        try
        {
            if (f == null)
                return LastError.Set(Errno.EINVAL, "kmem_cache_fast_init: f is NULL");
            if (RunOn(cpu, "kmem_cache_fast_init") is not { } c || CacheOn(c, cache, "kmem_cache_fast_init") is not { } k)
                return LastError.Code;
            var s = k.Cache;
            bool x64 = c.M.X64 is not null;
            *f = new KmemCacheFast
            {
                C = c.Cpu.Percpu + s.CpuSlabOffset,
                Arena = c.M.Arena,
                PageOffset = c.M.PageOffset,
                // Debug caches never get a CPU slab (their freelist word stays NULL, failing the bound), caches
                // with sheaves or encoded free pointers have no bound at all: the inline path defers to the export.
                FpLimit = s.FpLimit,
                FpOffset = s.FpOffset,
                Word = x64 ? 8u : 4u,
                SlabAddrOff = (uint)(x64 ? HotSlab<X86_64>.CpuSlabAddr : HotSlab<I386>.CpuSlabAddr),
                SlabSpanOff = (uint)(x64 ? HotSlab<X86_64>.CpuSlabSpan : HotSlab<I386>.CpuSlabSpan),
                CpuGenWord = Handles.CpuGenWord(c),
                CacheGenWord = Handles.CacheGenWord(k),
                CpuGen = (uint)(c.Handle >> 32),
                CacheGen = (uint)(k.Handle >> 32),
                Cpu = new CpuHandle(c.Handle),
                Cache = new CacheHandle(k.Handle),
            };
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cache_fast_init");
        }
    }
}
