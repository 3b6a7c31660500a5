using KmemNative.PageAlloc;

namespace KmemNative;

/// <summary>
/// One emulated CPU: its per-CPU area in the arena (per-CPU page lists, later per-CPU slabs) and its event
/// counters. The analogue of the kernel's cheap <c>this_cpu</c> access: hold it and pass it to hot calls.
/// </summary>
/// <remarks>
/// A CPU runs one host thread at a time, like a kernel CPU with preemption disabled: the per-CPU fast paths
/// take no lock. <see cref="Machine.GetCpu"/> binds a CPU to the calling thread (a second live thread asking
/// for it gets <see cref="CpuUnavailableException"/>); <see cref="Machine.ThisCpu"/> binds any free CPU and
/// remembers it for the thread. Other threads never touch a bound CPU's per-CPU state: a drain they request is
/// done by the owner at its next slow path, or at once when the CPU is not bound.
/// </remarks>
public sealed unsafe partial class Cpu
{
    internal Cpu(Machine machine, int id, byte* percpu, ulong percpuVa)
    {
        Machine = machine;
        Id = id;
        Percpu = percpu;
        PercpuVa = percpuVa;
    }

    /// <summary>Number of VM event counters (vm_event_states has one per <see cref="VmEvent"/>).</summary>
    internal static readonly int EventCount = Enum.GetValues<VmEvent>().Length;

    /// <summary>Places this CPU's counters in its per-CPU unit (vm_event_states and the per-zone NUMA hit counts).</summary>
    internal void SetCounters(int eventsOffset, int numaOffset)
    {
        Events = (long*)(Percpu + eventsOffset);
        NumaHit = (long*)(Percpu + numaOffset);
    }

    /// <summary>The machine this CPU belongs to.</summary>
    public Machine Machine { get; }

    /// <summary>smp_processor_id().</summary>
    public int Id { get; }

    /// <summary>Name of the task running on this CPU (<c>current-&gt;comm</c>), used in kernel reports.</summary>
    public string Comm { get; set; } = "kmem";

    /// <summary>Pid of the task running on this CPU (0 = the idle/boot task).</summary>
    public int Pid { get; set; }

    /// <summary>Host address of this CPU's per-CPU unit (<c>__per_cpu_offset[cpu]</c> translated).</summary>
    internal byte* Percpu { get; }

    /// <summary>Kernel virtual address of this CPU's per-CPU unit.</summary>
    internal ulong PercpuVa { get; }

    /// <summary>vm_event_states for this CPU, in its per-CPU unit.</summary>
    internal long* Events;

    /// <summary>Per-zone numa_hit/numa_local counts (one node: every allocation is a local hit), in the per-CPU unit.</summary>
    internal long* NumaHit;

    /// <summary>numa_hit of this CPU for a zone index.</summary>
    public long NumaHits(int zoneIndex) => NumaHit[zoneIndex];

    /// <summary>The thread this CPU is bound to, or null.</summary>
    internal Thread? Owner;

    /// <summary>Set by drain_all_pages() on another thread; the owner drains at its next pcp slow path.</summary>
    internal volatile bool DrainRequested;

    /// <summary>Set by kmem_cache_shrink() on another thread; the owner flushes its CPU slabs at its next slab slow path.</summary>
    internal volatile bool SlabFlushRequested;

    /// <summary>
    /// The call site (%pS of _RET_IP_) slab_debug=U records for this CPU's next allocations and frees, e.g.
    /// <c>my_probe+0x1c/0x80</c>; null records the slab function called (kmalloc, kmem_cache_free...).
    /// </summary>
    public string? Caller { get; set; }

    /// <summary>Reads one of this CPU's event counters.</summary>
    public long Event(VmEvent item) => Events[(int)item];

    /// <inheritdoc/>
    public override string ToString() => $"cpu{Id}";
}
