using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;
using KmemNative.Slab;

namespace KmemNative.Mm;

/// <summary>
/// Processes and their address spaces (issue #5): the slab caches of mm_struct, vm_area_struct, task_struct,
/// anon_vma, anon_vma_chain, filp and inodes; the pid table; the VMA index; mmap/munmap/mprotect/brk/madvise;
/// the page-fault handler; fork and exit; the file objects and their page cache. One instance per machine,
/// generic over the profile like every hot subsystem.
/// </summary>
/// <remarks>See Mm/README.md for the design, the layouts and the deviations from the kernel.</remarks>
internal sealed unsafe partial class MmSubsystem<TArch> where TArch : struct, IArch
{
    /// <summary>stack_guard_gap: 256 pages (mm/mmap.c).</summary>
    internal const ulong StackGuardGap = 256UL << PageSize.Shift;

    /// <summary>DEFAULT_MAX_MAP_COUNT = USHRT_MAX - MAPCOUNT_ELF_CORE_MARGIN.</summary>
    public const int DefaultMaxMapCount = 65530;

    /// <summary>mmap_min_addr (CONFIG_DEFAULT_MMAP_MIN_ADDR of x86 distributions).</summary>
    public const ulong DefaultMmapMinAddr = 65536;

    /// <summary>RLIMIT_STACK soft limit (8 MiB, the usual ulimit -s).</summary>
    public const ulong RlimitStack = 8UL << 20;

    /// <summary>PAGE_MAPPING_ANON: the low bit of page->mapping of an anonymous page.</summary>
    internal const ulong PageMappingAnon = 1;

    // PTE bits (arch/x86/include/asm/pgtable_types.h).
    internal const ulong PteP = (ulong)PteFlags.Present;
    internal const ulong PteRw = (ulong)PteFlags.Rw;
    internal const ulong PteUser = (ulong)PteFlags.User;
    internal const ulong PteA = (ulong)PteFlags.Accessed;
    internal const ulong PteD = (ulong)PteFlags.Dirty;
    internal const ulong PteProtNone = (ulong)PteFlags.Global;
    internal const ulong PteSpecial = (ulong)PteFlags.Softw1;

    /// <summary>_PAGE_SOFT_DIRTY: bit 11 with CONFIG_MEM_SOFT_DIRTY (x86-64 only), else 0.</summary>
    internal static readonly ulong PteSoftDirty = TArch.Kind == ArchKind.X86_64 ? (ulong)PteFlags.Softw3 : 0;

    /// <summary>VM_SOFTDIRTY where CONFIG_MEM_SOFT_DIRTY exists (x86-64), else 0.</summary>
    internal static readonly VmFlags VmSoftDirty = TArch.Kind == ArchKind.X86_64 ? VmFlags.SoftDirty : VmFlags.None;

    private readonly Machine<TArch> _m;
    private readonly byte* _base;
    private readonly ulong _lowBytes;
    private readonly ulong[] _protMap = new ulong[16];
    private readonly Lock _lock = new();
    private readonly SortedDictionary<int, TaskImpl<TArch>> _tasks = [];
    private int _lastPid = FirstPid - 1;
    private long _committedPages;

    internal MmLayouts L { get; }

    /// <summary>Pids start here; lower ones belong to the boot and kernel threads the emulator does not run.</summary>
    public const int FirstPid = 1000;

    /// <summary>pid_max (PID_MAX_DEFAULT).</summary>
    public const int PidMax = 32768;

    public MmSubsystem(Machine<TArch> machine)
    {
        _m = machine;
        _base = machine.Memory.Base;
        _lowBytes = machine.MaxLowPfn << PageSize.Shift;
        L = MmLayouts.Of(TArch.Kind);
        ZeroPfn = machine.ZeroPagePhys >> PageSize.Shift;
        _nodeVmStat = machine.Memory.Base + machine.NodeDataPhys + machine.Layouts.Node.Offset("vm_stat");
        InitProtectionMap();
    }

    /// <summary>The node's vm_stat[] (pglist_data), resolved once: the fault path updates it per page.</summary>
    private readonly byte* _nodeVmStat;

    /// <summary>mod_node_page_state(): an atomic add to a node counter (what Machine.ModNodeState does, without the lookup).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void NodeStatAdd(NodeStat item, long delta)
    {
        byte* p = _nodeVmStat + (int)item * TArch.PointerSize;
        if (TArch.PointerSize == 8)
            Interlocked.Add(ref *(long*)p, delta);
        else
            Interlocked.Add(ref *(int*)p, (int)delta);
    }

    internal Machine<TArch> Machine => _m;

