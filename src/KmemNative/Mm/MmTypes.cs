using System.Globalization;

namespace KmemNative.Mm;

/// <summary>
/// <c>vm_flags</c> of a <c>vm_area_struct</c> (include/linux/mm.h), with the kernel's bit values. On i386 the field
/// is 32 bits wide: the high flags do not exist there.
/// </summary>
[Flags]
public enum VmFlags : ulong
{
    /// <summary>VM_NONE.</summary>
    None = 0,
    /// <summary>VM_READ: pages can be read ("rd").</summary>
    Read = 0x0000_0001,
    /// <summary>VM_WRITE ("wr").</summary>
    Write = 0x0000_0002,
    /// <summary>VM_EXEC ("ex").</summary>
    Exec = 0x0000_0004,
    /// <summary>VM_SHARED ("sh").</summary>
    Shared = 0x0000_0008,
    /// <summary>VM_MAYREAD: mprotect() may add VM_READ ("mr").</summary>
    MayRead = 0x0000_0010,
    /// <summary>VM_MAYWRITE ("mw").</summary>
    MayWrite = 0x0000_0020,
    /// <summary>VM_MAYEXEC ("me").</summary>
    MayExec = 0x0000_0040,
    /// <summary>VM_MAYSHARE ("ms"): shows as 's' in /proc/PID/maps.</summary>
    MayShare = 0x0000_0080,
    /// <summary>VM_GROWSDOWN: a stack that grows down on faults below it ("gd").</summary>
    GrowsDown = 0x0000_0100,
    /// <summary>VM_UFFD_MISSING ("um").</summary>
    UffdMissing = 0x0000_0200,
    /// <summary>VM_PFNMAP ("pf").</summary>
    PfnMap = 0x0000_0400,
    /// <summary>VM_UFFD_WP ("uw").</summary>
    UffdWp = 0x0000_1000,
    /// <summary>VM_LOCKED ("lo").</summary>
    Locked = 0x0000_2000,
    /// <summary>VM_IO ("io").</summary>
    Io = 0x0000_4000,
    /// <summary>VM_SEQ_READ ("sr").</summary>
    SeqRead = 0x0000_8000,
    /// <summary>VM_RAND_READ ("rr").</summary>
    RandRead = 0x0001_0000,
    /// <summary>VM_DONTCOPY: not inherited by fork ("dc").</summary>
    DontCopy = 0x0002_0000,
    /// <summary>VM_DONTEXPAND ("de").</summary>
    DontExpand = 0x0004_0000,
    /// <summary>VM_LOCKONFAULT ("lf").</summary>
    LockOnFault = 0x0008_0000,
    /// <summary>VM_ACCOUNT: charged to Committed_AS ("ac").</summary>
    Account = 0x0010_0000,
    /// <summary>VM_NORESERVE ("nr").</summary>
    NoReserve = 0x0020_0000,
    /// <summary>VM_HUGETLB ("ht").</summary>
    Hugetlb = 0x0040_0000,
    /// <summary>VM_SYNC ("sf").</summary>
    Sync = 0x0080_0000,
    /// <summary>VM_ARCH_1 (x86: VM_PAT) ("ar").</summary>
    Arch1 = 0x0100_0000,
    /// <summary>VM_WIPEONFORK ("wf").</summary>
    WipeOnFork = 0x0200_0000,
    /// <summary>VM_DONTDUMP ("dd").</summary>
    DontDump = 0x0400_0000,
    /// <summary>VM_SOFTDIRTY (CONFIG_MEM_SOFT_DIRTY: x86-64 only) ("sd").</summary>
    SoftDirty = 0x0800_0000,
    /// <summary>VM_MIXEDMAP ("mm").</summary>
    MixedMap = 0x1000_0000,
    /// <summary>VM_HUGEPAGE ("hg").</summary>
    HugePage = 0x2000_0000,
    /// <summary>VM_NOHUGEPAGE ("nh").</summary>
    NoHugePage = 0x4000_0000,
    /// <summary>VM_MERGEABLE ("mg").</summary>
    Mergeable = 0x8000_0000,

