using KmemNative.PageAlloc;

namespace KmemNative;

// The execution context of a CPU (issue #6): preempt_count with its preempt/softirq/hardirq fields, the interrupt
// flag, the current task's PF_MEMALLOC* flags and the spinlocks it holds. Only the thread that owns the CPU
// changes them, as only the CPU itself changes its own preempt_count and EFLAGS.IF in the kernel.
public sealed partial class Cpu
{
    /// <summary>PREEMPT_OFFSET: one preempt_disable().</summary>
    internal const int PreemptOffset = 1;

    /// <summary>SOFTIRQ_OFFSET.</summary>
    internal const int SoftirqOffset = 1 << 8;

    /// <summary>HARDIRQ_OFFSET: one level of hard interrupt (irq_enter()).</summary>
    internal const int HardirqOffset = 1 << 16;

    /// <summary>PREEMPT_MASK | SOFTIRQ_MASK | HARDIRQ_MASK | NMI_MASK: what irq_count() covers is everything above the preempt byte.</summary>
    internal const int IrqCountMask = 0x00ff_ff00;

    /// <summary>PF_MEMALLOC: the task is reclaiming (allocations may ignore watermarks, no reclaim recursion).</summary>
    internal const uint PfMemalloc = 0x0000_0800;

    /// <summary>PF_KSWAPD: the task is kswapd.</summary>
    internal const uint PfKswapd = 0x0002_0000;

    /// <summary>PF_MEMALLOC_NOFS: memalloc_nofs_save() scope (current_gfp_context() clears __GFP_FS).</summary>
    internal const uint PfMemallocNofs = 0x0004_0000;

    /// <summary>PF_MEMALLOC_NOIO: memalloc_noio_save() scope (current_gfp_context() clears __GFP_IO and __GFP_FS).</summary>
    internal const uint PfMemallocNoio = 0x0008_0000;

    private int _preemptCount;
    private bool _irqsDisabled;
    private uint _taskFlags;
    private readonly List<string> _heldLocks = [];

    /// <summary>
    /// Non-zero while anything that changes an allocation's behaviour is in effect on this CPU: atomic context
    /// (preempt_count or disabled interrupts) or a memalloc_noio/nofs scope. The allocators' fast paths test only
    /// this one field (one predictable branch); the work is done out of line when it is set.
    /// </summary>
    internal int AllocContext;

    /// <summary>preempt_count(): preempt-disable depth (bits 0-7), softirq (8-15), hardirq (16-19), NMI (20-23).</summary>
    public int PreemptCount => _preemptCount;

    /// <summary>irqs_disabled(): local interrupts are off (EFLAGS.IF clear).</summary>
    public bool IrqsDisabled => _irqsDisabled;

    /// <summary>in_atomic(): preempt_count() != 0.</summary>
    public bool InAtomic => _preemptCount != 0;

    /// <summary>in_interrupt(): in hard or soft interrupt context (irq_count() != 0).</summary>
    public bool InInterrupt => (_preemptCount & IrqCountMask) != 0;

    /// <summary>in_hardirq(): inside an interrupt handler (between irq_enter() and irq_exit()).</summary>
    public bool InHardirq => (_preemptCount & 0x000f_0000) != 0;

    /// <summary>in_task(): process context, not an interrupt.</summary>
    public bool InTask => !InInterrupt;

    /// <summary>current-&gt;flags' memory-allocation bits (PF_MEMALLOC, PF_MEMALLOC_NOFS, PF_MEMALLOC_NOIO, PF_KSWAPD).</summary>
    public uint TaskFlags => _taskFlags;

    /// <summary>The spinlocks held on this CPU, innermost last.</summary>
    public IReadOnlyList<string> HeldLocks => _heldLocks;

    internal void SetTaskFlags(uint flags)
    {
        _taskFlags = flags;
        UpdateAllocContext();
    }

    internal void AddPreemptCount(int delta)
    {
        _preemptCount += delta;
        UpdateAllocContext();
    }

    internal void SetIrqsDisabled(bool disabled)
    {
        _irqsDisabled = disabled;
        UpdateAllocContext();
    }

    internal void PushLock(string name) => _heldLocks.Add(name);

    internal bool PopLock(string name)
    {
        int i = _heldLocks.LastIndexOf(name);
        if (i < 0)
            return false;
        _heldLocks.RemoveAt(i);
        return true;
    }

    private void UpdateAllocContext() =>
        AllocContext = _preemptCount | (_irqsDisabled ? 1 << 30 : 0) | (int)(_taskFlags & (PfMemallocNofs | PfMemallocNoio));

    /// <summary>Non-zero while an allocation already reported by might_alloc() is in progress (no second report for its pages).</summary>
    internal int MightSleepReporting;

    // ---- the context switches (public API) ------------------------------------------------------------------

    /// <summary>local_irq_disable(): interrupts off on this CPU (atomic context: a blocking allocation is a bug).</summary>
    public void LocalIrqDisable() => SetIrqsDisabled(true);

    /// <summary>local_irq_enable(): interrupts on again.</summary>
    /// <exception cref="ContextException">Inside an interrupt handler (irq_exit() restores the state instead).</exception>
    public void LocalIrqEnable()
    {
        if (InHardirq)
            throw new ContextException($"cpu{Id}: local_irq_enable() inside an interrupt handler");
        SetIrqsDisabled(false);
    }

    /// <summary>preempt_disable(): one more level of non-preemptible (atomic) context.</summary>
    public void PreemptDisable()
    {
        if ((_preemptCount & 0xff) == 0xff)
            throw new ContextException($"cpu{Id}: preempt_count overflow");
        AddPreemptCount(PreemptOffset);
    }

