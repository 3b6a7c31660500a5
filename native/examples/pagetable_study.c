/* A page-table study through the C ABI: where do a kmalloc object, a vmalloc buffer, a struct page and a HIGHMEM
 * page live, and how does the MMU get there?
 *
 *   pagetable_study
 *
 * For each profile (x86_64: 4-level paging, 2 MiB/1 GiB linear map; i386: 2-level paging, 4 MiB pages, HIGHMEM)
 * it walks one translation per kind of kernel address with kmem_translate_pgd (level, page size, leaf entry),
 * prints crash's vtop for it, then the first lines of the kernel's ptdump; then a process's page of anonymous
 * memory before and after fork() and the child's first write (copy-on-write), and the child's /proc/PID/maps. */
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

/* The translation of a user address in the address space running on cpu (its CR3). */
static void user_walk(kmem_machine_t m, kmem_cpu_t cpu, const char *who, uint64_t va)
{
    struct kmem_translation t;
    uint64_t cr3;
    if (kmem_cpu_cr3(cpu, &cr3) != 0)
        die("kmem_cpu_cr3");
    if (kmem_translate_pgd(m, cr3, va, KMEM_ACCESS_READ, KMEM_MODE_USER, &t) != 0) {
        struct kmem_fault f;
        if (kmem_last_fault(&f) == 0 && (f.error_code & 1) == 0)
            printf("   %-34s CR3 0x%08" PRIx64 " -> not mapped yet (the walk stops at a level-%u entry 0x%" PRIx64 "): the first access faults it in\n",
                   who, cr3, f.level, f.entry);
        else
            printf("   %-34s %s\n", who, kmem_last_error());
        return;
    }
    printf("   %-34s CR3 0x%08" PRIx64 " -> phys 0x%08" PRIx64 ", PTE 0x%" PRIx64 " (%s)\n", who, cr3, t.phys, t.entry,
           (t.entry & 2) ? "writable" : "read-only");
}

static void process_study(kmem_machine_t m, kmem_cpu_t cpu)
{
    kmem_process_t parent, child;
    uint64_t a;
    char name[32], buf[8];
    if (kmem_process_create(cpu, "study", &parent) != 0)
        die("kmem_process_create");
    if (kmem_mmap(cpu, parent, 0, 2 * 4096, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a) != 0)
        die("kmem_mmap");
    printf("\n== process %d: 8 KiB of anonymous memory at 0x%" PRIx64 ", fork() and copy-on-write\n",
           kmem_process_pid(parent), a);
    user_walk(m, cpu, "parent, before any access", a);
    if (kmem_write_virt(cpu, a, "hello", 6, KMEM_MODE_USER) != 0) /* the process runs on cpu since kmem_mmap */
        die("kmem_write_virt");
    user_walk(m, cpu, "parent, after its first write", a);
    if (kmem_process_fork(cpu, parent, &child) != 0)
        die("kmem_process_fork");
    user_walk(m, cpu, "parent, after fork()", a);
    if (kmem_process_switch(cpu, child) != 0)
        die("kmem_process_switch");
    user_walk(m, cpu, "child, after fork()", a);
    if (kmem_write_virt(cpu, a, "world", 6, KMEM_MODE_USER) != 0)
        die("kmem_write_virt (child)");
    user_walk(m, cpu, "child, after its write (a copy)", a);
    if (kmem_process_switch(cpu, parent) != 0 || kmem_read_virt(cpu, a, buf, 6, KMEM_MODE_USER) != 0)
        die("kmem_read_virt (parent)");
    printf("   the parent still reads \"%s\"\n", buf);
    snprintf(name, sizeof name, "%d/maps", kmem_process_pid(child));
    if (kmem_proc_read(m, name, text, sizeof text) < 0)
        die("kmem_proc_read");
    printf("\n== /proc/%s\n%s", name, text);
    if (kmem_process_exit(cpu, child) != 0 || kmem_process_exit(cpu, parent) != 0)
        die("kmem_process_exit");
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

    process_study(m, cpu);

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
