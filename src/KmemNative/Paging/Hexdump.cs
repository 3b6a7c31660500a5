using System.Globalization;
using System.Text;

namespace KmemNative.Paging;

/// <summary>xxd's default format: offset, 16 bytes in groups of two, the printable characters.</summary>
/// <remarks><c>xxd -r</c> turns the lines back into the bytes at their offsets (a file position each).</remarks>
public static class Hexdump
{
    /// <summary>Bytes per line.</summary>
    public const int BytesPerLine = 16;

    /// <summary>Formats <paramref name="data"/> as xxd lines whose offsets start at <paramref name="offset"/> (xxd -o).</summary>
    public static string Format(ulong offset, ReadOnlySpan<byte> data)
    {
        var sb = new StringBuilder((data.Length / BytesPerLine + 1) * 68);
        for (int line = 0; line < data.Length; line += BytesPerLine)
        {
            var chunk = data.Slice(line, Math.Min(BytesPerLine, data.Length - line));
            sb.Append((offset + (ulong)line).ToString("x8", CultureInfo.InvariantCulture)).Append(": ");
            int col = 0;
            for (int i = 0; i < chunk.Length; i++)
            {
                sb.Append(chunk[i].ToString("x2", CultureInfo.InvariantCulture));
                col += 2;
                if (i % 2 == 1)
                {
                    sb.Append(' ');
                    col++;
                }
            }
            sb.Append(' ', 40 - col).Append(' ');
            foreach (byte b in chunk)
                sb.Append(b is >= 0x20 and <= 0x7e ? (char)b : '.');
            sb.Append('\n');
        }
        return sb.ToString();
    }
}