    /// <summary>VM_STACK = VM_GROWSDOWN on x86.</summary>
    Stack = GrowsDown,
    /// <summary>VM_ACCESS_FLAGS.</summary>
    AccessFlags = Read | Write | Exec,
    /// <summary>VM_SPECIAL: never merged, never mlocked.</summary>
    Special = Io | DontExpand | PfnMap | MixedMap,
    /// <summary>VM_DATA_DEFAULT_FLAGS on x86 (VM_DATA_FLAGS_TSK_EXEC without READ_IMPLIES_EXEC) = 0x73.</summary>
    DataDefault = Read | Write | MayRead | MayWrite | MayExec,
    /// <summary>VM_STACK_FLAGS = VM_STACK | VM_STACK_DEFAULT_FLAGS | VM_ACCOUNT = 0x100173.</summary>
    StackFlags = Stack | DataDefault | Account,
}

/// <summary>mmap()/mprotect() protection bits (include/uapi/asm-generic/mman-common.h).</summary>
[Flags]
public enum Prot : uint
{
    /// <summary>PROT_NONE.</summary>
    None = 0,
    /// <summary>PROT_READ.</summary>
    Read = 0x1,
    /// <summary>PROT_WRITE.</summary>
    Write = 0x2,
    /// <summary>PROT_EXEC.</summary>
    Exec = 0x4,
    /// <summary>PROT_SEM.</summary>
    Sem = 0x8,
    /// <summary>PROT_GROWSDOWN (mprotect only).</summary>
    GrowsDown = 0x0100_0000,
    /// <summary>PROT_GROWSUP (mprotect only).</summary>
    GrowsUp = 0x0200_0000,
}

/// <summary>mmap() flags (asm-generic/mman-common.h, x86's asm/mman.h).</summary>
[Flags]
public enum MapFlags : uint
{
    /// <summary>No flag (MAP_FILE is 0).</summary>
    None = 0,
    /// <summary>MAP_SHARED.</summary>
    Shared = 0x01,
    /// <summary>MAP_PRIVATE.</summary>
    Private = 0x02,
    /// <summary>MAP_SHARED_VALIDATE: MAP_SHARED that rejects unknown flags.</summary>
    SharedValidate = 0x03,
    /// <summary>MAP_TYPE mask.</summary>
    Type = 0x0f,
    /// <summary>MAP_FIXED: exactly at addr, replacing what is there.</summary>
    Fixed = 0x10,
    /// <summary>MAP_ANONYMOUS.</summary>
    Anonymous = 0x20,
    /// <summary>MAP_32BIT (x86-64).</summary>
    Map32Bit = 0x40,
    /// <summary>MAP_GROWSDOWN: a stack-like mapping.</summary>
    GrowsDown = 0x0100,
    /// <summary>MAP_DENYWRITE (ignored).</summary>
    DenyWrite = 0x0800,
    /// <summary>MAP_EXECUTABLE (ignored).</summary>
    Executable = 0x1000,
    /// <summary>MAP_LOCKED.</summary>
    Locked = 0x2000,
    /// <summary>MAP_NORESERVE.</summary>
    NoReserve = 0x4000,
    /// <summary>MAP_POPULATE: prefault the pages.</summary>
    Populate = 0x8000,
    /// <summary>MAP_NONBLOCK.</summary>
    NonBlock = 0x10000,
    /// <summary>MAP_STACK.</summary>
    StackHint = 0x20000,
    /// <summary>MAP_HUGETLB.</summary>
    HugeTlb = 0x40000,
    /// <summary>MAP_SYNC.</summary>
    Sync = 0x80000,
    /// <summary>MAP_FIXED_NOREPLACE: exactly at addr, -EEXIST if something is there.</summary>
    FixedNoReplace = 0x100000,
}

