/* Runtime, ABI, machines, CPUs and handles. */
#include <pthread.h>
#include <stddef.h>

#include "harness.h"

void test_abi_version(void)
{
    CHECK(kmem_init(KMEM_ABI_VERSION) == (int32_t)KMEM_ABI_VERSION); /* idempotent */
    CHECK(kmem_abi_version() == KMEM_ABI_VERSION);
    CHECK_ERR(kmem_init((KMEM_ABI_VERSION_MAJOR + 1) << 16), KMEM_EPROTO, "ABI");
}

void test_abi_structs(void)
{
    /* The library fills .size with the size of its own struct: it must be the header's. */
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    struct kmem_cache_info ci;
    struct kmem_page_info pi;
    kmem_cache_t s;
    CHECK(mi.size == sizeof(struct kmem_machine_info));
    CHECK(sizeof(struct kmem_config) == 40 && offsetof(struct kmem_config, slab_debug) == 32);
    CHECK(sizeof(struct kmem_cache_args) == 16);
    CHECK(sizeof(struct kmem_fault) == 32);
    CHECK(sizeof(struct kmem_translation) == 40);
    CHECK(sizeof(struct kmem_tlb_stats) == 64);
    CHECK(sizeof(kmem_cpu_t) == 8 && sizeof(kmem_cache_t) == 8 && sizeof(kmem_machine_t) == 8);
    CHECK(kmem_cache_create(c, "abi", 32, NULL, 0, &s) == 0);
    memset(&ci, 0, sizeof ci);
    ci.size = sizeof ci;
    CHECK(kmem_cache_info(s, &ci) == 0 && ci.size == sizeof ci);
    memset(&pi, 0, sizeof pi);
    pi.size = sizeof pi;
    CHECK(kmem_page_info(m, 1, &pi) == 0 && pi.size == sizeof pi);
    /* A caller passing a smaller (older or wrong) size is refused, not overrun. */
    mi.size = 8;
    CHECK_ERR(kmem_machine_info(m, &mi), KMEM_EINVAL, "size");
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

static void check_gfp(kmem_gfp_t gfp, const char *name)
{
    char buf[128];
    int64_t n = kmem_gfp_name(gfp, buf, sizeof buf);
    if (n != (int64_t)strlen(name) || strcmp(buf, name) != 0) {
        fprintf(stderr, "gfp 0x%x: library says \"%s\", header name is %s\n", gfp, buf, name);
        harness_failures++;
    }
}

void test_gfp_names(void)
{
    /* The header's values against the library's tables (include/linux/gfp_types.h, 6.18). */
    check_gfp(GFP_KERNEL, "GFP_KERNEL");
    check_gfp(GFP_ATOMIC, "GFP_ATOMIC");
    check_gfp(GFP_NOWAIT, "GFP_NOWAIT");
    check_gfp(GFP_NOIO, "GFP_NOIO");
    check_gfp(GFP_NOFS, "GFP_NOFS");
    check_gfp(GFP_USER, "GFP_USER");
    check_gfp(GFP_HIGHUSER, "GFP_HIGHUSER");
    check_gfp(GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE");
    check_gfp(GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT");
    check_gfp(GFP_TRANSHUGE, "GFP_TRANSHUGE");
    check_gfp(GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT");
    check_gfp(GFP_KERNEL | __GFP_ZERO, "GFP_KERNEL|__GFP_ZERO");
    check_gfp(GFP_KERNEL | __GFP_COMP, "GFP_KERNEL|__GFP_COMP");
    check_gfp(__GFP_DMA, "GFP_DMA");
    check_gfp(__GFP_DMA32, "GFP_DMA32");
    check_gfp(__GFP_HIGHMEM, "__GFP_HIGHMEM");
    check_gfp(__GFP_MOVABLE, "__GFP_MOVABLE");
    check_gfp(__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE");
    check_gfp(__GFP_HIGH, "__GFP_HIGH");
    check_gfp(__GFP_IO, "__GFP_IO");
    check_gfp(__GFP_FS, "__GFP_FS");
    check_gfp(__GFP_ZERO, "__GFP_ZERO");
    check_gfp(__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM");
    check_gfp(__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM");
    check_gfp(__GFP_WRITE, "__GFP_WRITE");
    check_gfp(__GFP_NOWARN, "__GFP_NOWARN");
    check_gfp(__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL");
    check_gfp(__GFP_NOFAIL, "__GFP_NOFAIL");
    check_gfp(__GFP_NORETRY, "__GFP_NORETRY");
    check_gfp(__GFP_MEMALLOC, "__GFP_MEMALLOC");
    check_gfp(__GFP_COMP, "__GFP_COMP");
    check_gfp(__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC");
    check_gfp(__GFP_HARDWALL, "__GFP_HARDWALL");
    check_gfp(__GFP_THISNODE, "__GFP_THISNODE");
    check_gfp(__GFP_ACCOUNT, "__GFP_ACCOUNT");
    check_gfp(__GFP_ZEROTAGS, "__GFP_ZEROTAGS");
    check_gfp(__GFP_NO_OBJ_EXT, "__GFP_NO_OBJ_EXT");
}

void test_errors_before_any_machine(void)
{
    kmem_machine_t none = {0};
    kmem_cpu_t nocpu = {0};
    CHECK_ERR(kmem_check(none), KMEM_EBADF, "machine handle");
    CHECK_NULL_ERR(kmem_kmalloc(nocpu, 8, GFP_KERNEL), KMEM_EBADF, "CPU handle");
    CHECK(strlen(kmem_last_error()) > 0);
    /* The message names the function. */
    CHECK(strstr(kmem_last_error(), "kmem_kmalloc") != NULL);
    CHECK_ERR(kmem_machine_create(NULL, NULL), KMEM_EINVAL, "NULL");
}

void test_machine_lifecycle(void)
{
    kmem_machine_t m, m2;
    kmem_cpu_t c;
    struct kmem_machine_info mi;
    CHECK(kmem_machine_create(NULL, &m) == 0); /* defaults: x86_64, 256 MiB, 2 CPUs */
    mi = info_of(m);
    CHECK(mi.arch == KMEM_ARCH_X86_64 && mi.cpus == 2 && mi.pointer_size == 8 && mi.page_size == 4096);
    CHECK(mi.page_offset == 0xffff888000000000ull);
    CHECK(mi.struct_page_size == 64 && mi.paging_levels == 4);
    CHECK(mi.max_pfn == mi.max_low_pfn && mi.max_pfn == (256ull << 20) >> 12);
    CHECK(mi.arena_base != NULL && mi.arena_size >= 256ull << 20);
    CHECK(mi.total_ram_pages > 0 && mi.total_ram_pages < mi.max_pfn);
    CHECK(mi.vmalloc_start < mi.vmalloc_end);
    CHECK(kmem_check(m) == 0);
    /* Two machines at once, independent. */
    m2 = boot(KMEM_ARCH_I386, 64ull << 20, 1, 0, NULL);
    CHECK(m2.h != m.h);
    c = cpu_of(m, 0);
    CHECK(kmem_machine_destroy(m) == 0);
    /* Everything of the destroyed machine is stale; the other one lives on. */
    CHECK_ERR(kmem_machine_destroy(m), KMEM_EBADF, "machine handle");
    CHECK_ERR(kmem_check(m), KMEM_EBADF, "machine handle");
    CHECK_NULL_ERR(kmem_kmalloc(c, 32, GFP_KERNEL), KMEM_EBADF, "CPU handle");
    CHECK_ERR(kmem_cpu_put(c), KMEM_EBADF, "CPU handle");
    CHECK(kmem_check(m2) == 0);
    CHECK(kmem_machine_destroy(m2) == 0);
}

void test_machine_bad_config(void)
{
    struct kmem_config cfg = KMEM_CONFIG_INIT;
    kmem_machine_t m;
    cfg.mem_bytes = 1ull << 20;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "too small");
    CHECK(m.h == 0);
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.cpus = 0;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "CPUs");
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.arch = 7;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "arch");
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.flags = 1u << 30;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "flags");
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.size = 16;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "KMEM_CONFIG_INIT");
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.arch = KMEM_ARCH_I386;
    cfg.mem_bytes = 8ull << 30;
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, "4 GiB");
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.slab_debug = "Q";
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_EINVAL, NULL);
    cfg = (struct kmem_config)KMEM_CONFIG_INIT;
    cfg.mem_bytes = 1ull << 45; /* 32 TiB: more than the host has */
    CHECK_ERR(kmem_machine_create(&cfg, &m), KMEM_ENOMEM, "host");
}

void test_machine_info_i386(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_I386, 1ull << 30, 2, 0, NULL);
    struct kmem_machine_info mi = info_of(m);
    CHECK(mi.arch == KMEM_ARCH_I386 && mi.pointer_size == 4 && mi.struct_page_size == 32 && mi.paging_levels == 2);
    CHECK(mi.page_offset == 0xc0000000ull);
    CHECK(mi.max_low_pfn < mi.max_pfn); /* 879 MiB of lowmem, the rest HIGHMEM */
    CHECK(mi.max_low_pfn == 0x36ffe); /* MAXMEM: 879 MiB minus the guard page, as the kernel computes it */
    CHECK(kmem_machine_destroy(m) == 0);
}

struct claim_arg {
    kmem_machine_t m;
    int id;
    int rc;
    kmem_cpu_t stolen;
    int use_rc;
};

static void *claim_thread(void *p)
{
    struct claim_arg *a = (struct claim_arg *)p;
    kmem_cpu_t c;
    a->rc = kmem_cpu_get(a->m, a->id, &c);
    if (a->stolen.h != 0)
        a->use_rc = kmem_cpu_put(a->stolen); /* not its CPU: refused */
    return NULL;
}

void test_cpu_claims(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 2, 0, NULL);
    kmem_cpu_t c0 = cpu_of(m, 0), again, any, c1;
    pthread_t t;
    struct claim_arg a;
    CHECK(kmem_cpu_id(c0) == 0);
    CHECK(kmem_cpu_get(m, 0, &again) == 0 && again.h == c0.h); /* idempotent for the owner */
    CHECK(kmem_cpu_get(m, KMEM_CPU_ANY, &any) == 0 && any.h == c0.h); /* this thread's CPU */
    CHECK_ERR(kmem_cpu_get(m, 2, &c1), KMEM_EINVAL, "cpu2");
    CHECK_ERR(kmem_cpu_get(m, -5, &c1), KMEM_EINVAL, NULL);
    /* Another thread cannot take cpu0 nor release it, but can take cpu1. */
    memset(&a, 0, sizeof a);
    a.m = m;
    a.id = 0;
    a.stolen = c0;
    pthread_create(&t, NULL, claim_thread, &a);
    pthread_join(t, NULL);
    CHECK(a.rc == -KMEM_EBUSY);
    CHECK(a.use_rc == -KMEM_EBUSY);
    CHECK(kmem_cpu_id(c0) == 0); /* still valid */
    /* Release and claim again: the old handle is stale, the new one differs. */
    CHECK(kmem_cpu_put(c0) == 0);
    CHECK_ERR(kmem_cpu_id(c0), KMEM_EBADF, "CPU handle");
    CHECK_NULL_ERR(kmem_kmalloc(c0, 16, GFP_KERNEL), KMEM_EBADF, "CPU handle");
    c1 = cpu_of(m, 0);
    CHECK(c1.h != c0.h && kmem_cpu_id(c1) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

struct use_arg {
    kmem_cpu_t cpu;
    void *p;
    int errno_;
};

static void *use_thread(void *p)
{
    struct use_arg *a = (struct use_arg *)p;
    a->p = kmem_kmalloc(a->cpu, 64, GFP_KERNEL);
    a->errno_ = kmem_last_errno();
    return NULL;
}

void test_cpu_owner_check(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 2, KMEM_CONFIG_CHECK_CPU_OWNER, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    pthread_t t;
    struct use_arg a;
    void *p = kmem_kmalloc(c, 64, GFP_KERNEL);
    CHECK(p != NULL);
    a.cpu = c;
    a.p = (void *)1;
    pthread_create(&t, NULL, use_thread, &a);
    pthread_join(t, NULL);
    CHECK(a.p == NULL && a.errno_ == -KMEM_EBUSY);
    CHECK(kmem_kfree(c, p) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_bad_handles(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s, as_cache;
    kmem_machine_t garbage = {0x1234567890abcdefull}, as_machine;
    kmem_cpu_t cgarbage = {0xdeadbeefull};
    CHECK(kmem_cache_create(c, "handles", 48, NULL, 0, &s) == 0);
    /* A handle of one type passed as another, garbage, zero: -EBADF, never a crash. */
    as_cache.h = c.h;
    as_machine.h = s.h;
    CHECK_NULL_ERR(kmem_cache_alloc(c, as_cache, GFP_KERNEL), KMEM_EBADF, "cache handle");
    CHECK_ERR(kmem_check(as_machine), KMEM_EBADF, "machine handle");
    CHECK_ERR(kmem_check(garbage), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_cpu_id(cgarbage), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_alloc_pages(cgarbage, GFP_KERNEL, 0), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_proc_read(garbage, "meminfo", NULL, 0), KMEM_EBADF, NULL);
    /* A stale cache handle after destroy. */
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK_NULL_ERR(kmem_cache_alloc(c, s, GFP_KERNEL), KMEM_EBADF, "cache handle");
    CHECK_ERR(kmem_cache_destroy(c, s), KMEM_EBADF, "cache handle");
    /* The machine is unharmed. */
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}
