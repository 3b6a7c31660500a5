using System.Runtime.InteropServices;

namespace KmemNative.Interop;

// The structs of kmem.h, field for field (sequential layout, natural alignment: what a C compiler does on the
// 64-bit targets the library is built for). The C tests check sizeof/offsetof of each against these sizes.

/// <summary>struct kmem_config.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemConfig
{
    public uint Size;
    public uint Arch;
    public ulong MemBytes;
    public uint Cpus;
    public uint Flags;
    public long MinFreeKbytes;
    public byte* SlabDebug;

    /// <summary>Bytes of the ABI 1.0 struct: a caller's size must cover them.</summary>
    public const int V1Size = 40;

    public const uint FlagNoPse = 1, FlagTlbStatistics = 2, FlagFreelistHardened = 4, FlagCheckCpuOwner = 8;
}

/// <summary>struct kmem_machine_info.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemMachineInfo
{
    public uint Size;
    public uint Arch;
    public uint Cpus;
    public uint PointerSize;
    public uint PageSize;
    public uint StructPageSize;
    public uint PagingLevels;
    public uint Reserved0;
    public byte* ArenaBase;
    public ulong ArenaSize;
    public ulong PageOffset;
    public ulong MaxPfn;
    public ulong MaxLowPfn;
    public ulong MemMap;
    public ulong VmallocStart;
    public ulong VmallocEnd;
    public ulong SwapperPgDir;
    public ulong TotalRamPages;
}

/// <summary>struct kmem_cache_args.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemCacheArgsNative
{
    public uint Align;
    public uint SheafCapacity;
    public delegate* unmanaged<void*, void> Ctor;
}

/// <summary>struct kmem_cache_info.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemCacheInfo
{
    public uint Size;
    public uint ObjectSize;
    public uint Stride;
    public uint Align;
    public uint Offset;
    public uint Order;
    public uint ObjectsPerSlab;
    public uint Flags;
    public ulong KmemCache;
    public ulong ActiveObjs;
    public ulong NumObjs;
    public ulong NumSlabs;
    public fixed byte Name[64];
}

/// <summary>struct kmem_cache_fast: the binding the inline fast path of kmem.h runs on.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemCacheFast
{
    public byte* C;
    public byte* Arena;
    public ulong PageOffset;
    public ulong FpLimit;
    public uint FpOffset;
    public uint Word;
    public uint SlabAddrOff;
    public uint SlabSpanOff;
    public uint* CpuGenWord;
    public uint* CacheGenWord;
    public uint CpuGen;
    public uint CacheGen;
    public CpuHandle Cpu;
    public CacheHandle Cache;
}

/// <summary>struct kmem_page_info.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KmemPageInfo
{
    public uint Size;
    public int Refcount;
    public ulong Pfn;
    public ulong Page;
    public ulong Flags;
    public ulong Mapping;
    public ulong Index;
    public ulong Private;
    public ulong CompoundHead;
    public uint PageType;
    public int Zone;
    public fixed byte FlagsText[128];
}

/// <summary>struct kmem_fault.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KmemFault
{
    public ulong Address;
    public uint ErrorCode;
    public uint Kind;
    public uint Level;
    public uint Reserved0;
    public ulong Entry;
}

/// <summary>struct kmem_translation.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KmemTranslation
{
    public ulong Phys;
    public ulong Virt;
    public ulong PageSize;
    public ulong Entry;
    public uint Level;
    public uint Reserved0;
}

/// <summary>struct kmem_tlb_stats.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KmemTlbStats
{
    public long Hits, Misses, Walks, Faults, FullFlushes, PageFlushes, RangeFlushes, Shootdowns;
}
