namespace KmemNative.Slab;

/// <summary>
/// The <c>slab_debug=</c> (formerly <c>slub_debug=</c>) boot parameter, parsed as setup_slub_debug() and
/// parse_slub_debug_flags() do: <c>OPTIONS[,cache,...][;OPTIONS,cache,...]</c>.
/// </summary>
/// <remarks>
/// Options: F sanity checks, Z red zones, P poisoning, U user tracking, T trace, A failslab (not configured: no
/// effect), O no debug for caches whose minimum order it would raise, <c>-</c> everything off. No options at all
/// (an empty string) means FZPU. A block with a cache list applies only to those caches (a trailing <c>*</c> is a
/// prefix match); a block without one sets the default for all caches. With only cache blocks the default stays
/// off.
/// </remarks>
public sealed class SlabDebugOptions
{
    private readonly List<(SlabFlags Flags, string[] Caches)> _blocks = [];

    private SlabDebugOptions(string? text) => Text = text;

    /// <summary>The option string as given (null: slab_debug not on the command line).</summary>
    public string? Text { get; }

    /// <summary>Flags for every cache no block names.</summary>
    public SlabFlags Global { get; private set; }

    /// <summary>slab_debug=O was given.</summary>
    public bool DisableHigherOrderDebug { get; private set; }

    /// <summary>True when any cache may get debug flags.</summary>
    public bool Enabled => Global != 0 || _blocks.Count > 0;

    /// <summary>Parses the option string (null: no slab_debug at all).</summary>
    /// <exception cref="FormatException">An unknown option letter.</exception>
    public static SlabDebugOptions Parse(string? text)
    {
        var o = new SlabDebugOptions(text);
        if (text is null)
            return o;
        if (text.Length == 0)
        {
            o.Global = SlabFlagsText.DebugDefault;
            return o;
        }
        bool globalChanged = false, listed = false;
        SlabFlags global = SlabFlagsText.DebugDefault;
        foreach (string block in text.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int comma = block.IndexOf(',', StringComparison.Ordinal);
            string opts = comma < 0 ? block : block[..comma];
            SlabFlags flags = comma == 0 ? SlabFlagsText.DebugDefault : ParseLetters(opts, o);
            if (comma < 0)
            {
                global = flags;
                globalChanged = true;
            }
            else
            {
                listed = true;
                o._blocks.Add((flags, block[(comma + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries)));
            }
        }
        // A list of caches alone leaves the default debugging off.
        o.Global = listed && !globalChanged ? 0 : global;
        return o;
    }

    private static SlabFlags ParseLetters(string opts, SlabDebugOptions o)
    {
        SlabFlags flags = 0;
        foreach (char ch in opts)
        {
            switch (char.ToLowerInvariant(ch))
            {
                case '-': flags = 0; break;
                case 'f': flags |= SlabFlags.ConsistencyChecks; break;
                case 'z': flags |= SlabFlags.RedZone; break;
                case 'p': flags |= SlabFlags.Poison; break;
                case 'u': flags |= SlabFlags.StoreUser; break;
                case 't': flags |= SlabFlags.Trace; break;
                case 'a': break;   // SLAB_FAILSLAB: CONFIG_FAILSLAB is not configured
                case 'o': o.DisableHigherOrderDebug = true; break;
                default: throw new FormatException($"slab_debug option '{ch}' unknown (expected F, Z, P, U, T, A, O or -)");
            }
        }
        return flags;
    }

    /// <summary>kmem_cache_flags(): the flags a cache named <paramref name="name"/> gets.</summary>
    public SlabFlags FlagsFor(SlabFlags flags, string name)
    {
        if ((flags & SlabFlags.NoUserFlags) != 0)
            return flags;
        SlabFlags global = Global;
        if ((flags & SlabFlags.NoLeakTrace) != 0)
            global &= ~SlabFlags.StoreUser;
        foreach (var (blockFlags, caches) in _blocks)
        {
            foreach (string pattern in caches)
            {
                bool match = pattern.EndsWith('*')
                    ? name.StartsWith(pattern[..^1], StringComparison.Ordinal)
                    : name == pattern;
                if (match)
                    return flags | blockFlags;
            }
        }
        return flags | global;
    }

    /// <inheritdoc/>
    public override string ToString() => Text is null ? "(off)" : "slab_debug=" + Text;
}
