/*
 * kmem.h — the C ABI of KmemNative: the Linux 6.18 memory manager (struct page, zones, buddy allocator, SLUB,
 * x86 paging) emulated on one native arena, loaded as a shared library (libkmem.so / libkmem.dylib / kmem.dll).
 *
 * C99 and C++ compatible. Link with -lkmem (the library is a .NET NativeAOT image: no .NET install is needed to
 * run it; building it needs the .NET SDK plus gcc or clang and the zlib headers).
 *
 * ---------------------------------------------------------------------------------------------------------------
 * THE MODEL
 *
 *   A machine (kmem_machine_t) is an emulated x86 computer: its RAM is ONE host allocation, the arena, which never
 *   moves while the machine lives. Physical address == offset into the arena, so every physical address has a
 *   host pointer:       host = arena_base + phys              (struct kmem_machine_info.arena_base)
 *   The kernel sees memory at kernel virtual addresses ("guest addresses"). RAM below the lowmem limit (all of it
 *   on x86_64; the first 879 MiB on i386) is linearly mapped:
 *                       virt = page_offset + phys             (PAGE_OFFSET: 0xffff888000000000 / 0xc0000000)
 *   Slab objects, kmalloc memory and __get_free_pages() memory are always linearly mapped, so
 *   the allocation calls below return HOST POINTERS that C may read and write directly (like malloc's), and the
 *   guest address of the same byte is one addition away: kmem_host_to_virt_inline() / kmem_virt_to_host_inline()
 *   with the info struct, or the checked kmem_host_to_virt() / kmem_virt_to_host() exports. Everything the
 *   emulated kernel keeps (struct page array, free lists, per-CPU data, slab freelists, page tables) lives in the
 *   same arena at guest addresses: writing past an object corrupts the emulated kernel exactly as it would corrupt
 *   a real one (and the emulator's checks report it), never the host process outside the arena.
 *
 *   Other kernel virtual addresses (vmalloc, kmap, fixmap, user space) exist only through page tables: use the MMU
 *   calls (kmem_translate, kmem_read_virt, kmem_write_virt) for them; a host pointer obtained for one such page
 *   (kmem_virt_to_host) is valid for that page only.
 *
 *   kmalloc(0) returns KMEM_ZERO_SIZE_PTR ((void *)16), as the kernel does: not NULL, never dereferenceable.
 *
 * THREADS AND CPUS
 *
 *   A CPU handle (kmem_cpu_t) is an emulated CPU claimed by the calling thread (kmem_cpu_get). One thread per CPU
 *   handle at a time: like a kernel CPU with preemption disabled, the per-CPU fast paths take no lock, so only the
 *   thread that claimed a CPU may pass its handle (release it with kmem_cpu_put before another thread claims it;
 *   KMEM_CONFIG_CHECK_CPU_OWNER makes the calls verify this). Apart from that rule every call is thread-safe: any
 *   number of threads may use one machine, each on its own CPU, and calls that take no CPU (conversions, /proc,
 *   vtop, ptdump) may come from any thread. kmem_machine_destroy must not race with other calls on that machine
 *   (as free() must not race with uses of the memory); afterwards the machine's handles are stale.
 *
 * HANDLES
 *
 *   Handles are opaque 64-bit values wrapped in distinct struct types (a CPU handle cannot be passed where a cache
 *   is expected). They carry a generation: a handle whose object was destroyed or released, a handle of another
 *   type, or garbage is detected and rejected with -EBADF — it never crashes the process. {0} is never valid.
 *
 * ERRORS
 *
 *   Calls return 0 or a non-negative value on success and a negative errno value on failure (-EINVAL, -ENOMEM,
 *   -EFAULT, -EBADF, -EBUSY...); calls that return a pointer return NULL on failure. After a failure,
 *   kmem_last_error() describes it (often with the kernel's own report: BUG: Bad page state, a SLUB report, a page
 *   fault oops) and kmem_last_errno() repeats the code. Both are per thread and valid until the next kmem_ call on
 *   the same thread. No C++ or .NET exception ever leaves the library; the process keeps running after an error.
 *
 * ONE LIBRARY PER PROCESS
 *
 *   libkmem is a .NET NativeAOT image with its own runtime and garbage collector. Load at most one NativeAOT
 *   library per process (two images would each bring a runtime; that is not supported by .NET). Any number of
 *   machines can live in that one library.
 *
 * FIRST CALL
 *
 *   The first call into the library starts its runtime and attaches the thread. Call kmem_init() once before
 *   measuring anything so that this one-time cost stays outside the measurement.
 * ---------------------------------------------------------------------------------------------------------------
 */
#ifndef KMEM_H
#define KMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KMEM_API __declspec(dllimport)
#else
#define KMEM_API
#endif

/* The ABI version this header describes; kmem_init() refuses a library of another major version. */
#define KMEM_ABI_VERSION_MAJOR 1
#define KMEM_ABI_VERSION_MINOR 0
#define KMEM_ABI_VERSION ((KMEM_ABI_VERSION_MAJOR << 16) | KMEM_ABI_VERSION_MINOR)

/* ------------------------------------------------------------------------------------------------ handles */

typedef struct kmem_machine { uint64_t h; } kmem_machine_t; /* an emulated machine */
typedef struct kmem_cpu { uint64_t h; } kmem_cpu_t;         /* an emulated CPU claimed by one thread */
typedef struct kmem_cache { uint64_t h; } kmem_cache_t;     /* a slab cache (struct kmem_cache) */
typedef struct kmem_process { uint64_t h; } kmem_process_t; /* a process: mm_struct + task (see PROCESSES) */

/* GFP flags: unsigned int in the kernel (gfp_t). */
typedef uint32_t kmem_gfp_t;

/* ------------------------------------------------------------------------------------------------ error codes */
/* The Linux errno values (returned negated). Defined here so that Windows builds get the Linux numbers too. */
#define KMEM_EIO 5         /* internal inconsistency found (consistency check failed, kernel panic) */
#define KMEM_EBADF 9       /* bad, stale or wrong-type handle; destroyed machine */
#define KMEM_ENOMEM 12     /* out of (emulated) memory */
#define KMEM_EFAULT 14     /* bad address: page fault, not RAM, not a linear-map address, outside the arena */
#define KMEM_EBUSY 16      /* CPU held by another thread; cache still has objects; process running elsewhere */
#define KMEM_EEXIST 17     /* a cache of that name exists */
#define KMEM_ENOENT 2      /* no such /proc file; no report yet (kmem_alloc_failure_report, kmem_oom_report) */
#define KMEM_EINVAL 22     /* invalid argument: bad order, GFP bits, size, flags; invalid or double free */
#define KMEM_ENOSPC 28     /* handle table full */
#define KMEM_ENOSYS 38     /* not implemented */
#define KMEM_EPROTO 71     /* ABI version mismatch */

