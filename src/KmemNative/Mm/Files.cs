using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

/// <summary>What a file object is, as listed by <see cref="Machine.Files"/>.</summary>
/// <param name="Fd">The descriptor (-1 when only mappings or an mm's exe_file hold it).</param>
/// <param name="Path">The path /proc/PID/maps shows.</param>
/// <param name="Size">i_size in bytes.</param>
/// <param name="FileAddress">Kernel virtual address of the struct file.</param>
/// <param name="InodeAddress">Kernel virtual address of the struct inode.</param>
/// <param name="Inode">i_ino.</param>
/// <param name="CachedPages">Pages in its page cache (nrpages).</param>
/// <param name="Shmem">True for a tmpfs/shmem object (MAP_SHARED|MAP_ANONYMOUS).</param>
/// <param name="Writable">True when opened for writing (FMODE_WRITE).</param>
public sealed record FileObjectInfo(int Fd, string Path, ulong Size, ulong FileAddress, ulong InodeAddress, ulong Inode, long CachedPages, bool Shmem, bool Writable);

// File objects for file-backed mappings: struct file (filp cache) -> struct inode (inode_cache or
// shmem_inode_cache) with its embedded address_space, whose page cache holds pages in the arena with
// page->mapping = &inode->i_data and page->index = the file page index, as the kernel's. The page cache index
// (i_pages) is a kmalloc()ed flat array of struct page pointers, one per file page, instead of an XArray. The
// file's contents on "disk" are a host byte array: reading a page into the cache is the major fault's I/O.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>FMODE_READ / FMODE_WRITE / FMODE_EXEC.</summary>
    private const uint FmodeRead = 0x1, FmodeWrite = 0x2, FmodeExec = 0x20;

    /// <summary>S_IFREG | 0644, S_IFREG | 0755.</summary>
    private const ushort ModeRegular = 0x81a4, ModeExecutable = 0x81ed;

    /// <summary>The block device regular files live on (sda1, 8:1) and the shmem mount's anonymous dev (0:1).</summary>
    private const uint DevDisk = 8 << 20 | 1, DevShmem = 1;

    private sealed class InodeObj
    {
        public required ulong Va;
        public required string Path;
        public required ulong Size;
        public required bool Shmem;
        public required ulong Ino;
        public required byte[] Disk;
        public ulong PagesArray;     // i_pages.xa_head
        public ulong PathVa;
        public long PageCount => (long)((Size + PageSize.Bytes - 1) >> PageSize.Shift);
    }

    private sealed class FileObj
    {
        public required ulong Va;
        public required InodeObj Inode;
        public required bool Writable;
        public int Fd = -1;
    }

    private readonly Dictionary<ulong, InodeObj> _inodes = [];
    private readonly Dictionary<ulong, FileObj> _files = [];
    private readonly SortedDictionary<int, FileObj> _fds = [];
    private readonly Lock _fileLock = new();
    private ulong _nextIno = 131073, _nextShmemIno = 1025;

    private byte* InodeH(ulong inode) => Obj(inode, L.Inode.Size);

    private byte* FileH(ulong file) => Obj(file, L.File.Size);

    private static ulong MappingOf(ulong inode) => inode + (ulong)MmOff<TArch>.IData;

    private static ulong InodeOfMapping(ulong mapping) => mapping - (ulong)MmOff<TArch>.IData;

    private InodeObj InodeOfFile(ulong file)
    {
        lock (_fileLock)
            return _files.TryGetValue(file, out var f) ? f.Inode : throw new MmCorruptException($"0x{file:x} is not a struct file of this machine");
    }

    private bool FileWantsWriteNotify(ulong file) => !InodeOfFile(file).Shmem;

    /// <summary>get_file().</summary>
    internal void GetFile(ulong file)
    {
        if (TArch.PointerSize == 8)
            Interlocked.Increment(ref *(long*)FileH(file));
        else
            Interlocked.Increment(ref *(int*)FileH(file));
    }

    private long FileCount(ulong file) => TArch.PointerSize == 8 ? *(long*)FileH(file) : *(int*)FileH(file);

    /// <summary>fput(): the last reference releases the struct file and its inode reference.</summary>
    internal void Fput(Cpu cpu, ulong file)
    {
        long left = TArch.PointerSize == 8 ? Interlocked.Decrement(ref *(long*)FileH(file)) : Interlocked.Decrement(ref *(int*)FileH(file));
        if (left > 0)
            return;
        FileObj f;
        lock (_fileLock)
        {
            f = _files[file];
            _files.Remove(file);
        }
        Free(cpu, FilpCache, file);
        Iput(cpu, f.Inode);
    }

    /// <summary>iput(): the last reference evicts the inode: its page cache is truncated and it is freed.</summary>
    private void Iput(Cpu cpu, InodeObj inode)
    {
        lock (_fileLock)
        {
            if (--*(int*)(InodeH(inode.Va) + MmOff<TArch>.ICount) > 0)
                return;
            _inodes.Remove(inode.Va);
        }
        TruncateInodePages(cpu, inode);
        _m.Kfree(cpu, inode.PagesArray);
        _m.Kfree(cpu, inode.PathVa);
        Free(cpu, inode.Shmem ? ShmemInodeCache : InodeCache, inode.Va);
    }

    /// <summary>A new inode with its address_space and page-cache array; null when out of memory.</summary>
    private InodeObj? NewInode(Cpu cpu, string path, ulong size, bool shmem, ushort mode)
    {
        ulong pages = Math.Max(1, (size + PageSize.Bytes - 1) >> PageSize.Shift);
        ulong arrayBytes = pages * (ulong)TArch.PointerSize;
        if (arrayBytes > 4UL << 20)
            return null;
        ulong va = Zalloc(cpu, shmem ? ShmemInodeCache : InodeCache);
        if (va == 0)
            return null;
        ulong array = _m.Kmalloc(cpu, arrayBytes, Gfp.Kernel | Gfp.Zero);
        ulong pathVa = _m.Kstrdup(cpu, path, Gfp.Kernel);
        if (array == 0 || pathVa == 0)
        {
            _m.Kfree(cpu, array);
            _m.Kfree(cpu, pathVa);
            Free(cpu, shmem ? ShmemInodeCache : InodeCache, va);
            return null;
        }
        ulong ino;
        lock (_fileLock)
            ino = shmem ? _nextShmemIno++ : _nextIno++;
        byte* h = InodeH(va);
        *(ushort*)(h + MmOff<TArch>.IMode) = mode;
        TArch.StoreLong(h + MmOff<TArch>.IMapping, MappingOf(va));
        TArch.StoreLong(h + MmOff<TArch>.IIno, ino);
        *(uint*)(h + MmOff<TArch>.INlink) = shmem ? 0u : 1u;
        *(ulong*)(h + MmOff<TArch>.ISize) = size;
        *(int*)(h + MmOff<TArch>.ICount) = 1;
        TArch.StoreLong(h + MmOff<TArch>.IPath, pathVa);
        TArch.StoreLong(h + MmOff<TArch>.AsHost, va);
        TArch.StoreLong(h + MmOff<TArch>.AsXaHead, array);
        *(uint*)(h + MmOff<TArch>.AsGfpMask) = (uint)Gfp.HighUserMovable;
        _m.MemMap.InitListHead(va + (ulong)MmOff<TArch>.AsIMmap);
        var disk = new byte[shmem ? 0 : size];
        for (ulong i = 0; i < (ulong)disk.Length; i++)
            disk[i] = DiskByte(i);
        var inode = new InodeObj { Va = va, Path = path, Size = size, Shmem = shmem, Ino = ino, Disk = disk, PagesArray = array, PathVa = pathVa };
        lock (_fileLock)
            _inodes.Add(va, inode);
        return inode;
    }

    /// <summary>The bytes a new file holds: a pattern that changes within and across pages.</summary>
    internal static byte DiskByte(ulong offset) => (byte)((offset >> PageSize.Shift) * 31 + (offset & 0xfff) * 7 + 1);

    /// <summary>alloc_file(): a struct file on <paramref name="inode"/> (taking an inode reference); 0 on ENOMEM.</summary>
    private ulong NewFile(Cpu cpu, InodeObj inode, bool writable, bool exec, bool takeInodeRef)
    {
        ulong va = Zalloc(cpu, FilpCache);
        if (va == 0)
            return 0;
        byte* h = FileH(va);
        TArch.StoreLong(h + MmOff<TArch>.FCount, 1);
        *(uint*)(h + MmOff<TArch>.FMode) = FmodeRead | (writable ? FmodeWrite : 0) | (exec ? FmodeExec : 0);
        *(uint*)(h + MmOff<TArch>.FFlags) = writable ? 2u : 0u; // O_RDWR / O_RDONLY
        TArch.StoreLong(h + MmOff<TArch>.FMapping, MappingOf(inode.Va));
        TArch.StoreLong(h + MmOff<TArch>.FInode, inode.Va);
        lock (_fileLock)
        {
            if (takeInodeRef)
                ++*(int*)(InodeH(inode.Va) + MmOff<TArch>.ICount);
            _files.Add(va, new FileObj { Va = va, Inode = inode, Writable = writable });
        }
        return va;
    }

    /// <summary>open(O_CREAT) of a regular file of <paramref name="size"/> bytes: a descriptor, or -ENOMEM.</summary>
    internal SysResult FileCreate(Cpu cpu, string path, ulong size, bool readOnly)
    {
        EnsureInit(cpu);
        if (string.IsNullOrEmpty(path) || path.Contains('\n', StringComparison.Ordinal))
            return SysResult.Fail(Errno.EINVAL);
        var inode = NewInode(cpu, path, size, shmem: false, ModeRegular);
        if (inode is null)
            return SysResult.Fail(Errno.ENOMEM);
        ulong file = NewFile(cpu, inode, !readOnly, exec: false, takeInodeRef: false);
        if (file == 0)
        {
            Iput(cpu, inode);
            return SysResult.Fail(Errno.ENOMEM);
        }
        lock (_fileLock)
        {
            int fd = 3;
            while (_fds.ContainsKey(fd))
                fd++;
            var f = _files[file];
            f.Fd = fd;
            _fds.Add(fd, f);
            return SysResult.Ok((ulong)fd);
        }
    }

    /// <summary>close(): the descriptor's reference goes (the file lives on while mappings hold it).</summary>
    internal SysResult FileClose(Cpu cpu, int fd)
    {
        FileObj? f;
        lock (_fileLock)
        {
            if (!_fds.Remove(fd, out f))
                return SysResult.Fail(Errno.EBADF);
            f.Fd = -1;
        }
        Fput(cpu, f.Va);
        return SysResult.Ok(0);
    }

    /// <summary>fget(): the struct file behind a descriptor, or 0.</summary>
    private ulong Fget(int fd)
    {
        lock (_fileLock)
            return _fds.TryGetValue(fd, out var f) ? f.Va : 0;
    }

    /// <summary>The program file a spawned process runs: /usr/bin/COMM (one inode per path while referenced).</summary>
    private ulong OpenExe(Cpu cpu, string path, ulong size)
    {
        InodeObj? inode;
        lock (_fileLock)
        {
            // iget: a reference taken while the inode is known to be live.
            inode = _inodes.Values.FirstOrDefault(i => !i.Shmem && i.Path == path && i.Size == size);
            if (inode is not null)
                ++*(int*)(InodeH(inode.Va) + MmOff<TArch>.ICount);
        }
        inode ??= NewInode(cpu, path, size, shmem: false, ModeExecutable);
        if (inode is null)
            return 0;
        ulong file = NewFile(cpu, inode, writable: false, exec: true, takeInodeRef: false);
        if (file == 0)
            Iput(cpu, inode);
        return file;
    }

    /// <summary>shmem_zero_setup(): the tmpfs object behind a MAP_SHARED|MAP_ANONYMOUS mapping ("/dev/zero (deleted)").</summary>
    private ulong ShmemZeroSetup(Cpu cpu, ulong size)
    {
        var inode = NewInode(cpu, "/dev/zero (deleted)", size, shmem: true, ModeRegular);
        if (inode is null)
            return 0;
        ulong file = NewFile(cpu, inode, writable: true, exec: false, takeInodeRef: false);
        if (file == 0)
            Iput(cpu, inode);
        return file;
    }

    /// <summary>Open files, by struct file.</summary>
    internal IReadOnlyList<FileObjectInfo> FileList()
    {
        lock (_fileLock)
        {
            return [.. _files.Values.OrderBy(f => f.Fd < 0 ? int.MaxValue : f.Fd).ThenBy(f => f.Va).Select(f => new FileObjectInfo(
                f.Fd, f.Inode.Path, f.Inode.Size, f.Va, f.Inode.Va, f.Inode.Ino,
                (long)TArch.LoadLong(InodeH(f.Inode.Va) + MmOff<TArch>.AsNrPages), f.Inode.Shmem, f.Writable))];
        }
    }

    /// <summary>(dev, ino, path) of a VMA's file for /proc/PID/maps.</summary>
    internal (uint Dev, ulong Ino, string Path) FileIdentity(ulong file)
    {
        var inode = InodeOfFile(file);
        return (inode.Shmem ? DevShmem : DevDisk, inode.Ino, inode.Path);
    }

    /// <summary>True for a shmem object (its pages count as MM_SHMEMPAGES and NR_SHMEM).</summary>
    internal bool FileIsShmem(ulong file) => InodeOfFile(file).Shmem;

    private bool FileWritable(ulong file)
    {
        lock (_fileLock)
            return _files[file].Writable;
    }

    private bool FileReadable(ulong file) => (*(uint*)(FileH(file) + MmOff<TArch>.FMode) & FmodeRead) != 0;

    // ---- the page cache -----------------------------------------------------------------------------

    private byte* PageSlot(InodeObj inode, ulong index) =>
        Obj(inode.PagesArray, (int)((ulong)Math.Max(1, inode.PageCount) * (ulong)TArch.PointerSize)) + index * (ulong)TArch.PointerSize;

    /// <summary>filemap_get_folio(): the cached page at <paramref name="index"/>, or NoPage (an empty slot or a shadow entry).</summary>
    private ulong FindCachedPage(InodeObj inode, ulong index)
    {
        ulong desc = TArch.LoadLong(PageSlot(inode, index));
        if (desc == 0 || IsShadowEntry(desc))
            return PageAllocator<TArch>.NoPage;
        if (!_m.MemMap.TryPfnOfDescVa(desc, out ulong pfn))
            throw new MmCorruptException($"i_pages of inode 0x{inode.Va:x} holds 0x{desc:x}, not a struct page");
        return pfn;
    }

    /// <summary>
    /// filemap_fault()/shmem_fault() without the mapping side: the page at <paramref name="index"/> of
    /// <paramref name="file"/>, read into the cache (a major fault) or zero-filled (shmem) when missing, returned with a
    /// reference the caller owns (folio_get() under the cache's lock, so reclaim cannot evict it meanwhile). NoPage
    /// with <paramref name="sigbus"/> when the index lies beyond the end of the file, or on ENOMEM.
    /// </summary>
    internal ulong FileGetPage(Cpu cpu, ulong file, ulong index, out bool major, out bool sigbus) =>
        InodeGetPage(cpu, InodeOfFile(file), index, out major, out sigbus);

    private ulong InodeGetPage(Cpu cpu, InodeObj inode, ulong index, out bool major, out bool sigbus, bool noRead = false)
    {
        major = false;
        sigbus = false;
        if ((long)index >= inode.PageCount)
        {
            sigbus = true;
            return PageAllocator<TArch>.NoPage;
        }
        lock (inode)
        {
            ulong pfn = FindCachedPage(inode, index);
            if (pfn != PageAllocator<TArch>.NoPage)
            {
                GetPageRef(pfn);
                return pfn;
            }
            // The allocation may reclaim, even pages of this inode: nothing of this slot is touched before it.
            pfn = _m.AllocPagesPfn(cpu, Gfp.HighUserMovable, 0);
            if (pfn == PageAllocator<TArch>.NoPage)
                return pfn;
            if (inode.Shmem || noRead)
            {
                // shmem starts zeroed; a write that covers the whole page needs no read (write_begin).
                ClearUserHighpage(cpu, pfn);
            }
            else
            {
                // The read: the disk's bytes into the page (through kmap for HIGHMEM), the tail past EOF zeroed.
                ulong off = index << PageSize.Shift;
                int n = (int)Math.Min(PageSize.Bytes, inode.Size - off);
                byte* dst = KmapPage(cpu, pfn, out ulong kva);
                new ReadOnlySpan<byte>(inode.Disk, (int)off, n).CopyTo(new Span<byte>(dst, n));
                new Span<byte>(dst + n, PageSize.Int - n).Clear();
                KunmapPage(cpu, kva);
                major = true;
                cpu.Events[(int)VmEvent.Pgpgin] += PageSize.Int / 512;
            }
            byte* d = Desc(pfn);
            MemMap<TArch>.SetMapping(d, MappingOf(inode.Va));
            MemMap<TArch>.SetIndex(d, index);
            ulong flags = MemMap<TArch>.Flags(d) | 1UL << (int)PageFlag.Uptodate;
            if (inode.Shmem)
                flags |= 1UL << (int)PageFlag.Swapbacked;
            MemMap<TArch>.SetFlags(d, flags);
            ulong old = TArch.LoadLong(PageSlot(inode, index));
            TArch.StoreLong(PageSlot(inode, index), _m.MemMap.DescVa(pfn));
            AddMmLong(InodeH(inode.Va), MmOff<TArch>.AsNrPages, 1);
            NodeStatAdd(NodeStat.NrFilePages, 1);
            if (inode.Shmem)
                NodeStatAdd(NodeStat.NrShmem, 1);
            // filemap_add_folio(): a shadow entry left by the evicted predecessor decides where the page starts.
            if (IsShadowEntry(old))
                Lru?.WorkingsetRefault(cpu, pfn, old);
            Lru?.LruAdd(cpu, pfn, file: !inode.Shmem);
            GetPageRef(pfn);
            return pfn;
        }
    }

    /// <summary>
    /// truncate_inode_pages(): drops every page of the cache (the mappings are gone by now): dirty state cleaned,
    /// the page cache's reference put.
    /// </summary>
    private void TruncateInodePages(Cpu cpu, InodeObj inode)
    {
        lock (inode)
        {
            for (ulong i = 0; i < (ulong)inode.PageCount; i++)
            {
                ulong pfn = FindCachedPage(inode, i);
                if (pfn == PageAllocator<TArch>.NoPage)
                {
                    TArch.StoreLong(PageSlot(inode, i), 0);   // a shadow entry goes with the mapping
                    continue;
                }
                // truncate_inode_pages_range() waits for writeback before it removes the page.
                if (MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Writeback))
                    Lru?.WaitOnWriteback(cpu, pfn);
                DeleteFromPageCache(cpu, inode, i, pfn);
            }
        }
    }

    /// <summary>__filemap_remove_folio() + the cache's put: the page leaves i_pages and the counters.</summary>
    private void DeleteFromPageCache(Cpu cpu, InodeObj inode, ulong index, ulong pfn)
    {
        if (Mapcount(pfn) != 0)
            throw new MmCorruptException($"truncating pfn 0x{pfn:x} of {inode.Path} while it is still mapped");
        byte* d = Desc(pfn);
        if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty))
            AccountPageCleaned(pfn);
        TArch.StoreLong(PageSlot(inode, index), 0);
        AddMmLong(InodeH(inode.Va), MmOff<TArch>.AsNrPages, -1);
        NodeStatAdd(NodeStat.NrFilePages, -1);
        if (inode.Shmem)
            NodeStatAdd(NodeStat.NrShmem, -1);
        MemMap<TArch>.SetMapping(d, 0);
        PutPageRef(cpu, pfn);
    }

    /// <summary>folio_mark_dirty() of a page-cache page: PG_dirty, NR_FILE_DIRTY and NR_ZONE_WRITE_PENDING.</summary>
    internal void SetPageDirty(ulong pfn)
    {
        byte* d = Desc(pfn);
        if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty))
            return;
        MemMap<TArch>.SetFlag(d, PageFlag.Dirty);
        if (!MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked))
        {
            // folio_account_dirtied().
            NodeStatAdd(NodeStat.NrDirty, 1);
            NodeStatAdd(NodeStat.NrDirtied, 1);
            _m.Zones[MemMap<TArch>.ZoneIdx(d)].ModStat(ZoneStat.NrZoneWritePending, 1);
        }
    }

    private void AccountPageCleaned(ulong pfn)
    {
        byte* d = Desc(pfn);
        MemMap<TArch>.ClearFlag(d, PageFlag.Dirty);
        if (!MemMap<TArch>.TestFlag(d, PageFlag.Swapbacked))
        {
            NodeStatAdd(NodeStat.NrDirty, -1);
            _m.Zones[MemMap<TArch>.ZoneIdx(d)].ModStat(ZoneStat.NrZoneWritePending, -1);
        }
    }

    /// <summary>
    /// read() (filemap_read()): the bytes come from the page cache, pages missing from it are read in first (pgpgin,
    /// no readahead) and every page read is marked accessed (folio_mark_accessed: a second read activates it).
    /// </summary>
    internal SysResult FileRead(Cpu cpu, int fd, ulong offset, Span<byte> buffer)
    {
        ulong file = Fget(fd);
        if (file == 0)
            return SysResult.Fail(Errno.EBADF);
        var inode = InodeOfFile(file);
        if (offset >= inode.Size)
            return SysResult.Ok(0);
        int n = (int)Math.Min((ulong)buffer.Length, inode.Size - offset);
        for (int done = 0; done < n;)
        {
            ulong off = offset + (ulong)done;
            int chunk = (int)Math.Min((ulong)(n - done), PageSize.Bytes - (off & 0xfff));
            ulong pfn = InodeGetPage(cpu, inode, off >> PageSize.Shift, out _, out _);
            if (pfn == PageAllocator<TArch>.NoPage)
                return done > 0 ? SysResult.Ok((ulong)done) : SysResult.Fail(Errno.ENOMEM);
            new ReadOnlySpan<byte>(_base + (pfn << PageSize.Shift) + (off & 0xfff), chunk).CopyTo(buffer.Slice(done, chunk));
            Lru?.MarkAccessed(cpu, pfn);
            PutPageRef(cpu, pfn);
            done += chunk;
        }
        return SysResult.Ok((ulong)n);
    }

    // ---- i_mmap ---------------------------------------------------------------------------------------

    /// <summary>vma_link_file(): onto the address_space's i_mmap (i_mmap_writable++ for a shared mapping).</summary>
    private void LinkFileVma(ulong vma)
    {
        lock (_rmapLock)
            LinkFileVmaLocked(vma);
    }

    private void LinkFileVmaLocked(ulong vma)
    {
        ulong inode = InodeOfFile(VmFile(vma)).Va;
        if ((VmFlagsOf(vma) & VmFlags.Shared) != 0)
            ++*(int*)(InodeH(inode) + MmOff<TArch>.AsMmapWritable);
        _m.MemMap.ListAddTail(vma + (ulong)MmOff<TArch>.SharedRb, inode + (ulong)MmOff<TArch>.AsIMmap);
    }

    /// <summary>unlink_file_vma().</summary>
    private void UnlinkFileVma(ulong vma)
    {
        lock (_rmapLock)
            UnlinkFileVmaLocked(vma);
    }

    private void UnlinkFileVmaLocked(ulong vma)
    {
        ulong inode = InodeOfFile(VmFile(vma)).Va;
        if ((VmFlagsOf(vma) & VmFlags.Shared) != 0)
            --*(int*)(InodeH(inode) + MmOff<TArch>.AsMmapWritable);
        _m.MemMap.ListDel(vma + (ulong)MmOff<TArch>.SharedRb);
    }

    // ---- kmap for copies into user pages ----------------------------------------------------------------

    /// <summary>kmap_local_page(): a host pointer to the page, reached through the page's kernel mapping (a fixmap slot for HIGHMEM).</summary>
    private byte* KmapPage(Cpu cpu, ulong pfn, out ulong kva)
    {
        if (pfn < _m.MaxLowPfn)
        {
            kva = 0;
            return _base + (pfn << PageSize.Shift);
        }
        kva = _m.Paging.KmapLocal(cpu, pfn);
        ulong phys = _m.Mmu.Translate(cpu, kva, MemoryAccess.Write);
        return _base + (phys & ~(PageSize.Bytes - 1));
    }

    private void KunmapPage(Cpu cpu, ulong kva)
    {
        if (kva != 0)
            _m.Paging.KunmapLocal(cpu, kva);
    }

    /// <summary>clear_user_highpage(): zero a page through kmap_local (HIGHMEM) or its linear address.</summary>
    internal void ClearUserHighpage(Cpu cpu, ulong pfn)
    {
        byte* p = KmapPage(cpu, pfn, out ulong kva);
        ClearPage(p);
        KunmapPage(cpu, kva);
    }

    /// <summary>
    /// clear_page(): x86's clear_page_erms/clear_page_orig store whole cache lines without reading them first; the
    /// emulator does the same with non-temporal stores (no read-for-ownership of a page nobody has in its cache),
    /// then an sfence so the zeroes are visible before the PTE that maps the page.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ClearPage(byte* p)
    {
        if (Avx.IsSupported)
        {
            var z = Vector256<byte>.Zero;
            for (int i = 0; i < PageSize.Int; i += 128)
            {
                Avx.StoreAlignedNonTemporal(p + i, z);
                Avx.StoreAlignedNonTemporal(p + i + 32, z);
                Avx.StoreAlignedNonTemporal(p + i + 64, z);
                Avx.StoreAlignedNonTemporal(p + i + 96, z);
            }
            Sse.StoreFence();
        }
        else
        {
            new Span<byte>(p, PageSize.Int).Clear();
        }
    }

    /// <summary>copy_user_highpage().</summary>
    internal void CopyUserHighpage(Cpu cpu, ulong dstPfn, ulong srcPfn)
    {
        byte* src = _base + (srcPfn << PageSize.Shift);
        byte* dst = KmapPage(cpu, dstPfn, out ulong kva);
        Buffer.MemoryCopy(src, dst, PageSize.Bytes, PageSize.Bytes);
        KunmapPage(cpu, kva);
    }
}
