/* Address conversions, struct page snapshots, the MMU and virtual memory access. */
#include "harness.h"

void test_conversions(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    unsigned char *p = (unsigned char *)kmem_kmalloc(c, 128, GFP_KERNEL);
    uint64_t va, pa, page, pfn, va2;
    void *h;
    CHECK(kmem_host_to_virt(m, p, &va) == 0);
    CHECK(kmem_virt_to_phys(m, va, &pa) == 0 && pa == va - mi.page_offset);
    CHECK(kmem_phys_to_virt(m, pa, &va2) == 0 && va2 == va);
    CHECK(kmem_host_to_phys(m, p, &pa) == 0 && pa == va - mi.page_offset);
    CHECK(kmem_phys_to_host(m, pa) == p);
    CHECK(kmem_virt_to_host(m, va) == p);
    /* pfn <-> struct page: mem_map + pfn * sizeof(struct page) (vmemmap on x86_64). */
    CHECK(kmem_pfn_to_page(m, pa >> 12, &page) == 0 && page == mi.mem_map + (pa >> 12) * 64);
    CHECK(kmem_page_to_pfn(m, page, &pfn) == 0 && pfn == pa >> 12);
    CHECK(kmem_virt_to_page(m, va, &page) == 0 && page == mi.mem_map + (pa >> 12) * 64);
    /* The struct page itself is in the arena at a linear... (vmemmap) address the kernel's tables map. */
    h = kmem_virt_to_host(m, page);
    CHECK(h != NULL);
    CHECK(kmem_kfree(c, p) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_conversion_errors(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    struct kmem_machine_info mi = info_of(m);
    uint64_t out;
    int local;
    CHECK_ERR(kmem_virt_to_phys(m, 0x1234, &out), KMEM_EFAULT, "linear");
    CHECK_ERR(kmem_phys_to_virt(m, 1ull << 40, &out), KMEM_EFAULT, NULL);
    CHECK_NULL_ERR(kmem_phys_to_host(m, mi.arena_size + 4096), KMEM_EFAULT, "not RAM");
    CHECK_NULL_ERR(kmem_phys_to_host(m, 0xa0000), KMEM_EFAULT, "not RAM"); /* the legacy VGA hole */
    CHECK_ERR(kmem_host_to_phys(m, &local, &out), KMEM_EFAULT, "arena");
    CHECK_ERR(kmem_host_to_virt(m, &local, &out), KMEM_EFAULT, "lowmem");
    CHECK_NULL_ERR(kmem_virt_to_host(m, mi.vmalloc_start + (1ull << 30)), KMEM_EFAULT, "not mapped");
    CHECK_ERR(kmem_pfn_to_page(m, mi.max_pfn, &out), KMEM_EFAULT, "max_pfn");
    CHECK_ERR(kmem_page_to_pfn(m, mi.mem_map + 3, &out), KMEM_EFAULT, "struct page");
    CHECK_ERR(kmem_virt_to_page(m, 42, &out), KMEM_EFAULT, NULL);
    CHECK_ERR(kmem_virt_to_phys(m, 0x1234, NULL), KMEM_EINVAL, "NULL");
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_page_info(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_page_info pi;
    int64_t pfn = kmem_alloc_pages(c, GFP_KERNEL | __GFP_COMP, 2);
    void *obj = kmem_kmalloc(c, 64, GFP_KERNEL);
    uint64_t pa;
    memset(&pi, 0, sizeof pi);
    pi.size = sizeof pi;
    CHECK(kmem_page_info(m, (uint64_t)pfn, &pi) == 0);
    CHECK(pi.pfn == (uint64_t)pfn && pi.refcount == 1 && strstr(pi.flags_text, "head") != NULL);
    CHECK(kmem_page_info(m, (uint64_t)pfn + 1, &pi) == 0);
    CHECK((pi.compound_head & 1) == 1); /* a tail page: compound_head | 1 */
    CHECK(kmem_host_to_phys(m, obj, &pa) == 0 && kmem_page_info(m, pa >> 12, &pi) == 0);
    CHECK(pi.page_type == 0xf5000000u); /* PGTY_slab */
    CHECK(kmem_free_pages(c, (uint64_t)pfn, 2) == 0);
    CHECK(kmem_page_info(m, (uint64_t)pfn, &pi) == 0 && pi.refcount == 0);
    CHECK_ERR(kmem_page_info(m, 1ull << 40, &pi), KMEM_EFAULT, "max_pfn");
    CHECK(kmem_kfree(c, obj) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_mmu_translate(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 256ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    struct kmem_translation t;
    struct kmem_tlb_stats before, after;
    uint64_t cr3, va = mi.page_offset + (100ull << 20) + 0x123;
    CHECK(kmem_cpu_cr3(c, &cr3) == 0 && (cr3 & ~0xfffull) == mi.swapper_pg_dir);
    CHECK(kmem_tlb_stats(c, &before) == 0);
    CHECK(kmem_translate(c, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL) == (int64_t)((100ull << 20) + 0x123));
    CHECK(kmem_translate(c, va, KMEM_ACCESS_WRITE, KMEM_MODE_KERNEL) == (int64_t)((100ull << 20) + 0x123));
    CHECK(kmem_tlb_stats(c, &after) == 0 && after.misses > before.misses);
    /* The walk: the linear map uses large pages (2 MiB or 1 GiB) at level 2 or 3. */
    memset(&t, 0, sizeof t);
    CHECK(kmem_translate_pgd(m, mi.swapper_pg_dir, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL, &t) == 0);
    CHECK(t.phys == (100ull << 20) + 0x123 && t.virt == va);
    CHECK((t.level == 2 && t.page_size == 2ull << 20) || (t.level == 3 && t.page_size == 1ull << 30));
    CHECK((t.entry & 0x81) == 0x81); /* present, PSE */
    CHECK(kmem_flush_tlb_all(m) == 0);
    CHECK_ERR(kmem_translate(c, va, 7, KMEM_MODE_KERNEL), KMEM_EINVAL, "access");
    CHECK_ERR(kmem_translate_pgd(m, 1ull << 45, va, 0, 0, &t), KMEM_EFAULT, "CR3");
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_mmu_vmalloc_rw(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    uint64_t va, cr3;
    char msg[3 * 4096], back[3 * 4096];
    int i;
    CHECK(kmem_vmalloc(c, sizeof msg, &va) == 0);
    CHECK(va >= mi.vmalloc_start && va < mi.vmalloc_end);
    for (i = 0; i < (int)sizeof msg; i++)
        msg[i] = (char)(i * 7);
    /* Virtually contiguous, physically scattered: the MMU copies across page boundaries. */
    CHECK(kmem_write_virt(c, va + 100, msg, sizeof msg - 200, KMEM_MODE_KERNEL) == 0);
    memset(back, 0, sizeof back);
    CHECK(kmem_read_virt(c, va + 100, back, sizeof msg - 200, KMEM_MODE_KERNEL) == 0);
    CHECK(memcmp(msg, back, sizeof msg - 200) == 0);
    /* Each page's host pointer sees the same bytes. */
    for (i = 0; i < 3; i++) {
        uint64_t page_va = va + (uint64_t)i * 4096;
        unsigned char *h = (unsigned char *)kmem_virt_to_host(m, page_va + 200);
        int64_t pa = kmem_translate(c, page_va + 200, KMEM_ACCESS_READ, KMEM_MODE_KERNEL);
        CHECK(h != NULL && pa >= 0 && h == (unsigned char *)kmem_phys_to_host(m, (uint64_t)pa));
        CHECK(h && *h == (unsigned char)msg[i * 4096 + 100]);
    }
    CHECK(kmem_cpu_cr3(c, &cr3) == 0);
    CHECK(kmem_vfree(c, va) == 0);
    /* Gone: the access faults, not-present. */
    CHECK_ERR(kmem_translate(c, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL), KMEM_EFAULT, "not-present");
    CHECK_ERR(kmem_vfree(c, va + 5), KMEM_EFAULT, NULL);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_mmu_faults(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    struct kmem_fault f;
    char b[8];
    uint64_t hole = mi.vmalloc_start + (3ull << 30);
    CHECK_ERR(kmem_translate(c, hole, KMEM_ACCESS_READ, KMEM_MODE_KERNEL), KMEM_EFAULT, "unable to handle page fault");
    CHECK(kmem_last_fault(&f) == 0 && f.address == hole && f.kind == 0 && (f.error_code & 1) == 0);
    /* User mode may not touch the kernel's linear map: a protection fault with X86_PF_USER. */
    CHECK_ERR(kmem_translate(c, mi.page_offset + 0x100000, KMEM_ACCESS_READ, KMEM_MODE_USER), KMEM_EFAULT, "user");
    CHECK(kmem_last_fault(&f) == 0 && (f.error_code & 0x5) == 0x5);
    /* A non-canonical address: #GP. */
    CHECK_ERR(kmem_read_virt(c, 0x0000900000000000ull, b, 8, KMEM_MODE_KERNEL), KMEM_EFAULT, NULL);
    CHECK(kmem_last_fault(&f) == 0 && f.kind == 1);
    /* A failure that is not a fault leaves no fault record. */
    CHECK_ERR(kmem_check((kmem_machine_t){0}), KMEM_EBADF, NULL);
    CHECK(kmem_last_fault(&f) == -KMEM_ENOENT);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_mmu_i386(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_I386, 256ull << 20, 1, KMEM_CONFIG_NO_PSE, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    struct kmem_translation t;
    uint64_t va = mi.page_offset + (10ull << 20) + 8;
    uint32_t word = 0x11223344, back = 0;
    CHECK(kmem_translate(c, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL) == (int64_t)((10ull << 20) + 8));
    /* Without PSE the linear map is made of 4 KiB pages: a 2-level walk ends at a PTE. */
    CHECK(kmem_translate_pgd(m, mi.swapper_pg_dir, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL, &t) == 0);
    CHECK(t.level == 1 && t.page_size == 4096);
    CHECK(kmem_write_virt(c, va, &word, 4, KMEM_MODE_KERNEL) == 0);
    CHECK(kmem_read_virt(c, va, &back, 4, KMEM_MODE_KERNEL) == 0 && back == word);
    CHECK(*(uint32_t *)kmem_virt_to_host_inline(&mi, va) == word);
    CHECK(kmem_machine_destroy(m) == 0);
}