/* ------------------------------------------------------------------------------------------------ GFP flags */
/* Linux 6.18 include/linux/gfp_types.h values (x86; CONFIG_LOCKDEP and CONFIG_SLAB_OBJ_EXT bits as the
 * emulated kernel has them). Guarded so that code also including kernel-style headers keeps one definition. */
#ifndef __GFP_DMA
#define __GFP_DMA 0x01u
#define __GFP_HIGHMEM 0x02u
#define __GFP_DMA32 0x04u
#define __GFP_MOVABLE 0x08u
#define __GFP_RECLAIMABLE 0x10u
#define __GFP_HIGH 0x20u
#define __GFP_IO 0x40u
#define __GFP_FS 0x80u
#define __GFP_ZERO 0x100u
#define __GFP_DIRECT_RECLAIM 0x400u
#define __GFP_KSWAPD_RECLAIM 0x800u
#define __GFP_WRITE 0x1000u
#define __GFP_NOWARN 0x2000u
#define __GFP_RETRY_MAYFAIL 0x4000u
#define __GFP_NOFAIL 0x8000u
#define __GFP_NORETRY 0x10000u
#define __GFP_MEMALLOC 0x20000u
#define __GFP_COMP 0x40000u
#define __GFP_NOMEMALLOC 0x80000u
#define __GFP_HARDWALL 0x100000u
#define __GFP_THISNODE 0x200000u
#define __GFP_ACCOUNT 0x400000u
#define __GFP_ZEROTAGS 0x800000u
#define __GFP_NO_OBJ_EXT 0x1000000u

#define __GFP_RECLAIM (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)
#define GFP_ATOMIC (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_KERNEL (__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define GFP_KERNEL_ACCOUNT (GFP_KERNEL | __GFP_ACCOUNT)
#define GFP_NOWAIT (__GFP_KSWAPD_RECLAIM | __GFP_NOWARN)
#define GFP_NOIO (__GFP_RECLAIM)
#define GFP_NOFS (__GFP_RECLAIM | __GFP_IO)
#define GFP_USER (__GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL)
#define GFP_DMA __GFP_DMA
#define GFP_DMA32 __GFP_DMA32
#define GFP_HIGHUSER (GFP_USER | __GFP_HIGHMEM)
#define GFP_HIGHUSER_MOVABLE (GFP_HIGHUSER | __GFP_MOVABLE)
#define GFP_TRANSHUGE_LIGHT ((GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM)
#define GFP_TRANSHUGE (GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM)
#endif

/* ------------------------------------------------------------------------------------------------ slab flags */
/* slab_flags_t bits of the emulated 6.18 configuration (enum _slab_flag_bits; see Slab/SlabFlags.cs). */
#define KMEM_SLAB_CONSISTENCY_CHECKS (1u << 0)
#define KMEM_SLAB_RED_ZONE (1u << 1)
#define KMEM_SLAB_POISON (1u << 2)
#define KMEM_SLAB_HWCACHE_ALIGN (1u << 4)
#define KMEM_SLAB_CACHE_DMA (1u << 5)
#define KMEM_SLAB_CACHE_DMA32 (1u << 6)
#define KMEM_SLAB_STORE_USER (1u << 7)
#define KMEM_SLAB_PANIC (1u << 8)
#define KMEM_SLAB_TYPESAFE_BY_RCU (1u << 9)
#define KMEM_SLAB_TRACE (1u << 10)
#define KMEM_SLAB_NOLEAKTRACE (1u << 11)
#define KMEM_SLAB_NO_MERGE (1u << 12)
#define KMEM_SLAB_ACCOUNT (1u << 13)
#define KMEM_SLAB_NO_USER_FLAGS (1u << 14)
#define KMEM_SLAB_RECLAIM_ACCOUNT (1u << 15)

/* kmalloc(0) */
#define KMEM_ZERO_SIZE_PTR ((void *)16)

/* ------------------------------------------------------------------------------------------------ machines */

#define KMEM_ARCH_I386 0u   /* 3G/1G split, HIGHMEM, 32-byte struct page, 2-level paging */
#define KMEM_ARCH_X86_64 1u /* direct map, vmemmap, 64-byte struct page, 4-level paging */

/* struct kmem_config.flags */
#define KMEM_CONFIG_NO_PSE (1u << 0)            /* i386: map lowmem with 4 KiB pages (a CPU without PSE) */
#define KMEM_CONFIG_TLB_STATISTICS (1u << 1)    /* count TLB hits (costs the hit path its speed) */
#define KMEM_CONFIG_FREELIST_HARDENED (1u << 2) /* CONFIG_SLAB_FREELIST_HARDENED */
#define KMEM_CONFIG_CHECK_CPU_OWNER (1u << 3)   /* every call verifies the thread owns the CPU handle */

/* What to boot. Start from KMEM_CONFIG_INIT (sets .size) and change fields. */
struct kmem_config {
    uint32_t size;            /* sizeof(struct kmem_config): lets the ABI grow */
    uint32_t arch;            /* KMEM_ARCH_* */
    uint64_t mem_bytes;       /* installed RAM, at least 16 MiB (i386: at most 4 GiB) */
    uint32_t cpus;            /* 1..64 */
    uint32_t flags;           /* KMEM_CONFIG_* */
    int64_t min_free_kbytes;  /* vm.min_free_kbytes, or -1 for the kernel's computed value */
    const char *slab_debug;   /* the slab_debug= boot parameter ("FZPU", "FZPU,kmalloc-64", ""), or NULL */
};

#define KMEM_CONFIG_INIT { (uint32_t)sizeof(struct kmem_config), KMEM_ARCH_X86_64, 256ull << 20, 2u, 0u, -1, NULL }

/* What a booted machine looks like, for conversions and study programs. */
struct kmem_machine_info {
    uint32_t size;            /* in: sizeof(struct kmem_machine_info); out: bytes filled */
    uint32_t arch;            /* KMEM_ARCH_* */
    uint32_t cpus;
    uint32_t pointer_size;    /* sizeof(unsigned long) in the guest: 4 or 8 */
    uint32_t page_size;       /* 4096 */
    uint32_t struct_page_size;/* 32 (i386) or 64 (x86_64) */
    uint32_t paging_levels;   /* 2 or 4 */
    uint32_t reserved0;
    unsigned char *arena_base;/* host pointer of physical address 0 */
    uint64_t arena_size;      /* bytes of physical address space backed by the arena */
    uint64_t page_offset;     /* PAGE_OFFSET: virt = page_offset + phys in the linear map */
    uint64_t max_pfn;         /* one past the highest RAM page frame */
    uint64_t max_low_pfn;     /* end of lowmem (== max_pfn on x86_64) */
    uint64_t mem_map;         /* kernel virtual address of pfn 0's struct page (vmemmap / mem_map) */
    uint64_t vmalloc_start;   /* VMALLOC_START */
    uint64_t vmalloc_end;     /* VMALLOC_END (exclusive) */
    uint64_t swapper_pg_dir;  /* physical address of init_mm's page directory (what CR3 holds) */
    uint64_t total_ram_pages; /* totalram_pages() */
};

