/* A small perf experiment through the C ABI: how fast are the emulated kernel's allocators, next to glibc?
 *
 *   perf_experiment [--quick]
 *
 * Boots an x86_64 machine, then times alloc+free pairs of kmalloc (several sizes), of a kmem_cache (the exported
 * calls and the inline fast path of kmem.h), and of pages, against malloc/free and aligned_alloc. Ends with the
 * /proc/slabinfo lines of the caches it used: the emulated kernel's own view of the experiment. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmem.h"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Keeps the compiler from deleting an allocation whose result is unused. */
static void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

#define TIME(label, n, body)                                                                   \
    do {                                                                                       \
        long i_;                                                                               \
        double t0_ = now_ns();                                                                 \
        for (i_ = 0; i_ < (n); i_++) {                                                         \
            body;                                                                              \
        }                                                                                      \
        printf("  %-40s %8.2f ns\n", label, (now_ns() - t0_) / (double)(n));                    \
    } while (0)

int main(int argc, char **argv)
{
    long n = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 200000 : 20000000;
    struct kmem_config cfg = KMEM_CONFIG_INIT;
    kmem_machine_t m;
    kmem_cpu_t cpu;
    kmem_cache_t cache;
    struct kmem_cache_fast fast;
    static const size_t sizes[] = {32, 256, 4096};
    static char text[1 << 16];
    char *line;
    size_t s;

    if (kmem_init(KMEM_ABI_VERSION) < 0) { /* the runtime's first-call cost, outside the timings */
        fprintf(stderr, "kmem_init: %s\n", kmem_last_error());
        return 1;
    }
    cfg.mem_bytes = 1ull << 30;
    if (kmem_machine_create(&cfg, &m) != 0 || kmem_cpu_get(m, 0, &cpu) != 0 ||
        kmem_cache_create(cpu, "experiment_64", 64, NULL, 0, &cache) != 0 || kmem_cache_fast_init(cpu, cache, &fast) != 0) {
        fprintf(stderr, "setup: %s\n", kmem_last_error());
        return 1;
    }
    printf("alloc+free pairs on an emulated x86_64 (1 GiB, cpu0), %ld iterations each:\n", n);
    TIME("glibc malloc(64) + free", n, { void *p = malloc(64); escape(p); free(p); });
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        char label[64];
        size_t size = sizes[s];
        snprintf(label, sizeof label, "kmem_kmalloc(%zu) + kmem_kfree", size);
        TIME(label, n, { void *p = kmem_kmalloc(cpu, size, GFP_KERNEL); escape(p); kmem_kfree(cpu, p); });
    }
    TIME("kmem_cache_alloc + free (exports)", n, {
        void *p = kmem_cache_alloc(cpu, cache, GFP_KERNEL);
        escape(p);
        kmem_cache_free(cpu, cache, p);
    });
    TIME("kmem_cache_fast_alloc + free (inline)", n, {
        void *p = kmem_cache_fast_alloc(&fast, GFP_KERNEL);
        escape(p);
        kmem_cache_fast_free(&fast, p);
    });
    TIME("aligned_alloc(4096) + free", n / 4, { void *p = aligned_alloc(4096, 4096); escape(p); free(p); });
    TIME("kmem_get_free_pages(order 0) + free", n / 4, {
        void *p = kmem_get_free_pages(cpu, GFP_KERNEL, 0);
        escape(p);
        kmem_free_pages_ptr(cpu, p, 0);
    });

    /* The kernel's view: which caches the experiment used, and how full they are. */
    if (kmem_proc_read(m, "slabinfo", text, sizeof text) > 0) {
        printf("\n/proc/slabinfo (the caches used):\n");
        for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            if (strncmp(line, "# name", 6) == 0 || strncmp(line, "experiment_64 ", 14) == 0 ||
                strncmp(line, "kmalloc-32 ", 11) == 0 || strncmp(line, "kmalloc-256 ", 12) == 0 ||
                strncmp(line, "kmalloc-4k ", 11) == 0)
                printf("  %s\n", line);
    }
    if (kmem_check(m) != 0) {
        fprintf(stderr, "consistency check failed: %s\n", kmem_last_error());
        return 1;
    }
    kmem_cache_destroy(cpu, cache);
    kmem_machine_destroy(m);
    return 0;
}
