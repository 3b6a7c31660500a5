/* Processes: create, mmap, touch, fork with copy-on-write, switch + user-mode MMU access, munmap, exit, the
 * PID/ files of /proc, and the error paths (bad handles, the kernel's errno values, SIGSEGV as -EFAULT). */
#include <pthread.h>

#include "harness.h"

/* The value of a "Name:   N kB" line of a /proc file (-1 when absent). */
static long long field_of(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    return p ? strtoll(p + strlen(name), NULL, 10) : -1;
}

/* Reads `len` user bytes at va as the process running on c. */
static int read_user(kmem_cpu_t c, uint64_t va, void *dst, size_t len)
{
    return kmem_read_virt(c, va, dst, len, KMEM_MODE_USER);
}

static void fork_cow(uint32_t arch, uint64_t mem)
{
    kmem_machine_t m = boot(arch, mem, 1, 0, NULL);
    kmem_cpu_t c = cpu_of(m, 0);
    struct kmem_machine_info mi = info_of(m);
    kmem_process_t parent, child;
    uint64_t a, cr3_parent, cr3_child, cr3_kernel;
    int64_t pa_parent, pa_child;
    long long page_tables_at_boot = field_of(proc(m, "meminfo"), "PageTables:"), anon_kb;
    char buf[64], maps_line[64], name[32];
    static char text[1 << 16];
    int64_t n;
    int pid;

    CHECK(kmem_cpu_cr3(c, &cr3_kernel) == 0);
    CHECK(kmem_process_create(c, "cow", &parent) == 0);
    pid = kmem_process_pid(parent);
    CHECK(pid >= 1000);

    /* 16 KiB of private anonymous memory: four write faults, each a fresh zeroed page. */
    CHECK(kmem_mmap(c, parent, 0, 16384, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a) == 0);
    CHECK(a != 0 && (a & 0xfff) == 0 && a + 16384 <= (arch == KMEM_ARCH_I386 ? 0xc0000000ull : 0x7ffffffff000ull));
    anon_kb = field_of(proc(m, "meminfo"), "AnonPages:");
    CHECK(kmem_touch(c, parent, a, 16384, KMEM_ACCESS_WRITE) == 4);
    CHECK(field_of(proc(m, "meminfo"), "AnonPages:") == anon_kb + 16); /* four anonymous pages, in kB */
    CHECK(kmem_touch(c, parent, a, 16384, KMEM_ACCESS_WRITE) == 0); /* mapped now: TLB or walk, no fault */
    /* kmem_touch ran the process on the CPU: CR3 is its pgd, user-mode MMU calls see its memory. */
    CHECK(kmem_cpu_cr3(c, &cr3_parent) == 0 && cr3_parent != cr3_kernel);
    CHECK(kmem_write_virt(c, a + 100, "parent", 7, KMEM_MODE_USER) == 0);
    CHECK(kmem_write_virt(c, a + 4096 + 100, "second", 7, KMEM_MODE_USER) == 0);
    pa_parent = kmem_translate(c, a + 100, KMEM_ACCESS_READ, KMEM_MODE_USER);
    CHECK(pa_parent > 0);
    CHECK(memcmp(kmem_phys_to_host(m, (uint64_t)pa_parent), "parent", 7) == 0); /* the frame holds the bytes */
    if (arch == KMEM_ARCH_I386) /* GFP_HIGHUSER_MOVABLE: user pages come from HIGHMEM first */
        CHECK((uint64_t)pa_parent >= mi.max_low_pfn << 12);

    /* /proc/PID/maps has the mapping, in the kernel's format. */
    snprintf(name, sizeof name, "%d/maps", pid);
    snprintf(maps_line, sizeof maps_line, "%08llx-%08llx rw-p", (unsigned long long)a, (unsigned long long)(a + 16384));
    n = kmem_proc_read(m, name, text, sizeof text);
    CHECK(n > 0 && n < (int64_t)sizeof text && strstr(text, maps_line) != NULL && strstr(text, "[stack]") != NULL);
    CHECK(strstr(text, "/usr/bin/cow") != NULL);
    snprintf(name, sizeof name, "%d/status", pid);
    CHECK(kmem_proc_read(m, name, text, sizeof text) > 0 && strstr(text, "Name:\tcow") != NULL);

    /* fork(): the child starts with the parent's bytes, sharing its frames read-only. */
    CHECK(kmem_process_fork(c, parent, &child) == 0);
    CHECK(kmem_process_pid(child) > pid);
    CHECK(kmem_process_switch(c, child) == 0);
    CHECK(kmem_cpu_cr3(c, &cr3_child) == 0 && cr3_child != cr3_parent && cr3_child != cr3_kernel);
    memset(buf, 0, sizeof buf);
    CHECK(read_user(c, a + 100, buf, 7) == 0 && strcmp(buf, "parent") == 0);
    CHECK(kmem_translate(c, a + 100, KMEM_ACCESS_READ, KMEM_MODE_USER) == pa_parent);
    /* The child's write breaks COW: its own copy, the parent's frame untouched. */
    CHECK(kmem_write_virt(c, a + 100, "child", 6, KMEM_MODE_USER) == 0);
    pa_child = kmem_translate(c, a + 100, KMEM_ACCESS_READ, KMEM_MODE_USER);
    CHECK(pa_child > 0 && pa_child != pa_parent);
    memset(buf, 0, sizeof buf);
    CHECK(read_user(c, a + 100, buf, 7) == 0 && strcmp(buf, "child") == 0);
    CHECK(read_user(c, a + 4096 + 100, buf, 7) == 0 && strcmp(buf, "second") == 0); /* still shared */
    CHECK(kmem_process_switch(c, parent) == 0);
    memset(buf, 0, sizeof buf);
    CHECK(read_user(c, a + 100, buf, 7) == 0 && strcmp(buf, "parent") == 0);
    CHECK(kmem_translate(c, a + 100, KMEM_ACCESS_READ, KMEM_MODE_USER) == pa_parent);
    /* The parent's writes fault too (its PTEs were write-protected at fork): page 0 is its alone now (reused),
     * pages 1-3 are copied. */
    CHECK(kmem_touch(c, parent, a, 16384, KMEM_ACCESS_WRITE) == 4);
    CHECK(kmem_translate(c, a + 100, KMEM_ACCESS_WRITE, KMEM_MODE_USER) == pa_parent);
    CHECK(kmem_write_virt(c, a + 4096 + 100, "PARENT", 7, KMEM_MODE_USER) == 0);
    CHECK(kmem_process_switch(c, child) == 0);
    CHECK(read_user(c, a + 4096 + 100, buf, 7) == 0 && strcmp(buf, "second") == 0);

    /* munmap of the first page: an access there is SIGSEGV now (-EFAULT, the fault for kmem_last_fault). */
    CHECK(kmem_munmap(c, child, a, 4096) == 0);
    {
        struct kmem_fault f;
        CHECK_ERR(kmem_touch(c, child, a, 4096, KMEM_ACCESS_READ), KMEM_EFAULT, "SIGSEGV");
        CHECK(kmem_last_fault(&f) == 0 && f.address == a && (f.error_code & 0x5) == 0x4); /* user, not present */
        CHECK_ERR(read_user(c, a + 100, buf, 4), KMEM_EFAULT, "SEGV_MAPERR");
        CHECK(kmem_last_fault(&f) == 0 && f.address == a + 100);
        CHECK_ERR(kmem_translate(c, a, KMEM_ACCESS_WRITE, KMEM_MODE_USER), KMEM_EFAULT, NULL);
    }
    CHECK(kmem_touch(c, child, a + 4096, 12288, KMEM_ACCESS_READ) == 0); /* the rest is still mapped */

    /* exit: the handles go stale, the CPU is back on the kernel's tables, the pages and tables are freed. */
    CHECK(kmem_process_exit(c, child) == 0);
    CHECK(kmem_cpu_cr3(c, &cr3_child) == 0 && cr3_child == cr3_kernel);
    CHECK_ERR(kmem_process_exit(c, child), KMEM_EBADF, "process handle");
    CHECK_ERR(kmem_process_pid(child), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_touch(c, child, a + 4096, 4096, KMEM_ACCESS_READ), KMEM_EBADF, NULL);
    CHECK(kmem_process_exit(c, parent) == 0);
    CHECK_ERR(kmem_proc_read(m, name, text, sizeof text), KMEM_ENOENT, NULL); /* PID/status of an exited pid */
    CHECK(field_of(proc(m, "meminfo"), "AnonPages:") == 0);
    CHECK(field_of(proc(m, "meminfo"), "PageTables:") == page_tables_at_boot);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
}