/* Linear-map conversions without a call (lowmem only; no checks). */
static inline void *kmem_virt_to_host_inline(const struct kmem_machine_info *mi, uint64_t virt)
{
    return mi->arena_base + (virt - mi->page_offset);
}
static inline uint64_t kmem_host_to_virt_inline(const struct kmem_machine_info *mi, const void *host)
{
    return mi->page_offset + (uint64_t)((const unsigned char *)host - mi->arena_base);
}
static inline uint64_t kmem_host_to_phys_inline(const struct kmem_machine_info *mi, const void *host)
{
    return (uint64_t)((const unsigned char *)host - mi->arena_base);
}

/* Starts the runtime, attaches the calling thread and warms the library's code paths (boots and tears down a
 * tiny machine). Pass KMEM_ABI_VERSION. Returns the library's ABI version (> 0), or -KMEM_EPROTO when the major
 * versions differ. Idempotent and thread-safe; every other call also works without it. */
KMEM_API int32_t kmem_init(uint32_t abi_version);

/* The library's KMEM_ABI_VERSION. */
KMEM_API uint32_t kmem_abi_version(void);

/* The message of the last failed call on this thread ("" if none). Valid until the next kmem_ call on this thread. */
KMEM_API const char *kmem_last_error(void);

/* The negative errno of the last failed call on this thread (0 if none). */
KMEM_API int32_t kmem_last_errno(void);

/* The kernel's names for GFP flags, as %pGg / __print_flags print them ("GFP_KERNEL|__GFP_ZERO"); snprintf-style
 * like the views below. */
KMEM_API int64_t kmem_gfp_name(kmem_gfp_t gfp, char *buf, size_t size);

/* Boots a machine (config NULL: x86_64, 256 MiB, 2 CPUs). 0, -EINVAL (configuration), -ENOMEM (host memory),
 * -ENOSPC (too many machines). */
KMEM_API int32_t kmem_machine_create(const struct kmem_config *config, kmem_machine_t *out);

/* Shuts the machine down and frees its arena; every handle of it becomes stale. 0 or -EBADF. */
KMEM_API int32_t kmem_machine_destroy(kmem_machine_t m);

/* Fills *info (set info->size first). 0 or -EBADF/-EINVAL. */
KMEM_API int32_t kmem_machine_info(kmem_machine_t m, struct kmem_machine_info *info);

/* Walks every free list, struct page and slab and checks that they agree and that pages are conserved.
 * 0, or -EIO with the disagreements in kmem_last_error(). Run it while no other thread allocates or frees on the
 * machine: a snapshot taken in the middle of another CPU's operation can disagree with itself. */
KMEM_API int32_t kmem_check(kmem_machine_t m);

/* ------------------------------------------------------------------------------------------------ CPUs */

#define KMEM_CPU_ANY (-1)

/* Claims CPU cpu_id (or any free CPU for KMEM_CPU_ANY) for the calling thread. Idempotent for the same thread.
 * 0, -EBUSY (another live thread holds it), -EINVAL (no such CPU), -EBADF. */
KMEM_API int32_t kmem_cpu_get(kmem_machine_t m, int32_t cpu_id, kmem_cpu_t *out);

/* Releases a CPU the calling thread holds; the handle becomes stale (and so do kmem_cache_fast bindings on it).
 * 0, -EBADF, or -EBUSY when called by another thread than the owner. Release a CPU before its thread ends. */
KMEM_API int32_t kmem_cpu_put(kmem_cpu_t cpu);

/* smp_processor_id() of the handle, or -EBADF. */
KMEM_API int32_t kmem_cpu_id(kmem_cpu_t cpu);

/* ------------------------------------------------------------------------------------------------ page allocator */

/* alloc_pages(): 2^order contiguous page frames. Returns the first pfn (>= 0), or -ENOMEM, -EINVAL (bad order
 * or GFP combination), -EBADF. HIGHMEM pages (i386, __GFP_HIGHMEM) have no linear address but do have a host
 * pointer: kmem_phys_to_host(m, pfn << 12). */
KMEM_API int64_t kmem_alloc_pages(kmem_cpu_t cpu, kmem_gfp_t gfp, uint32_t order);

/* __free_pages(pfn_to_page(pfn), order). 0; -EINVAL with the kernel's "BUG: Bad page state" report (double free,
 * wrong order, tail page, reserved page...) or a bad order; -EFAULT for a pfn beyond max_pfn. Nothing changes on
 * failure. */
KMEM_API int32_t kmem_free_pages(kmem_cpu_t cpu, uint64_t pfn, uint32_t order);

/* __get_free_pages(): like alloc_pages but returns the block's host pointer (lowmem only; NULL on failure). */
KMEM_API void *kmem_get_free_pages(kmem_cpu_t cpu, kmem_gfp_t gfp, uint32_t order);

/* free_pages(addr, order) with the host pointer kmem_get_free_pages returned (NULL is ignored). */
KMEM_API int32_t kmem_free_pages_ptr(kmem_cpu_t cpu, void *p, uint32_t order);

/* ------------------------------------------------------------------------------------------------ kmalloc */

/* kmalloc(): NULL on failure; 0 bytes gives KMEM_ZERO_SIZE_PTR. Sizes above 8 KiB are whole compound pages. */
KMEM_API void *kmem_kmalloc(kmem_cpu_t cpu, size_t size, kmem_gfp_t gfp);

/* kzalloc(): kmalloc with __GFP_ZERO. */
KMEM_API void *kmem_kzalloc(kmem_cpu_t cpu, size_t size, kmem_gfp_t gfp);

/* krealloc(): same object if it still fits, else a new one with the contents and the old one freed. */
KMEM_API void *kmem_krealloc(kmem_cpu_t cpu, void *p, size_t new_size, kmem_gfp_t gfp);

/* ksize(): usable bytes at p (0 for NULL / ZERO_SIZE_PTR), or a negative errno for a pointer that is not the
 * start of a kmalloc allocation. */
KMEM_API int64_t kmem_ksize(kmem_cpu_t cpu, const void *p);

/* kfree(): NULL and KMEM_ZERO_SIZE_PTR do nothing. 0, or -EINVAL with SLUB's report (or the oops for a pointer
 * outside the machine) when it detects an invalid pointer or a double free; nothing is freed then. As in the
 * kernel, the per-CPU fast path does not check that an object of the CPU's current slab is freed at its start
 * (a pointer into the middle corrupts the freelist, and kmem_check reports it); slab_debug checks every free. */
