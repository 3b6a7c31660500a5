/* kmalloc, slab caches and the inline fast path through the C ABI. */
#include "harness.h"

void test_kmalloc_sizes(void)
{
    static const size_t sizes[] = {1, 8, 16, 24, 64, 96, 100, 128, 192, 256, 1000, 2048, 4096, 8192, 8193, 65536, 1 << 20};
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 128ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    void *ptrs[sizeof sizes / sizeof sizes[0]];
    size_t i;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = (unsigned char *)kmem_kmalloc(c, sizes[i], GFP_KERNEL);
        uint64_t va;
        CHECK(p != NULL);
        ptrs[i] = p;
        if (!p)
            continue;
        CHECK((uint64_t)kmem_ksize(c, p) >= sizes[i]);
        memset(p, (int)i, sizes[i]); /* the whole size is writable host memory */
        /* The guest address beside it: linear map, the object's struct page is a slab (or compound) page. */
        va = kmem_host_to_virt_inline(&mi, p);
        CHECK(va >= mi.page_offset && kmem_virt_to_host_inline(&mi, va) == p);
    }
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = (unsigned char *)ptrs[i];
        if (p)
            CHECK(p[0] == (unsigned char)i && p[sizes[i] - 1] == (unsigned char)i);
        CHECK(kmem_kfree(c, p) == 0);
    }
    /* kmalloc(0) is ZERO_SIZE_PTR; kfree() ignores it and NULL. */
    CHECK(kmem_kmalloc(c, 0, GFP_KERNEL) == KMEM_ZERO_SIZE_PTR);
    CHECK(kmem_kfree(c, KMEM_ZERO_SIZE_PTR) == 0);
    CHECK(kmem_kfree(c, NULL) == 0);
    CHECK(kmem_ksize(c, NULL) == 0);
    {
        unsigned char *z = (unsigned char *)kmem_kzalloc(c, 200, GFP_KERNEL);
        size_t k, nonzero = 0;
        CHECK(z != NULL);
        for (k = 0; z && k < 200; k++)
            nonzero += z[k] != 0;
        CHECK(nonzero == 0);
        CHECK(kmem_kfree(c, z) == 0);
    }
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_kmalloc_errors(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    char before[8192];
    int local = 0;
    void *p = kmem_kmalloc(c, 64, GFP_KERNEL), *q = kmem_kmalloc(c, 64, GFP_KERNEL);
    CHECK(p != NULL && q != NULL);
    CHECK_NULL_ERR(kmem_kmalloc(c, (size_t)1 << 40, GFP_KERNEL), KMEM_EINVAL, "KMALLOC_MAX_SIZE");
    snprintf(before, sizeof before, "%s", proc(m, "slabinfo"));
    /* Not kmalloc memory: a stack address (outside the arena: SLUB's oops, nothing freed); ksize() of a pointer
     * inside an object. (kfree() of an interior pointer on the CPU-slab fast path is not checked, as in the
     * kernel: it corrupts the freelist; slab_debug catches it, see cache_debug.) */
    CHECK_ERR(kmem_kfree(c, &local), KMEM_EINVAL, "unable to handle page fault");
    CHECK_ERR(kmem_ksize(c, (unsigned char *)p + 8), KMEM_EINVAL, NULL);
    CHECK(strcmp(before, proc(m, "slabinfo")) == 0);
    CHECK(kmem_kfree(c, p) == 0);
    /* The naive double free (the object at the head of the CPU freelist) is caught. */
    CHECK_ERR(kmem_kfree(c, p), KMEM_EINVAL, "already free");
    CHECK(kmem_kfree(c, q) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_krealloc_ksize(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    char *p = (char *)kmem_kmalloc(c, 10, GFP_KERNEL), *q;
    CHECK(kmem_ksize(c, p) == 16);
    strcpy(p, "123456789");
    q = (char *)kmem_krealloc(c, p, 12, GFP_KERNEL); /* still fits kmalloc-16: same object */
    CHECK(q == p);
    q = (char *)kmem_krealloc(c, p, 3000, GFP_KERNEL); /* moves, keeps the contents */
    CHECK(q != NULL && q != p && strcmp(q, "123456789") == 0);
    CHECK(kmem_ksize(c, q) == 4096);
    p = (char *)kmem_krealloc(c, NULL, 40, GFP_KERNEL); /* NULL allocates */
    CHECK(p != NULL && kmem_ksize(c, p) == 64);
    CHECK(kmem_krealloc(c, p, 0, GFP_KERNEL) == KMEM_ZERO_SIZE_PTR); /* 0 frees */
    CHECK(kmem_kfree(c, q) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_kfree_bulk(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    void *p[300];
    int i;
    for (i = 0; i < 300; i++) {
        p[i] = kmem_kmalloc(c, (size_t)(8 << (i % 10)), GFP_KERNEL);
        CHECK(p[i] != NULL);
    }
    CHECK(kmem_kfree_bulk(c, 300, p) == 0);
    CHECK(kmem_kfree_bulk(c, 0, NULL) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

static uint64_t active_objs(kmem_cache_t s)
{
    struct kmem_cache_info ci;
    memset(&ci, 0, sizeof ci);
    ci.size = sizeof ci;
    if (kmem_cache_info(s, &ci) != 0)
        return (uint64_t)-1;
    return ci.active_objs;
}

void test_cache_lifecycle(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s;
    struct kmem_cache_info ci;
    void *objs[100];
    int i;
    CHECK(kmem_cache_create(c, "c_test", 100, NULL, KMEM_SLAB_HWCACHE_ALIGN, &s) == 0);
    memset(&ci, 0, sizeof ci);
    ci.size = sizeof ci;
    CHECK(kmem_cache_info(s, &ci) == 0);
    CHECK(ci.object_size == 100 && ci.stride == 128 && strcmp(ci.name, "c_test") == 0);
    CHECK((ci.flags & KMEM_SLAB_HWCACHE_ALIGN) != 0);
    CHECK(ci.objects_per_slab == 32 && ci.kmem_cache >= info_of(m).page_offset);
    for (i = 0; i < 100; i++) {
        objs[i] = kmem_cache_alloc(c, s, GFP_KERNEL);
        CHECK(objs[i] != NULL && ((uintptr_t)objs[i] & 63) == 0);
        if (objs[i])
            memset(objs[i], i, 100);
    }
    CHECK(active_objs(s) >= 100);
    CHECK(strstr(proc(m, "slabinfo"), "c_test") != NULL);
    for (i = 0; i < 100; i++)
        CHECK(kmem_cache_free(c, s, objs[i]) == 0);
    CHECK(kmem_cache_free(c, s, NULL) == 0);
    {
        unsigned char *z = (unsigned char *)kmem_cache_zalloc(c, s, GFP_KERNEL);
        int k, nonzero = 0;
        for (k = 0; z && k < 100; k++)
            nonzero += z[k] != 0;
        CHECK(z != NULL && nonzero == 0);
        CHECK(kmem_cache_free(c, s, z) == 0);
    }
    CHECK(kmem_cache_shrink(c, s) >= 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(strstr(proc(m, "slabinfo"), "c_test") == NULL);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_cache_errors(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s, s2, other;
    void *o, *k;
    int local;
    CHECK(kmem_cache_create(c, "c_err", 64, NULL, 0, &s) == 0);
    CHECK(kmem_cache_create(c, "c_other", 64, NULL, 0, &other) == 0);
    CHECK_ERR(kmem_cache_create(c, "c_err", 64, NULL, 0, &s2), KMEM_EEXIST, "-17");
    CHECK(s2.h == 0);
    CHECK_ERR(kmem_cache_create(c, "c_zero", 0, NULL, 0, &s2), KMEM_EINVAL, NULL);
    CHECK_ERR(kmem_cache_create(c, NULL, 64, NULL, 0, &s2), KMEM_EINVAL, "name");
    {
        struct kmem_cache_args a;
        memset(&a, 0, sizeof a);
        a.align = 3;
        CHECK_ERR(kmem_cache_create(c, "c_align", 64, &a, 0, &s2), KMEM_EINVAL, NULL);
    }
    o = kmem_cache_alloc(c, s, GFP_KERNEL);
    k = kmem_kmalloc(c, 64, GFP_KERNEL);
    /* Freeing into the wrong cache, a stack address: SLUB reports, nothing freed. */
    CHECK_ERR(kmem_cache_free(c, other, o), KMEM_EINVAL, NULL);
    CHECK_ERR(kmem_cache_free(c, s, &local), KMEM_EINVAL, NULL);
    CHECK(kmem_check(m) == 0);
    /* Destroying a cache with objects: -EBUSY and the leak report; the cache stays usable. */
    CHECK_ERR(kmem_cache_destroy(c, s), KMEM_EBUSY, "Objects remaining");
    CHECK(kmem_cache_free(c, s, o) == 0);
    CHECK_ERR(kmem_cache_free(c, s, o), KMEM_EINVAL, "already free");
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(kmem_cache_destroy(c, other) == 0);
    CHECK(kmem_kfree(c, k) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_cache_bulk(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s, sh;
    struct kmem_cache_args a;
    void *objs[500];
    int i, round;
    memset(&a, 0, sizeof a);
    a.sheaf_capacity = 32;
    CHECK(kmem_cache_create(c, "c_bulk", 200, NULL, 0, &s) == 0);
    CHECK(kmem_cache_create(c, "c_bulk_sheaves", 64, &a, 0, &sh) == 0);
    for (round = 0; round < 3; round++) {
        kmem_cache_t t = round == 1 ? sh : s;
        CHECK(kmem_cache_alloc_bulk(c, t, GFP_KERNEL, 500, objs) == 500);
        for (i = 0; i < 500; i++) {
            CHECK(objs[i] != NULL);
            if (objs[i])
                memset(objs[i], 0x11, 64);
        }
        CHECK(active_objs(t) >= 500);
        CHECK(kmem_cache_free_bulk(c, t, 500, objs) == 0);
    }
    CHECK(kmem_cache_alloc_bulk(c, s, GFP_KERNEL, 0, objs) == 0);
    CHECK(kmem_cache_free_bulk(c, s, 0, NULL) == 0);
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(kmem_cache_destroy(c, sh) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

static int ctor_calls;
static void ctor(void *obj)
{
    ctor_calls++;
    memset(obj, 0x5c, 40);
}

void test_cache_ctor(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s;
    struct kmem_cache_args a;
    unsigned char *o;
    memset(&a, 0, sizeof a);
    a.ctor = ctor;
    CHECK(kmem_cache_create(c, "c_ctor", 40, &a, 0, &s) == 0);
    o = (unsigned char *)kmem_cache_alloc(c, s, GFP_KERNEL);
    /* The constructor ran on every object of the new slab, with host pointers C can write. */
    CHECK(o != NULL && o[0] == 0x5c && o[39] == 0x5c);
    CHECK(ctor_calls >= 2);
    CHECK(kmem_cache_free(c, s, o) == 0);
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_cache_find(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t k64, again, none;
    struct kmem_cache_info ci;
    void *p;
    CHECK(kmem_cache_find(m, "kmalloc-64", &k64) == 0);
    CHECK(kmem_cache_find(m, "kmalloc-64", &again) == 0 && again.h == k64.h);
    CHECK_ERR(kmem_cache_find(m, "no-such-cache", &none), KMEM_ENOENT, "no-such-cache");
    memset(&ci, 0, sizeof ci);
    ci.size = sizeof ci;
    CHECK(kmem_cache_info(k64, &ci) == 0 && ci.object_size == 64);
    /* An object from kmalloc-64's cache is kmalloc memory: kfree() takes it. */
    p = kmem_cache_alloc(c, k64, GFP_KERNEL);
    CHECK(p != NULL && kmem_ksize(c, p) == 64);
    CHECK(kmem_kfree(c, p) == 0);
    CHECK_ERR(kmem_cache_destroy(c, k64), KMEM_EINVAL, "boot cache");
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_cache_debug(void)
{
    /* slab_debug=FZPU on one cache: red zones and poisoning catch what the fast path cannot. */
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, "FZPU,c_dbg");
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s;
    unsigned char *o;
    CHECK(kmem_cache_create(c, "c_dbg", 50, NULL, 0, &s) == 0);
    o = (unsigned char *)kmem_cache_alloc(c, s, GFP_KERNEL);
    CHECK(o != NULL);
    if (!o)
        return;
    o[50] = 0; /* one byte past the object: the right red zone */
    CHECK_ERR(kmem_cache_free(c, s, o), KMEM_EINVAL, "Redzone overwritten");
    o = (unsigned char *)kmem_cache_alloc(c, s, GFP_KERNEL);
    CHECK(kmem_cache_free(c, s, o) == 0);
    CHECK_ERR(kmem_cache_free(c, s, o), KMEM_EINVAL, "Object already free");
    CHECK(strstr(kmem_last_error(), "BUG c_dbg") != NULL);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

static void fast_path_on(uint32_t arch)
{
    kmem_machine_t m = boot(arch, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s;
    struct kmem_cache_fast f;
    void *objs[1000];
    uint64_t before;
    int i, round;
    CHECK(kmem_cache_create(c, "c_fast", 64, NULL, 0, &s) == 0);
    CHECK(kmem_cache_fast_init(c, s, &f) == 0);
    CHECK(f.fp_limit != 0 && f.word == (arch == KMEM_ARCH_X86_64 ? 8u : 4u));
    before = active_objs(s);
    for (round = 0; round < 5; round++) {
        /* Through the inline path, with refills from the export whenever the CPU freelist runs dry. */
        for (i = 0; i < 1000; i++) {
            objs[i] = kmem_cache_fast_alloc(&f, GFP_KERNEL);
            CHECK(objs[i] != NULL);
            if (objs[i])
                memset(objs[i], i & 0xff, 64);
        }
        for (i = 0; i < 1000; i++)
            CHECK(((unsigned char *)objs[i])[63] == (unsigned char)(i & 0xff));
        /* Frees in reverse and mixed with the export: objects of older CPU slabs go the remote way. */
        for (i = 999; i >= 0; i--)
            CHECK((i % 3 ? kmem_cache_fast_free(&f, objs[i]) : kmem_cache_free(c, s, objs[i])) == 0);
        CHECK(kmem_check(m) == 0);
    }
    CHECK(active_objs(s) == before || active_objs(s) >= before);
    /* Its inline free also rejects a double free (via the export). */
    objs[0] = kmem_cache_fast_alloc(&f, GFP_KERNEL);
    CHECK(kmem_cache_fast_free(&f, objs[0]) == 0);
    CHECK_ERR(kmem_cache_fast_free(&f, objs[0]), KMEM_EINVAL, NULL);
    /* __GFP_ZERO goes through the export and zeroes. */
    objs[0] = kmem_cache_fast_alloc(&f, GFP_KERNEL | __GFP_ZERO);
    CHECK(objs[0] != NULL && ((unsigned char *)objs[0])[10] == 0);
    CHECK(kmem_cache_fast_free(&f, objs[0]) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_fast_path(void) { fast_path_on(KMEM_ARCH_X86_64); }
void test_fast_path_i386(void) { fast_path_on(KMEM_ARCH_I386); }

void test_fast_path_stale(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_cache_t s, dbg;
    struct kmem_cache_fast f, fd;
    void *o;
    CHECK(kmem_cache_create(c, "c_stale", 64, NULL, 0, &s) == 0);
    CHECK(kmem_cache_create(c, "c_dbg_flags", 64, NULL, KMEM_SLAB_CONSISTENCY_CHECKS | KMEM_SLAB_RED_ZONE, &dbg) == 0);
    CHECK(kmem_cache_fast_init(c, s, &f) == 0);
    CHECK(kmem_cache_fast_init(c, dbg, &fd) == 0);
    /* A debug cache: the inline path always defers to the export, which runs the checks. */
    o = kmem_cache_fast_alloc(&fd, GFP_KERNEL);
    CHECK(o != NULL);
    ((unsigned char *)o)[64] = 1;
    CHECK_ERR(kmem_cache_fast_free(&fd, o), KMEM_EINVAL, "Redzone");
    /* After the cache is destroyed the binding is stale: NULL / -EBADF, the arena is not touched. */
    o = kmem_cache_fast_alloc(&f, GFP_KERNEL);
    CHECK(kmem_cache_fast_free(&f, o) == 0);
    CHECK(kmem_cache_destroy(c, s) == 0);
    CHECK_NULL_ERR(kmem_cache_fast_alloc(&f, GFP_KERNEL), KMEM_EBADF, "cache handle");
    CHECK_ERR(kmem_cache_fast_free(&f, o), KMEM_EBADF, "cache handle");
    /* A new cache reusing memory does not revive the old binding. */
    CHECK(kmem_cache_create(c, "c_stale", 64, NULL, 0, &s) == 0);
    CHECK_NULL_ERR(kmem_cache_fast_alloc(&f, GFP_KERNEL), KMEM_EBADF, NULL);
    CHECK(kmem_cache_fast_init(c, s, &f) == 0);
    /* After the CPU is released, too. */
    CHECK(kmem_cpu_put(c) == 0);
    CHECK_NULL_ERR(kmem_cache_fast_alloc(&f, GFP_KERNEL), KMEM_EBADF, "CPU handle");
    c = cpu_of(m, 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
    CHECK_NULL_ERR(kmem_cache_fast_alloc(&f, GFP_KERNEL), KMEM_EBADF, NULL);
}
