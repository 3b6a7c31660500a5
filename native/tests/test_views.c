/* /proc views, ptdump, vtop, dmesg; threads. */
#include <pthread.h>

#include "harness.h"

void test_views(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 128ull << 20, 2, 0, NULL);
    struct kmem_machine_info mi = info_of(m);
    static char buf[1 << 20];
    int64_t n;
    CHECK(strstr(proc(m, "meminfo"), "MemTotal:") != NULL);
    CHECK(strstr(proc(m, "buddyinfo"), "Node 0, zone   Normal") != NULL || strstr(proc(m, "buddyinfo"), "zone    DMA32") != NULL);
    CHECK(strstr(proc(m, "zoneinfo"), "pages free") != NULL);
    CHECK(strstr(proc(m, "vmstat"), "nr_free_pages") != NULL);
    CHECK(strstr(proc(m, "slabinfo"), "slabinfo - version: 2.1") != NULL);
    CHECK(strstr(proc(m, "pagetypeinfo"), "Page block order") != NULL);
    CHECK_ERR(kmem_proc_read(m, "nosuchfile", buf, sizeof buf), KMEM_ENOENT, "nosuchfile");
    CHECK_ERR(kmem_proc_read(m, NULL, buf, sizeof buf), KMEM_EINVAL, "name");
    n = kmem_ptdump(m, buf, sizeof buf);
    CHECK(n > 0 && n < (int64_t)sizeof buf && strstr(buf, "---[ ") != NULL);
    n = kmem_vtop(m, mi.page_offset + 0x1234, buf, sizeof buf);
    CHECK(n > 0 && strstr(buf, "PHYSICAL") != NULL);
    n = kmem_dmesg(m, buf, sizeof buf);
    CHECK(n > 0 && strstr(buf, "Memory:") != NULL);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_views_truncation(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    char small[16], *full;
    int64_t need = kmem_proc_read(m, "meminfo", NULL, 0); /* size 0: just the length */
    CHECK(need > 100);
    memset(small, 'x', sizeof small);
    CHECK(kmem_proc_read(m, "meminfo", small, sizeof small) == need);
    CHECK(small[15] == '\0' && strlen(small) == 15 && strncmp(small, "MemTotal:", 9) == 0);
    full = (char *)malloc((size_t)need + 1);
    CHECK(kmem_proc_read(m, "meminfo", full, (size_t)need + 1) == need && strlen(full) == (size_t)need);
    free(full);
    CHECK_ERR(kmem_proc_read(m, "meminfo", NULL, 10), KMEM_EFAULT, "NULL");
    CHECK(kmem_machine_destroy(m) == 0);
}

#define ROUNDS 20000

struct worker {
    kmem_machine_t m;
    int id;
    kmem_cache_t cache;
    void **handoff;   /* objects this worker allocates for the other to free (remote frees) */
    void **incoming;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = (struct worker *)arg;
    kmem_cpu_t c;
    struct kmem_cache_fast f;
    int i;
    if (kmem_cpu_get(w->m, w->id, &c) != 0 || kmem_cache_fast_init(c, w->cache, &f) != 0) {
        w->failures++;
        return NULL;
    }
    for (i = 0; i < ROUNDS; i++) {
        void *a = kmem_kmalloc(c, (size_t)(16 + (i % 200)), GFP_KERNEL);
        void *b = kmem_cache_fast_alloc(&f, GFP_KERNEL);
        if (!a || !b) {
            w->failures++;
            break;
        }
        memset(a, w->id, 16);
        memset(b, w->id, 64);
        if (kmem_kfree(c, a) != 0)
            w->failures++;
        if (i < 1000)
            w->handoff[i] = b; /* freed later by the other thread, on its CPU */
        else if (kmem_cache_fast_free(&f, b) != 0)
            w->failures++;
    }
    if (kmem_cpu_put(c) != 0) /* before the thread ends, so that another thread may claim the CPU */
        w->failures++;
    return NULL;
}

void test_threads(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 128ull << 20, 2, KMEM_CONFIG_CHECK_CPU_OWNER, NULL);
    kmem_cpu_t c0 = cpu_of(m, 0);
    kmem_cache_t s;
    static void *h0[1000], *h1[1000];
    struct worker w[2];
    pthread_t t[2];
    int i, k;
    CHECK(kmem_cache_create(c0, "c_threads", 64, NULL, 0, &s) == 0);
    CHECK(kmem_cpu_put(c0) == 0);
    memset(w, 0, sizeof w);
    for (k = 0; k < 2; k++) {
        w[k].m = m;
        w[k].id = k;
        w[k].cache = s;
        w[k].handoff = k ? h1 : h0;
        pthread_create(&t[k], NULL, worker_main, &w[k]);
    }
    for (k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    CHECK(w[0].failures == 0 && w[1].failures == 0);
    /* Frees from the main thread, on cpu0 now: objects of cpu1's slabs are remote frees. */
    c0 = cpu_of(m, 0);
    for (i = 0; i < 1000; i++) {
        CHECK(kmem_cache_free(c0, s, h0[i]) == 0);
        CHECK(kmem_cache_free(c0, s, h1[i]) == 0);
    }
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_cache_destroy(c0, s) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}
