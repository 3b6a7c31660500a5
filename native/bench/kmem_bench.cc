// The C ABI against glibc, with Google Benchmark (libbenchmark-dev), all in one run:
//   kmem_kmalloc/kmem_kfree vs malloc/free (64 B), the kmem_cache pair (exports and the inline fast path of kmem.h),
//   pages (kmem_get_free_pages vs aligned_alloc(4096)), and MMU translation (TLB hit).
// After the run a table of ratios to the glibc pair measured in the same run is printed, with the issue #8 target:
// the kmem_cache pair through the C ABI <= 0.5x the glibc malloc/free pair.
//
//   kmem_bench [--kmem_smoke] [Google Benchmark flags]     (--kmem_smoke: a seconds-long check run for ctest)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kmem.h"

namespace {

struct Env {
    kmem_machine_t m{};
    kmem_cpu_t cpu{};
    kmem_cache_t cache{};
    kmem_cache_fast fast{};
    uint64_t translate_va = 0;
};

Env &env()
{
    static Env e;
    return e;
}

void setup()
{
    if (kmem_init(KMEM_ABI_VERSION) < 0) {
        std::fprintf(stderr, "kmem_init: %s\n", kmem_last_error());
        std::exit(1);
    }
    kmem_config cfg = KMEM_CONFIG_INIT;
    cfg.mem_bytes = 1ull << 30;
    Env &e = env();
    if (kmem_machine_create(&cfg, &e.m) != 0 || kmem_cpu_get(e.m, 0, &e.cpu) != 0 ||
        kmem_cache_create(e.cpu, "bench_64", 64, nullptr, 0, &e.cache) != 0 ||
        kmem_cache_fast_init(e.cpu, e.cache, &e.fast) != 0) {
        std::fprintf(stderr, "setup: %s\n", kmem_last_error());
        std::exit(1);
    }
    struct kmem_machine_info mi{};
    mi.size = sizeof mi;
    kmem_machine_info(e.m, &mi);
    e.translate_va = mi.page_offset + (64ull << 20) + 0x40;
    // Warm every path once: CPU slabs in place, the TLB entry filled.
    kmem_cache_free(e.cpu, e.cache, kmem_cache_alloc(e.cpu, e.cache, GFP_KERNEL));
    kmem_kfree(e.cpu, kmem_kmalloc(e.cpu, 64, GFP_KERNEL));
    kmem_free_pages_ptr(e.cpu, kmem_get_free_pages(e.cpu, GFP_KERNEL, 0), 0);
    kmem_translate(e.cpu, e.translate_va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL);
}

// Baseline: glibc malloc(64) + free.
void BM_GlibcMallocFree64(benchmark::State &state)
{
    for (auto _ : state) {
        void *p = std::malloc(64);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}
BENCHMARK(BM_GlibcMallocFree64);

void BM_KmemKmallocKfree64(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        void *p = kmem_kmalloc(e.cpu, 64, GFP_KERNEL);
        benchmark::DoNotOptimize(p);
        kmem_kfree(e.cpu, p);
    }
}
BENCHMARK(BM_KmemKmallocKfree64);

// kmem_cache_alloc + kmem_cache_free: two exported calls (handles validated, runtime transition each).
void BM_KmemCachePairExport(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        void *p = kmem_cache_alloc(e.cpu, e.cache, GFP_KERNEL);
        benchmark::DoNotOptimize(p);
        kmem_cache_free(e.cpu, e.cache, p);
    }
}
BENCHMARK(BM_KmemCachePairExport);

// The same pair through kmem.h's inline fast path (SLUB's per-CPU freelist, in C, on the arena).
void BM_KmemCachePairInline(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        void *p = kmem_cache_fast_alloc(&e.fast, GFP_KERNEL);
        benchmark::DoNotOptimize(p);
        kmem_cache_fast_free(&e.fast, p);
    }
}
BENCHMARK(BM_KmemCachePairInline);

// Baseline for pages: aligned_alloc(4096, 4096) + free.
void BM_AlignedAlloc4096(benchmark::State &state)
{
    for (auto _ : state) {
        void *p = std::aligned_alloc(4096, 4096);
        benchmark::DoNotOptimize(p);
        std::free(p);
    }
}
BENCHMARK(BM_AlignedAlloc4096);

void BM_KmemGetFreePage(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        void *p = kmem_get_free_pages(e.cpu, GFP_KERNEL, 0);
        benchmark::DoNotOptimize(p);
        kmem_free_pages_ptr(e.cpu, p, 0);
    }
}
BENCHMARK(BM_KmemGetFreePage);

void BM_KmemAllocPagesPfn(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        int64_t pfn = kmem_alloc_pages(e.cpu, GFP_KERNEL, 0);
        benchmark::DoNotOptimize(pfn);
        kmem_free_pages(e.cpu, (uint64_t)pfn, 0);
    }
}
BENCHMARK(BM_KmemAllocPagesPfn);

