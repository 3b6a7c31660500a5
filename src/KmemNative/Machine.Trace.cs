using KmemNative.PageAlloc;

namespace KmemNative;

// Hooks the trace replayer needs from the machine (Trace/): direct access to hot counters.
public sealed unsafe partial class Machine<TArch>
{
    /// <summary>
    /// The host address of a node counter (an <c>unsigned long</c> of the profile's width), so a tight loop can read it
    /// without the name lookup <see cref="NodeState"/> makes.
    /// </summary>
    internal byte* NodeStatAddress(NodeStat item) =>
        Memory.Base + NodeDataPhys + _layouts.Node.Offset("vm_stat") + (int)item * TArch.PointerSize;
}