void test_process_fork_cow(void) { fork_cow(KMEM_ARCH_X86_64, 64ull << 20); }

void test_process_fork_cow_i386(void) { fork_cow(KMEM_ARCH_I386, 1ull << 30); }

void test_process_errors(void)
{
    kmem_machine_t m = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL), m2;
    kmem_cpu_t c = cpu_of(m, 0), c2, bad_cpu = {0};
    kmem_process_t p, q, bad = {0};
    struct kmem_fault f;
    uint64_t a, ro;
    char buf[8];

    /* Bad handles and NULL arguments. */
    CHECK_ERR(kmem_process_create(bad_cpu, "a.out", &p), KMEM_EBADF, "CPU handle");
    CHECK_ERR(kmem_process_create(c, NULL, &p), KMEM_EINVAL, "comm");
    CHECK_ERR(kmem_process_create(c, "bin/sh", &p), KMEM_EINVAL, "'/'");
    CHECK_ERR(kmem_process_create(c, "", &p), KMEM_EINVAL, NULL);
    CHECK_ERR(kmem_process_create(c, "a.out", NULL), KMEM_EINVAL, "NULL");
    CHECK_ERR(kmem_process_pid(bad), KMEM_EBADF, "process handle");
    CHECK_ERR(kmem_process_switch(c, bad), KMEM_EBADF, "process handle");
    CHECK_ERR(kmem_process_fork(c, bad, &q), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_process_exit(c, bad), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_mmap(c, bad, 0, 4096, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_munmap(c, bad, 0x400000, 4096), KMEM_EBADF, NULL);
    CHECK_ERR(kmem_touch(c, bad, 0x400000, 4096, KMEM_ACCESS_READ), KMEM_EBADF, NULL);
    CHECK(kmem_process_create(c, "a.out", &p) == 0);
    CHECK_ERR(kmem_process_switch(bad_cpu, p), KMEM_EBADF, "CPU handle");
    {   /* A handle of another type is not a process handle. */
        kmem_process_t cpu_as_process;
        cpu_as_process.h = c.h;
        CHECK_ERR(kmem_process_pid(cpu_as_process), KMEM_EBADF, NULL);
    }

    /* The kernel's mmap/munmap errors, with the call in the message. */
    CHECK_ERR(kmem_mmap(c, p, 0, 0, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a), KMEM_EINVAL, "mmap(0x0, 0,");
    CHECK_ERR(kmem_mmap(c, p, 0, 4096, KMEM_PROT_READ, KMEM_MAP_ANONYMOUS, &a), KMEM_EINVAL, NULL); /* no MAP_TYPE */
    CHECK_ERR(kmem_mmap(c, p, 0x10000001, 4096, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS | KMEM_MAP_FIXED, &a),
              KMEM_EINVAL, NULL);
    CHECK_ERR(kmem_mmap(c, p, 0x7ffffffff000ull, 8192, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS | KMEM_MAP_FIXED, &a),
              KMEM_ENOMEM, "Cannot allocate memory");
    CHECK_ERR(kmem_mmap(c, p, 0, 4096, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, NULL), KMEM_EINVAL, "NULL");
    CHECK(kmem_mmap(c, p, 0, 8192, KMEM_PROT_READ | KMEM_PROT_WRITE, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a) == 0);
    CHECK_ERR(kmem_munmap(c, p, a + 1, 4096), KMEM_EINVAL, "munmap(");
    CHECK_ERR(kmem_munmap(c, p, a, 0), KMEM_EINVAL, NULL);
    CHECK_ERR(kmem_touch(c, p, a, 4096, 7), KMEM_EINVAL, "access");
    CHECK_ERR(kmem_touch(c, p, ~0ull - 10, 4096, KMEM_ACCESS_READ), KMEM_EINVAL, "wraps");
    CHECK(kmem_touch(c, p, a, 0, KMEM_ACCESS_WRITE) == 0);

    /* A write to a read-only mapping: SIGSEGV with SEGV_ACCERR, a protection fault. */
    CHECK(kmem_mmap(c, p, 0, 4096, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS | KMEM_MAP_POPULATE, &ro) == 0);
    CHECK(kmem_touch(c, p, ro, 4096, KMEM_ACCESS_READ) == 0); /* populated: no fault */
    CHECK_ERR(kmem_touch(c, p, ro, 4096, KMEM_ACCESS_WRITE), KMEM_EFAULT, "SEGV_ACCERR");
    CHECK(kmem_last_fault(&f) == 0 && f.address == ro && (f.error_code & 0x7) == 0x7); /* prot, write, user */
    CHECK_ERR(kmem_write_virt(c, ro, "x", 1, KMEM_MODE_USER), KMEM_EFAULT, "SIGSEGV");
    CHECK(kmem_read_virt(c, ro, buf, 1, KMEM_MODE_USER) == 0 && buf[0] == 0); /* reads are fine */
    /* Kernel memory is out of reach in user mode, whatever the process maps. */
    CHECK_ERR(kmem_translate(c, info_of(m).page_offset + 0x100000, KMEM_ACCESS_READ, KMEM_MODE_USER), KMEM_EFAULT, NULL);

    /* A process of another machine, on this machine's CPU. */
    m2 = boot(KMEM_ARCH_X86_64, 64ull << 20, 1, 0, NULL);
    c2 = cpu_of(m2, 0);
    CHECK(kmem_process_create(c2, "other", &q) == 0);
    CHECK_ERR(kmem_process_switch(c, q), KMEM_EINVAL, "another machine");
    CHECK_ERR(kmem_mmap(c, q, 0, 4096, KMEM_PROT_READ, KMEM_MAP_PRIVATE | KMEM_MAP_ANONYMOUS, &a), KMEM_EINVAL, NULL);
    /* Destroying a machine retires its process handles. */
    CHECK(kmem_machine_destroy(m2) == 0);
    CHECK_ERR(kmem_process_pid(q), KMEM_EBADF, NULL);

    CHECK(kmem_process_exit(c, p) == 0);
    CHECK_ERR(kmem_process_exit(c, p), KMEM_EBADF, NULL);
    CHECK(kmem_check(m) == 0);
    CHECK(kmem_machine_destroy(m) == 0);
    CHECK_ERR(kmem_process_pid(p), KMEM_EBADF, NULL);
}

