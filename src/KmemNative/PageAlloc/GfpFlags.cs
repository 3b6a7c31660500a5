using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.PageAlloc;

/// <summary>What the kernel derives from GFP flags: the zone, the migratetype, and its printed form.</summary>
public static class GfpFlags
{
    /// <summary>__GFP_BITS_MASK: every bit Linux 6.18 defines on x86 (bit 9 is unused).</summary>
    public const uint ValidMask = 0x1ff_fdff;

    /// <summary>GFP_ZONEMASK.</summary>
    public const uint ZoneMask = 0xf;

    /// <summary>GFP_ZONE_BAD: zone-modifier combinations that name no zone.</summary>
    public const uint ZoneBad = 0xe8e8;

    /// <summary>GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE, shifted by GFP_MOVABLE_SHIFT 3.</summary>
    private const int MovableShift = 3;

    /// <summary>
    /// The <c>__print_flags</c> table of the 6.18 tracepoints (show_gfp_flags): composites first, then single bits.
    /// The order matters: it decides which names a value prints as.
    /// </summary>
    public static ReadOnlySpan<(uint Mask, string Name)> PrintTable => s_printTable;

    private static readonly (uint, string)[] s_printTable =
    [
        ((uint)Gfp.TransHuge, "GFP_TRANSHUGE"),
        ((uint)Gfp.TransHugeLight, "GFP_TRANSHUGE_LIGHT"),
        ((uint)Gfp.HighUserMovable, "GFP_HIGHUSER_MOVABLE"),
        ((uint)Gfp.HighUser, "GFP_HIGHUSER"),
        ((uint)Gfp.User, "GFP_USER"),
        ((uint)Gfp.KernelAccount, "GFP_KERNEL_ACCOUNT"),
        ((uint)Gfp.Kernel, "GFP_KERNEL"),
        ((uint)Gfp.NoFs, "GFP_NOFS"),
        ((uint)Gfp.Atomic, "GFP_ATOMIC"),
        ((uint)Gfp.NoIo, "GFP_NOIO"),
        ((uint)Gfp.NoWait, "GFP_NOWAIT"),
        ((uint)Gfp.Dma, "GFP_DMA"),
        ((uint)Gfp.Dma32, "GFP_DMA32"),
        ((uint)Gfp.Reclaim, "__GFP_RECLAIM"),
        ((uint)Gfp.Dma, "__GFP_DMA"),
        ((uint)Gfp.HighMem, "__GFP_HIGHMEM"),
        ((uint)Gfp.Dma32, "__GFP_DMA32"),
        ((uint)Gfp.Movable, "__GFP_MOVABLE"),
        ((uint)Gfp.Reclaimable, "__GFP_RECLAIMABLE"),
        ((uint)Gfp.High, "__GFP_HIGH"),
        ((uint)Gfp.Io, "__GFP_IO"),
        ((uint)Gfp.Fs, "__GFP_FS"),
        ((uint)Gfp.Zero, "__GFP_ZERO"),
        ((uint)Gfp.DirectReclaim, "__GFP_DIRECT_RECLAIM"),
        ((uint)Gfp.KswapdReclaim, "__GFP_KSWAPD_RECLAIM"),
        ((uint)Gfp.Write, "__GFP_WRITE"),
        ((uint)Gfp.NoWarn, "__GFP_NOWARN"),
        ((uint)Gfp.RetryMayFail, "__GFP_RETRY_MAYFAIL"),
        ((uint)Gfp.NoFail, "__GFP_NOFAIL"),
        ((uint)Gfp.NoRetry, "__GFP_NORETRY"),
        ((uint)Gfp.Memalloc, "__GFP_MEMALLOC"),
        ((uint)Gfp.Comp, "__GFP_COMP"),
        ((uint)Gfp.NoMemalloc, "__GFP_NOMEMALLOC"),
        ((uint)Gfp.Hardwall, "__GFP_HARDWALL"),
        ((uint)Gfp.ThisNode, "__GFP_THISNODE"),
        ((uint)Gfp.Account, "__GFP_ACCOUNT"),
        ((uint)Gfp.ZeroTags, "__GFP_ZEROTAGS"),
        ((uint)Gfp.NoObjExt, "__GFP_NO_OBJ_EXT"),
    ];

