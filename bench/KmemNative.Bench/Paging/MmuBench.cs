using BenchmarkDotNet.Attributes;
using KmemNative.Arch;
using KmemNative.Paging;

namespace KmemNative.Bench.Paging;

/// <summary>
/// The MMU's hot paths on x86-64 and i386: a translation that hits the TLB (through a CPU the caller holds), full
/// page walks without the TLB on 4-level and 2-level tables, and 8-byte loads and stores through the TLB; against a
/// Dictionary&lt;ulong, ulong&gt; lookup measured in the same run. Each benchmark runs over 256 pages (the TLB's size);
/// the hit and the baseline loops are unrolled the same way.
/// </summary>
[MemoryDiagnoser]
public unsafe class MmuBench
{
    private const int Pages = 256;

    private Machine<X86_64> _m = null!;
    private Machine<I386> _m32 = null!;
    private Cpu _cpu = null!;
    private Mmu<X86_64> _mmu = null!;
    private Mmu<I386> _mmu32 = null!;
    private ulong _base, _cr3, _base32, _cr3_32;
    private readonly ulong[] _addrs = new ulong[Pages];
    private readonly Dictionary<ulong, ulong> _dict = [];

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 256UL << 20 });
        _cpu = _m.GetCpu(0);
        _mmu = _m.Mmu;
        // vmalloc memory: 4 KiB pages under all four levels.
        // Twice the TLB's reach: page i and page i + 256 share a slot, so alternating between them always misses.
        _base = _m.Vmalloc(_cpu, 2 * Pages * 4096UL);
        _cr3 = _cpu.Cr3;
        _m32 = Machine.Boot<I386>(new MachineConfig { Arch = ArchKind.I386, MemBytes = 256UL << 20 });
        _mmu32 = _m32.Mmu;
        _base32 = _m32.Vmalloc(_m32.Cpus[1], Pages * 4096UL);
        _cr3_32 = _m32.Cpus[1].Cr3;
        for (int i = 0; i < Pages; i++)
        {
            // A different cache line in each page: the same offset in 256 pages would alias in the L1 (4 KiB stride).
            _addrs[i] = _base + (ulong)i * 4096 + (ulong)(i * 64 % 4096);
            _dict[_addrs[i] & ~0xfffUL] = 0x1000UL * (ulong)i;
            _mmu.WriteU64(_cpu, _addrs[i], (ulong)i);   // fills the TLB for reads and writes, sets A and D
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _m.Dispose();
        _m32.Dispose();
    }

    /// <summary>Baseline: a Dictionary&lt;ulong, ulong&gt; lookup of the page.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Pages)]
    public ulong DictionaryLookup()
    {
        ulong sum = 0;
        var d = _dict;
        var a = _addrs;
        for (int i = 0; i < a.Length; i += 4)
        {
            sum += d[a[i] & ~0xfffUL];
            sum += d[a[i + 1] & ~0xfffUL];
            sum += d[a[i + 2] & ~0xfffUL];
            sum += d[a[i + 3] & ~0xfffUL];
        }
        return sum;
    }

    /// <summary>Translate with a TLB hit through a CPU the caller holds.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong TlbHit()
    {
        ulong sum = 0;
        var cpu = _cpu;
        var a = _addrs;
        // Unrolled like the baseline, so both measure lookups rather than loop control.
        for (int i = 0; i < a.Length; i += 4)
        {
            sum += cpu.Translate(a[i]);
            sum += cpu.Translate(a[i + 1]);
            sum += cpu.Translate(a[i + 2]);
            sum += cpu.Translate(a[i + 3]);
        }
        return sum;
    }

    /// <summary>A full 4-level walk (no TLB): translate(cr3, va).</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong Walk4Level()
    {
        ulong sum = 0;
        var mmu = _mmu;
        ulong cr3 = _cr3;
        var a = _addrs;
        for (int i = 0; i < a.Length; i++)
            sum += mmu.Translate(cr3, a[i]);
        return sum;
    }

    /// <summary>A TLB miss through the CPU: pages that evict each other from the same slot, each access a walk plus a fill.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong TlbMiss4Level()
    {
        ulong sum = 0;
        var cpu = _cpu;
        var a = _addrs;
        for (int i = 0; i < a.Length; i += 2)
        {
            sum += cpu.Translate(a[i]);
            sum += cpu.Translate(a[i] + Pages * 4096UL);
        }
        return sum;
    }

    /// <summary>A full 2-level walk (no TLB) on i386.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong Walk2Level()
    {
        ulong sum = 0;
        var mmu = _mmu32;
        ulong cr3 = _cr3_32;
        ulong b = _base32;
        for (int i = 0; i < Pages; i++)
            sum += mmu.Translate(cr3, b + (ulong)i * 4096 + (ulong)(i * 64 % 4096));
        return sum;
    }

    /// <summary>An 8-byte load through the TLB.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong Read8()
    {
        ulong sum = 0;
        var mmu = _mmu;
        var cpu = _cpu;
        var a = _addrs;
        for (int i = 0; i < a.Length; i++)
            sum += mmu.ReadU64(cpu, a[i]);
        return sum;
    }

    /// <summary>An 8-byte store through the TLB.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public void Write8()
    {
        var mmu = _mmu;
        var cpu = _cpu;
        var a = _addrs;
        for (int i = 0; i < a.Length; i++)
            mmu.WriteU64(cpu, a[i], (ulong)i);
    }
}

/// <summary>A sequential 1 MiB copy out of virtual memory through the MMU, against a plain 1 MiB span copy.</summary>
[MemoryDiagnoser]
public unsafe class MmuCopyBench
{
    private const int Size = 1 << 20;
    private Machine<X86_64> _m = null!;
    private Cpu _cpu = null!;
    private ulong _va;
    private readonly byte[] _src = new byte[Size];
    private readonly byte[] _dst = new byte[Size];

    [GlobalSetup]
    public void Setup()
    {
        _m = Machine.Boot<X86_64>(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 256UL << 20 });
        _cpu = _m.GetCpu(0);
        _va = _m.Vmalloc(_cpu, Size);
        new Random(4).NextBytes(_src);
        _m.Mmu.Write(_cpu, _va, _src);
    }

    [GlobalCleanup]
    public void Cleanup() => _m.Dispose();

    /// <summary>Baseline: Span.CopyTo of 1 MiB between host arrays.</summary>
    [Benchmark(Baseline = true)]
    public void SpanCopy1MiB() => _src.AsSpan().CopyTo(_dst);

    /// <summary>1 MiB read from vmalloc memory through the MMU (256 translations, one 4 KiB copy each).</summary>
    [Benchmark]
    public void MmuCopy1MiB() => _m.Mmu.Read(_cpu, _va, _dst);
}