KMEM_API int32_t kmem_kfree(kmem_cpu_t cpu, const void *p);

/* kfree_bulk(): objects of any caches and large allocations. 0 or the first error. */
KMEM_API int32_t kmem_kfree_bulk(kmem_cpu_t cpu, size_t n, void *const *p);

/* ------------------------------------------------------------------------------------------------ slab caches */

/* struct kmem_cache_args (6.18): optional arguments of kmem_cache_create. Zero-initialise it. */
struct kmem_cache_args {
    uint32_t align;           /* required alignment (0: default) */
    uint32_t sheaf_capacity;  /* per-CPU sheaves of this many objects (0: none) */
    void (*ctor)(void *obj);  /* run on every object (host pointer) when its slab is created, or NULL */
};

/* Description of a cache (kmem_cache_info). */
struct kmem_cache_info {
    uint32_t size;            /* in: sizeof(struct kmem_cache_info) */
    uint32_t object_size;     /* s->object_size: bytes usable (kmem_cache_size()) */
    uint32_t stride;          /* s->size: distance between objects, metadata included */
    uint32_t align;           /* s->align */
    uint32_t offset;          /* s->offset: free pointer position */
    uint32_t order;           /* slab order */
    uint32_t objects_per_slab;
    uint32_t flags;           /* s->flags */
    uint64_t kmem_cache;      /* kernel virtual address of struct kmem_cache */
    uint64_t active_objs;     /* /proc/slabinfo active_objs */
    uint64_t num_objs;        /* /proc/slabinfo num_objs */
    uint64_t num_slabs;
    char name[64];            /* s->name, NUL-terminated (truncated) */
};

/* kmem_cache_create(name, size, args, flags): 0, -EINVAL (name, size, align, flags), -EEXIST, -ENOMEM. */
KMEM_API int32_t kmem_cache_create(kmem_cpu_t cpu, const char *name, uint32_t size,
                                   const struct kmem_cache_args *args, uint32_t flags, kmem_cache_t *out);

/* A handle to an existing cache by name ("kmalloc-64", "kmem_cache", a cache made with kmem_cache_create...).
 * Asking twice gives the same handle. 0 or -ENOENT. */
KMEM_API int32_t kmem_cache_find(kmem_machine_t m, const char *name, kmem_cache_t *out);

/* kmem_cache_destroy(): 0; -EBUSY with the kernel's leak report when objects remain (the cache stays usable). */
KMEM_API int32_t kmem_cache_destroy(kmem_cpu_t cpu, kmem_cache_t cache);

/* kmem_cache_shrink(): frees empty slabs; returns 0 when no slab remains, 1 otherwise, or a negative errno. */
KMEM_API int32_t kmem_cache_shrink(kmem_cpu_t cpu, kmem_cache_t cache);

/* kmem_cache_alloc(): host pointer of a new object, NULL on failure. The exported call: validated handles. */
KMEM_API void *kmem_cache_alloc(kmem_cpu_t cpu, kmem_cache_t cache, kmem_gfp_t gfp);

/* kmem_cache_free(): 0, or -EINVAL with SLUB's report (not an object of the cache, double free...; the same
 * fast-path caveat as kmem_kfree). NULL does nothing. */
KMEM_API int32_t kmem_cache_free(kmem_cpu_t cpu, kmem_cache_t cache, void *p);

/* kmem_cache_alloc_bulk(): fills p[0..n); returns n, or 0 (nothing allocated) on failure. */
KMEM_API int64_t kmem_cache_alloc_bulk(kmem_cpu_t cpu, kmem_cache_t cache, kmem_gfp_t gfp, size_t n, void **p);

/* kmem_cache_free_bulk(): 0 or a negative errno. */
KMEM_API int32_t kmem_cache_free_bulk(kmem_cpu_t cpu, kmem_cache_t cache, size_t n, void *const *p);

/* Fills *info (set info->size first). */
KMEM_API int32_t kmem_cache_info(kmem_cache_t cache, struct kmem_cache_info *info);

static inline void *kmem_cache_zalloc(kmem_cpu_t cpu, kmem_cache_t cache, kmem_gfp_t gfp)
{
    return kmem_cache_alloc(cpu, cache, gfp | __GFP_ZERO);
}

/* ---- the inline fast path ----------------------------------------------------------------------------------
 *
 * Every exported call crosses into the .NET runtime, which costs a few nanoseconds (about as much as a whole
 * glibc malloc+free pair). For the tightest loops, kmem_cache_fast_init() binds a (CPU, cache) pair and the
 * inline functions below run SLUB's lockless per-CPU fast path in C, on the same structures the library uses:
 * pop c->freelist of the CPU's struct kmem_cache_cpu (in the arena) and follow the free pointer at s->offset;
 * push on free when the object belongs to the CPU slab. Whatever the fast path cannot do (empty freelist, a new
 * slab, debug caches, caches with sheaves or hardened freelists, __GFP_ZERO, a remote or invalid free) goes to
 * the exported call, which validates everything. The binding carries the generations of its CPU and cache
 * handles: after kmem_cpu_put, kmem_cache_destroy or kmem_machine_destroy it falls through to the export, which
 * returns -EBADF. Same threading rule: only the thread owning the CPU uses the binding.
 * The fields are private to these functions. */
struct kmem_cache_fast {
    unsigned char *c;               /* host pointer of this CPU's struct kmem_cache_cpu (freelist at +0) */
    unsigned char *arena;           /* host pointer of physical 0 */
    uint64_t page_offset;
    uint64_t fp_limit;              /* last physical address whose free pointer lies in the arena; 0: no fast path */
    uint32_t fp_offset;             /* s->offset */
    uint32_t word;                  /* guest sizeof(unsigned long): 8 or 4 */
    uint32_t slab_addr_off;         /* offsets in kmem_cache_cpu of the CPU slab's address and span */
    uint32_t slab_span_off;
    const volatile uint32_t *cpu_gen_word;   /* the CPU handle's live generation */
    const volatile uint32_t *cache_gen_word; /* the cache handle's live generation */
    uint32_t cpu_gen, cache_gen;             /* the generations at binding time */
    kmem_cpu_t cpu;
    kmem_cache_t cache;
};

/* Binds the pair. 0 or a negative errno. */
KMEM_API int32_t kmem_cache_fast_init(kmem_cpu_t cpu, kmem_cache_t cache, struct kmem_cache_fast *f);

static inline uint64_t kmem__ld(const struct kmem_cache_fast *f, const unsigned char *p)
{
    return f->word == 8 ? *(const uint64_t *)(const void *)p : (uint64_t) * (const uint32_t *)(const void *)p;
}
static inline void kmem__st(const struct kmem_cache_fast *f, unsigned char *p, uint64_t v)
{
    if (f->word == 8)
        *(uint64_t *)(void *)p = v;
    else
        *(uint32_t *)(void *)p = (uint32_t)v;
}

