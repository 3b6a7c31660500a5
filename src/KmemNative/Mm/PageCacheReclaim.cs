using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

/// <summary>A dirty or written page of the page cache, for the flusher and the views.</summary>
internal readonly record struct CachedPage(ulong Pfn, ulong InodeVa, ulong Index);

// The page cache as reclaim needs it (issue #6): write() dirtying pages, writeback to the file's "disk" as emulated
// I/O (PG_writeback until the I/O completes), __remove_mapping() of a clean page with a shadow entry left behind
// (mm/workingset.c), and invalidate_mapping_pages() for drop_caches. Every lock taken on behalf of reclaim is a
// try-lock: reclaim may run inside an allocation made while the same or another inode's lock is held.
internal sealed unsafe partial class MmSubsystem<TArch>
{
    /// <summary>xa_is_value(): a shadow entry (an evicted page's workingset record) rather than a struct page pointer.</summary>
    internal static bool IsShadowEntry(ulong slot) => (slot & 1) != 0;

    /// <summary>The inode whose i_data is <paramref name="mapping"/>, or null once it was evicted.</summary>
    private InodeObj? InodeObjOfMapping(ulong mapping)
    {
        lock (_fileLock)
            return _inodes.GetValueOrDefault(InodeOfMapping(mapping));
    }

    /// <summary>True when the page is a page-cache page of a shmem object (kept unevictable: no shmem swap here).</summary>
    internal bool IsShmemPage(ulong pfn)
    {
        ulong mapping = MemMap<TArch>.Mapping(Desc(pfn));
        return mapping != 0 && (mapping & PageMappingAnon) == 0 && InodeObjOfMapping(mapping) is { Shmem: true };
    }

