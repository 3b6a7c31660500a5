using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Slab;

namespace KmemNative.Interop;

/// <summary>kmem_machine_t: an opaque 64-bit handle passed by value (one register).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct MachineHandle(ulong value)
{
    /// <summary>The encoded handle (see <see cref="Handles"/>).</summary>
    public readonly ulong Value = value;
}

/// <summary>kmem_cpu_t.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct CpuHandle(ulong value)
{
    /// <summary>The encoded handle.</summary>
    public readonly ulong Value = value;
}

/// <summary>kmem_cache_t.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct CacheHandle(ulong value)
{
    /// <summary>The encoded handle.</summary>
    public readonly ulong Value = value;
}

/// <summary>kmem_process_t.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct ProcessHandle(ulong value)
{
    /// <summary>The encoded handle.</summary>
    public readonly ulong Value = value;
}

/// <summary>A live machine behind a handle, with what the hot exports need precomputed.</summary>
internal sealed unsafe class MachineEntry(ulong handle, int slot, Machine machine, bool checkOwner)
{
    public readonly ulong Handle = handle;
    public readonly int Slot = slot;
    public readonly Machine Machine = machine;
    public readonly Machine<X86_64>? X64 = machine as Machine<X86_64>;
    public readonly Machine<I386>? I386 = machine as Machine<I386>;
    public readonly byte* Arena = machine.Memory.Base;
    public readonly ulong ArenaSize = machine.Memory.Size;
    public readonly ulong PageOffset = machine.PageOffset;
    public readonly ulong LowmemBytes = machine.MaxLowPfn << 12;
    public readonly bool CheckOwner = checkOwner;

    /// <summary>Cache handle slots this machine owns (under <see cref="Handles.Lock"/>).</summary>
    public readonly Dictionary<KmemCache, int> Caches = new(ReferenceEqualityComparer.Instance);

    /// <summary>Process handle slots this machine owns (under <see cref="Handles.Lock"/>).</summary>
    public readonly Dictionary<Process, int> Processes = new(ReferenceEqualityComparer.Instance);

    /// <summary>The guest (kernel virtual) address of a host pointer in the linear map; NULL and ZERO_SIZE_PTR map to themselves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong VaOf(void* p) => (ulong)p <= 16 ? (ulong)p : (ulong)((byte*)p - Arena) + PageOffset;

    /// <summary>The host pointer of a linear-map address (slab objects, kmalloc, __get_free_pages); 0 and 16 map to themselves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void* HostOf(ulong va) => va <= 16 ? (void*)va : Arena + (va - PageOffset);
}

/// <summary>A CPU claimed by a thread.</summary>
internal sealed class CpuEntry(ulong handle, int slot, MachineEntry m, Cpu cpu, int ownerThreadId)
{
    public readonly ulong Handle = handle;
    public readonly int Slot = slot;
    public readonly MachineEntry M = m;
    public readonly Cpu Cpu = cpu;
    public readonly int OwnerThreadId = ownerThreadId;
}

/// <summary>A slab cache handed to C.</summary>
internal sealed class CacheEntry(ulong handle, int slot, MachineEntry m, KmemCache cache)
{
    public readonly ulong Handle = handle;
    public readonly int Slot = slot;
    public readonly MachineEntry M = m;
    public readonly KmemCache Cache = cache;
}

/// <summary>A process handed to C (its task and mm live in the machine's arena).</summary>
internal sealed class ProcessEntry(ulong handle, int slot, MachineEntry m, Process process)
{
    public readonly ulong Handle = handle;
    public readonly int Slot = slot;
    public readonly MachineEntry M = m;
    public readonly Process Process = process;
}

/// <summary>
/// The handle tables: no GCHandle, no pointer to a managed object ever reaches C. A handle is
/// <c>generation &lt;&lt; 32 | type &lt;&lt; 24 | slot</c>; a slot holds an immutable entry whose <c>Handle</c> must equal the
/// value C passes, so a stale handle (its object destroyed, its slot reused by a later generation), a handle of
/// another type and garbage all fail one compare. Lookups are lock-free (an array read and a compare); creation
/// and destruction take <see cref="Lock"/>. The live generation of every slot is also kept in native memory that
/// is never freed, where the inline fast path of kmem.h (kmem_cache_fast) checks its bindings.
/// </summary>
internal static unsafe class Handles
{
    public const int MaxMachines = 64;
    public const int MaxCpusPerMachine = 64;
    public const int MaxCaches = 1 << 16;
    public const int MaxProcesses = 1 << 16;

