using System.Globalization;
using System.Text;
using KmemNative.Arch;
using KmemNative.Slab;

namespace KmemNative.Trace;

/// <summary>What an emulator annotation line says (see <see cref="TraceAnnotation"/>).</summary>
public enum TraceAnnotationKind
{
    /// <summary>Not an annotation.</summary>
    None,
    /// <summary><c># kmemnative: machine arch=x86_64 mem=2048M cpus=2</c>.</summary>
    Machine,
    /// <summary><c># kmemnative: kmem_cache_create cpu=0 name=foo size=100 align=8 flags=0x0 ctor=false sheaf=0</c>.</summary>
    KmemCacheCreate,
    /// <summary><c># kmemnative: kmem_cache_destroy cpu=0 name=foo</c>.</summary>
    KmemCacheDestroy,
}

/// <summary>A parsed annotation.</summary>
/// <param name="Kind">Which one.</param>
/// <param name="Cpu">The CPU (cache annotations).</param>
/// <param name="Name">The cache name (cache annotations).</param>
/// <param name="Size">Object size (create).</param>
/// <param name="Align">Alignment (create).</param>
/// <param name="Flags">The flags kmem_cache_create() was given (create).</param>
/// <param name="Ctor">The cache had a constructor (create): a replay gives it one that does nothing.</param>
/// <param name="SheafCapacity">kmem_cache_args.sheaf_capacity (create).</param>
/// <param name="Arch">The machine's profile (machine).</param>
/// <param name="MemBytes">The machine's RAM (machine).</param>
/// <param name="Cpus">The machine's CPUs (machine).</param>
public sealed record TraceAnnotationInfo(
    TraceAnnotationKind Kind, int Cpu = 0, string Name = "", uint Size = 0, uint Align = 0, SlabFlags Flags = SlabFlags.None,
    bool Ctor = false, int SheafCapacity = 0, ArchKind Arch = ArchKind.X86_64, ulong MemBytes = 0, int Cpus = 0);

/// <summary>
/// The emulator's annotations in a trace: comment lines (so every ftrace reader skips them) starting with
/// <c># kmemnative: </c>. The kernel has no tracepoint for cache creation and destruction; these lines let a replay
/// create a cache exactly where and how the recorded run did, and name the machine that recorded the trace.
/// </summary>
public static class TraceAnnotation
{
    /// <summary>The prefix of every annotation line.</summary>
    public const string Prefix = "# kmemnative: ";

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>The machine line.</summary>
    public static string FormatMachine(MachineConfig config) =>
        F($"{Prefix}machine arch={MachineConfig.ArchName(config.Arch)} mem={config.MemBytes >> 20}M cpus={config.Cpus}");

    /// <summary>The kmem_cache_create line of <paramref name="s"/>.</summary>
    public static string FormatCreate(int cpu, KmemCache s) =>
        F($"{Prefix}kmem_cache_create cpu={cpu} name={s.Name} size={s.ObjectSize} align={s.Align} flags=0x{(uint)s.CreateFlags:x} ctor={(s.Ctor is null ? "false" : "true")} sheaf={s.RequestedSheafCapacity}");

    /// <summary>The kmem_cache_destroy line.</summary>
    public static string FormatDestroy(int cpu, string name) => F($"{Prefix}kmem_cache_destroy cpu={cpu} name={name}");

    /// <summary>True when the (comment) line is an annotation.</summary>
    public static bool IsAnnotation(ReadOnlySpan<byte> line) => line.TrimStart((byte)' ').StartsWith("# kmemnative: "u8);

    /// <summary>Parses an annotation line; null when it is not one, is of an unknown kind, or does not parse (then <paramref name="error"/> says why).</summary>
    public static TraceAnnotationInfo? Parse(ReadOnlySpan<byte> line, out string? error)
    {
        error = null;
        string text = Encoding.ASCII.GetString(line.TrimStart((byte)' ')).TrimEnd('\r');
        if (!text.StartsWith(Prefix, StringComparison.Ordinal))
            return null;
        var words = text[Prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            error = "empty kmemnative annotation";
            return null;
        }
        var kv = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var w in words.Skip(1))
        {
            int eq = w.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                error = $"bad annotation field '{w}'";
                return null;
            }
            kv[w[..eq]] = w[(eq + 1)..];
        }
        try
        {
            return words[0] switch
            {
                "machine" => new TraceAnnotationInfo(TraceAnnotationKind.Machine,
                    Arch: MachineConfig.ParseArch(Need(kv, "arch")), MemBytes: MachineConfig.ParseSize(Need(kv, "mem")),
                    Cpus: int.Parse(Need(kv, "cpus"), CultureInfo.InvariantCulture)),
                "kmem_cache_create" => new TraceAnnotationInfo(TraceAnnotationKind.KmemCacheCreate,
                    Cpu: int.Parse(Need(kv, "cpu"), CultureInfo.InvariantCulture), Name: Need(kv, "name"),
                    Size: uint.Parse(Need(kv, "size"), CultureInfo.InvariantCulture),
                    Align: uint.Parse(Need(kv, "align"), CultureInfo.InvariantCulture),
                    Flags: (SlabFlags)uint.Parse(Need(kv, "flags").Replace("0x", "", StringComparison.Ordinal), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture),
                    Ctor: Need(kv, "ctor") == "true",
                    SheafCapacity: kv.TryGetValue("sheaf", out var sh) ? int.Parse(sh, CultureInfo.InvariantCulture) : 0),
                "kmem_cache_destroy" => new TraceAnnotationInfo(TraceAnnotationKind.KmemCacheDestroy,
                    Cpu: int.Parse(Need(kv, "cpu"), CultureInfo.InvariantCulture), Name: Need(kv, "name")),
                _ => Unknown(words[0], out error),
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException or KeyNotFoundException or MachineConfigException)
        {
            error = $"bad '{words[0]}' annotation: {e.Message}";
            return null;
        }
    }

    /// <summary>An annotation this version does not know: a comment like any other (no error).</summary>
    private static TraceAnnotationInfo? Unknown(string what, out string? error)
    {
        _ = what;
        error = null;
        return null;
    }

    private static string Need(Dictionary<string, string> kv, string key) =>
        kv.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"missing {key}=");
}
