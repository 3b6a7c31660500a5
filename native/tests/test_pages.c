/* The page allocator through the C ABI. */
#include "harness.h"

void test_pages_alloc_free(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 128ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    uint32_t order;
    for (order = 0; order <= 10; order++) {
        int64_t pfn = kmem_alloc_pages(c, GFP_KERNEL | __GFP_ZERO, order);
        unsigned char *p;
        size_t i, bytes = (size_t)4096 << order;
        struct kmem_page_info pi;
        CHECK(pfn >= 0);
        if (pfn < 0)
            continue;
        CHECK(((uint64_t)pfn & ((1ull << order) - 1)) == 0); /* buddy blocks are naturally aligned */
        p = (unsigned char *)kmem_phys_to_host(m, (uint64_t)pfn << 12);
        CHECK(p == mi.arena_base + ((uint64_t)pfn << 12));
        for (i = 0; i < bytes; i += 512)
            CHECK(p[i] == 0); /* __GFP_ZERO */
        memset(p, 0xa5, bytes); /* usable memory */
        memset(&pi, 0, sizeof pi);
        pi.size = sizeof pi;
        CHECK(kmem_page_info(m, (uint64_t)pfn, &pi) == 0 && pi.refcount == 1);
        CHECK(kmem_free_pages(c, (uint64_t)pfn, order) == 0);
        CHECK(kmem_page_info(m, (uint64_t)pfn, &pi) == 0 && pi.refcount == 0);
    }
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_pages_errors(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    char before[4096], after[4096];
    int64_t pfn = kmem_alloc_pages(c, GFP_KERNEL, 2);
    CHECK(pfn >= 0);
    CHECK_ERR(kmem_alloc_pages(c, GFP_KERNEL, 11), KMEM_EINVAL, "MAX_PAGE_ORDER");
    CHECK_ERR(kmem_alloc_pages(c, __GFP_DMA | __GFP_DMA32, 0), KMEM_EINVAL, NULL);
    /* Wrong order, a tail page, beyond RAM: refused, nothing changes. */
    snprintf(before, sizeof before, "%s", proc(m, "buddyinfo"));
    CHECK_ERR(kmem_free_pages(c, (uint64_t)pfn, 1), KMEM_EINVAL, "Bad page");
    CHECK_ERR(kmem_free_pages(c, (uint64_t)pfn + 1, 0), KMEM_EINVAL, "Bad page");
    CHECK_ERR(kmem_free_pages(c, mi.max_pfn + 5, 0), KMEM_EFAULT, "max_pfn");
    CHECK_ERR(kmem_free_pages(c, (uint64_t)pfn, 12), KMEM_EINVAL, "order");
    snprintf(after, sizeof after, "%s", proc(m, "buddyinfo"));
    CHECK(strcmp(before, after) == 0);
    CHECK(kmem_free_pages(c, (uint64_t)pfn, 2) == 0);
    /* A double free: the kernel's bad_page() report, state unchanged, the process goes on. */
    CHECK_ERR(kmem_free_pages(c, (uint64_t)pfn, 2), KMEM_EINVAL, "BUG: Bad page state");
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_pages_exhaustion(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 32ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    int64_t pfns[64];
    int n = 0, i;
    for (;;) {
        int64_t pfn = kmem_alloc_pages(c, GFP_KERNEL | __GFP_NOWARN, 10);
        if (pfn < 0) {
            CHECK(pfn == -KMEM_ENOMEM);
            CHECK(strstr(kmem_last_error(), "order:10") != NULL);
            break;
        }
        CHECK(n < 64);
        if (n >= 64)
            break;
        pfns[n++] = pfn;
    }
    CHECK(n >= 1);
    for (i = 0; i < n; i++)
        CHECK(kmem_free_pages(c, (uint64_t)pfns[i], 10) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_pages_highmem_i386(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_I386, 1ull << 30, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    int64_t pfn = kmem_alloc_pages(c, GFP_HIGHUSER, 0);
    uint64_t va;
    unsigned char *p;
    CHECK(pfn >= 0 && (uint64_t)pfn >= mi.max_low_pfn); /* from ZONE_HIGHMEM */
    /* No linear address, but a host pointer C can use. */
    CHECK_ERR(kmem_phys_to_virt(m, (uint64_t)pfn << 12, &va), KMEM_EFAULT, "lowmem");
    p = (unsigned char *)kmem_phys_to_host(m, (uint64_t)pfn << 12);
    CHECK(p != NULL);
    if (p)
        memset(p, 0x3c, 4096);
    CHECK_NULL_ERR(kmem_get_free_pages(c, GFP_HIGHUSER, 0), KMEM_EINVAL, "HIGHMEM");
    CHECK(kmem_free_pages(c, (uint64_t)pfn, 0) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_get_free_pages(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    unsigned char *p = (unsigned char *)kmem_get_free_pages(c, GFP_KERNEL, 3), *q;
    uint64_t va, pa;
    int local;
    CHECK(p != NULL && ((uintptr_t)p & 4095) == 0);
    memset(p, 0x77, 8 * 4096);
    CHECK(kmem_host_to_virt(m, p, &va) == 0 && va == kmem_host_to_virt_inline(&mi, p));
    CHECK(kmem_virt_to_phys(m, va, &pa) == 0 && pa == kmem_host_to_phys_inline(&mi, p));
    q = (unsigned char *)kmem_virt_to_host(m, va + 4096 * 7 + 5);
    CHECK(q == p + 4096 * 7 + 5 && *q == 0x77);
    CHECK(kmem_free_pages_ptr(c, p, 3) == 0);
    CHECK(kmem_free_pages_ptr(c, NULL, 0) == 0);
    CHECK_ERR(kmem_free_pages_ptr(c, &local, 0), KMEM_EFAULT, "lowmem");
    CHECK_ERR(kmem_free_pages_ptr(c, p, 3), KMEM_EINVAL, "Bad page");
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}