/* kmem_cache_alloc() through the binding. */
static inline void *kmem_cache_fast_alloc(const struct kmem_cache_fast *f, kmem_gfp_t gfp)
{
    if (*f->cpu_gen_word == f->cpu_gen && *f->cache_gen_word == f->cache_gen && !(gfp & __GFP_ZERO)) {
        uint64_t obj = kmem__ld(f, f->c);
        uint64_t pa = obj - f->page_offset;
        if (pa <= f->fp_limit) {
            kmem__st(f, f->c, kmem__ld(f, f->arena + pa + f->fp_offset));
            return f->arena + pa;
        }
    }
    return kmem_cache_alloc(f->cpu, f->cache, gfp);
}

/* kmem_cache_free() through the binding. Returns 0 or a negative errno (from the export). */
static inline int32_t kmem_cache_fast_free(const struct kmem_cache_fast *f, void *p)
{
    if (*f->cpu_gen_word == f->cpu_gen && *f->cache_gen_word == f->cache_gen) {
        uint64_t pa = (uint64_t)((unsigned char *)p - f->arena);
        uint64_t obj = pa + f->page_offset;
        uint64_t head = kmem__ld(f, f->c);
        if (obj - kmem__ld(f, f->c + f->slab_addr_off) < kmem__ld(f, f->c + f->slab_span_off) &&
            pa <= f->fp_limit && obj != head) {
            kmem__st(f, f->arena + pa + f->fp_offset, head);
            kmem__st(f, f->c, obj);
            return 0;
        }
    }
    return kmem_cache_free(f->cpu, f->cache, p);
}

/* ------------------------------------------------------------------------------------------------ addresses */

/* __pa(): physical address of a linear-map (or x86_64 kernel-text) address. 0 or -EFAULT. */
KMEM_API int32_t kmem_virt_to_phys(kmem_machine_t m, uint64_t virt, uint64_t *phys);

/* __va(): linear-map address of a lowmem physical address. 0 or -EFAULT (HIGHMEM, beyond RAM). */
KMEM_API int32_t kmem_phys_to_virt(kmem_machine_t m, uint64_t phys, uint64_t *virt);

/* Host pointer of a physical address inside the arena (any RAM, HIGHMEM included); NULL + -EFAULT otherwise. */
KMEM_API void *kmem_phys_to_host(kmem_machine_t m, uint64_t phys);

/* Physical address of a host pointer into the arena. 0 or -EFAULT. */
KMEM_API int32_t kmem_host_to_phys(kmem_machine_t m, const void *host, uint64_t *phys);

/* Host pointer of a kernel virtual address: the linear map directly, other kernel addresses (vmalloc, kmap,
 * fixmap) through init_mm's page tables, without side effects (valid to the end of that page only).
 * NULL + -EFAULT when unmapped. */
KMEM_API void *kmem_virt_to_host(kmem_machine_t m, uint64_t virt);

/* Linear-map address of a host pointer into lowmem. 0 or -EFAULT. */
KMEM_API int32_t kmem_host_to_virt(kmem_machine_t m, const void *host, uint64_t *virt);

/* pfn_to_page(): kernel virtual address of pfn's struct page. 0 or -EFAULT (pfn >= max_pfn). */
KMEM_API int32_t kmem_pfn_to_page(kmem_machine_t m, uint64_t pfn, uint64_t *page);

/* page_to_pfn(): the pfn of a struct page address. 0 or -EFAULT (not a struct page address). */
KMEM_API int32_t kmem_page_to_pfn(kmem_machine_t m, uint64_t page, uint64_t *pfn);

/* virt_to_page() of a linear-map address. 0 or -EFAULT. */
KMEM_API int32_t kmem_virt_to_page(kmem_machine_t m, uint64_t virt, uint64_t *page);

/* A snapshot of one struct page. */
struct kmem_page_info {
    uint32_t size;            /* in: sizeof(struct kmem_page_info) */
    int32_t refcount;         /* page_ref_count() */
    uint64_t pfn;
    uint64_t page;            /* kernel virtual address of the struct page */
    uint64_t flags;           /* page->flags (zone bits included) */
    uint64_t mapping;
    uint64_t index;
    uint64_t private_;        /* page->private (buddy order of a free block) */
    uint64_t compound_head;   /* lru.next word: compound_head | 1 on a tail page */
    uint32_t page_type;       /* page_type/_mapcount word (0xf0000000 buddy, 0xf5000000 slab, 0xffffffff none) */
    int32_t zone;             /* page_zonenum() */
    char flags_text[128];     /* %pGp, NUL-terminated (truncated) */
};

/* Fills *info for pfn. 0, -EFAULT (pfn >= max_pfn), -EBADF. */
KMEM_API int32_t kmem_page_info(kmem_machine_t m, uint64_t pfn, struct kmem_page_info *info);

/* ------------------------------------------------------------------------------------------------ the MMU */

#define KMEM_ACCESS_READ 0u
#define KMEM_ACCESS_WRITE 1u
#define KMEM_ACCESS_EXEC 2u
#define KMEM_MODE_KERNEL 0u /* supervisor (CPL 0) */
#define KMEM_MODE_USER 1u   /* CPL 3 */

/* The page fault behind the last -EFAULT of an MMU call on this thread. */
struct kmem_fault {
    uint64_t address;         /* CR2 */
    uint32_t error_code;      /* X86_PF_PROT 1, WRITE 2, USER 4, RSVD 8, INSTR 16 */
    uint32_t kind;            /* 0 #PF, 1 #GP (non-canonical), 2 #MC (not RAM) */
    uint32_t level;           /* the level whose entry stopped the walk (4 PML4E .. 1 PTE; 0 none) */
    uint32_t reserved0;
    uint64_t entry;           /* that entry */
};

/* 0 and *out if the last failed call on this thread was a page fault, else -ENOENT. */
KMEM_API int32_t kmem_last_fault(struct kmem_fault *out);

/* Translates through the CPU's TLB and page tables (its current CR3): the physical address (>= 0), or -EFAULT
 * (kmem_last_fault has the fault). */
KMEM_API int64_t kmem_translate(kmem_cpu_t cpu, uint64_t virt, uint32_t access, uint32_t mode);

/* One translation as a page walk sees it. */
struct kmem_translation {
    uint64_t phys;
    uint64_t virt;
    uint64_t page_size;       /* 4 KiB, 2/4 MiB or 1 GiB */
    uint64_t entry;           /* the leaf entry */
    uint32_t level;           /* level of the leaf (1 = PTE) */
    uint32_t reserved0;
};

