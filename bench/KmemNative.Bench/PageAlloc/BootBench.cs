using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using KmemNative.Arch;

namespace KmemNative.Bench.PageAlloc;

/// <summary>
/// Boot: allocate the arena, lay out memblock, initialise every struct page and free all RAM into the buddy
/// allocator. Baseline: writing a fresh buffer the size of the 16 GiB machine's mem_map once (the least any boot must do).
/// </summary>
[WarmupCount(1)]
[IterationCount(5)]
[MemoryDiagnoser]
public unsafe class BootBench
{
    private static readonly ulong s_memmap16G = ((16UL << 30) + (1UL << 30)) / 4096 * 64;

    /// <summary>Baseline: calloc + memset + free of mem_map-sized memory for a 16 GiB x86-64 machine (272 MiB).</summary>
    [Benchmark(Baseline = true)]
    public void MemsetMemmap16G()
    {
        void* p = NativeMemory.AllocZeroed((nuint)s_memmap16G);
        NativeMemory.Fill(p, (nuint)s_memmap16G, 0x5a);
        NativeMemory.Free(p);
    }

    /// <summary>Boot a 1 GiB i386 machine (the default profile).</summary>
    [Benchmark]
    public void BootI386_1G()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.I386, MemBytes = 1UL << 30 });
    }

    /// <summary>Boot a 1 GiB x86-64 machine.</summary>
    [Benchmark]
    public void BootX86_64_1G()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 1UL << 30 });
    }

    /// <summary>Boot a 16 GiB x86-64 machine (target: under 1 s).</summary>
    [Benchmark]
    public void BootX86_64_16G()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.X86_64, MemBytes = 16UL << 30 });
    }
}