    /// <summary>
    /// The string <c>__print_flags(gfp, "|", ...)</c> produces: table names in table order, each clearing its bits,
    /// leftover bits as <c>0x%lx</c>, <c>none</c> for 0.
    /// </summary>
    public static string Format(Gfp gfp)
    {
        uint rest = (uint)gfp;
        if (rest == 0)
            return "none";
        var sb = new StringBuilder();
        foreach (var (mask, name) in s_printTable)
        {
            if ((rest & mask) == mask && rest != 0)
            {
                if (sb.Length > 0)
                    sb.Append('|');
                sb.Append(name);
                rest &= ~mask;
            }
        }
        if (rest != 0)
        {
            if (sb.Length > 0)
                sb.Append('|');
            sb.Append("0x").Append(rest.ToString("x", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>
    /// Parses a kernel-format string (<c>GFP_KERNEL|__GFP_ZERO</c>, <c>none</c>, names with or without the
    /// prefix) or a number (<c>0xcc0</c>, <c>3264</c>), or a mix joined by <c>|</c>.
    /// </summary>
    /// <exception cref="GfpFormatException">A part is neither a known name nor a number.</exception>
    public static Gfp Parse(string text)
    {
        if (!TryParse(text, out var gfp, out var error))
            throw new GfpFormatException(error!);
        return gfp;
    }

    /// <summary>Non-throwing <see cref="Parse"/>.</summary>
    public static bool TryParse(string text, out Gfp gfp, out string? error)
    {
        gfp = Gfp.None;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty GFP value";
            return false;
        }
        uint value = 0;
        foreach (var raw in text.Split('|'))
        {
            var part = raw.Trim();
            if (part.Length == 0)
            {
                error = $"empty part in GFP value '{text}'";
                return false;
            }
            if (part.Equals("none", StringComparison.OrdinalIgnoreCase) || part == "0")
                continue;
            if (TryNumber(part, out uint n))
            {
                value |= n;
                continue;
            }
            if (!TryName(part, out uint bits))
            {
                error = $"unknown GFP flag '{part}' (expected names like GFP_KERNEL or __GFP_ZERO, or a number like 0xcc0)";
                return false;
            }
            value |= bits;
        }
        gfp = (Gfp)value;
        return true;
    }

    private static bool TryNumber(string s, out uint n)
    {
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return uint.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out n);
        return uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n);
    }

    private static bool TryName(string part, out uint bits)
    {
        foreach (var (mask, name) in s_printTable)
        {
            if (part.Equals(name, StringComparison.OrdinalIgnoreCase) ||
                part.Equals(name.TrimStart('_').Replace("GFP_", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase))
            {
                bits = mask;
                return true;
            }
        }
        foreach (var (mask, name) in s_extraNames)
        {
            if (part.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                bits = mask;
                return true;
            }
        }
        bits = 0;
        return false;
    }

    // Kernel composites that the tracepoint table does not print but people write.
    private static readonly (uint, string)[] s_extraNames =
    [
        ((uint)Gfp.HighMem, "GFP_HIGHMEM"),
    ];

    /// <summary>Bits outside <see cref="ValidMask"/>, or 0.</summary>
    public static uint UnknownBits(Gfp gfp) => (uint)gfp & ~ValidMask;

    /// <summary>gfp_migratetype(): 0 unmovable, 1 movable, 2 reclaimable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static MigrateType Migratetype(Gfp gfp) => (MigrateType)(((uint)gfp & (uint)(Gfp.Reclaimable | Gfp.Movable)) >> MovableShift);

    /// <summary>True when the zone modifiers name a zone (not a GFP_ZONE_BAD combination).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ZoneValid(Gfp gfp) => ((ZoneBad >> (int)((uint)gfp & ZoneMask)) & 1) == 0;

    /// <summary>gfp_zone(): the highest zone index the allocation may use, for a profile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Zone<TArch>(Gfp gfp) where TArch : struct, IArch =>
        (int)((TArch.GfpZoneTable >> (int)(((uint)gfp & ZoneMask) * 2)) & 3);

    /// <summary>gfp_zone() for a profile named at run time (diagnostics and the CLI).</summary>
    public static ZoneType ZoneType(Gfp gfp, ArchKind arch) => arch == ArchKind.I386
        ? I386.ZoneTypes[Zone<I386>(gfp)]
        : X86_64.ZoneTypes[Zone<X86_64>(gfp)];

    /// <summary>gfpflags_allow_blocking(): __GFP_DIRECT_RECLAIM is set.</summary>
    public static bool AllowBlocking(Gfp gfp) => (gfp & Gfp.DirectReclaim) != 0;

    /// <summary>Number of set bits, for diagnostics.</summary>
    public static int BitCount(Gfp gfp) => BitOperations.PopCount((uint)gfp);
}