/* A walk of the tables at cr3 without the TLB (sets Accessed/Dirty like hardware). 0 or -EFAULT. */
KMEM_API int32_t kmem_translate_pgd(kmem_machine_t m, uint64_t cr3, uint64_t virt, uint32_t access, uint32_t mode,
                                    struct kmem_translation *out);

/* Bytes at a virtual address through the CPU's MMU (spans pages). 0 or -EFAULT. */
KMEM_API int32_t kmem_read_virt(kmem_cpu_t cpu, uint64_t virt, void *dst, size_t len, uint32_t mode);
KMEM_API int32_t kmem_write_virt(kmem_cpu_t cpu, uint64_t virt, const void *src, size_t len, uint32_t mode);

/* The CPU's CR3. */
KMEM_API int32_t kmem_cpu_cr3(kmem_cpu_t cpu, uint64_t *cr3);

/* vmalloc(): virtually contiguous kernel memory (kernel virtual address in *virt), vfree(). */
KMEM_API int32_t kmem_vmalloc(kmem_cpu_t cpu, uint64_t size, uint64_t *virt);
KMEM_API int32_t kmem_vfree(kmem_cpu_t cpu, uint64_t virt);

/* flush_tlb_all(). */
KMEM_API int32_t kmem_flush_tlb_all(kmem_machine_t m);

/* TLB counters of a CPU (hits only with KMEM_CONFIG_TLB_STATISTICS). */
struct kmem_tlb_stats {
    int64_t hits, misses, walks, faults, full_flushes, page_flushes, range_flushes, shootdowns;
};
KMEM_API int32_t kmem_tlb_stats(kmem_cpu_t cpu, struct kmem_tlb_stats *out);

/* ------------------------------------------------------------------------------------------------ views */
/* Text views written into a caller's buffer, snprintf-style: the return value is the full length of the text
 * (without the NUL); when it is >= size the text was truncated (still NUL-terminated when size > 0) and a
 * buffer of return value + 1 bytes holds it. buf may be NULL when size is 0. Negative errno on failure. */

/* /proc files: "buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo", "vmstat", "slabinfo", "swaps",
 * and per process "PID/maps", "PID/smaps", "PID/smaps_rollup", "PID/status", "PID/statm", "PID/stat",
 * "PID/oom_score", "PID/oom_score_adj" (kmem_process_pid). -ENOENT for an unknown name or pid. */
KMEM_API int64_t kmem_proc_read(kmem_machine_t m, const char *name, char *buf, size_t size);

/* The kernel's ptdump of init_mm (/sys/kernel/debug/page_tables/kernel). */
KMEM_API int64_t kmem_ptdump(kmem_machine_t m, char *buf, size_t size);

/* crash's vtop for a kernel virtual address (in init_mm). */
KMEM_API int64_t kmem_vtop(kmem_machine_t m, uint64_t virt, char *buf, size_t size);

/* The kernel log (dmesg). */
KMEM_API int64_t kmem_dmesg(kmem_machine_t m, char *buf, size_t size);

/* ------------------------------------------------------------------------------------------------ PROCESSES */
/* Processes: a task_struct and an mm_struct in the arena (from their slab caches), VMAs, page tables, demand
 * paging, fork with copy-on-write, exit. A new process runs /usr/bin/COMM in the standard layout (text and data
 * mapped from the program file, bss, brk, the stack with argv and envp; no randomization) below TASK_SIZE
 * (0xc0000000 on i386, 0x7ffffffff000 on x86_64); /proc "PID/maps", "PID/smaps", "PID/status"... describe it.
 *
 * A process runs on the CPU of the call that last ran it: kmem_process_switch, kmem_touch, and the calls that
 * create it (switch_mm: CR3 then holds its pgd). While it runs there, kmem_translate/kmem_read_virt/kmem_write_virt
 * with KMEM_MODE_USER are its own accesses: they go through its page tables, and its fault handler demand-pages,
 * copies on write and grows the stack. A bad user access (SIGSEGV, SIGBUS) fails with -EFAULT: the message names
 * the signal ("SIGSEGV at 0x1000 (SEGV_MAPERR, error 0x4) in process 1000 (a.out)") and kmem_last_fault() has
 * the fault; the process keeps running, as it would with a handler for the signal.
 *
 * Process handles are retired by kmem_process_exit and by kmem_machine_destroy (-EBADF afterwards); a process
 * used with a CPU of another machine is -EINVAL. System-call failures are the kernel's errno values, negated. */

#define KMEM_PROT_NONE 0x0u
#define KMEM_PROT_READ 0x1u
#define KMEM_PROT_WRITE 0x2u
#define KMEM_PROT_EXEC 0x4u
#define KMEM_MAP_SHARED 0x01u
#define KMEM_MAP_PRIVATE 0x02u
#define KMEM_MAP_FIXED 0x10u
#define KMEM_MAP_ANONYMOUS 0x20u
#define KMEM_MAP_NORESERVE 0x4000u
#define KMEM_MAP_POPULATE 0x8000u
#define KMEM_MAP_FIXED_NOREPLACE 0x100000u

/* More errno values the process calls return (the kernel's, negated). */
#define KMEM_EPERM 1       /* MAP_FIXED below vm.mmap_min_addr (the process is unprivileged) */
#define KMEM_ESRCH 3       /* the process has exited (killed) while C still held its handle */
#define KMEM_EAGAIN 11     /* no free pid; RLIMIT_MEMLOCK */
#define KMEM_EACCES 13     /* mprotect/mmap permissions */
#define KMEM_EOVERFLOW 75  /* mmap offset overflow */

/* A new process with a fresh mm running /usr/bin/COMM (comm: 1-15 characters kept, no '/'), on cpu. 0, -EINVAL,
 * -ENOMEM, -EAGAIN, -ENOSPC (handle table full). */
KMEM_API int32_t kmem_process_create(kmem_cpu_t cpu, const char *comm, kmem_process_t *out);
/* fork(): a child sharing the parent's anonymous pages copy-on-write (both sides' PTEs write-protected; the first
 * write on either side copies, or reuses a page nobody else holds). The parent keeps running on cpu. */
KMEM_API int32_t kmem_process_fork(kmem_cpu_t cpu, kmem_process_t parent, kmem_process_t *child);
/* exit(): unmap everything, free the page tables, the mm and the task; the CPUs running it switch to the kernel's
 * tables and the handle becomes stale (a second exit is -EBADF). -EBUSY (handle still valid) when the process
 * runs on a CPU another thread holds: exit it from that thread, or after that thread's kmem_cpu_put. */
