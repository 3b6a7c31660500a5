using System.Globalization;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>Parsers for the words commands take; each throws with a message fit to be the usage error.</summary>
internal static class CliValues
{
    /// <summary>Help text for GFP arguments.</summary>
    public const string GfpHelp = "GFP flags: kernel names joined by '|' (GFP_KERNEL|__GFP_ZERO) or a number (0xcc0)";

    /// <summary>Help text for ORDER arguments.</summary>
    public const string OrderHelp = "Allocation order: 2^ORDER pages, 0..10";

    /// <summary>Help text for PAGE arguments.</summary>
    public const string PageHelp = "A struct page: its address as alloc_pages prints it (0x...), or pfn:N";

    /// <summary>GFP flags: <c>GFP_KERNEL|__GFP_ZERO</c>, <c>0xcc0</c>, or a mix.</summary>
    public static Gfp ParseGfp(string text) => GfpFlags.Parse(text);

    /// <summary>An allocation order, 0..MAX_PAGE_ORDER.</summary>
    public static int ParseOrder(string text)
    {
        ulong n = ParseNumber(text, "order");
        return n <= PageSize.MaxOrder
            ? (int)n
            : throw new UsageException($"order {text} is outside 0..{PageSize.MaxOrder} (MAX_PAGE_ORDER)");
    }

    /// <summary>An int (decimal or 0x hex).</summary>
    public static int ParseInt(string text)
    {
        ulong n = ParseNumber(text, "number");
        return n <= int.MaxValue ? (int)n : throw new UsageException($"{text} is too large");
    }

    /// <summary>A kernel virtual address (hex with 0x, or decimal).</summary>
    public static ulong ParseAddress(string text) => ParseNumber(text, "address");

    /// <summary>A struct page reference: descriptor address or <c>pfn:N</c>.</summary>
    public static PageRef ParsePage(string text) => PageRef.Parse(text);

    /// <summary>An unsigned number, decimal or 0x hex; <paramref name="what"/> names it in the error.</summary>
    public static ulong ParseNumber(string text, string what) =>
        TryParseNumber(text, out ulong n) ? n : throw new UsageException($"'{text}' is not a valid {what} (expected a number such as 12 or 0x1f)");

    /// <summary>Non-throwing <see cref="ParseNumber"/>.</summary>
    public static bool TryParseNumber(string text, out ulong value) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>A length in bytes: a number with an optional K/M/G suffix.</summary>
    public static ulong ParseLength(string text)
    {
        try
        {
            return MachineConfig.ParseSize(text);
        }
        catch (MachineConfigException)
        {
            throw new UsageException($"'{text}' is not a length (expected e.g. 4096, 0x1000, 64K)");
        }
    }

    /// <summary>on/off (also 1/0, true/false), any case.</summary>
    public static bool ParseOnOff(string text) => text.ToLowerInvariant() switch
    {
        "on" or "1" or "true" => true,
        "off" or "0" or "false" => false,
        _ => throw new UsageException($"'{text}' is not on or off"),
    };

    /// <summary>The kernel's <c>%#lx</c>: 0x and lower-case hex.</summary>
    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}