/// <summary>madvise() advice values (asm-generic/mman-common.h).</summary>
public enum Madvise
{
    /// <summary>MADV_NORMAL.</summary>
    Normal = 0,
    /// <summary>MADV_RANDOM.</summary>
    Random = 1,
    /// <summary>MADV_SEQUENTIAL.</summary>
    Sequential = 2,
    /// <summary>MADV_WILLNEED.</summary>
    WillNeed = 3,
    /// <summary>MADV_DONTNEED: zap the pages; the next access faults in fresh ones.</summary>
    DontNeed = 4,
    /// <summary>MADV_DONTFORK.</summary>
    DontFork = 10,
    /// <summary>MADV_DOFORK.</summary>
    DoFork = 11,
    /// <summary>MADV_WIPEONFORK.</summary>
    WipeOnFork = 18,
    /// <summary>MADV_KEEPONFORK.</summary>
    KeepOnFork = 19,
}

/// <summary>The error numbers the memory syscalls return (include/uapi/asm-generic/errno-base.h, errno.h).</summary>
public enum Errno
{
    /// <summary>No error.</summary>
    None = 0,
    /// <summary>EPERM: operation not permitted.</summary>
    EPERM = 1,
    /// <summary>ENOENT.</summary>
    ENOENT = 2,
    /// <summary>ESRCH: no such process.</summary>
    ESRCH = 3,
    /// <summary>EINTR.</summary>
    EINTR = 4,
    /// <summary>EBADF: bad file descriptor.</summary>
    EBADF = 9,
    /// <summary>EAGAIN.</summary>
    EAGAIN = 11,
    /// <summary>ENOMEM: cannot allocate memory.</summary>
    ENOMEM = 12,
    /// <summary>EACCES: permission denied.</summary>
    EACCES = 13,
    /// <summary>EFAULT: bad address.</summary>
    EFAULT = 14,
    /// <summary>EBUSY: device or resource busy.</summary>
    EBUSY = 16,
    /// <summary>EEXIST: file exists.</summary>
    EEXIST = 17,
    /// <summary>ENODEV.</summary>
    ENODEV = 19,
    /// <summary>EINVAL: invalid argument.</summary>
    EINVAL = 22,
    /// <summary>ETXTBSY.</summary>
    ETXTBSY = 26,
    /// <summary>EOVERFLOW.</summary>
    EOVERFLOW = 75,
    /// <summary>EOPNOTSUPP.</summary>
    EOPNOTSUPP = 95,
}

/// <summary>Text for <see cref="Errno"/> values, as strerror() spells them.</summary>
public static class ErrnoText
{
    /// <summary>strerror().</summary>
    public static string Message(Errno e) => e switch
    {
        Errno.None => "Success",
        Errno.EPERM => "Operation not permitted",
        Errno.ENOENT => "No such file or directory",
        Errno.ESRCH => "No such process",
        Errno.EINTR => "Interrupted system call",
        Errno.EBADF => "Bad file descriptor",
        Errno.EAGAIN => "Resource temporarily unavailable",
        Errno.ENOMEM => "Cannot allocate memory",
        Errno.EACCES => "Permission denied",
        Errno.EFAULT => "Bad address",
        Errno.EBUSY => "Device or resource busy",
        Errno.EEXIST => "File exists",
        Errno.ENODEV => "No such device",
        Errno.EINVAL => "Invalid argument",
        Errno.ETXTBSY => "Text file busy",
        Errno.EOVERFLOW => "Value too large for defined data type",
        Errno.EOPNOTSUPP => "Operation not supported",
        _ => $"Unknown error {(int)e}",
    };
}