KMEM_API int32_t kmem_process_exit(kmem_cpu_t cpu, kmem_process_t p);
/* The pid (1000, 1001, ...), or -EBADF. */
KMEM_API int32_t kmem_process_pid(kmem_process_t p);
/* Runs the process on the CPU (switch_mm): user-mode kmem_translate/read_virt/write_virt then use its page tables. */
KMEM_API int32_t kmem_process_switch(kmem_cpu_t cpu, kmem_process_t p);
/* mmap(addr, len, prot, flags, -1, 0): anonymous memory (KMEM_MAP_ANONYMOUS with KMEM_MAP_PRIVATE or
 * KMEM_MAP_SHARED); addr 0 lets the kernel choose (top-down from mmap_base), KMEM_MAP_FIXED takes it as is. The
 * address in *out; the kernel's errors (-EINVAL, -ENOMEM, -EEXIST, -EPERM...) with the call in the message. */
KMEM_API int32_t kmem_mmap(kmem_cpu_t cpu, kmem_process_t p, uint64_t addr, uint64_t len, uint32_t prot,
                           uint32_t flags, uint64_t *out);
/* munmap(addr, len): splits VMAs, frees the pages and page tables. -EINVAL for an unaligned addr or len 0. */
KMEM_API int32_t kmem_munmap(kmem_cpu_t cpu, kmem_process_t p, uint64_t addr, uint64_t len);
/* Runs p on cpu and makes one user-mode access (KMEM_ACCESS_READ, WRITE or EXEC) to every page of
 * [addr, addr + len) through the MMU: page faults, demand paging, COW breaks, stack growth. A write access stores
 * nothing (the bytes stay as they are, like `lock add $0`). Returns the number of faults the process took (>= 0;
 * 0 when everything was mapped already), or -EFAULT at the first page that raises SIGSEGV/SIGBUS (the pages
 * before it were touched; kmem_last_fault() has the fault). */
KMEM_API int64_t kmem_touch(kmem_cpu_t cpu, kmem_process_t p, uint64_t addr, uint64_t len, uint32_t access);

/* ------------------------------------------------------------------------------------------------ MEMORY PRESSURE */
/* What an allocation does when memory is short, as Linux 6.18 does it (mm/vmscan.c, mm/page_alloc.c's slow path):
 * the LRU lists of the page cache and of anonymous memory, kswapd, direct reclaim, the flusher, shrinkers, swap,
 * the OOM killer and the allocation-failure report. These calls create the pressure (a file's page cache, dirty
 * pages, reclaimable slab, a swap device) and drive reclaim, so that C experiments can study it with the page
 * allocator calls above (kmem_alloc_pages with GFP_NOWAIT, GFP_NOIO, GFP_NOFS, GFP_KERNEL...) and /proc
 * ("meminfo", "vmstat": pgscan_*, pgsteal_*, allocstall_*, pswpout..., "swaps", "PID/oom_score").
 *
 * Deterministic by design:
 *   - kswapd runs in STEP MODE: an allocation that drops below a zone's low watermark (any request with
 *     __GFP_KSWAPD_RECLAIM: GFP_KERNEL, GFP_NOWAIT, GFP_ATOMIC...) only wakes it (kmem_kswapd_pending() == 1);
 *     kmem_kswapd_step() runs one balance_pgdat() on the caller's CPU. Nothing reclaims behind the caller's back.
 *   - Block I/O is instantaneous in data terms and completes at the next reclaim pass, on kmem_sync, or when
 *     someone waits for the page. Dirty file pages are written by the flusher only (reclaim leaves them to it):
 *     a reclaimer without __GFP_FS does not run it, one without __GFP_IO cannot swap out either.
 *   - The swap device (one only, "/dev/sda2") lives in HOST memory, outside the arena: kmem_swapon() reserves no
 *     emulated RAM; a swapped-out page costs 4 KiB of host memory until it is swapped in or freed.
 *   - A small GFP_NOIO/GFP_NOFS request the kernel would loop on forever ("somebody else will free memory") fails
 *     after two fruitless rounds with the report, since nothing else runs.
 * Not modelled: compaction, MGLRU, memcg, NUMA, zswap, readahead, dirty throttling (see src/KmemNative/Reclaim).
 *
 * A failed allocation without __GFP_NOWARN prints the kernel's report to the log (kmem_dmesg) and keeps it for
 * kmem_alloc_failure_report(); a GFP_KERNEL request that finds nothing to reclaim invokes the OOM killer, which
 * kills the process with the highest badness (its handle then gives -ESRCH) and keeps its report for
 * kmem_oom_report(). */

/* ---- files and the page cache ---- */

/* Creates a regular file of `size` bytes (contents: a fixed pattern, on its emulated disk) and opens it for reading
 * and writing: the descriptor (>= 3) in *fd_out. The file has no page cache until it is read or written. 0, -EINVAL
 * (NULL or empty path, NULL fd_out), -ENOMEM (no memory for the inode or the file). */
KMEM_API int32_t kmem_file_create(kmem_cpu_t cpu, const char *path, uint64_t size, int32_t *fd_out);
/* close(): the descriptor goes; the file and its page cache are dropped. 0 or -EBADF. */
KMEM_API int32_t kmem_file_close(kmem_cpu_t cpu, int32_t fd);
/* pread(): up to len bytes at off through the page cache (filemap_read: pages missing from it are read in, which
 * allocates GFP_HIGHUSER_MOVABLE and may reclaim; each page read is marked accessed, so a second read activates it).
 * Returns the bytes read (0 at or past the end of the file; fewer when the end comes first or memory runs out
 * after the first page), -EBADF, -ENOMEM (not even one page), -EFAULT (buf NULL with len > 0), -EINVAL (len above
 * 2^31 - 1). */
KMEM_API int64_t kmem_file_read(kmem_cpu_t cpu, int32_t fd, uint64_t off, void *buf, uint64_t len);
/* pwrite(): copies len bytes into the page cache at off and marks the pages dirty (meminfo Dirty:, nr_dirty);
 * they reach the disk by writeback (the flusher under reclaim, kmem_sync). Files keep their size: bytes past the
 * end are not written. Returns the bytes written, or the errors of kmem_file_read. */
KMEM_API int64_t kmem_file_write(kmem_cpu_t cpu, int32_t fd, uint64_t off, const void *buf, uint64_t len);
/* sync(): writes back every dirty page-cache page and completes the I/O. Returns the pages written (>= 0). */
KMEM_API int64_t kmem_sync(kmem_cpu_t cpu);

/* ---- swap, kswapd, direct reclaim, drop_caches ---- */

/* swapon: a swap partition of `bytes` (rounded down to pages; the first page is the header, so SwapTotal is one
 * page less), in host memory. 0, -EINVAL (smaller than two pages), -EBUSY (a swap device exists: one only). */
KMEM_API int32_t kmem_swapon(kmem_cpu_t cpu, uint64_t bytes);
/* One run of kswapd (step mode): balance_pgdat() for the pending wakeup (order 0 when none) on cpu, until an
 * eligible zone is above its high watermark; clears the pending wakeup. Returns the pages reclaimed (0 when the node
 * was balanced already; pgsteal_kswapd in vmstat). */
