using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Reclaim;

// Emulated block I/O and the flusher threads (mm/page-writeback.c, fs/fs-writeback.c). Writes are instantaneous in
// data terms (the bytes are on "disk" when the write is submitted) but complete later, deterministically: at the
// start of the next reclaim pass (every shrink_node(), each kswapd_step), on sync, or when someone must wait for the
// page (truncate, a new write). Until then the page is PG_writeback and counts in nr_writeback / Writeback:.
internal sealed unsafe partial class ReclaimSubsystem<TArch>
{
    /// <summary>An I/O in flight: the page (holding a reference) and whether it is a swap write.</summary>
    private readonly record struct PendingIo(ulong Pfn, bool Swap);

    private readonly List<PendingIo> _inflight = [];
    private readonly Lock _ioLock = new();

    /// <summary>wakeup_flusher_threads() was called and the flusher has not run since.</summary>
    private volatile bool _flusherWoken;

    /// <summary>wakeup_flusher_threads(WB_REASON_VMSCAN): reclaim found only dirty, unqueued file pages.</summary>
    private void WakeupFlusherThreads() => _flusherWoken = true;

    /// <summary>Pages under writeback right now.</summary>
    internal int InflightIo
    {
        get
        {
            lock (_ioLock)
                return _inflight.Count;
        }
    }

    /// <summary>
    /// The flusher (wb_workfn → writeback_inodes_wb, WB_SYNC_NONE): every dirty page of every regular file is
    /// submitted for writeback. In the emulator it runs in the context of a reclaimer that may wait for file-system
    /// writeback (__GFP_FS and __GFP_IO: kswapd, GFP_KERNEL direct reclaim) or of sync; a GFP_NOFS or GFP_NOIO
    /// reclaimer cannot depend on it (it may hold what the flusher needs), so the pages stay dirty for it.
    /// </summary>
    private long RunFlusher(Cpu cpu)
    {
        _flusherWoken = false;
        var mm = _mmSub;
        if (mm is null)
            return 0;
        long started = 0;
        foreach (var page in mm.DirtyFilePages())
        {
            if (!mm.StartFileWriteback(cpu, page.Pfn))
                continue;
            lock (_ioLock)
                _inflight.Add(new PendingIo(page.Pfn, Swap: false));
            started++;
        }
        return started;
    }

    /// <summary>
    /// The I/O completion of everything submitted so far (end_page_writeback() / folio_end_writeback()): PG_writeback
    /// clears, a page with PG_reclaim rotates to the tail of its inactive list (pgrotated), the I/O's reference goes.
    /// </summary>
    internal long CompleteWriteback(Cpu cpu)
    {
        PendingIo[] done;
        lock (_ioLock)
        {
            if (_inflight.Count == 0)
                return 0;
            done = [.. _inflight];
            _inflight.Clear();
        }
        foreach (var io in done)
            EndIo(cpu, io);
        return done.Length;
    }

    private void EndIo(Cpu cpu, PendingIo io)
    {
        var mm = _mmSub!;
        bool rotate = mm.EndPageWriteback(io.Pfn);
        if (rotate)
            RotateReclaimable(cpu, io.Pfn);
        mm.PutPageRef(cpu, io.Pfn);
    }

    /// <summary>folio_wait_writeback(): the page's I/O completes now.</summary>
    public void WaitOnWriteback(Cpu cpu, ulong pfn)
    {
        PendingIo? found = null;
        lock (_ioLock)
        {
            int i = _inflight.FindIndex(p => p.Pfn == pfn);
            if (i >= 0)
            {
                found = _inflight[i];
                _inflight.RemoveAt(i);
            }
        }
        if (found is { } io)
            EndIo(cpu, io);
    }

    /// <summary>sync(): write back every dirty page of every file and wait for all I/O. Returns the pages written.</summary>
    internal long Sync(Cpu cpu)
    {
        long written = RunFlusher(cpu);
        CompleteWriteback(cpu);
        return written;
    }

    /// <summary>Queues a swap write that <see cref="StartSwapWriteback"/> submitted.</summary>
    private void QueueSwapIo(ulong pfn)
    {
        lock (_ioLock)
            _inflight.Add(new PendingIo(pfn, Swap: true));
    }

    /// <summary>Is the page under emulated I/O (for the consistency check)?</summary>
    private bool IsInflight(ulong pfn)
    {
        lock (_ioLock)
            return _inflight.Exists(p => p.Pfn == pfn);
    }

    /// <summary>PG_writeback pages agree with the I/O list.</summary>
    private void CheckWritebackConsistency(List<string> errors)
    {
        long writeback = NodeStatRead(NodeStat.NrWriteback);
        int inflight = InflightIo;
        if (writeback != inflight)
            errors.Add($"nr_writeback is {writeback} but {inflight} pages are under emulated I/O");
        lock (_ioLock)
        {
            foreach (var io in _inflight)
                if (!MemMap<TArch>.TestFlag(Desc(io.Pfn), PageFlag.Writeback))
                    errors.Add($"pfn 0x{io.Pfn:x} is under I/O without PG_writeback");
        }
    }
}
