// kmem.h compiled as C++ (extern "C", no C-only constructs), and used.
#include <cstring>
#include <string>

#include "kmem.h"

extern "C" int harness_failures;

extern "C" void test_cxx_header(void)
{
    kmem_config cfg = KMEM_CONFIG_INIT;
    cfg.mem_bytes = 64ull << 20;
    kmem_machine_t m{};
    kmem_cpu_t c{};
    if (kmem_machine_create(&cfg, &m) != 0 || kmem_cpu_get(m, 0, &c) != 0) {
        harness_failures++;
        return;
    }
    void *p = kmem_kmalloc(c, 100, GFP_KERNEL | __GFP_ZERO);
    std::string text(static_cast<size_t>(kmem_proc_read(m, "buddyinfo", nullptr, 0)), '\0');
    kmem_proc_read(m, "buddyinfo", &text[0], text.size() + 1);
    if (p == nullptr || kmem_ksize(c, p) != 128 || text.find("Node 0") != 0)
        harness_failures++;
    kmem_cache_t s{};
    kmem_cache_args args{};
    args.align = 32;
    kmem_cache_fast f{};
    if (kmem_cache_create(c, "cxx", 24, &args, 0, &s) != 0 || kmem_cache_fast_init(c, s, &f) != 0)
        harness_failures++;
    void *o = kmem_cache_fast_alloc(&f, GFP_KERNEL);
    if (o == nullptr || kmem_cache_fast_free(&f, o) != 0)
        harness_failures++;
    if (kmem_kfree(c, p) != 0 || kmem_cache_destroy(c, s) != 0 || kmem_machine_destroy(m) != 0)
        harness_failures++;
}