/* A process running on a CPU another thread holds cannot be torn down from here: -EBUSY, the handle stays. */
struct runner {
    kmem_machine_t m;
    kmem_process_t p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state; /* 1: running the process on cpu1; 2: told to release it */
    int failures;
};

static void *runner_main(void *arg)
{
    struct runner *r = (struct runner *)arg;
    kmem_cpu_t c1;
    if (kmem_cpu_get(r->m, 1, &c1) != 0 || kmem_process_switch(c1, r->p) != 0 ||
        kmem_touch(c1, r->p, 0x400000, 4096, KMEM_ACCESS_READ) < 0)
        r->failures++;
    pthread_mutex_lock(&r->lock);
    r->state = 1;
    pthread_cond_broadcast(&r->cond);
    while (r->state != 2)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    if (kmem_cpu_put(c1) != 0)
        r->failures++;
    return NULL;
}

void test_process_busy_cpu(void)
{
    struct runner r;
    pthread_t t;
    kmem_cpu_t c0;
    memset(&r, 0, sizeof r);
    r.m = boot(KMEM_ARCH_X86_64, 64ull << 20, 2, 0, NULL);
    c0 = cpu_of(r.m, 0);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    CHECK(kmem_process_create(c0, "busy", &r.p) == 0);
    pthread_create(&t, NULL, runner_main, &r);
    pthread_mutex_lock(&r.lock);
    while (r.state != 1)
        pthread_cond_wait(&r.cond, &r.lock);
    pthread_mutex_unlock(&r.lock);
    CHECK_ERR(kmem_process_exit(c0, r.p), KMEM_EBUSY, "cpu1");
    CHECK(kmem_process_pid(r.p) >= 1000); /* still alive, still ours */
    pthread_mutex_lock(&r.lock);
    r.state = 2;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    pthread_join(t, NULL);
    CHECK(r.failures == 0);
    CHECK(kmem_process_exit(c0, r.p) == 0); /* cpu1 is free now: switched to init_mm from here */
    CHECK(kmem_check(r.m) == 0);
    CHECK(kmem_machine_destroy(r.m) == 0);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.cond);
}
