/* Memory pressure: files and the page cache, swap, kswapd in step mode, direct reclaim under each GFP flag,
 * drop_caches, sync, the OOM score, the CPU context switches and their error paths. The pressure scenario is the
 * one of the C# tests (tests/KmemNative.Tests/Reclaim/ReclaimTestUtil.cs): a 64 MiB machine whose free memory is
 * pinned just below the min watermark by GFP_NOWAIT pages, with dirty page cache, reclaimable slab and swappable
 * anonymous memory left to reclaim. */
#include "harness.h"

#define FILE_BYTES (4ull << 20) /* 1024 pages */
#define ANON_BYTES (4ull << 20)

/* The value of a "name N" / "Name:   N kB" line of a /proc file (-1 when absent). */
static long long value_of(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    return p ? strtoll(p + strlen(name), NULL, 10) : -1;
}

static long long vmstat(kmem_machine_t m, const char *counter)
{
    char name[64];
    snprintf(name, sizeof name, "\n%s ", counter);
    return value_of(proc(m, "vmstat"), name);
}

static long long meminfo_kb(kmem_machine_t m, const char *field)
{
    char name[64];
    snprintf(name, sizeof name, "\n%s:", field);
    return value_of(proc(m, "meminfo"), name);
}

/* The last allocation-failure report into a static buffer ("" when none). */
static const char *failure_report(kmem_machine_t m)
{
    static char text[1 << 16];
    int64_t n = kmem_alloc_failure_report(m, text, sizeof text);
    if (n < 0)
        text[0] = 0;
    return text;
}

struct pressure {
    kmem_machine_t m;
    kmem_cpu_t c;
    kmem_process_t hog;
    int32_t fd;
    int pinned;
};