    private const uint TagMachine = 1, TagCpu = 2, TagCache = 3, TagProcess = 4;

    // Offsets of each table's generations in s_gen.
    private const int GenMachines = 0, GenCpus = GenMachines + MaxMachines, GenCaches = GenCpus + MaxMachines * MaxCpusPerMachine;
    private const int GenProcesses = GenCaches + MaxCaches;
    private const int GenCount = GenProcesses + MaxProcesses;

    public static readonly Lock Lock = new();

    private static readonly MachineEntry?[] s_machines = new MachineEntry?[MaxMachines];
    private static readonly CpuEntry?[] s_cpus = new CpuEntry?[MaxMachines * MaxCpusPerMachine];
    private static readonly CacheEntry?[] s_caches = new CacheEntry?[MaxCaches];
    private static int s_cacheHint;
    private static readonly ProcessEntry?[] s_processes = new ProcessEntry?[MaxProcesses];
    private static int s_processHint;

    /// <summary>Live generation per slot (starts at 1; bumped when the slot's object goes). Native, never freed.</summary>
    private static readonly uint* s_gen = InitGenerations();

    private static uint* InitGenerations()
    {
        var g = (uint*)NativeMemory.Alloc(GenCount, sizeof(uint));
        new Span<uint>(g, GenCount).Fill(1);
        return g;
    }

    private static ulong Encode(uint tag, int slot, uint gen) => (ulong)gen << 32 | (ulong)tag << 24 | (uint)slot;

    private static void Retire(int genIndex)
    {
        uint next = s_gen[genIndex] + 1;
        Volatile.Write(ref s_gen[genIndex], next == 0 ? 1 : next);
    }

