using System.Runtime.InteropServices;

namespace KmemNative.Interop;

// Text views into a caller's buffer (snprintf semantics: the full length is returned, the copy is truncated).
internal static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "kmem_proc_read")]
    public static long ProcRead(MachineHandle h, byte* name, byte* buf, nuint size)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_proc_read", "machine");
            if (Utf8(name) is not { } n)
                return LastError.Set(Errno.EINVAL, "kmem_proc_read: name is NULL");
            return WriteText(m.Machine.Proc.Read(n), buf, size);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_proc_read");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_ptdump")]
    public static long Ptdump(MachineHandle h, byte* buf, nuint size)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_ptdump", "machine");
            return WriteText(m.Machine.Ptdump(null).Text, buf, size);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_ptdump");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_vtop")]
    public static long Vtop(MachineHandle h, ulong va, byte* buf, nuint size)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_vtop", "machine");
            return WriteText(m.Machine.Vtop(va), buf, size);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_vtop");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_dmesg")]
    public static long Dmesg(MachineHandle h, byte* buf, nuint size)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_dmesg", "machine");
            var lines = m.Machine.Log.Lines;
            return WriteText(lines.Count == 0 ? "" : string.Join('\n', lines) + "\n", buf, size);
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_dmesg");
        }
    }
}
