using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using KmemNative.Diagnostics;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Slab;

namespace KmemNative.Interop;

/// <summary>Linux errno values the C ABI returns negated (kmem.h KMEM_E*).</summary>
internal static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14,
        EBUSY = 16, EEXIST = 17, EINVAL = 22, ENOSPC = 28, ENOSYS = 38, EPROTO = 71, EOVERFLOW = 75;
}

/// <summary>
/// The per-thread error state behind kmem_last_error()/kmem_last_errno()/kmem_last_fault(): set only when a call
/// fails (the success paths never touch it), kept in a native buffer that C reads until the thread's next failure.
/// Every Fail* method is out of line so that the exports' fast paths stay small.
/// </summary>
internal static unsafe class LastError
{
    [ThreadStatic] private static byte* t_buf;
    [ThreadStatic] private static int t_cap;
    [ThreadStatic] private static int t_errno;
    [ThreadStatic] private static bool t_hasFault;
    [ThreadStatic] private static PageFault t_fault;

    private static readonly byte s_empty = 0;

    /// <summary>The message as a NUL-terminated UTF-8 string owned by the thread ("" before any failure).</summary>
    public static byte* Message => t_buf != null ? t_buf : (byte*)Unsafe.AsPointer(ref Unsafe.AsRef(in s_empty));

    public static int Code => t_errno;

    public static bool TryGetFault(out PageFault fault)
    {
        fault = t_fault;
        return t_hasFault;
    }

    /// <summary>Records a failure and returns <c>-errno</c>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int Set(int errno, string message)
    {
        t_errno = -errno;
        t_hasFault = false;
        int n = Encoding.UTF8.GetByteCount(message);
        if (t_cap < n + 1)
        {
            int cap = Math.Max(256, n + 1);
            t_buf = (byte*)NativeMemory.Realloc(t_buf, (nuint)cap);
            t_cap = cap;
        }
        fixed (char* c = message)
            Encoding.UTF8.GetBytes(c, message.Length, t_buf, t_cap);
        t_buf[n] = 0;
        return -errno;
    }

    /// <summary>Records an exception caught at the boundary and returns <c>-errno</c>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int Set(Exception e, string function)
    {
        int rc = Set(ErrnoOf(e), $"{function}: {MessageOf(e)}");
        if (e is PageFaultException pf)
            SetFault(pf.Fault);
        return rc;
    }

    /// <summary>Records a page fault (after <see cref="Set(int, string)"/>).</summary>
    public static void SetFault(in PageFault fault)
    {
        t_fault = fault;
        t_hasFault = true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int BadHandle(string function, string what) =>
        Set(Errno.EBADF, $"{function}: bad {what} handle (never created, released, destroyed, or of another type)");

    /// <summary>The errno an exception of the library stands for.</summary>
    public static int ErrnoOf(Exception e) => e switch
    {
        ObjectDisposedException => Errno.EBADF,
        CpuUnavailableException => Errno.EBUSY,
        PhysicalAddressException or VirtualAddressException or PageFaultException => Errno.EFAULT,
        SlabBugException sb => sb.Bug == SlabBug.ObjectsRemaining ? Errno.EBUSY : Errno.EINVAL,
        SlabCacheException sc when CreateErrno(sc.Message) is > 0 and var errno => errno,
        ProcFileNotFoundException => Errno.ENOENT,
        SyscallException sys => (int)sys.Error,
        KernelPanicException or ConsistencyException or TlbCoherenceException or MmCorruptException => Errno.EIO,
        OutOfMemoryException or InsufficientExecutionStackException => Errno.ENOMEM,
        MachineConfigException or InvalidAllocationException or GfpFormatException or MappingException or BadPageException
            or SlabCacheException or ArgumentException or FormatException => Errno.EINVAL,
        KmemException k when k.GetType() == typeof(KmemException) && MessageErrno(k.Message) is > 0 and var errno => errno,
        KmemException => Errno.EINVAL,
        _ => Errno.EIO,
    };

    /// <summary>kmem_cache_create()'s failure message carries the kernel's errno ("failed with error -17: ..."); 0 if not.</summary>
    private static int CreateErrno(string message)
    {
        const string marker = "failed with error -";
        int i = message.IndexOf(marker, StringComparison.Ordinal);
        if (i < 0)
            return 0;
        int n = 0;
        for (i += marker.Length; i < message.Length && char.IsAsciiDigit(message[i]); i++)
            n = n * 10 + (message[i] - '0');
        return n;
    }

    /// <summary>
    /// The errno a plain KmemException names in its text, as the process subsystem writes it ("fork(): no free pid
    /// (-EAGAIN)", "execve(...): -ENOMEM (Cannot allocate memory)"); 0 if none.
    /// </summary>
    private static int MessageErrno(string message)
    {
        for (int i = message.IndexOf("-E", StringComparison.Ordinal); i >= 0; i = message.IndexOf("-E", i + 2, StringComparison.Ordinal))
        {
            int end = i + 1;
            while (end < message.Length && (char.IsAsciiLetterUpper(message[end]) || char.IsAsciiDigit(message[end])))
                end++;
            if (Enum.TryParse(message.AsSpan(i + 1, end - i - 1), out Mm.Errno e) && e != Mm.Errno.None)
                return (int)e;
        }
        return 0;
    }

    /// <summary>
    /// The exception's text without the "(Parameter 'x')" that ArgumentException appends (with
    /// UseSystemResourceKeys, as this library is published, that suffix is the bare resource key).
    /// </summary>
    private static string MessageOf(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: not null })
        {
            int i = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
            if (i < 0)
                i = message.IndexOf(" Arg_ParamName_Name", StringComparison.Ordinal);
            if (i > 0)
                message = message[..i];
        }
        return message;
    }
}