    /// <summary>
    /// write() (generic_perform_write()): each page is looked up or created (read from disk unless the write covers
    /// it whole), waited for if under writeback, copied into and marked dirty (folio_mark_dirty: NR_FILE_DIRTY,
    /// NR_ZONE_WRITE_PENDING, nr_dirtied). Files keep their size: bytes past i_size are not written.
    /// </summary>
    internal SysResult FileWrite(Cpu cpu, int fd, ulong offset, ReadOnlySpan<byte> data)
    {
        ulong file = Fget(fd);
        if (file == 0 || !FileWritable(file))
            return SysResult.Fail(Errno.EBADF);
        var inode = InodeOfFile(file);
        if (offset >= inode.Size)
            return SysResult.Ok(0);
        int n = (int)Math.Min((ulong)data.Length, inode.Size - offset);
        for (int done = 0; done < n;)
        {
            ulong off = offset + (ulong)done;
            int chunk = (int)Math.Min((ulong)(n - done), PageSize.Bytes - (off & 0xfff));
            bool whole = chunk == PageSize.Int || (off & 0xfff) == 0 && off + (ulong)chunk >= inode.Size;
            ulong pfn = InodeGetPage(cpu, inode, off >> PageSize.Shift, out _, out _, noRead: whole);
            if (pfn == PageAllocator<TArch>.NoPage)
                return done > 0 ? SysResult.Ok((ulong)done) : SysResult.Fail(Errno.ENOMEM);
            if (MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Writeback))
                Lru?.WaitOnWriteback(cpu, pfn);   // folio_wait_stable()
            data.Slice(done, chunk).CopyTo(new Span<byte>(_base + (pfn << PageSize.Shift) + (off & 0xfff), chunk));
            SetPageDirty(pfn);
            PutPageRef(cpu, pfn);
            done += chunk;
        }
        return SysResult.Ok((ulong)n);
    }

    /// <summary>The regular files' dirty pages, in inode then index order (what the flusher writes back).</summary>
    internal List<CachedPage> DirtyFilePages()
    {
        InodeObj[] inodes;
        lock (_fileLock)
            inodes = [.. _inodes.Values.Where(i => !i.Shmem).OrderBy(i => i.Ino)];
        var list = new List<CachedPage>();
        foreach (var inode in inodes)
        {
            if (!Monitor.TryEnter(inode))
                continue;
            try
            {
                for (ulong i = 0; i < (ulong)inode.PageCount; i++)
                {
                    ulong pfn = FindCachedPage(inode, i);
                    if (pfn != PageAllocator<TArch>.NoPage && MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Dirty) &&
                        !MemMap<TArch>.TestFlag(Desc(pfn), PageFlag.Writeback))
                        list.Add(new CachedPage(pfn, inode.Va, i));
                }
            }
            finally
            {
                Monitor.Exit(inode);
            }
        }
        return list;
    }

    /// <summary>
    /// folio_clear_dirty_for_io() + __folio_start_writeback() + the write: shared writable PTEs are cleaned and
    /// write-protected first (folio_mkclean(), so the next store dirties the page again), the bytes go to the file,
    /// PG_dirty becomes PG_writeback (NR_FILE_DIRTY → NR_WRITEBACK) and the I/O holds a reference until
    /// <see cref="EndPageWriteback"/>. False when the page changed meanwhile or a lock it needs is busy.
    /// </summary>
    internal bool StartFileWriteback(Cpu cpu, ulong pfn)
    {
        byte* d = Desc(pfn);
        ulong mapping = MemMap<TArch>.Mapping(d);
        if (mapping == 0 || (mapping & PageMappingAnon) != 0 || InodeObjOfMapping(mapping) is not { Shmem: false } inode)
            return false;
        if (!Monitor.TryEnter(inode))
            return false;
        try
        {
            ulong index = MemMap<TArch>.Index(d);
            if ((long)index >= inode.PageCount || FindCachedPage(inode, index) != pfn ||
                !MemMap<TArch>.TestFlag(d, PageFlag.Dirty) || MemMap<TArch>.TestFlag(d, PageFlag.Writeback))
                return false;
            if (!PageMkclean(pfn))
                return false;
            ulong off = index << PageSize.Shift;
            int n = (int)Math.Min(PageSize.Bytes, inode.Size - off);
            new ReadOnlySpan<byte>(_base + (pfn << PageSize.Shift), n).CopyTo(inode.Disk.AsSpan((int)off, n));
            AccountPageCleaned(pfn);
            MemMap<TArch>.SetFlag(d, PageFlag.Writeback);
            NodeStatAdd(NodeStat.NrWriteback, 1);
            _m.Zones[MemMap<TArch>.ZoneIdx(d)].ModStat(ZoneStat.NrZoneWritePending, 1);
            GetPageRef(pfn);
            cpu.Events[(int)VmEvent.Pgpgout] += PageSize.Int / 512;
            return true;
        }
        finally
        {
            Monitor.Exit(inode);
        }
    }

    /// <summary>
    /// folio_mkclean(): every PTE mapping the page loses its dirty bit and, in a shared mapping, its write
    /// permission; a dirty PTE dirties the page first. False when an mm or the rmap lock is busy.
    /// </summary>
    private bool PageMkclean(ulong pfn) => Mapcount(pfn) <= 0 || PageMkcleanWalk(pfn);

    private bool PageMkcleanWalk(ulong pfn)
    {
        bool ok = true;
        bool walked = RmapWalkTry(pfn, (mm, vma, address, pte) =>
        {
            if (!TryLockForReclaim(mm, address, out bool taken))
            {
                ok = false;
                return false;
            }
            try
            {
                ulong e = TArch.LoadPte(pte);
                if ((e & (PteRw | PteD)) != 0)
                {
                    TArch.StorePte(pte, e & ~(PteRw | PteD));
                    _m.Mmu.FlushRange(mm.As, address, address + PageSize.Bytes);
                }
                return true;
            }
            finally
            {
                if (taken)
                    mm.Lock.Exit();
            }
        });
        return walked && ok;
    }

    /// <summary>
    /// folio_end_writeback() for a page-cache or swap-cache page: PG_writeback clears (NR_WRITEBACK,
    /// NR_ZONE_WRITE_PENDING down, nr_written up) and the I/O's reference goes. Returns whether PG_reclaim was set
    /// (the caller rotates the page to the tail of its inactive list, folio_rotate_reclaimable()).
    /// </summary>
    internal bool EndPageWriteback(ulong pfn)
    {
        byte* d = Desc(pfn);
        MemMap<TArch>.ClearFlag(d, PageFlag.Writeback);
        NodeStatAdd(NodeStat.NrWriteback, -1);
        _m.Zones[MemMap<TArch>.ZoneIdx(d)].ModStat(ZoneStat.NrZoneWritePending, -1);
        NodeStatAdd(NodeStat.NrWritten, 1);
        bool reclaim = MemMap<TArch>.TestFlag(d, PageFlag.Reclaim);
        if (reclaim)
            MemMap<TArch>.ClearFlag(d, PageFlag.Reclaim);
        return reclaim;
    }

    /// <summary>
    /// __remove_mapping() of a page-cache page the caller isolated: under the inode's (try-)lock the reference
    /// count is frozen from 2 (the cache's and the caller's) to 0, a dirty page refuses, and the slot gets the shadow
    /// entry <paramref name="eviction"/> computes (workingset_eviction()) or is cleared. The page is then freed.
    /// </summary>
    internal bool RemoveMapping(Cpu cpu, ulong pfn, Func<ulong, ulong>? eviction)
    {
        byte* d = Desc(pfn);
        ulong mapping = MemMap<TArch>.Mapping(d);
        if (mapping == 0 || (mapping & PageMappingAnon) != 0 || InodeObjOfMapping(mapping) is not { } inode)
            return false;
        if (!Monitor.TryEnter(inode))
            return false;
        try
        {
            ulong index = MemMap<TArch>.Index(d);
            if ((long)index >= inode.PageCount || FindCachedPage(inode, index) != pfn)
                return false;
            if (Interlocked.CompareExchange(ref MemMap<TArch>.Refcount(d), 0, 2) != 2)
                return false;
            if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty) || MemMap<TArch>.TestFlag(d, PageFlag.Writeback) || Mapcount(pfn) != 0)
            {
                MemMap<TArch>.Refcount(d) = 2;
                return false;
            }
            ulong shadow = !inode.Shmem && eviction is not null ? eviction(pfn) : 0;
            TArch.StoreLong(PageSlot(inode, index), shadow);
            AddMmLong(InodeH(inode.Va), MmOff<TArch>.AsNrPages, -1);
            NodeStatAdd(NodeStat.NrFilePages, -1);
            if (inode.Shmem)
                NodeStatAdd(NodeStat.NrShmem, -1);
            MemMap<TArch>.SetMapping(d, 0);
        }
        finally
        {
            Monitor.Exit(inode);
        }
        FreeUserPage(cpu, pfn);
        return true;
    }

    /// <summary>
    /// drop_pagecache_sb() → invalidate_mapping_pages() over every regular file: clean, unmapped pages nobody else
    /// holds leave the cache (no shadow entries) and are freed. Returns the pages dropped.
    /// </summary>
    internal long InvalidateAllMappings(Cpu cpu)
    {
        InodeObj[] inodes;
        lock (_fileLock)
            inodes = [.. _inodes.Values.Where(i => !i.Shmem)];
        long dropped = 0;
        foreach (var inode in inodes)
        {
            lock (inode)
            {
                for (ulong i = 0; i < (ulong)inode.PageCount; i++)
                {
                    ulong pfn = FindCachedPage(inode, i);
                    if (pfn == PageAllocator<TArch>.NoPage)
                        continue;
                    byte* d = Desc(pfn);
                    // mapping_evict_folio(): not dirty, not under writeback, no reference but the cache's.
                    if (MemMap<TArch>.TestFlag(d, PageFlag.Dirty) || MemMap<TArch>.TestFlag(d, PageFlag.Writeback) ||
                        Mapcount(pfn) != 0 || Refcount(pfn) != 1)
                        continue;
                    TArch.StoreLong(PageSlot(inode, i), 0);
                    AddMmLong(InodeH(inode.Va), MmOff<TArch>.AsNrPages, -1);
                    NodeStatAdd(NodeStat.NrFilePages, -1);
                    MemMap<TArch>.SetMapping(d, 0);
                    PutPageRef(cpu, pfn);
                    dropped++;
                }
            }
        }
        return dropped;
    }

    /// <summary>The page-cache pages of a file by path (open descriptors only), for tests and views.</summary>
    internal IReadOnlyList<ulong> CachedPagesOf(int fd)
    {
        ulong file = Fget(fd);
        if (file == 0)
            return [];
        var inode = InodeOfFile(file);
        var list = new List<ulong>();
        lock (inode)
        {
            for (ulong i = 0; i < (ulong)inode.PageCount; i++)
            {
                ulong pfn = FindCachedPage(inode, i);
                if (pfn != PageAllocator<TArch>.NoPage)
                    list.Add(pfn);
            }
        }
        return list;
    }

    /// <summary>The raw i_pages slot (a struct page address, a shadow entry, or 0), for tests.</summary>
    internal ulong PageCacheSlot(int fd, ulong index)
    {
        ulong file = Fget(fd);
        if (file == 0)
            return 0;
        var inode = InodeOfFile(file);
        lock (inode)
            return (long)index < inode.PageCount ? TArch.LoadLong(PageSlot(inode, index)) : 0;
    }

    /// <summary>The file's bytes on "disk" (what writeback stored), for tests.</summary>
    internal byte[] DiskBytes(int fd)
    {
        ulong file = Fget(fd);
        return file == 0 ? [] : [.. InodeOfFile(file).Disk];
    }

    /// <summary>Frees a user page whose reference count was frozen to 0 by its last holder (free_unref_folios()).</summary>
    internal void FreeFrozenUserPage(Cpu cpu, ulong pfn) => FreeUserPage(cpu, pfn);

    /// <summary>How many swap PTEs name each swap entry, over every live process (for the consistency check).</summary>
    internal Dictionary<ulong, int> CountSwapPtes()
    {
        var counts = new Dictionary<ulong, int>();
        foreach (var task in Tasks)
        {
            if (task.MmState is not { } mm)
                continue;
            using (mm.Lock.Enter())
            {
                if (mm.Dead)
                    continue;
                for (ulong v = FirstVma(mm); v != 0; v = VmNext(v))
                {
                    ForEachPte(mm, VmStart(v), VmEnd(v), (_, e) =>
                    {
                        if ((e & (PteP | PteProtNone)) == 0)
                        {
                            ulong entry = Reclaim.SwapPte<TArch>.ToEntry(e);
                            counts[entry] = counts.GetValueOrDefault(entry) + 1;
                        }
                    });
                }
            }
        }
        return counts;
    }

    /// <summary>The descriptor of an open file by its path, or -1.</summary>
    internal int FdOfPath(string path)
    {
        lock (_fileLock)
            return _fds.Values.FirstOrDefault(f => f.Inode.Path == path)?.Fd ?? -1;
    }
}