/// <summary>
/// A system call's return: a value (an address, a pid, a file descriptor, 0) or an error number, as the kernel
/// returns <c>-errno</c> in the same register. Syscall errors are results, not exceptions.
/// </summary>
public readonly record struct SysResult(ulong Value, Errno Error)
{
    /// <summary>True when the call succeeded.</summary>
    public bool IsOk => Error == Errno.None;

    /// <summary>A success.</summary>
    public static SysResult Ok(ulong value) => new(value, Errno.None);

    /// <summary>A failure.</summary>
    public static SysResult Fail(Errno error) => new(0, error);

    /// <summary>The raw return value: the value, or -errno.</summary>
    public long Raw => IsOk ? (long)Value : -(long)Error;

    /// <summary>The value, or an exception naming the error (for callers that treat failure as a bug).</summary>
    /// <exception cref="SyscallException">The call failed.</exception>
    public ulong Unwrap() => IsOk ? Value : throw new SyscallException(Error, $"-{Error} ({ErrnoText.Message(Error)})");

    /// <summary><c>0</c> or <c>0x7f..</c> for a success, <c>-ENOMEM (Cannot allocate memory)</c> for a failure.</summary>
    public override string ToString() =>
        !IsOk ? $"-{Error} ({ErrnoText.Message(Error)})" : Value == 0 ? "0" : "0x" + Value.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>A syscall failure turned into an exception by <see cref="SysResult.Unwrap"/>.</summary>
public sealed class SyscallException(Errno error, string message) : KmemException(message)
{
    /// <summary>The error.</summary>
    public Errno Error { get; } = error;
}

/// <summary>Signal numbers the memory manager sends.</summary>
public enum Signal
{
    /// <summary>No signal.</summary>
    None = 0,
    /// <summary>SIGBUS (7).</summary>
    SIGBUS = 7,
    /// <summary>SIGKILL (9): the OOM killer.</summary>
    SIGKILL = 9,
    /// <summary>SIGSEGV (11).</summary>
    SIGSEGV = 11,
}

/// <summary>si_code of a SIGSEGV/SIGBUS (include/uapi/asm-generic/siginfo.h); <see cref="SigInfo.RawCode"/> gives the kernel's number.</summary>
public enum SiCode
{
    /// <summary>Not a memory fault.</summary>
    None = 0,
    /// <summary>SEGV_MAPERR (1): no mapping at the address.</summary>
    SEGV_MAPERR = 1,
    /// <summary>SEGV_ACCERR (2): the mapping forbids the access.</summary>
    SEGV_ACCERR = 2,
    /// <summary>BUS_ADRERR (SIGBUS code 2): the mapping has no page there (beyond the end of its file).</summary>
    BUS_ADRERR = 3,
}

/// <summary>The siginfo of a memory fault delivered to a process.</summary>
/// <param name="Signal">SIGSEGV, SIGBUS or SIGKILL (out of memory).</param>
/// <param name="Code">si_code.</param>
/// <param name="Address">si_addr: the faulting address (CR2).</param>
/// <param name="ErrorCode">The x86 page-fault error code.</param>
public readonly record struct SigInfo(Signal Signal, SiCode Code, ulong Address, uint ErrorCode)
{
    /// <summary>si_code as the kernel numbers it (BUS_ADRERR is 2 in SIGBUS's namespace).</summary>
    public int RawCode => Code == SiCode.BUS_ADRERR ? 2 : (int)Code;

    /// <summary>"SIGSEGV at 0x... (SEGV_MAPERR, error 0x6)".</summary>
    public override string ToString()
    {
        string code = Code == SiCode.None ? "-" : Code.ToString();
        return string.Create(CultureInfo.InvariantCulture, $"{Signal} at 0x{Address:x} ({code}, error 0x{ErrorCode:x})");
    }
}

/// <summary>What an access of a range as the process did.</summary>
/// <param name="Pages">Pages accessed successfully.</param>
/// <param name="MinorFaults">Minor faults taken (min_flt delta).</param>
/// <param name="MajorFaults">Major faults taken (maj_flt delta).</param>
/// <param name="Signal">The signal the access raised, if it stopped on one.</param>
public readonly record struct AccessResult(long Pages, long MinorFaults, long MajorFaults, SigInfo? Signal)
{
    /// <summary>True when every page was accessed.</summary>
    public bool IsOk => Signal is null;
}