    /// <summary>preempt_enable().</summary>
    /// <exception cref="ContextException">Preemption is not disabled (the kernel's "BUG: scheduling while atomic"/underflow).</exception>
    public void PreemptEnable()
    {
        if ((_preemptCount & 0xff) == 0)
            throw new ContextException($"cpu{Id}: preempt_enable() without preempt_disable() (preempt_count {_preemptCount:x})");
        AddPreemptCount(-PreemptOffset);
    }

    /// <summary>spin_lock(<paramref name="name"/>): preempt_disable() and the lock is held until <see cref="SpinUnlock"/>.</summary>
    /// <exception cref="ContextException">The lock is already held on this CPU (a self-deadlock).</exception>
    public void SpinLock(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_heldLocks.Contains(name))
            throw new ContextException($"cpu{Id}: spin_lock({name}): recursive locking, the lock is already held (deadlock)");
        PreemptDisable();
        PushLock(name);
    }

    /// <summary>spin_unlock(<paramref name="name"/>): releases the lock and preempt_enable().</summary>
    /// <exception cref="ContextException">The lock is not held on this CPU.</exception>
    public void SpinUnlock(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!PopLock(name))
            throw new ContextException($"cpu{Id}: spin_unlock({name}): the lock is not held");
        PreemptEnable();
    }

    /// <summary>spin_lock_irqsave(): interrupts off (the old state kept by the caller), then spin_lock(). Returns the saved irqs_disabled().</summary>
    public bool SpinLockIrqsave(string name)
    {
        bool flags = _irqsDisabled;
        SetIrqsDisabled(true);
        try
        {
            SpinLock(name);
        }
        catch
        {
            SetIrqsDisabled(flags);
            throw;
        }
        return flags;
    }

    /// <summary>spin_unlock_irqrestore(): spin_unlock() and the interrupt state <paramref name="flags"/> back.</summary>
    public void SpinUnlockIrqrestore(string name, bool flags)
    {
        SpinUnlock(name);
        SetIrqsDisabled(flags);
    }

    /// <summary>irq_enter(): an interrupt handler starts (hardirq count up, interrupts off while it runs).</summary>
    public void IrqEnter()
    {
        if ((_preemptCount & 0x000f_0000) == 0x000f_0000)
            throw new ContextException($"cpu{Id}: hardirq nesting too deep");
        IrqEntryFlags.Push(_irqsDisabled);
        _irqsDisabled = true;
        AddPreemptCount(HardirqOffset);
    }

    /// <summary>irq_exit(): the interrupt handler returns; the interrupted context's interrupt state comes back.</summary>
    /// <exception cref="ContextException">Not in an interrupt handler.</exception>
    public void IrqExit()
    {
        if (!InHardirq || IrqEntryFlags.Count == 0)
            throw new ContextException($"cpu{Id}: irq_exit() outside an interrupt handler");
        _irqsDisabled = IrqEntryFlags.Pop();
        AddPreemptCount(-HardirqOffset);
    }

    /// <summary>local_bh_disable(): softirq-disabled section (counts in preempt_count's softirq byte, in_atomic()).</summary>
    public void LocalBhDisable() => AddPreemptCount(2 * SoftirqOffset);

    /// <summary>local_bh_enable().</summary>
    public void LocalBhEnable()
    {
        if ((_preemptCount & 0xff00) == 0)
            throw new ContextException($"cpu{Id}: local_bh_enable() without local_bh_disable()");
        AddPreemptCount(-2 * SoftirqOffset);
    }

    /// <summary>
    /// memalloc_noio_save(): from now on every allocation of the task on this CPU behaves as GFP_NOIO (no __GFP_IO,
    /// no __GFP_FS), whatever flags it passes. Returns the cookie for <see cref="MemallocNoioRestore"/>.
    /// </summary>
    public uint MemallocNoioSave()
    {
        uint old = _taskFlags & PfMemallocNoio;
        SetTaskFlags(_taskFlags | PfMemallocNoio);
        return old;
    }

    /// <summary>memalloc_noio_restore(): the scope <see cref="MemallocNoioSave"/> opened ends (nested scopes keep theirs).</summary>
    public void MemallocNoioRestore(uint flags) => SetTaskFlags((_taskFlags & ~PfMemallocNoio) | (flags & PfMemallocNoio));

    /// <summary>memalloc_nofs_save(): allocations behave as GFP_NOFS (no __GFP_FS) until <see cref="MemallocNofsRestore"/>.</summary>
    public uint MemallocNofsSave()
    {
        uint old = _taskFlags & PfMemallocNofs;
        SetTaskFlags(_taskFlags | PfMemallocNofs);
        return old;
    }

    /// <summary>memalloc_nofs_restore().</summary>
    public void MemallocNofsRestore(uint flags) => SetTaskFlags((_taskFlags & ~PfMemallocNofs) | (flags & PfMemallocNofs));

    /// <summary>current_gfp_context(): what a request with <paramref name="gfp"/> becomes in this CPU's memalloc scope.</summary>
    public Gfp CurrentGfpContext(Gfp gfp) => Reclaim.AllocContext.CurrentGfpContext(this, gfp);

    // ---- reclaim_state -------------------------------------------------------------------------------------

    /// <summary>current-&gt;reclaim_state is set: slab pages freed now count as reclaimed (mm_account_reclaimed_pages()).</summary>
    internal bool ReclaimStateActive;

    /// <summary>reclaim_state-&gt;reclaimed: pages freed by the slab allocator while reclaiming.</summary>
    internal long ReclaimedSlabPages;

    /// <summary>Where the task's interrupted state is kept while it runs an interrupt handler (irqs were on or off).</summary>
    internal readonly Stack<bool> IrqEntryFlags = new();
}