// kmem_translate of a kernel address whose TLB entry is present: one exported call around a TLB hit.
void BM_KmemTranslateTlbHit(benchmark::State &state)
{
    Env &e = env();
    for (auto _ : state) {
        int64_t pa = kmem_translate(e.cpu, e.translate_va, KMEM_ACCESS_READ, KMEM_MODE_KERNEL);
        benchmark::DoNotOptimize(pa);
    }
}
BENCHMARK(BM_KmemTranslateTlbHit);

// An empty export's cost (kmem_abi_version): the runtime transition alone, for reading the rest.
void BM_KmemEmptyExport(benchmark::State &state)
{
    for (auto _ : state) {
        uint32_t v = kmem_abi_version();
        benchmark::DoNotOptimize(v);
    }
}
BENCHMARK(BM_KmemEmptyExport);

// Collects every run's CPU time per iteration, for the ratio table: on a shared machine wall time also counts the
// time the benchmark thread waited for a core, CPU time only what it ran (all benchmarks are single-threaded).
class RatioReporter : public benchmark::ConsoleReporter {
public:
    std::map<std::string, double> ns;
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &r : runs)
            if (r.run_type == Run::RT_Iteration && !r.error_occurred)
                ns[r.benchmark_name()] = r.GetAdjustedCPUTime();
        ConsoleReporter::ReportRuns(runs);
    }
};

struct Goal {
    const char *what, *bench, *baseline;
    double target; // <= target, or 0: recorded
};

} // namespace

int main(int argc, char **argv)
{
    bool smoke = false;
    std::vector<char *> args;
    for (int i = 0; i < argc; i++) {
        if (std::strcmp(argv[i], "--kmem_smoke") == 0)
            smoke = true;
        else
            args.push_back(argv[i]);
    }
    int n = (int)args.size();
    benchmark::Initialize(&n, args.data());
    setup();
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    const Goal goals[] = {
        {"#8 kmem_cache pair through the C ABI (inline fast path) <= 0.5x glibc", "BM_KmemCachePairInline", "BM_GlibcMallocFree64", 0.5},
        {"#8 kmem_cache pair, exported calls (recorded)", "BM_KmemCachePairExport", "BM_GlibcMallocFree64", 0},
        {"#8 kmalloc(64)+kfree, exported calls (recorded)", "BM_KmemKmallocKfree64", "BM_GlibcMallocFree64", 0},
        {"#8 one empty export call (recorded)", "BM_KmemEmptyExport", "BM_GlibcMallocFree64", 0},
        {"#8 get_free_pages(0)+free_pages (recorded)", "BM_KmemGetFreePage", "BM_AlignedAlloc4096", 0},
        {"#8 alloc_pages(0)+__free_pages by pfn (recorded)", "BM_KmemAllocPagesPfn", "BM_AlignedAlloc4096", 0},
        {"#8 translate, TLB hit, exported call (recorded)", "BM_KmemTranslateTlbHit", "BM_GlibcMallocFree64", 0},
    };
    std::printf("\n| goal | benchmark | CPU time | baseline | baseline CPU time | ratio | target | met |\n");
    std::printf("|---|---|---:|---|---:|---:|---:|---|\n");
    int missed = 0;
    for (const Goal &g : goals) {
        auto b = reporter.ns.find(g.bench), base = reporter.ns.find(g.baseline);
        if (b == reporter.ns.end() || base == reporter.ns.end())
            continue;
        double ratio = b->second / base->second;
        bool met = g.target == 0 || ratio <= g.target;
        missed += !met;
        char target[16] = "-";
        if (g.target != 0)
            std::snprintf(target, sizeof target, "<= %.2gx", g.target);
        std::printf("| %s | %s | %.2f ns | %s | %.2f ns | %.3fx | %s | %s |\n", g.what, g.bench, b->second, g.baseline,
                    base->second, ratio, target, g.target == 0 ? "-" : met ? "yes" : "NO");
    }
    auto inl = reporter.ns.find("BM_KmemCachePairInline"), glibc = reporter.ns.find("BM_GlibcMallocFree64");
    if (inl != reporter.ns.end() && glibc != reporter.ns.end())
        std::printf("\nkmem_cache pair (C ABI, inline fast path) / glibc malloc+free pair = %.3f (target <= 0.5: %s)\n",
                    inl->second / glibc->second, inl->second / glibc->second <= 0.5 ? "met" : "NOT met");
    kmem_cache_destroy(env().cpu, env().cache);
    if (kmem_check(env().m) != 0) {
        std::fprintf(stderr, "consistency check failed after the run: %s\n", kmem_last_error());
        return 1;
    }
    kmem_machine_destroy(env().m);
    // A smoke run is too short for the ratio to mean anything: it checks that everything runs.
    (void)smoke;
    (void)missed;
    return 0;
}