    /// <summary>my_zero_pfn(): empty_zero_page.</summary>
    internal ulong ZeroPfn { get; }

    /// <summary>vm.max_map_count.</summary>
    public int MaxMapCount { get; set; } = DefaultMaxMapCount;

    /// <summary>vm.mmap_min_addr.</summary>
    public ulong MmapMinAddr { get; set; } = DefaultMmapMinAddr;

    /// <summary>The reclaim subsystem's LRU hooks (issue #6), or null.</summary>
    internal IPageLruHooks? Lru { get; set; }

    // ---- slab caches ------------------------------------------------------------------------------

    private KmemCache? _mmCache, _vmaCache, _taskCache, _anonVmaCache, _avcCache, _filpCache, _inodeCache, _shmemInodeCache;

    internal KmemCache MmCache => _mmCache!;
    internal KmemCache VmaCache => _vmaCache!;
    internal KmemCache TaskCache => _taskCache!;

    /// <summary>
    /// proc_caches_init() / anon_vma_init() / files_init() / inode_init(): the caches are created with the first
    /// process, so a machine that never runs one keeps its slab state exactly as boot left it.
    /// </summary>
    internal void EnsureInit(Cpu cpu)
    {
        if (_mmCache is not null)
            return;
        lock (_lock)
        {
            if (_mmCache is not null)
                return;
            var panic = SlabFlags.Panic | SlabFlags.Account;
            int p = TArch.PointerSize;
            _taskCache = Create(cpu, "task_struct", L.TaskObjectSize, 64, panic);
            _filpCache = Create(cpu, "filp", L.FileObjectSize, 0, SlabFlags.HwcacheAlign | panic);
            _inodeCache = Create(cpu, "inode_cache", L.InodeObjectSize, 0, SlabFlags.ReclaimAccount | panic);
            _shmemInodeCache = Create(cpu, "shmem_inode_cache", TArch.Kind == ArchKind.X86_64 ? 752 : L.InodeObjectSize, 0, panic);
            _anonVmaCache = Create(cpu, "anon_vma", L.AnonVma.Size, (uint)p, panic);
            _avcCache = Create(cpu, "anon_vma_chain", L.AnonVmaChain.Size, (uint)p, panic);
            _vmaCache = Create(cpu, "vm_area_struct", L.Vma.Size, (uint)p, panic);
            _mmCache = Create(cpu, "mm_struct", L.MmObjectSize, 0, SlabFlags.HwcacheAlign | panic);
        }
    }

    private KmemCache Create(Cpu cpu, string name, int size, uint align, SlabFlags flags) =>
        _m.KmemCacheCreate(cpu, name, (uint)size, align, flags) ?? throw new KmemException($"kmem_cache_create({name}) failed");

    /// <summary>The caches this subsystem owns (for tests and shrinking).</summary>
    internal IEnumerable<KmemCache> Caches =>
        new[] { _taskCache, _filpCache, _inodeCache, _shmemInodeCache, _anonVmaCache, _avcCache, _vmaCache, _mmCache }.OfType<KmemCache>();

    /// <summary>kmem_cache_zalloc(); 0 when out of memory.</summary>
    private ulong Zalloc(Cpu cpu, KmemCache cache) => _m.KmemCacheAlloc(cpu, cache, Gfp.Kernel | Gfp.Account | Gfp.Zero);

    private void Free(Cpu cpu, KmemCache cache, ulong obj) => _m.KmemCacheFree(cpu, cache, obj);

    internal KmemCache AnonVmaCache => _anonVmaCache!;
    internal KmemCache AvcCache => _avcCache!;
    internal KmemCache FilpCache => _filpCache!;
    internal KmemCache InodeCache => _inodeCache!;
    internal KmemCache ShmemInodeCache => _shmemInodeCache!;

    // ---- arena objects ----------------------------------------------------------------------------

    /// <summary>
    /// Host pointer of a <paramref name="size"/>-byte object at a lowmem kernel address. Every pointer read from the
    /// arena goes through here, so a corrupted link raises <see cref="MmCorruptException"/> instead of reaching
    /// outside the machine.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* Obj(ulong va, int size)
    {
        ulong off = va - TArch.PageOffset;
        if (off > _lowBytes - (ulong)size)
            ThrowBadPointer(va);
        return _base + off;
    }

    [DoesNotReturn]
    private static void ThrowBadPointer(ulong va) =>
        throw new MmCorruptException($"0x{va:x} is not a lowmem kernel address: a process structure holds a corrupt pointer");

    private byte* VmaH(ulong vma) => Obj(vma, MmOff<TArch>.VmaSize);