/* Boots the pressure scenario. */
static struct pressure pressure_build(uint32_t arch)
{
    struct pressure s;
    static unsigned char data[FILE_BYTES];
    uint64_t anon;
    size_t i;
    s.m = boot(arch, 64ull << 20, 1, 0, NULL);
    s.c = cpu_of(s.m, 0);
    CHECK(kmem_swapon(s.c, 8ull << 20) == 0);
    CHECK(kmem_process_create(s.c, "hog", &s.hog) == 0);
    CHECK(kmem_mmap(s.c, s.hog, 0, ANON_BYTES, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS,
                    &anon) == 0);
    CHECK(kmem_touch(s.c, s.hog, anon, ANON_BYTES, KMEM_ACCESS_WRITE) == (int64_t)(ANON_BYTES / 4096));
    CHECK(kmem_file_create(s.c, "/data/dirty", FILE_BYTES, &s.fd) == 0 && s.fd >= 3);
    for (i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    CHECK(kmem_file_write(s.c, s.fd, 0, data, sizeof data) == (int64_t)FILE_BYTES);
    CHECK(kmem_dcache_fill(s.c, 1500, GFP_KERNEL) == 1500);
    CHECK(kmem_driver_pool_fill(s.c, 600, GFP_KERNEL) == 600);
    CHECK(kmem_lru_add_drain(s.c) == 0);
    CHECK(meminfo_kb(s.m, "Dirty") == (long long)(FILE_BYTES >> 10));
    /* Pin everything else: GFP_NOWAIT pages (no reclaim, no reserves) until the min watermark stops them. */
    for (s.pinned = 0;; s.pinned++) {
        int64_t pfn = kmem_alloc_pages(s.c, GFP_NOWAIT, 0);
        if (pfn < 0) {
            CHECK(pfn == -KMEM_ENOMEM);
            break;
        }
    }
    CHECK(s.pinned > 1000);
    /* Nothing reclaimed yet: kswapd is in step mode, GFP_NOWAIT never reclaims, and warns nobody. */
    CHECK(vmstat(s.m, "pgsteal_kswapd") == 0 && vmstat(s.m, "pgsteal_direct") == 0);
    CHECK(kmem_kswapd_pending(s.m) == 1);
    CHECK_ERR(kmem_alloc_failure_report(s.m, NULL, 0), KMEM_ENOENT, "no allocation has failed");
    CHECK(kmem_alloc_failure_count(s.m) == 0);
    return s;
}

static void pressure_done(struct pressure *s)
{
    CHECK(kmem_check(s->m) == 0);
    CHECK(kmem_machine_destroy(s->m) == 0);
}

/* The GFP flags side by side under the same pressure. */
static void gfp_under_pressure(uint32_t arch)
{
    struct pressure s = pressure_build(arch);
    uint32_t cookie = 12345;
    int64_t pfn;

    /* GFP_NOWAIT fails fast: no direct reclaim, no report. */
    CHECK_ERR(kmem_alloc_pages(s.c, GFP_NOWAIT, 0), KMEM_ENOMEM, NULL);
    CHECK(vmstat(s.m, "pgscan_direct") == 0 && kmem_alloc_failure_count(s.m) == 0);

    /* GFP_NOIO may reclaim but start no I/O: the dirty file, the swappable anon and the I/O-needing shrinkers are
     * all out of reach. It fails with the kernel's report and without the OOM killer. */
    CHECK_ERR(kmem_alloc_pages(s.c, GFP_NOIO, 0), KMEM_ENOMEM, "order:0");
    CHECK(vmstat(s.m, "pgscan_direct") > 0 && vmstat(s.m, "pgsteal_direct") == 0);
    CHECK(vmstat(s.m, "pswpout") == 0 && vmstat(s.m, "oom_kill") == 0);
    CHECK(meminfo_kb(s.m, "Dirty") == (long long)(FILE_BYTES >> 10));
    CHECK(kmem_alloc_failure_count(s.m) == 1);
    CHECK(strstr(failure_report(s.m), "hog: page allocation failure: order:0, mode:0xc00(GFP_NOIO), nodemask=(null)") != NULL);
    CHECK(strstr(failure_report(s.m), "Mem-Info:") != NULL);
    CHECK(kmem_process_pid(s.hog) >= 1000); /* nobody was killed */

    /* memalloc_noio_save(): GFP_KERNEL inside the scope runs as GFP_NOIO and fails the same way. */
    CHECK(kmem_memalloc_noio_save(s.c, &cookie) == 0 && cookie == 0);
    CHECK(kmem_current_gfp_context(s.c, GFP_KERNEL) == GFP_NOIO);
    CHECK_ERR(kmem_alloc_pages(s.c, GFP_KERNEL, 0), KMEM_ENOMEM, NULL);
    CHECK(kmem_memalloc_noio_restore(s.c, cookie) == 0);
    CHECK(kmem_current_gfp_context(s.c, GFP_KERNEL) == GFP_KERNEL);
    CHECK(kmem_alloc_failure_count(s.m) == 2);
    CHECK(strstr(failure_report(s.m), "mode:0xc00(GFP_NOIO)") != NULL); /* the flags it ran with */
    CHECK(vmstat(s.m, "pgsteal_direct") == 0);

    /* GFP_KERNEL succeeds by direct reclaim: the flusher writes the dirty file, whose pages are then freed. */
    pfn = kmem_alloc_pages(s.c, GFP_KERNEL, 0);
    CHECK(pfn >= 0);
    CHECK(vmstat(s.m, "pgsteal_direct") > 0 && vmstat(s.m, "pgsteal_file") > 0);
    CHECK(vmstat(s.m, "allocstall_normal") > 0 || vmstat(s.m, "allocstall_dma32") > 0);
    CHECK(meminfo_kb(s.m, "Dirty") == 0);
    CHECK(kmem_alloc_failure_count(s.m) == 2 && vmstat(s.m, "oom_kill") == 0);
    pressure_done(&s);
}

void test_pressure_gfp(void) { gfp_under_pressure(KMEM_ARCH_X86_64); }

void test_pressure_gfp_i386(void) { gfp_under_pressure(KMEM_ARCH_I386); }

/* GFP_NOFS reclaims outside the file system: the driver pool, not the dirty file (no flusher for it). */
void test_pressure_nofs(void)
{
    struct pressure s = pressure_build(KMEM_ARCH_X86_64);
    uint32_t cookie = 7;
    CHECK(kmem_memalloc_nofs_save(s.c, &cookie) == 0 && cookie == 0);
    CHECK(kmem_current_gfp_context(s.c, GFP_KERNEL) == GFP_NOFS);
    CHECK(kmem_alloc_pages(s.c, GFP_KERNEL, 0) >= 0);
    CHECK(kmem_memalloc_nofs_restore(s.c, cookie) == 0);
    CHECK(meminfo_kb(s.m, "Dirty") == (long long)(FILE_BYTES >> 10));
    CHECK(vmstat(s.m, "nr_written") == 0);
    CHECK(vmstat(s.m, "pgsteal_direct") > 0 || vmstat(s.m, "slabs_scanned") > 0);
    pressure_done(&s);
}

/* A GFP_NOWAIT failure woke kswapd; one step balances the node and GFP_NOWAIT works again. */
static void kswapd_step(uint32_t arch)
{
    struct pressure s = pressure_build(arch);
    int64_t reclaimed;
    CHECK_ERR(kmem_alloc_pages(s.c, GFP_NOWAIT, 0), KMEM_ENOMEM, NULL);
    CHECK(kmem_kswapd_pending(s.m) == 1);
    reclaimed = kmem_kswapd_step(s.c);
    CHECK(reclaimed > 0);
    CHECK(vmstat(s.m, "pgsteal_kswapd") > 0 && vmstat(s.m, "pgsteal_direct") == 0);
    CHECK(kmem_kswapd_pending(s.m) == 0);
    CHECK(kmem_alloc_pages(s.c, GFP_NOWAIT, 0) >= 0);
    CHECK(kmem_kswapd_step(s.c) >= 0); /* balanced: little or nothing to do */
    pressure_done(&s);
}

void test_pressure_kswapd(void) { kswapd_step(KMEM_ARCH_X86_64); }

void test_pressure_kswapd_i386(void) { kswapd_step(KMEM_ARCH_I386); }

/* try_to_free_pages() without allocating: nothing for GFP_NOIO, the dirty file and swap for GFP_KERNEL. */
void test_pressure_try_to_free_pages(void)
{
    struct pressure s = pressure_build(KMEM_ARCH_X86_64);
    int64_t freed = 0;
    int i;
    CHECK(kmem_try_to_free_pages(s.c, GFP_NOIO, 0) == 0);
    for (i = 0; i < 4 && freed == 0; i++)
        freed += kmem_try_to_free_pages(s.c, GFP_KERNEL, 0);
    CHECK(freed > 0);
    CHECK_ERR(kmem_try_to_free_pages(s.c, GFP_KERNEL, 11), KMEM_EINVAL, "order");
    CHECK_ERR(kmem_try_to_free_pages(s.c, GFP_KERNEL, -1), KMEM_EINVAL, "order");
    pressure_done(&s);
}

/* Clean page cache goes with drop_caches 1, dirty page cache only after sync, slab with 2. */
static void drop_caches(uint32_t arch)
{
    kmem_machine_t m = boot(arch, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    static unsigned char buf[8ull << 20];
    long long cached0 = meminfo_kb(m, "Cached"), cached1;
    int32_t fd, fd2;
    int64_t freed;
    CHECK(kmem_file_create(c, "/data/clean", sizeof buf, &fd) == 0);
    CHECK(meminfo_kb(m, "Cached") == cached0); /* nothing cached before a read */
    CHECK(kmem_file_read(c, fd, 0, buf, sizeof buf) == (int64_t)sizeof buf);
    cached1 = meminfo_kb(m, "Cached");
    CHECK(cached1 >= cached0 + (long long)(sizeof buf >> 10));
    CHECK(meminfo_kb(m, "Dirty") == 0);
    freed = kmem_drop_caches(c, 1);
    CHECK(freed >= (int64_t)(sizeof buf / 4096));
    CHECK(meminfo_kb(m, "Cached") <= cached1 - (long long)(sizeof buf >> 10));

    /* Dirty pages survive drop_caches until sync writes them. */
    CHECK(kmem_file_create(c, "/data/dirty", 1 << 20, &fd2) == 0);
    memset(buf, 0x5a, 1 << 20);
    CHECK(kmem_file_write(c, fd2, 0, buf, 1 << 20) == 1 << 20);
    CHECK(meminfo_kb(m, "Dirty") == 1024);
    CHECK(kmem_drop_caches(c, 1) >= 0);
    CHECK(meminfo_kb(m, "Dirty") == 1024);
    CHECK(kmem_sync(c) == 256);
    CHECK(meminfo_kb(m, "Dirty") == 0);
    CHECK(kmem_sync(c) == 0);
    CHECK(kmem_drop_caches(c, 1) >= 256);

    /* The dentries and inodes are reclaimable slab: drop_caches 2 runs the shrinkers. */
    CHECK(kmem_dcache_fill(c, 3000, GFP_KERNEL) == 3000);
    CHECK(kmem_drop_caches(c, 2) > 0);
    CHECK(kmem_drop_caches(c, 4) >= 0);
    CHECK(strstr(proc(m, "meminfo"), "SReclaimable:") != NULL);
    CHECK(kmem_dmesg(m, NULL, 0) > 0);
    CHECK_ERR(kmem_drop_caches(c, 0), KMEM_EINVAL, "mode 0");
    CHECK_ERR(kmem_drop_caches(c, 5), KMEM_EINVAL, NULL);
    CHECK(kmem_file_close(c, fd) == 0 && kmem_file_close(c, fd2) == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_pressure_drop_caches(void) { drop_caches(KMEM_ARCH_X86_64); }

void test_pressure_drop_caches_i386(void) { drop_caches(KMEM_ARCH_I386); }

/* Bytes round-trip through the page cache; the file keeps its size; closed descriptors are -EBADF. */
void test_pressure_file_rw(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    unsigned char out[10000], in[10000], pattern[64];
    int32_t fd, fd2 = -7;
    size_t i;
    for (i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 31 + 1);
    CHECK(kmem_file_create(c, "/data/rw", 65536, &fd) == 0);
    /* The fresh file reads its fixed pattern (not zeroes everywhere). */
    CHECK(kmem_file_read(c, fd, 0, pattern, sizeof pattern) == (int64_t)sizeof pattern);
    /* A write across three pages, read back. */
    CHECK(kmem_file_write(c, fd, 4000, out, sizeof out) == (int64_t)sizeof out);
    CHECK(meminfo_kb(m, "Dirty") == 16); /* pages 0..3 */
    memset(in, 0, sizeof in);
    CHECK(kmem_file_read(c, fd, 4000, in, sizeof in) == (int64_t)sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    /* The bytes outlive writeback and the page cache: sync, drop, read in again from the "disk". */
    CHECK(kmem_sync(c) == 4);
    CHECK(kmem_drop_caches(c, 1) >= 4);
    memset(in, 0, sizeof in);
    CHECK(kmem_file_read(c, fd, 4000, in, sizeof in) == (int64_t)sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    {   /* Untouched bytes keep the pattern. */
        unsigned char again[64];
        CHECK(kmem_file_read(c, fd, 0, again, sizeof again) == (int64_t)sizeof again);
        CHECK(memcmp(again, pattern, sizeof again) == 0);
    }
    /* The end of the file: short counts, 0 past it. */
    CHECK(kmem_file_write(c, fd, 65536 - 100, out, sizeof out) == 100);
    CHECK(kmem_file_read(c, fd, 65536 - 100, in, sizeof in) == 100 && memcmp(in, out, 100) == 0);
    CHECK(kmem_file_read(c, fd, 65536, in, sizeof in) == 0);
    CHECK(kmem_file_write(c, fd, 1ull << 40, out, 1) == 0);
    CHECK(kmem_file_read(c, fd, 0, NULL, 0) == 0);
    /* Errors. */
    CHECK_ERR(kmem_file_read(c, fd, 0, NULL, 1), KMEM_EFAULT, "NULL");
    CHECK_ERR(kmem_file_write(c, fd, 0, NULL, 1), KMEM_EFAULT, "NULL");
    CHECK_ERR(kmem_file_read(c, fd, 0, in, 1ull << 32), KMEM_EINVAL, "len");
    CHECK_ERR(kmem_file_create(c, NULL, 4096, &fd2), KMEM_EINVAL, "path");
    CHECK(fd2 == -1);
    CHECK_ERR(kmem_file_create(c, "", 4096, &fd2), KMEM_EINVAL, "path");
    CHECK_ERR(kmem_file_create(c, "/data/x", 4096, NULL), KMEM_EINVAL, "NULL");
    CHECK_ERR(kmem_file_read(c, 999, 0, in, 1), KMEM_EBADF, "pread(999");
    CHECK_ERR(kmem_file_write(c, -1, 0, in, 1), KMEM_EBADF, NULL);
    CHECK(kmem_file_close(c, fd) == 0);
    CHECK_ERR(kmem_file_close(c, fd), KMEM_EBADF, "close(");
    CHECK_ERR(kmem_file_read(c, fd, 0, in, 1), KMEM_EBADF, NULL);
    CHECK(meminfo_kb(m, "Dirty") == 0);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

/* swapon's errors, /proc/swaps, SwapTotal. */
void test_pressure_swapon(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    CHECK(meminfo_kb(m, "SwapTotal") == 0);
    CHECK_ERR(kmem_swapon(c, 4096), KMEM_EINVAL, "two pages");
    CHECK_ERR(kmem_swapon(c, 0), KMEM_EINVAL, NULL);
    CHECK(meminfo_kb(m, "SwapTotal") == 0);
    CHECK(kmem_swapon(c, 8ull << 20) == 0);
    CHECK(meminfo_kb(m, "SwapTotal") == 8192 - 4); /* the header page */
    CHECK(strstr(proc(m, "swaps"), "/dev/sda2") != NULL);
    CHECK_ERR(kmem_swapon(c, 8ull << 20), KMEM_EBUSY, "one only");
    CHECK(meminfo_kb(m, "SwapTotal") == 8192 - 4);
    CHECK(kmem_machine_destroy(m) == 0);
}

/* oom_score_adj moves /proc/PID/oom_score; -1000 takes the process out of the OOM killer's reach. */
void test_pressure_oom_score(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_process_t p, bad = {0};
    int64_t score0 = -1, score = -1;
    char name[32];
    CHECK(kmem_process_create(c, "victim", &p) == 0);
    snprintf(name, sizeof name, "%d/oom_score", kmem_process_pid(p));
    CHECK(kmem_process_oom_score(c, p, &score0) == 0);
    CHECK(score0 >= 1000 && score0 < 1100); /* a small process: about 1000 */
    CHECK(value_of(proc(m, name), "") == score0);
    CHECK(kmem_process_set_oom_score_adj(c, p, 1000) == 0);
    CHECK(kmem_process_oom_score(c, p, &score) == 0 && score > score0 + 900 && score <= 2000); /* + adj * totalpages / 1000 */
    CHECK(value_of(proc(m, name), "") == score);
    CHECK(kmem_process_set_oom_score_adj(c, p, -1000) == 0);
    CHECK(kmem_process_oom_score(c, p, &score) == 0 && score == 0);
    snprintf(name, sizeof name, "%d/oom_score_adj", kmem_process_pid(p));
    CHECK(value_of(proc(m, name), "") == -1000);
    CHECK_ERR(kmem_process_set_oom_score_adj(c, p, 1001), KMEM_EINVAL, "-1000..1000");
    CHECK_ERR(kmem_process_set_oom_score_adj(c, p, -1001), KMEM_EINVAL, NULL);
    CHECK(value_of(proc(m, name), "") == -1000);
    CHECK_ERR(kmem_process_set_oom_score_adj(c, bad, 0), KMEM_EBADF, "process handle");
    CHECK_ERR(kmem_process_oom_score(c, bad, &score), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_process_oom_score(c, p, NULL), KMEM_EINVAL, "NULL");
    CHECK_ERR(kmem_oom_report(m, NULL, 0), KMEM_ENOENT, NULL);
    CHECK(kmem_process_exit(c, p) == 0);
    CHECK_ERR(kmem_process_oom_score(c, p, &score), KMEM_EBADF, NULL);
    CHECK(kmem_machine_destroy(m) == 0);
}

/* More anonymous memory than RAM and swap hold: the OOM killer chooses the process oom_score_adj 1000 made the
 * first candidate, its handle gives -ESRCH afterwards, and the report says why. */
void test_pressure_oom_kill(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    kmem_process_t hog, bystander;
    uint64_t a, b;
    int64_t score = -1, rc;
    static char text[1 << 16];
    char killed[64];
    CHECK(kmem_swapon(c, 8ull << 20) == 0);
    CHECK(kmem_process_create(c, "bystander", &bystander) == 0);
    CHECK(kmem_process_set_oom_score_adj(c, bystander, 1000) == 0);
    snprintf(killed, sizeof killed, "Killed process %d (bystander)", kmem_process_pid(bystander));
    CHECK(kmem_process_create(c, "hog", &hog) == 0);
    CHECK(kmem_mmap(c, hog, 0, 40ull << 20, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a) == 0);
    CHECK(kmem_mmap(c, hog, 0, 40ull << 20, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &b) == 0);
    rc = kmem_touch(c, hog, a, 40ull << 20, KMEM_ACCESS_WRITE);
    if (rc >= 0)
        rc = kmem_touch(c, hog, b, 40ull << 20, KMEM_ACCESS_WRITE);
    /* Either the hog got through after the bystander died or it was killed next (SIGKILL in its fault). */
    CHECK(rc >= 0 || (rc == -KMEM_ENOMEM && strstr(kmem_last_error(), "SIGKILL") != NULL));
    CHECK(vmstat(m, "oom_kill") >= 1);
    CHECK(vmstat(m, "pswpout") > 0); /* swap was used before anyone was killed */
    CHECK_ERR(kmem_process_oom_score(c, bystander, &score), KMEM_ESRCH, "has exited");
    CHECK_ERR(kmem_process_oom_score(c, bystander, &score), KMEM_EBADF, NULL); /* the handle was retired */
    CHECK(kmem_dmesg(m, text, sizeof text) > 0 && strstr(text, killed) != NULL);
    CHECK(kmem_oom_report(m, text, sizeof text) > 0 && strstr(text, "invoked oom-killer") != NULL);
    CHECK(kmem_oom_report(m, NULL, 0) == (int64_t)strlen(text));
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

/* The CPU context switches: balanced use, atomic context, and unbalanced calls as -EINVAL. */
void test_pressure_context(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    uint32_t outer = 99, inner = 99;
    int64_t pfn;
    static char log[1 << 16];

    CHECK_ERR(kmem_irq_exit(c), KMEM_EINVAL, "irq_exit() outside an interrupt handler");
    CHECK(kmem_irq_enter(c) == 0);
    CHECK(kmem_irq_enter(c) == 0); /* nested */
    CHECK_ERR(kmem_local_irq_enable(c), KMEM_EINVAL, "inside an interrupt handler");
    pfn = kmem_alloc_pages(c, GFP_ATOMIC, 0); /* what a handler may do */
    CHECK(pfn >= 0 && kmem_free_pages(c, (uint64_t)pfn, 0) == 0);
    CHECK(kmem_dmesg(m, log, sizeof log) >= 0 && strstr(log, "sleeping function") == NULL);
    CHECK(kmem_irq_exit(c) == 0);
    CHECK(kmem_irq_exit(c) == 0);
    CHECK_ERR(kmem_irq_exit(c), KMEM_EINVAL, "irq_exit");

    /* A sleeping allocation with interrupts off: the kernel's report, then it proceeds. */
    CHECK(kmem_local_irq_disable(c) == 0);
    pfn = kmem_alloc_pages(c, GFP_KERNEL, 0);
    CHECK(pfn >= 0 && kmem_free_pages(c, (uint64_t)pfn, 0) == 0);
    CHECK(kmem_local_irq_enable(c) == 0);
    CHECK(kmem_local_irq_enable(c) == 0); /* already on: nothing to do */
    CHECK(kmem_dmesg(m, log, sizeof log) > 0 && strstr(log, "BUG: sleeping function called from invalid context") != NULL);

    /* memalloc scopes nest: the inner restore keeps the outer scope. */
    CHECK(kmem_current_gfp_context(c, GFP_KERNEL) == GFP_KERNEL);
    CHECK(kmem_memalloc_noio_save(c, &outer) == 0 && outer == 0);
    CHECK(kmem_memalloc_noio_save(c, &inner) == 0 && inner != 0);
    CHECK(kmem_memalloc_noio_restore(c, inner) == 0);
    CHECK(kmem_current_gfp_context(c, GFP_KERNEL) == GFP_NOIO);
    CHECK(kmem_current_gfp_context(c, GFP_NOWAIT) == GFP_NOWAIT); /* no IO/FS bits to take */
    CHECK(kmem_memalloc_noio_restore(c, outer) == 0);
    CHECK(kmem_current_gfp_context(c, GFP_KERNEL) == GFP_KERNEL);
    CHECK(kmem_memalloc_nofs_save(c, &outer) == 0 && outer == 0);
    CHECK(kmem_current_gfp_context(c, GFP_KERNEL | __GFP_ZERO) == (GFP_NOFS | __GFP_ZERO));
    CHECK(kmem_memalloc_nofs_restore(c, outer) == 0);
    CHECK(kmem_current_gfp_context(c, GFP_KERNEL) == GFP_KERNEL);
    CHECK_ERR(kmem_memalloc_noio_save(c, NULL), KMEM_EINVAL, "NULL");
    CHECK_ERR(kmem_memalloc_nofs_save(c, NULL), KMEM_EINVAL, "NULL");
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

/* Every call of the section with a bad handle: -EBADF, nothing crashes. */
void test_pressure_bad_handles(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL), bad_m = {0};
    kmem_cpu_t c = cpu_of(m, 0), bad = {0}, stale;
    kmem_process_t p;
    uint32_t flags = 5;
    int32_t fd = 5;
    int64_t score = 5;
    char buf[8];
    CHECK(kmem_process_create(c, "p", &p) == 0);
    CHECK_ERR(kmem_file_create(bad, "/f", 4096, &fd), KMEM_EBADF, "CPU handle");
    CHECK(fd == -1);
    CHECK_ERR(kmem_file_close(bad, 3), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_file_read(bad, 3, 0, buf, 1), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_file_write(bad, 3, 0, buf, 1), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_sync(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_swapon(bad, 8ull << 20), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_kswapd_step(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_kswapd_pending(bad_m), KMEM_EBADF, "machine handle");
    CHECK_ERR(kmem_try_to_free_pages(bad, GFP_KERNEL, 0), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_drop_caches(bad, 3), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_lru_add_drain(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_dcache_fill(bad, 10, GFP_KERNEL), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_driver_pool_fill(bad, 10, GFP_KERNEL), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_process_set_oom_score_adj(bad, p, 0), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_process_oom_score(bad, p, &score), KMEM_EBADF, NULL);
    CHECK(score == 0);
    CHECK_ERR(kmem_irq_enter(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_irq_exit(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_local_irq_disable(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_local_irq_enable(bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_memalloc_noio_save(bad, &flags), KMEM_EBADF, NULL);
    CHECK(flags == 0);
    CHECK_ERR(kmem_memalloc_noio_restore(bad, 0), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_memalloc_nofs_save(bad, &flags), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_memalloc_nofs_restore(bad, 0), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_current_gfp_context(bad, GFP_KERNEL), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_alloc_failure_report(bad_m, buf, sizeof buf), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_alloc_failure_count(bad_m), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_oom_report(bad_m, buf, sizeof buf), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_dcache_fill(c, -1, GFP_KERNEL), KMEM_EINVAL, "negative");
    CHECK_ERR(kmem_driver_pool_fill(c, -1, GFP_KERNEL), KMEM_EINVAL, "negative");
    /* A released CPU and a destroyed machine are stale. */
    stale = c;
    CHECK(kmem_cpu_put(c) == 0);
    CHECK_ERR(kmem_kswapd_step(stale), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_irq_enter(stale), KMEM_EBADF, NULL);
    CHECK(kmem_machine_destroy(m) == 0);
    CHECK_ERR(kmem_kswapd_pending(m), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_alloc_failure_count(m), KMEM_EBADF, NULL);
}
