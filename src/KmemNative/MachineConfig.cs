using System.Globalization;
using KmemNative.Arch;

namespace KmemNative;

/// <summary>What to boot: architecture profile, installed RAM, number of CPUs, and boot parameters.</summary>
public sealed record MachineConfig
{
    /// <summary>Smallest machine that boots: 16 MiB.</summary>
    public const ulong MinMemBytes = 16UL << 20;

    /// <summary>The architecture profile (default i386, as in the seed notes).</summary>
    public ArchKind Arch { get; init; } = ArchKind.I386;

    /// <summary>Installed RAM in bytes (default 1 GiB).</summary>
    public ulong MemBytes { get; init; } = 1UL << 30;

    /// <summary>Number of emulated CPUs (default 2).</summary>
    public int Cpus { get; init; } = 2;

    /// <summary>
    /// CR4.PSE on i386: the kernel maps lowmem with 4 MiB pages. False maps it with 4 KiB page tables (a CPU
    /// without PSE). x86-64 always has large pages and ignores this.
    /// </summary>
    public bool Pse { get; init; } = true;

    /// <summary>Boot with TLB statistics mode on (hits counted; see <see cref="Machine.TlbStatistics"/>). The kmem CLI turns it on.</summary>
    public bool TlbStatistics { get; init; }

    /// <summary>vm.min_free_kbytes set by the user, or -1 for the kernel's computed value.</summary>
    public long MinFreeKbytes { get; init; } = -1;

    /// <summary>
    /// The slab_debug= boot parameter (OPTIONS[,CACHES][;...], e.g. "FZPU,kmalloc-32"; "" for full debugging of
    /// every cache), or null for none.
    /// </summary>
    public string? SlabDebug { get; init; }

    /// <summary>CONFIG_SLAB_FREELIST_HARDENED: store free pointers as ptr ^ s-&gt;random ^ swab(address).</summary>
    public bool SlabFreelistHardened { get; init; }

    /// <summary>Parses an architecture name: i386 (also x86, i686) or x86_64 (also x86-64, amd64).</summary>
    /// <exception cref="MachineConfigException">Unknown name.</exception>
    public static ArchKind ParseArch(string text) => text.Trim().ToLowerInvariant() switch
    {
        "i386" or "x86" or "i686" or "x86_32" => ArchKind.I386,
        "x86_64" or "x86-64" or "amd64" or "x64" => ArchKind.X86_64,
        _ => throw new MachineConfigException($"unknown architecture '{text}' (expected i386 or x86_64)"),
    };

    /// <summary>The profile's <c>uname -m</c> name.</summary>
    public static string ArchName(ArchKind arch) => arch == ArchKind.I386 ? "i386" : "x86_64";

    /// <summary>
    /// Parses a size as the kernel's memparse() does: a number (decimal or 0x hex) with an optional K, M, G or T
    /// suffix (KiB/MiB/... and B accepted); no suffix means bytes.
    /// </summary>
    /// <exception cref="MachineConfigException">Not a size.</exception>
    public static ulong ParseSize(string text)
    {
        string s = text.Trim();
        int shift = 0;
        string upper = s.ToUpperInvariant();
        foreach (var (suffix, sh) in new[] { ("KIB", 10), ("MIB", 20), ("GIB", 30), ("TIB", 40), ("KB", 10), ("MB", 20), ("GB", 30), ("TB", 40), ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("B", 0) })
        {
            if (upper.EndsWith(suffix, StringComparison.Ordinal) && !(suffix == "B" && upper.StartsWith("0X", StringComparison.Ordinal)))
            {
                shift = sh;
                s = s[..^suffix.Length];
                break;
            }
        }
        bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong n)
            : ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n);
        if (!ok || s.Length == 0)
            throw new MachineConfigException($"'{text}' is not a size (expected e.g. 16M, 1G, 0x4000000)");
        if (shift > 0 && n > ulong.MaxValue >> shift)
            throw new MachineConfigException($"size '{text}' is too large");
        return n << shift;
    }

    /// <summary>Checks the configuration against what the profile and the host allow.</summary>
    /// <exception cref="MachineConfigException">The machine cannot be booted.</exception>
    public void Validate()
    {
        if (MemBytes < MinMemBytes)
            throw new MachineConfigException($"--mem {MemBytes >> 20} MiB is too small: at least 16 MiB is needed");
        if (Arch == ArchKind.I386 && MemBytes > 4UL << 30)
            throw new MachineConfigException("--mem above 4 GiB cannot be addressed by a non-PAE i386 machine");
        if (Arch == ArchKind.X86_64 && MemBytes > 1UL << 46)
            throw new MachineConfigException("--mem above 64 TiB exceeds x86-64 4-level physical addressing");
        ulong host = (ulong)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (host > 0 && MemBytes > host)
            throw new MachineConfigException(
                $"--mem {MemBytes >> 20} MiB exceeds what this host can back ({host >> 20} MiB of RAM)");
        if (Cpus is < 1 or > 64)
            throw new MachineConfigException($"--cpus {Cpus}: between 1 and 64 CPUs are supported");
        try
        {
            Slab.SlabDebugOptions.Parse(SlabDebug);
        }
        catch (FormatException e)
        {
            throw new MachineConfigException(e.Message);
        }
    }
}