    internal ulong VmStart(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmStart);
    internal ulong VmEnd(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmEnd);
    internal ulong VmNext(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmNext);
    internal ulong VmPrev(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmPrev);
    internal ulong VmMm(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmMm);
    internal VmFlags VmFlagsOf(ulong v) => (VmFlags)TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmFlagsOff);
    internal ulong VmPageProt(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmPageProt);
    internal ulong VmPgoff(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmPgoff);
    internal ulong VmFile(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmFile);
    internal ulong VmAnonVma(ulong v) => TArch.LoadLong(VmaH(v) + MmOff<TArch>.AnonVma);

    private void SetVmStart(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmStart, x);
    private void SetVmEnd(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmEnd, x);
    private void SetVmNext(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmNext, x);
    private void SetVmPrev(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmPrev, x);
    private void SetVmPgoff(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmPgoff, x);
    internal void SetVmAnonVma(ulong v, ulong x) => TArch.StoreLong(VmaH(v) + MmOff<TArch>.AnonVma, x);

    /// <summary>vm_flags_reset(): new flags and the page protection that goes with them.</summary>
    internal void SetVmFlags(ulong v, VmFlags flags)
    {
        TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmFlagsOff, (ulong)flags);
        TArch.StoreLong(VmaH(v) + MmOff<TArch>.VmPageProt, VmaPageProt(v, flags));
    }

    /// <summary>vma_pages().</summary>
    internal ulong VmaPages(ulong v) => (VmEnd(v) - VmStart(v)) >> PageSize.Shift;

    /// <summary>linear_page_index(): the page's index in the VMA's object (file page, or anon page index).</summary>
    internal ulong LinearPageIndex(ulong v, ulong addr) => ((addr - VmStart(v)) >> PageSize.Shift) + VmPgoff(v);

    /// <summary>vma_is_anonymous(): no vm_ops (here: no file).</summary>
    internal bool VmaIsAnonymous(ulong v) => VmFile(v) == 0;

    internal static ulong GetMmLong(byte* m, int off) => TArch.LoadLong(m + off);

    internal static void SetMmLong(byte* m, int off, ulong value) => TArch.StoreLong(m + off, value);

    internal static void AddMmLong(byte* m, int off, long delta) => TArch.StoreLong(m + off, TArch.LoadLong(m + off) + (ulong)delta);

    internal static int MapCount(MmState<TArch> mm) => *(int*)(mm.H + MmOff<TArch>.MapCount);

    private static void AddMapCount(MmState<TArch> mm, int delta) => *(int*)(mm.H + MmOff<TArch>.MapCount) += delta;

    // ---- protection_map (arch/x86/mm/pgprot.c) ----------------------------------------------------

    private void InitProtectionMap()
    {
        ulong none = PageProt.None, ro = PageProt.ReadOnly, rox = PageProt.ReadOnlyExec;
        ulong sh = PageProt.Shared, shx = PageProt.SharedExec;
        ulong[] map = [none, ro, ro, ro, rox, rox, rox, rox, none, ro, sh, sh, rox, rox, shx, shx];
        for (int i = 0; i < 16; i++)
            _protMap[i] = (map[i] & PteP) != 0 ? map[i] & TArch.SupportedPteMask : map[i];
    }

    /// <summary>vm_get_page_prot(): protection_map[flags &amp; (VM_READ|VM_WRITE|VM_EXEC|VM_SHARED)].</summary>
    internal ulong VmGetPageProt(VmFlags flags) => _protMap[(int)((ulong)flags & 0xf)];

    /// <summary>
    /// vma_set_page_prot(): a shared writable mapping of a file that accounts dirty pages (a regular file here, not
    /// shmem) is write-notified: its PTEs start read-only so the first write marks the page dirty.
    /// </summary>
    private ulong VmaPageProt(ulong v, VmFlags flags)
    {
        ulong file = TArch.LoadLong(VmaH(v) + MmOff<TArch>.VmFile);
        if ((flags & (VmFlags.Shared | VmFlags.Write)) == (VmFlags.Shared | VmFlags.Write) && file != 0 && FileWantsWriteNotify(file))
            return VmGetPageProt(flags & ~VmFlags.Shared);
        return VmGetPageProt(flags);
    }

    // ---- struct page helpers ----------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* Desc(ulong pfn) => _m.MemMap.Desc(pfn);

    /// <summary>page_mapcount(): _mapcount + 1.</summary>
    internal int Mapcount(ulong pfn) => (int)MemMap<TArch>.PageType(Desc(pfn)) + 1;

    internal int Refcount(ulong pfn) => MemMap<TArch>.Refcount(Desc(pfn));

    /// <summary>PageAnon().</summary>
    internal bool PageAnon(ulong pfn) => (MemMap<TArch>.Mapping(Desc(pfn)) & PageMappingAnon) != 0;

    /// <summary>get_page().</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void GetPageRef(ulong pfn) => Interlocked.Increment(ref MemMap<TArch>.Refcount(Desc(pfn)));

    /// <summary>put_page(): the last reference frees the page (after taking it off its LRU list).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void PutPageRef(Cpu cpu, ulong pfn)
    {
        int left = Interlocked.Decrement(ref MemMap<TArch>.Refcount(Desc(pfn)));
        if (left == 0)
            FreeUserPage(cpu, pfn);
        else if (left < 0)
            throw new MmCorruptException($"put_page(): pfn 0x{pfn:x} refcount went negative");
    }

    /// <summary>__folio_put(): off the LRU, the page's user fields reset, back to the buddy allocator.</summary>
    private void FreeUserPage(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        if (MemMap<TArch>.PageType(d) != PageBits.NoType)
            throw new MmCorruptException($"freeing pfn 0x{pfn:x} while it is still mapped (mapcount {Mapcount(pfn)})");
        // Off its LRU list, or out of the per-CPU lru_add batch it may still wait in.
        Lru?.LruDel(cpu, pfn);
        ulong flags = MemMap<TArch>.Flags(d);
        const ulong userFlags = 1UL << (int)PageFlag.Uptodate | 1UL << (int)PageFlag.Dirty | 1UL << (int)PageFlag.Referenced |
                                1UL << (int)PageFlag.Swapbacked | 1UL << (int)PageFlag.Owner2 | 1UL << (int)PageFlag.Active |
                                1UL << (int)PageFlag.Workingset | 1UL << (int)PageFlag.Lru | 1UL << (int)PageFlag.Reclaim |
                                1UL << (int)PageFlag.Unevictable;
        MemMap<TArch>.SetFlags(d, flags & ~userFlags);
        MemMap<TArch>.SetMapping(d, 0);
        MemMap<TArch>.SetIndex(d, 0);
        MemMap<TArch>.Refcount(d) = 1;
        _m.FreePagesPfn(cpu, pfn, 0);
    }

    /// <summary>Adds a mapping: _mapcount++; true for the first one (the page became mapped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool MapcountInc(ulong pfn) => Interlocked.Increment(ref *(int*)(Desc(pfn) + TArch.PageTypeOffset)) == 0;

    /// <summary>Drops a mapping: _mapcount--; true when it was the last one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool MapcountDec(ulong pfn)
    {
        int v = Interlocked.Decrement(ref *(int*)(Desc(pfn) + TArch.PageTypeOffset));
        if (v < -1)
            throw new MmCorruptException($"pfn 0x{pfn:x}: _mapcount went below -1");
        return v == -1;
    }

    // ---- mm counters (rss_stat, vm_stat_account) ----------------------------------------------------

    /// <summary>The rss_stat counters (enum mm_counter_type order).</summary>
    internal enum MmCounter
    {
        FilePages = 0,
        AnonPages = 1,
        SwapEnts = 2,
        ShmemPages = 3,
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void AddMmCounter(MmState<TArch> mm, MmCounter c, long delta) =>
        AddMmLong(mm.H, MmOff<TArch>.RssStat + (int)c * TArch.PointerSize, delta);

    internal static long GetMmCounter(MmState<TArch> mm, MmCounter c)
    {
        ulong v = GetMmLong(mm.H, MmOff<TArch>.RssStat + (int)c * TArch.PointerSize);
        return TArch.PointerSize == 8 ? (long)v : (int)(uint)v;
    }

    /// <summary>get_mm_rss().</summary>
    internal static long GetMmRss(MmState<TArch> mm) =>
        GetMmCounter(mm, MmCounter.FilePages) + GetMmCounter(mm, MmCounter.AnonPages) + GetMmCounter(mm, MmCounter.ShmemPages);

    /// <summary>update_hiwater_rss(): remember the peak before RSS goes down.</summary>
    internal static void UpdateHiwaterRss(MmState<TArch> mm)
    {
        ulong rss = (ulong)GetMmRss(mm);
        if (GetMmLong(mm.H, MmOff<TArch>.HiwaterRss) < rss)
            SetMmLong(mm.H, MmOff<TArch>.HiwaterRss, rss);
    }

    /// <summary>update_hiwater_vm(): remember the peak before total_vm goes down.</summary>
    internal static void UpdateHiwaterVm(MmState<TArch> mm)
    {
        ulong total = GetMmLong(mm.H, MmOff<TArch>.TotalVm);
        if (GetMmLong(mm.H, MmOff<TArch>.HiwaterVm) < total)
            SetMmLong(mm.H, MmOff<TArch>.HiwaterVm, total);
    }

    /// <summary>vm_stat_account(): total_vm and the exec/stack/data split.</summary>
    internal static void VmStatAccount(MmState<TArch> mm, VmFlags flags, long pages)
    {
        AddMmLong(mm.H, MmOff<TArch>.TotalVm, pages);
        if ((flags & (VmFlags.Exec | VmFlags.Write | VmFlags.Stack)) == VmFlags.Exec)
            AddMmLong(mm.H, MmOff<TArch>.ExecVm, pages);
        else if ((flags & VmFlags.Stack) != 0)
            AddMmLong(mm.H, MmOff<TArch>.StackVm, pages);
        else if ((flags & (VmFlags.Write | VmFlags.Shared | VmFlags.Stack)) == VmFlags.Write)
            AddMmLong(mm.H, MmOff<TArch>.DataVm, pages);
    }

    /// <summary>
    /// security_vm_enough_memory_mm() with OVERCOMMIT_GUESS (6.x: only a request larger than RAM + swap fails), then
    /// vm_acct_memory() into Committed_AS.
    /// </summary>
    internal bool VmEnoughMemory(long pages)
    {
        if (pages > (long)_m.TotalRamPages + _m.Proc.SwapTotalPages)
            return false;
        VmAcctMemory(pages);
        return true;
    }

    /// <summary>vm_acct_memory() / vm_unacct_memory() (negative pages).</summary>
    internal void VmAcctMemory(long pages)
    {
        long now = Interlocked.Add(ref _committedPages, pages);
        _m.Proc.CommittedPages = now;
    }

    /// <summary>Pages charged to Committed_AS by the processes.</summary>
    internal long CommittedPages => Interlocked.Read(ref _committedPages);

    // ---- the task table ---------------------------------------------------------------------------

    /// <summary>alloc_pid(): the next free pid after the last one handed out (cyclic, as idr_alloc_cyclic()).</summary>
    private int AllocPid()
    {
        for (int tries = 0; tries < PidMax; tries++)
        {
            int pid = _lastPid + 1;
            if (pid >= PidMax)
                pid = FirstPid;
            _lastPid = pid;
            if (!_tasks.ContainsKey(pid))
                return pid;
        }
        return -1;
    }

    internal TaskImpl<TArch>? FindTask(int pid)
    {
        lock (_lock)
            return _tasks.GetValueOrDefault(pid);
    }

    internal IReadOnlyList<TaskImpl<TArch>> Tasks
    {
        get
        {
            lock (_lock)
                return [.. _tasks.Values];
        }
    }

    private void AddTask(TaskImpl<TArch> task)
    {
        lock (_lock)
            _tasks.Add(task.Pid, task);
    }

    private int ReservePid()
    {
        lock (_lock)
            return AllocPid();
    }

    private void RemoveTask(TaskImpl<TArch> task)
    {
        lock (_lock)
            _tasks.Remove(task.Pid);
    }
}

