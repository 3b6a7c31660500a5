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

    // ---- reclaim_state -------------------------------------------------------------------------------------

    /// <summary>current-&gt;reclaim_state is set: slab pages freed now count as reclaimed (mm_account_reclaimed_pages()).</summary>
    internal bool ReclaimStateActive;

    /// <summary>reclaim_state-&gt;reclaimed: pages freed by the slab allocator while reclaiming.</summary>
    internal long ReclaimedSlabPages;

    /// <summary>Where the task's interrupted state is kept while it runs an interrupt handler (irqs were on or off).</summary>
    internal readonly Stack<bool> IrqEntryFlags = new();
}
