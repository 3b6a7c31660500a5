/* A minimal test harness for the C tests of kmem.h: CHECK() records a failure and keeps going, each test case is
 * a function registered in a table, and `kmem_tests NAME` runs one case (ctest runs each as its own test). */
#ifndef KMEM_TEST_HARNESS_H
#define KMEM_TEST_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmem.h"

extern int harness_failures;

/* True when the last error message contains needle (always for NULL). */
static inline int harness_message_has(const char *needle)
{
    return needle == NULL || strstr(kmem_last_error(), needle) != NULL;
}

#define CHECK(cond)                                                                                 \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (last error %d: %s)\n", __FILE__, __LINE__,    \
                    #cond, kmem_last_errno(), kmem_last_error());                                   \
            harness_failures++;                                                                     \
        }                                                                                           \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                          \
    do {                                                                                            \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                            \
        if (a_ != b_) {                                                                             \
            fprintf(stderr, "%s:%d: %s == %s failed: 0x%" PRIx64 " != 0x%" PRIx64 "\n", __FILE__,  \
                    __LINE__, #a, #b, a_, b_);                                                      \
            harness_failures++;                                                                     \
        }                                                                                           \
    } while (0)

/* A call that must fail with -err and leave a message mentioning `needle` (NULL: any message). */
#define CHECK_ERR(expr, err, needle)                                                                \
    do {                                                                                            \
        int64_t rc_ = (int64_t)(expr);                                                              \
        if (rc_ != -(int64_t)(err) || kmem_last_errno() != -(err) ||                                \
            !harness_message_has(needle)) {                                                         \
            fprintf(stderr, "%s:%d: %s: expected -%d with \"%s\", got %" PRId64 " (errno %d: %s)\n", \
                    __FILE__, __LINE__, #expr, (int)(err), (needle) ? (needle) : "", rc_,           \
                    kmem_last_errno(), kmem_last_error());                                          \
            harness_failures++;                                                                     \
        }                                                                                           \
    } while (0)

/* A pointer-returning call that must return NULL with -err and a message mentioning `needle`. */
#define CHECK_NULL_ERR(expr, err, needle)                                                           \
    do {                                                                                            \
        const void *p_ = (const void *)(expr);                                                      \
        if (p_ != NULL || kmem_last_errno() != -(err) ||                                            \
            !harness_message_has(needle)) {                                                         \
            fprintf(stderr, "%s:%d: %s: expected NULL and -%d with \"%s\", got %p (errno %d: %s)\n", \
                    __FILE__, __LINE__, #expr, (int)(err), (needle) ? (needle) : "", p_,            \
                    kmem_last_errno(), kmem_last_error());                                          \
            harness_failures++;                                                                     \
        }                                                                                           \
    } while (0)

/* Boots a machine or aborts the test case. */
kmem_machine_t boot(uint32_t arch, uint64_t mem, uint32_t cpus, uint32_t flags, const char *slab_debug);
/* Claims a CPU or aborts. */
kmem_cpu_t cpu_of(kmem_machine_t m, int id);
/* The machine's info or aborts. */
struct kmem_machine_info info_of(kmem_machine_t m);
/* A /proc file into a static buffer. */
const char *proc(kmem_machine_t m, const char *name);

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#endif
