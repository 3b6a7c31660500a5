/* A page-table study through the C ABI: where do a kmalloc object, a vmalloc buffer, a struct page and a HIGHMEM
 * page live, and how does the MMU get there?
 *
 *   pagetable_study
 *
 * For each profile (x86_64: 4-level paging, 2 MiB/1 GiB linear map; i386: 2-level paging, 4 MiB pages, HIGHMEM)
 * it walks one translation per kind of kernel address with kmem_translate_pgd (level, page size, leaf entry),
 * prints crash's vtop for it, then the first lines of the kernel's ptdump. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmem.h"

static char text[1 << 20];

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, kmem_last_error());
    exit(1);
}

static const char *level_name(uint32_t arch, uint32_t level)
{
    static const char *x64[] = {"?", "PTE", "PMD", "PUD", "PGD"};
    static const char *x32[] = {"?", "PTE", "PDE"};
    if (arch == KMEM_ARCH_X86_64)
        return level <= 4 ? x64[level] : "?";
    return level <= 2 ? x32[level] : "?";
}

static void walk(kmem_machine_t m, const struct kmem_machine_info *mi, const char *what, uint64_t va)
{
    struct kmem_translation t;
    printf("\n== %s: 0x%016" PRIx64 "\n", what, va);
    if (kmem_translate_pgd(m, mi->swapper_pg_dir, va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL, &t) != 0) {
        printf("   not mapped: %s\n", kmem_last_error());
        return;
    }
    printf("   -> phys 0x%" PRIx64 " through a %s (level %u) entry 0x%" PRIx64 ", page size %" PRIu64 " KiB\n", t.phys,
           level_name(mi->arch, t.level), t.level, t.entry, t.page_size >> 10);
    if (kmem_vtop(m, va, text, sizeof text) < 0)
        die("kmem_vtop");
    printf("%s", text);
}

static void study(uint32_t arch, uint64_t mem)
{
    struct kmem_config cfg = KMEM_CONFIG_INIT;
    struct kmem_machine_info mi;
    kmem_machine_t m;
    kmem_cpu_t cpu;
    void *obj;
    uint64_t obj_va, vm, page;
    int64_t hpfn;
    int lines = 0;
    char *line;

    cfg.arch = arch;
    cfg.mem_bytes = mem;
    cfg.cpus = 1;
    if (kmem_machine_create(&cfg, &m) != 0 || kmem_cpu_get(m, 0, &cpu) != 0)
        die("boot");
    memset(&mi, 0, sizeof mi);
    mi.size = sizeof mi;
    if (kmem_machine_info(m, &mi) != 0)
        die("kmem_machine_info");
    printf("\n################ %s, %" PRIu64 " MiB: PAGE_OFFSET 0x%" PRIx64 ", %u-level paging, CR3 0x%" PRIx64 "\n",
           arch == KMEM_ARCH_X86_64 ? "x86_64" : "i386", mem >> 20, mi.page_offset, mi.paging_levels, mi.swapper_pg_dir);

    obj = kmem_kmalloc(cpu, 100, GFP_KERNEL);
    if (!obj || kmem_host_to_virt(m, obj, &obj_va) != 0)
        die("kmalloc");
    walk(m, &mi, "a kmalloc(100) object (linear map)", obj_va);

    if (kmem_vmalloc(cpu, 3 * 4096, &vm) != 0)
        die("vmalloc");
    walk(m, &mi, "the second page of a vmalloc(12 KiB) buffer", vm + 4096);

    if (kmem_virt_to_page(m, obj_va, &page) != 0)
        die("virt_to_page");
    walk(m, &mi, "the object's struct page", page);

    hpfn = kmem_alloc_pages(cpu, GFP_HIGHUSER, 0);
    if (hpfn >= 0 && (uint64_t)hpfn >= mi.max_low_pfn) {
        uint64_t va;
        printf("\n== a HIGHMEM page: pfn 0x%" PRIx64 ", host pointer %p, linear address: %s\n", (uint64_t)hpfn,
               kmem_phys_to_host(m, (uint64_t)hpfn << 12),
               kmem_phys_to_virt(m, (uint64_t)hpfn << 12, &va) == 0 ? "yes" : "none (kmap it to reach it)");
    }
    if (hpfn >= 0)
        kmem_free_pages(cpu, (uint64_t)hpfn, 0);

    if (kmem_ptdump(m, text, sizeof text) < 0)
        die("kmem_ptdump");
    printf("\n== ptdump (first lines)\n");
    for (line = strtok(text, "\n"); line && lines < 16; line = strtok(NULL, "\n"), lines++)
        printf("%s\n", line);

    kmem_vfree(cpu, vm);
    kmem_kfree(cpu, obj);
    if (kmem_check(m) != 0)
        die("kmem_check");
    kmem_machine_destroy(m);
}

int main(void)
{
    if (kmem_init(KMEM_ABI_VERSION) < 0)
        die("kmem_init");
    study(KMEM_ARCH_X86_64, 256ull << 20);
    study(KMEM_ARCH_I386, 1ull << 30);
    return 0;
}