KMEM_API int64_t kmem_kswapd_step(kmem_cpu_t cpu);
/* 1 when an allocation woke kswapd and it has not run since, 0 otherwise, or -EBADF. */
KMEM_API int32_t kmem_kswapd_pending(kmem_machine_t m);
/* try_to_free_pages(): one direct-reclaim invocation as an allocation of `order` with `gfp` would make it (its
 * __GFP_IO/__GFP_FS and the CPU's memalloc scope decide what it may touch), without allocating anything. Returns
 * the pages reclaimed (>= 0), -EINVAL (order outside 0..10). */
KMEM_API int64_t kmem_try_to_free_pages(kmem_cpu_t cpu, kmem_gfp_t gfp, int32_t order);
/* echo mode > /proc/sys/vm/drop_caches: 1 frees the clean, unused page cache, 2 the reclaimable slab objects
 * (every shrinker: dentries, inodes, the driver pool), 3 both, 4 only silences the log line. Dirty pages stay (run
 * kmem_sync first, as with the real file). Returns the pages freed, or -EINVAL for a mode outside 1..4. */
KMEM_API int64_t kmem_drop_caches(kmem_cpu_t cpu, int32_t mode);
/* lru_add_drain_all(): pages waiting in the CPUs' lru_add batches (up to 31 each) go onto the LRU lists now, where
 * reclaim can see them. 0 or -EBADF. */
KMEM_API int32_t kmem_lru_add_drain(kmem_cpu_t cpu);

/* ---- reclaimable slab ---- */

/* Fills the emulated file system's dentry and inode caches with `count` unused entries (as a directory walk leaves
 * them), allocated with gfp: reclaimable slab that only the file-system shrinker frees, and only for a reclaimer
 * with __GFP_FS. Returns how many were added (fewer when memory ran out), -EINVAL for a negative count. */
KMEM_API int32_t kmem_dcache_fill(kmem_cpu_t cpu, int32_t count, kmem_gfp_t gfp);
/* Fills the emulated driver pool (reclaimable slab behind a shrinker that needs __GFP_IO but not __GFP_FS) with
 * `count` objects. Returns how many were added, -EINVAL for a negative count. */
KMEM_API int32_t kmem_driver_pool_fill(kmem_cpu_t cpu, int32_t count, kmem_gfp_t gfp);

/* ---- the OOM killer's view of a process ---- */

/* echo adj > /proc/PID/oom_score_adj: -1000 (OOM_SCORE_ADJ_MIN: never chosen) .. 1000 (chosen first). 0, -EINVAL
 * (outside -1000..1000, or a process of another machine), -EBADF, -ESRCH. */
KMEM_API int32_t kmem_process_set_oom_score_adj(kmem_cpu_t cpu, kmem_process_t p, int32_t adj);
/* /proc/PID/oom_score into *out: 1000 + oom_badness() * 1000 / totalpages (about 1000 plus the process's share
 * of memory in per mille, shifted by oom_score_adj), 0 for a process that is never chosen (adj -1000). 0, -EINVAL
 * (NULL out), -EBADF, -ESRCH. */
KMEM_API int32_t kmem_process_oom_score(kmem_cpu_t cpu, kmem_process_t p, int64_t *out);

/* ---- CPU context: who may sleep, what reclaim may do ---- */
/* The state lives on the emulated CPU (preempt_count, EFLAGS.IF, current->flags) and applies to every call made on
 * it until changed back. In atomic context (interrupts off, inside a handler) an allocation with
 * __GFP_DIRECT_RECLAIM is a bug: the kernel's "BUG: sleeping function called from invalid context" goes to the
 * log, then the allocation proceeds, as in the kernel. Use GFP_ATOMIC / GFP_NOWAIT there. Unbalanced calls fail
 * with -EINVAL and change nothing; they never abort. */

/* irq_enter(): an interrupt handler starts on cpu (hardirq count up, interrupts off while it runs; nests). */
KMEM_API int32_t kmem_irq_enter(kmem_cpu_t cpu);
/* irq_exit(): the handler returns; the interrupted context's interrupt state comes back. -EINVAL outside a handler. */
KMEM_API int32_t kmem_irq_exit(kmem_cpu_t cpu);
/* local_irq_disable() / local_irq_enable(). Enabling inside an interrupt handler is -EINVAL (irq_exit restores the
 * state instead); enabling when already enabled does nothing, as in the kernel. */
KMEM_API int32_t kmem_local_irq_disable(kmem_cpu_t cpu);
KMEM_API int32_t kmem_local_irq_enable(kmem_cpu_t cpu);
/* memalloc_noio_save(): from now on every allocation on cpu behaves as GFP_NOIO (no __GFP_IO, no __GFP_FS: no
 * swap-out, no writeback, no shrinker that does I/O), whatever flags it passes. The cookie for the matching
 * restore in *flags (scopes nest: the inner restore keeps the outer scope). 0, -EINVAL (NULL flags), -EBADF. */
KMEM_API int32_t kmem_memalloc_noio_save(kmem_cpu_t cpu, uint32_t *flags);
KMEM_API int32_t kmem_memalloc_noio_restore(kmem_cpu_t cpu, uint32_t flags);
/* memalloc_nofs_save() / restore(): the same for GFP_NOFS (no __GFP_FS: the file-system shrinker and the flusher
 * are left alone). */
KMEM_API int32_t kmem_memalloc_nofs_save(kmem_cpu_t cpu, uint32_t *flags);
KMEM_API int32_t kmem_memalloc_nofs_restore(kmem_cpu_t cpu, uint32_t flags);
/* current_gfp_context(gfp): the flags an allocation with gfp runs with in cpu's memalloc scope (>= 0), or -EBADF. */
KMEM_API int64_t kmem_current_gfp_context(kmem_cpu_t cpu, kmem_gfp_t gfp);

/* ---- reports (snprintf-style, like the views) ---- */

/* The last allocation-failure report: "COMM: page allocation failure: order:N, mode:0x...(FLAGS),
 * nodemask=(null)" and the Mem-Info summary. -ENOENT while no allocation has failed with a warning. */
KMEM_API int64_t kmem_alloc_failure_report(kmem_machine_t m, char *buf, size_t size);
/* How many allocation-failure reports were printed (>= 0): compare before and after a call. */
KMEM_API int64_t kmem_alloc_failure_count(kmem_machine_t m);
/* The last OOM killer report ("invoked oom-killer" to the kill or "no killable processes"). -ENOENT while the OOM
 * killer has not run. */
KMEM_API int64_t kmem_oom_report(kmem_machine_t m, char *buf, size_t size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KMEM_H */