/// <summary>
/// What the reclaim subsystem (issue #6) hooks into: the kernel's LRU calls on the pages this subsystem creates
/// and frees. With no hooks installed pages never get PG_lru.
/// </summary>
internal interface IPageLruHooks
{
    /// <summary>folio_add_lru()/folio_add_lru_vma(): a new anonymous page was mapped, or a page entered the page cache.</summary>
    /// <param name="cpu">The CPU (the kernel batches per CPU in lru_add).</param>
    /// <param name="pfn">The page.</param>
    /// <param name="file">True for the file LRU (page cache, not swap-backed), false for the anonymous LRU (anon and shmem).</param>
    void LruAdd(Cpu cpu, ulong pfn, bool file);

    /// <summary>The last reference to a PG_lru page is going: take it off its list (lruvec_del_folio()).</summary>
    void LruDel(Cpu cpu, ulong pfn);

    /// <summary>folio_mark_accessed(): a page-cache page was used (a read fault, or zapped with its PTE young).</summary>
    void MarkAccessed(Cpu cpu, ulong pfn);

    /// <summary>
    /// workingset_refault(): a page entering the page cache where a shadow entry of its evicted predecessor was
    /// found; decides whether it starts on the active list. Called before <see cref="LruAdd"/>.
    /// </summary>
    void WorkingsetRefault(Cpu cpu, ulong pfn, ulong shadow);

    /// <summary>folio_wait_writeback(): the caller needs the page stable (no I/O in flight): the emulated I/O completes now.</summary>
    void WaitOnWriteback(Cpu cpu, ulong pfn);
}
