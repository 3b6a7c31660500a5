/* The C tests of kmem.h: `kmem_tests` lists the cases, `kmem_tests NAME` runs one (exit 0 = pass). */
#include "harness.h"

int harness_failures;

kmem_machine_t boot(uint32_t arch, uint64_t mem, uint32_t cpus, uint32_t flags, const char *slab_debug)
{
    struct kmem_config cfg = KMEM_CONFIG_INIT;
    kmem_machine_t m;
    cfg.arch = arch;
    cfg.mem_bytes = mem;
    cfg.cpus = cpus;
    cfg.flags = flags;
    cfg.slab_debug = slab_debug;
    if (kmem_machine_create(&cfg, &m) != 0) {
        fprintf(stderr, "boot failed: %s\n", kmem_last_error());
        exit(2);
    }
    return m;
}

kmem_cpu_t cpu_of(kmem_machine_t m, int id)
{
    kmem_cpu_t c;
    if (kmem_cpu_get(m, id, &c) != 0) {
        fprintf(stderr, "kmem_cpu_get(%d) failed: %s\n", id, kmem_last_error());
        exit(2);
    }
    return c;
}

struct kmem_machine_info info_of(kmem_machine_t m)
{
    struct kmem_machine_info mi;
    memset(&mi, 0, sizeof mi);
    mi.size = sizeof mi;
    if (kmem_machine_info(m, &mi) != 0) {
        fprintf(stderr, "kmem_machine_info failed: %s\n", kmem_last_error());
        exit(2);
    }
    return mi;
}

const char *proc(kmem_machine_t m, const char *name)
{
    static char buf[1 << 20];
    int64_t n = kmem_proc_read(m, name, buf, sizeof buf);
    if (n < 0 || (size_t)n >= sizeof buf) {
        fprintf(stderr, "kmem_proc_read(%s) failed: %s\n", name, kmem_last_error());
        exit(2);
    }
    return buf;
}

#define TESTS(X)                                                                                    \
    X(abi_version) X(abi_structs) X(gfp_names) X(errors_before_any_machine)                          \
    X(machine_lifecycle) X(machine_bad_config) X(machine_info_i386)                                  \
    X(cpu_claims) X(cpu_owner_check) X(bad_handles)                                                  \
    X(pages_alloc_free) X(pages_errors) X(pages_exhaustion) X(pages_highmem_i386) X(get_free_pages)  \
    X(kmalloc_sizes) X(kmalloc_errors) X(krealloc_ksize) X(kfree_bulk)                               \
    X(cache_lifecycle) X(cache_errors) X(cache_bulk) X(cache_ctor) X(cache_find) X(cache_debug)      \
    X(fast_path) X(fast_path_i386) X(fast_path_stale)                                                \
    X(conversions) X(conversion_errors) X(page_info)                                                 \
    X(mmu_translate) X(mmu_vmalloc_rw) X(mmu_faults) X(mmu_i386)                                     \
    X(views) X(views_truncation) X(threads) X(cxx_header)                                           \
    X(process_fork_cow) X(process_fork_cow_i386) X(process_errors) X(process_busy_cpu)             \
    X(pressure_gfp) X(pressure_gfp_i386) X(pressure_nofs) X(pressure_kswapd) X(pressure_kswapd_i386) \
    X(pressure_try_to_free_pages) X(pressure_drop_caches) X(pressure_drop_caches_i386)              \
    X(pressure_file_rw) X(pressure_swapon) X(pressure_oom_score) X(pressure_oom_kill)              \
    X(pressure_context) X(pressure_bad_handles)

#define DECLARE(n) void test_##n(void);
TESTS(DECLARE)
#define ENTRY(n) {#n, test_##n},
static const struct test_case cases[] = {TESTS(ENTRY)};

int main(int argc, char **argv)
{
    size_t i, n = sizeof cases / sizeof cases[0];
    if (argc < 2) {
        for (i = 0; i < n; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (kmem_init(KMEM_ABI_VERSION) <= 0) {
        fprintf(stderr, "kmem_init failed: %s\n", kmem_last_error());
        return 2;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].fn();
            if (harness_failures) {
                fprintf(stderr, "%s: %d check(s) failed\n", argv[1], harness_failures);
                return 1;
            }
            printf("%s: ok\n", argv[1]);
            return 0;
        }
    }
    fprintf(stderr, "no test case %s\n", argv[1]);
    return 2;
}
