using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using KmemNative.Arch;

namespace KmemNative.PhysMem;

/// <summary>
/// The <c>mem_map</c>: one <c>struct page</c> per page frame, living inside the arena in pages memblock reserved
/// at boot, byte for byte in the profile's layout; plus the <c>list_head</c> primitives that link descriptors.
/// </summary>
/// <remarks>
/// Descriptors are addressed as the kernel addresses them: on x86-64 through the vmemmap
/// (<c>0xffffea0000000000 + pfn * 64</c>), on i386 through lowmem (<c>PAGE_OFFSET + __pa(mem_map) + pfn * 32</c>).
/// List links hold kernel virtual addresses; every link read back from the arena is bounds-checked before it is
/// followed (the kernel's CONFIG_DEBUG_LIST checks), so corrupted memory raises
/// <see cref="ConsistencyException"/> instead of reaching outside the arena.
/// </remarks>
internal readonly unsafe struct MemMap<TArch> where TArch : struct, IArch
{
    private readonly byte* _base;          // arena: physical 0
    private readonly ulong _arenaSize;
    private readonly byte* _memmap;        // host address of pfn 0's struct page
    private readonly ulong _memmapBytes;
    private readonly ulong _memmapVa;      // kernel virtual address of pfn 0's struct page
    private readonly byte* _pageExt;       // one byte per pfn: allocation order record (see PageExt)

    /// <remarks>A readonly struct of pointers fixed at boot, so owners embed it and reach the arena in one load.</remarks>
    public MemMap(PhysicalMemory mem, ulong memmapPhys, ulong maxPfn, ulong pageExtPhys)
    {
        _base = mem.Base;
        _arenaSize = mem.Size;
        MaxPfn = maxPfn;
        MemmapPhys = memmapPhys;
        _memmap = mem.Base + memmapPhys;
        _memmapBytes = maxPfn * (ulong)TArch.StructPageSize;
        _memmapVa = TArch.VmemmapBase != 0 ? TArch.VmemmapBase : TArch.PageOffset + memmapPhys;
        _pageExt = mem.Base + pageExtPhys;
    }

    /// <summary>Number of descriptors: PFNs 0 .. MaxPfn-1 (max_pfn).</summary>
    public ulong MaxPfn { get; }

    /// <summary>Physical address of the mem_map array.</summary>
    public ulong MemmapPhys { get; }

    /// <summary>Bytes of mem_map.</summary>
    public ulong MemmapBytes => _memmapBytes;

    /// <summary>Kernel virtual address of pfn 0's descriptor (vmemmap or lowmem mem_map).</summary>
    public ulong MemmapVa => _memmapVa;

    // ---- descriptors ----------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Desc(ulong pfn) => _memmap + pfn * (ulong)TArch.StructPageSize;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong DescVa(ulong pfn) => _memmapVa + pfn * (ulong)TArch.StructPageSize;

    /// <summary>pfn of a struct page virtual address, or false when it does not name a descriptor.</summary>
    public bool TryPfnOfDescVa(ulong va, out ulong pfn)
    {
        ulong off = va - _memmapVa;
        pfn = off / (ulong)TArch.StructPageSize;
        return off < _memmapBytes && off % (ulong)TArch.StructPageSize == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PfnOfDesc(byte* desc) => (ulong)(desc - _memmap) / (ulong)TArch.StructPageSize;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Flags(byte* p) => TArch.LoadLong(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetFlags(byte* p, ulong flags) => TArch.StoreLong(p, flags);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TestFlag(byte* p, PageFlag flag) => (TArch.LoadLong(p) & (1UL << (int)flag)) != 0;

    /// <summary>set_bit(): atomic, as the kernel's folio_set_*() (reclaim, the flusher and faults change the flags of one page concurrently).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetFlag(byte* p, PageFlag flag)
    {
        if (TArch.PointerSize == 8)
            Interlocked.Or(ref *(long*)p, 1L << (int)flag);
        else
            Interlocked.Or(ref *(int*)p, 1 << (int)flag);
    }

    /// <summary>clear_bit(): atomic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ClearFlag(byte* p, PageFlag flag)
    {
        if (TArch.PointerSize == 8)
            Interlocked.And(ref *(long*)p, ~(1L << (int)flag));
        else
            Interlocked.And(ref *(int*)p, ~(1 << (int)flag));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ZoneIdx(byte* p) => (int)((TArch.LoadLong(p) >> TArch.ZonesPgOff) & ((1UL << TArch.ZonesWidth) - 1));

    /// <summary>The zone (and node 0) bits for page->flags: set_page_zone() / set_page_node().</summary>
    public static ulong ZoneFlags(int zoneIdx) => (ulong)zoneIdx << TArch.ZonesPgOff;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref int Refcount(byte* p) => ref *(int*)(p + TArch.PageRefcountOffset);

    /// <summary>page_type / _mapcount (one 32-bit word; -1 = no type and no mappings).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint PageType(byte* p) => ref *(uint*)(p + TArch.PageTypeOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsBuddy(byte* p) => PageType(p) >> 24 == PageBits.PgtyBuddy;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Private(byte* p) => TArch.LoadLong(p + TArch.PagePrivateOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetPrivate(byte* p, ulong v) => TArch.StoreLong(p + TArch.PagePrivateOffset, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mapping(byte* p) => TArch.LoadLong(p + TArch.PageMappingOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetMapping(byte* p, ulong v) => TArch.StoreLong(p + TArch.PageMappingOffset, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Index(byte* p) => TArch.LoadLong(p + TArch.PageIndexOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetIndex(byte* p, ulong v) => TArch.StoreLong(p + TArch.PageIndexOffset, v);

    /// <summary>compound_head word: head's address | 1 on a tail page (aliases lru.next).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong CompoundHeadWord(byte* p) => TArch.LoadLong(p + TArch.PageLruOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetCompoundHeadWord(byte* p, ulong v) => TArch.StoreLong(p + TArch.PageLruOffset, v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MemcgData(byte* p) => TArch.PageMemcgOffset < 0 ? 0 : TArch.LoadLong(p + TArch.PageMemcgOffset);

    /// <summary>
    /// TAIL_MAPPING (include/linux/poison.h): 0x400 + POISON_POINTER_DELTA, which is 0xdead000000000000 on x86-64
    /// and 0 on i386.
    /// </summary>
    public static ulong TailMapping => TArch.PointerSize == 8 ? 0xdead_0000_0000_0400UL : 0x400UL;

    /// <summary>__init_single_page(): zone bits, refcount 1, no type, empty lru, everything else 0.</summary>
    public void InitSinglePage(ulong pfn, int zoneIdx, bool reserved)
    {
        byte* p = Desc(pfn);
        new Span<byte>(p, TArch.StructPageSize).Clear();
        ulong flags = ZoneFlags(zoneIdx);
        if (reserved)
            flags |= 1UL << (int)PageFlag.Reserved;
        SetFlags(p, flags);
        Refcount(p) = 1;
        PageType(p) = PageBits.NoType;
        ulong lru = DescVa(pfn) + (ulong)TArch.PageLruOffset;
        TArch.StoreLong(p + TArch.PageLruOffset, lru);
        TArch.StoreLong(p + TArch.PageLruOffset + TArch.PointerSize, lru);
    }

    // ---- page_ext: the emulator's allocation record ---------------------------------------------------

    /// <summary>One byte per page frame, memblock-allocated like the kernel's page_ext (see <see cref="PageExt"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref byte Ext(ulong pfn) => ref _pageExt[pfn];

    public void SetExtRange(ulong pfn, ulong count, byte value) => new Span<byte>(_pageExt + pfn, checked((int)count)).Fill(value);

    // ---- list_head ------------------------------------------------------------------------------------

    /// <summary>Host address of a list_head given its kernel virtual address; throws on a link leading outside.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* ListHost(ulong va)
    {
        ulong listBytes = 2UL * (ulong)TArch.PointerSize;
        if (TArch.VmemmapBase != 0)
        {
            ulong off = va - _memmapVa;
            if (off <= _memmapBytes - listBytes)
                return _memmap + off;
        }
        ulong phys = va - TArch.PageOffset;
        if (phys > _arenaSize - listBytes)
            ThrowBadLink(va);
        return _base + phys;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Next(byte* entry) => TArch.LoadLong(entry);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Prev(byte* entry) => TArch.LoadLong(entry + TArch.PointerSize);

    public void InitListHead(ulong va)
    {
        byte* h = ListHost(va);
        TArch.StoreLong(h, va);
        TArch.StoreLong(h + TArch.PointerSize, va);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool ListEmpty(ulong headVa) => Next(ListHost(headVa)) == headVa;

    /// <summary>list_add(): insert <paramref name="newVa"/> right after the head.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ListAdd(ulong newVa, ulong headVa)
    {
        byte* head = ListHost(headVa);
        ulong nextVa = Next(head);
        Insert(newVa, ListHost(newVa), headVa, head, nextVa, ListHost(nextVa));
    }

    /// <summary>list_add_tail(): insert <paramref name="newVa"/> right before the head.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ListAddTail(ulong newVa, ulong headVa)
    {
        byte* head = ListHost(headVa);
        ulong prevVa = Prev(head);
        Insert(newVa, ListHost(newVa), prevVa, ListHost(prevVa), headVa, head);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Insert(ulong newVa, byte* n, ulong prevVa, byte* prev, ulong nextVa, byte* next)
    {
        // __list_add_valid(): the neighbours must point at each other.
        if (Prev(next) != prevVa || Next(prev) != nextVa)
            ThrowListCorrupt("list_add", newVa, prevVa, nextVa);
        TArch.StoreLong(next + TArch.PointerSize, newVa);
        TArch.StoreLong(n, nextVa);
        TArch.StoreLong(n + TArch.PointerSize, prevVa);
        TArch.StoreLong(prev, newVa);
    }

    /// <summary>list_del(): unlink and poison (LIST_POISON1/2 as the kernel does).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ListDel(ulong entryVa)
    {
        byte* e = ListHost(entryVa);
        ulong nextVa = Next(e), prevVa = Prev(e);
        byte* next = ListHost(nextVa);
        byte* prev = ListHost(prevVa);
        // __list_del_entry_valid(): both neighbours must still point back at the entry.
        if (Prev(next) != entryVa || Next(prev) != entryVa)
            ThrowListCorrupt("list_del", entryVa, prevVa, nextVa);
        TArch.StoreLong(next + TArch.PointerSize, prevVa);
        TArch.StoreLong(prev, nextVa);
        TArch.StoreLong(e, ListPoison1);
        TArch.StoreLong(e + TArch.PointerSize, ListPoison2);
    }

    /// <summary>Host address of the lru field of the page whose lru sits at <paramref name="lruVa"/>; throws for anything else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* PageLruHost(ulong lruVa)
    {
        ulong off = lruVa - (ulong)TArch.PageLruOffset - _memmapVa;
        if (off >= _memmapBytes)
            ThrowBadLink(lruVa);
        return _memmap + off + TArch.PageLruOffset;
    }

    /// <summary>
    /// Pops the first entry of a list of pages whose head address is known (the per-CPU lists): list_first_entry +
    /// list_del with the same checks, but without translating the head. Returns the entry, or the head when empty.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PopFirstPage(ulong headVa, byte* head)
    {
        ulong firstVa = Next(head);
        if (firstVa == headVa)
            return headVa;
        byte* first = PageLruHost(firstVa);
        ulong nextVa = Next(first);
        byte* next = nextVa == headVa ? head : PageLruHost(nextVa);
        if (Prev(first) != headVa || Prev(next) != firstVa)
            ThrowListCorrupt("list_del", firstVa, Prev(first), nextVa);
        TArch.StoreLong(next + TArch.PointerSize, headVa);
        TArch.StoreLong(head, nextVa);
        TArch.StoreLong(first, ListPoison1);
        TArch.StoreLong(first + TArch.PointerSize, ListPoison2);
        return firstVa;
    }

    /// <summary>list_add() of a page to a list whose head address is known, without translating the head.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PushFrontPage(ulong headVa, byte* head, ulong entryVa)
    {
        byte* entry = PageLruHost(entryVa);
        ulong nextVa = Next(head);
        byte* next = nextVa == headVa ? head : PageLruHost(nextVa);
        if (Prev(next) != headVa)
            ThrowListCorrupt("list_add", entryVa, headVa, nextVa);
        TArch.StoreLong(next + TArch.PointerSize, entryVa);
        TArch.StoreLong(entry, nextVa);
        TArch.StoreLong(entry + TArch.PointerSize, headVa);
        TArch.StoreLong(head, entryVa);
    }

    /// <summary>LIST_POISON1: 0x100 + POISON_POINTER_DELTA.</summary>
    public static ulong ListPoison1
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => TArch.PointerSize == 8 ? 0xdead_0000_0000_0100UL : 0x100UL;
    }

    /// <summary>LIST_POISON2: 0x122 + POISON_POINTER_DELTA.</summary>
    public static ulong ListPoison2
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => TArch.PointerSize == 8 ? 0xdead_0000_0000_0122UL : 0x122UL;
    }

    /// <summary>The pfn whose lru/buddy_list/pcp_list field sits at <paramref name="lruVa"/>; throws for anything else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PfnOfLru(ulong lruVa)
    {
        ulong off = lruVa - (ulong)TArch.PageLruOffset - _memmapVa;
        if (off >= _memmapBytes || off % (ulong)TArch.StructPageSize != 0)
            ThrowBadLink(lruVa);
        return off / (ulong)TArch.StructPageSize;
    }

    [DoesNotReturn]
    private static void ThrowBadLink(ulong va) =>
        throw new ConsistencyException($"list corruption: link 0x{va:x} points outside the machine's memory");

    [DoesNotReturn]
    private static void ThrowListCorrupt(string op, ulong entry, ulong prev, ulong next) =>
        throw new ConsistencyException(
            $"{op} corruption: entry 0x{entry:x}, prev 0x{prev:x}, next 0x{next:x} do not point at each other");
}

/// <summary>
/// The emulator's per-page allocation record, one byte per frame in a memblock-allocated array (the kernel keeps
/// such per-page extras in <c>page_ext</c>, e.g. for page_owner). It is what lets a free with the wrong order or of
/// a tail page be refused before any state changes.
/// </summary>
internal static class PageExt
{
    /// <summary>Not allocated: free in buddy, on a per-CPU list, reserved or a hole.</summary>
    public const byte None = 0;

    /// <summary>Head of an allocation; the low 4 bits hold its order.</summary>
    public const byte Head = 0x80;

    /// <summary>Any other page of an allocation.</summary>
    public const byte Tail = 0x40;

    /// <summary>On a per-CPU free list.</summary>
    public const byte Pcp = 0x20;

    /// <summary>Order bits of a head record.</summary>
    public const byte OrderMask = 0x0f;
}