    // ---- lookups (lock-free) --------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static MachineEntry? Machine(MachineHandle h)
    {
        uint slot = (uint)h.Value & 0xff_ffff;
        var t = s_machines;
        if (slot < (uint)t.Length && t[slot] is { } e && e.Handle == h.Value)
            return e;
        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CpuEntry? Cpu(CpuHandle h)
    {
        uint slot = (uint)h.Value & 0xff_ffff;
        var t = s_cpus;
        if (slot < (uint)t.Length && t[slot] is { } e && e.Handle == h.Value)
            return e;
        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CacheEntry? Cache(CacheHandle h)
    {
        uint slot = (uint)h.Value & 0xff_ffff;
        var t = s_caches;
        if (slot < (uint)t.Length && t[slot] is { } e && e.Handle == h.Value)
            return e;
        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ProcessEntry? Process(ProcessHandle h)
    {
        uint slot = (uint)h.Value & 0xff_ffff;
        var t = s_processes;
        if (slot < (uint)t.Length && t[slot] is { } e && e.Handle == h.Value)
            return e;
        return null;
    }

    /// <summary>Native address of the live generation word of a CPU handle slot.</summary>
    public static uint* CpuGenWord(CpuEntry c) => s_gen + GenCpus + c.Slot;

    /// <summary>Native address of the live generation word of a cache handle slot.</summary>
    public static uint* CacheGenWord(CacheEntry k) => s_gen + GenCaches + k.Slot;

    // ---- machines -------------------------------------------------------------------------------------

    /// <summary>Registers a booted machine; null when the table is full.</summary>
    public static MachineEntry? AddMachine(Machine machine, bool checkOwner)
    {
        lock (Lock)
        {
            for (int i = 0; i < s_machines.Length; i++)
            {
                if (s_machines[i] is null)
                {
                    var e = new MachineEntry(Encode(TagMachine, i, s_gen[GenMachines + i]), i, machine, checkOwner);
                    Volatile.Write(ref s_machines[i], e);
                    return e;
                }
            }
        }
        return null;
    }

    /// <summary>Retires the machine's handle and every CPU, cache and process handle of it; the caller disposes the machine.</summary>
    public static void RemoveMachine(MachineEntry m)
    {
        lock (Lock)
        {
            if (!ReferenceEquals(s_machines[m.Slot], m))
                return;
            Retire(GenMachines + m.Slot);
            s_machines[m.Slot] = null;
            for (int id = 0; id < MaxCpusPerMachine; id++)
            {
                int slot = m.Slot * MaxCpusPerMachine + id;
                if (s_cpus[slot] is not null)
                {
                    Retire(GenCpus + slot);
                    s_cpus[slot] = null;
                }
            }
            foreach (int slot in m.Caches.Values)
            {
                Retire(GenCaches + slot);
                s_caches[slot] = null;
            }
            m.Caches.Clear();
            foreach (int slot in m.Processes.Values)
            {
                Retire(GenProcesses + slot);
                s_processes[slot] = null;
            }
            m.Processes.Clear();
        }
    }

    // ---- CPUs -----------------------------------------------------------------------------------------

    /// <summary>The entry of a CPU the calling thread just claimed: the existing one if this thread holds it already.</summary>
    public static CpuEntry AddCpu(MachineEntry m, Cpu cpu)
    {
        int slot = m.Slot * MaxCpusPerMachine + cpu.Id;
        int me = Environment.CurrentManagedThreadId;
        lock (Lock)
        {
            if (s_cpus[slot] is { } old)
            {
                if (old.OwnerThreadId == me)
                    return old;
                Retire(GenCpus + slot);     // its previous owner is gone: that handle is stale now
            }
            var e = new CpuEntry(Encode(TagCpu, slot, s_gen[GenCpus + slot]), slot, m, cpu, me);
            Volatile.Write(ref s_cpus[slot], e);
            return e;
        }
    }

    public static void RemoveCpu(CpuEntry c)
    {
        lock (Lock)
        {
            if (!ReferenceEquals(s_cpus[c.Slot], c))
                return;
            Retire(GenCpus + c.Slot);
            s_cpus[c.Slot] = null;
        }
    }

    /// <summary>
    /// The first free slot of <paramref name="table"/> from the rotating <paramref name="hint"/> (so a retired slot,
    /// and its generation, is reused as late as possible), or -1 when the table is full. Under <see cref="Lock"/>.
    /// </summary>
    private static int FreeSlot<T>(T?[] table, ref int hint) where T : class
    {
        for (int n = 0; n < table.Length; n++)
        {
            int i = (hint + n) % table.Length;
            if (table[i] is null)
            {
                hint = i + 1;
                return i;
            }
        }
        return -1;
    }

    // ---- caches ---------------------------------------------------------------------------------------

    /// <summary>The handle of a cache (the existing one when C already holds one); null when the table is full.</summary>
    public static CacheEntry? AddCache(MachineEntry m, KmemCache cache)
    {
        lock (Lock)
        {
            if (m.Caches.TryGetValue(cache, out int existing) && s_caches[existing] is { } old)
                return old;
            int i = FreeSlot(s_caches, ref s_cacheHint);
            if (i < 0)
                return null;
            var e = new CacheEntry(Encode(TagCache, i, s_gen[GenCaches + i]), i, m, cache);
            Volatile.Write(ref s_caches[i], e);
            m.Caches[cache] = i;
            return e;
        }
    }

    public static void RemoveCache(CacheEntry k)
    {
        lock (Lock)
        {
            if (!ReferenceEquals(s_caches[k.Slot], k))
                return;
            Retire(GenCaches + k.Slot);
            s_caches[k.Slot] = null;
            k.M.Caches.Remove(k.Cache);
        }
    }

    // ---- processes ------------------------------------------------------------------------------------

    /// <summary>
    /// The handle of a live process (the existing one when C already holds one); null when the table is full or
    /// the machine's handle was retired meanwhile (kmem_machine_destroy racing with the call: a misuse).
    /// </summary>
    public static ProcessEntry? AddProcess(MachineEntry m, Process process)
    {
        lock (Lock)
        {
            if (!ReferenceEquals(s_machines[m.Slot], m))
                return null;
            if (m.Processes.TryGetValue(process, out int existing) && s_processes[existing] is { } old)
                return old;
            int i = FreeSlot(s_processes, ref s_processHint);
            if (i < 0)
                return null;
            var e = new ProcessEntry(Encode(TagProcess, i, s_gen[GenProcesses + i]), i, m, process);
            Volatile.Write(ref s_processes[i], e);
            m.Processes[process] = i;
            return e;
        }
    }

    /// <summary>Retires a process handle (after exit: the task and its mm are gone).</summary>
    public static void RemoveProcess(ProcessEntry p)
    {
        lock (Lock)
        {
            if (!ReferenceEquals(s_processes[p.Slot], p))
                return;
            Retire(GenProcesses + p.Slot);
            s_processes[p.Slot] = null;
            p.M.Processes.Remove(p.Process);
        }
    }
}
