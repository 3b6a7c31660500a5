using System.Runtime.CompilerServices;
using System.Buffers;
using System.IO.Compression;

namespace KmemNative.Trace;

/// <summary>A trace file that cannot be read: truncated or corrupt compressed data, an unreadable file.</summary>
public sealed class TraceFormatException(string message, long line, Exception? inner = null)
    : KmemException(message, inner ?? new InvalidDataException(message))
{
    /// <summary>The line being read when it happened (1-based).</summary>
    public long Line { get; } = line;
}

/// <summary>
/// Streams the lines of a trace — plain text or gzip (detected by its magic bytes), from a file or standard input —
/// as spans into one pooled buffer: no allocation per line.
/// </summary>
public sealed class FtraceReader : IDisposable
{
    /// <summary>Lines longer than this are cut there (and will not parse): a binary file cannot grow the buffer without bound.</summary>
    public const int MaxLine = 64 * 1024;

    private readonly Stream _stream;
    private readonly ConcatStream? _source;
    private readonly bool _leaveOpen;
    private byte[] _buf;
    private int _start, _end;
    private bool _eof;

    /// <summary>Reads <paramref name="stream"/>, decompressing it when it starts with the gzip magic.</summary>
    public FtraceReader(Stream stream, bool leaveOpen = false)
    {
        _leaveOpen = leaveOpen;
        try
        {
            SourceLength = stream.CanSeek ? stream.Length - stream.Position : null;
        }
        catch (NotSupportedException)
        {
            SourceLength = null;
        }
        _buf = ArrayPool<byte>.Shared.Rent(1 << 20);
        // Peek two bytes for the gzip magic (1f 8b) without requiring a seekable stream.
        int n = 0;
        while (n < 2)
        {
            int r = stream.Read(_buf, n, 2 - n);
            if (r == 0)
                break;
            n += r;
        }
        if (n == 2 && _buf[0] == 0x1f && _buf[1] == 0x8b)
        {
            IsGzip = true;
            _source = new ConcatStream(new MemoryStream(_buf[..2]), stream, leaveOpen);
            _stream = new GZipStream(_source, CompressionMode.Decompress);
        }
        else
        {
            _stream = stream;
            _end = n;
            _decompressed = n;
        }
    }

    /// <summary>Bytes of the input consumed so far (compressed bytes for gzip): for progress against <see cref="SourceLength"/>.</summary>
    public long SourcePosition => IsGzip ? _source!.TotalRead : _decompressed;

    /// <summary>The input's length when it is a seekable stream (a regular file), else null.</summary>
    public long? SourceLength { get; }

    /// <summary>Opens a file, or standard input for "-".</summary>
    /// <exception cref="TraceFormatException">The file cannot be opened.</exception>
    public static FtraceReader Open(string path)
    {
        if (path == "-")
            return new FtraceReader(Console.OpenStandardInput(), leaveOpen: true);
        try
        {
            return new FtraceReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TraceFormatException($"cannot read trace '{path}': {e.Message}", 0, e);
        }
    }

    /// <summary>True when the input was gzip-compressed.</summary>
    public bool IsGzip { get; }

    /// <summary>1-based number of the last line returned.</summary>
    public long LineNumber { get; private set; }

    /// <summary>Bytes of text consumed so far.</summary>
    public long BytesRead { get; private set; }

    /// <summary>The next line without its newline; false at the end of input.</summary>
    /// <exception cref="TraceFormatException">Truncated or corrupt compressed data.</exception>
    // Optimised at its first call: a cold kmem process parses 671,005 lines before tiering would catch up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            var avail = new ReadOnlySpan<byte>(_buf, _start, _end - _start);
            int nl = avail.IndexOf((byte)'\n');
            if (nl >= 0 || (avail.Length >= MaxLine) || (_eof && avail.Length > 0))
            {
                int len = nl >= 0 ? nl : avail.Length;
                int consumed = nl >= 0 ? nl + 1 : len;
                if (len > MaxLine)
                    len = consumed = MaxLine;
                line = avail[..len];
                _start += consumed;
                BytesRead += consumed;
                LineNumber++;
                return true;
            }
            if (_eof)
            {
                line = default;
                return false;
            }
            Fill();
        }
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buf.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(_buf.Length * 2);
            Buffer.BlockCopy(_buf, 0, bigger, 0, _end);
            ArrayPool<byte>.Shared.Return(_buf);
            _buf = bigger;
        }
        int r;
        try
        {
            r = _stream.Read(_buf, _end, _buf.Length - _end);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new TraceFormatException($"line {LineNumber + 1}: truncated or corrupt compressed data ({e.Message})", LineNumber + 1, e);
        }
        if (r == 0)
        {
            _eof = true;
            if (IsGzip)
                CheckGzipEnd();
        }
        _decompressed += r;
        _end += r;
    }

    private long _decompressed;

    /// <summary>
    /// GZipStream reports a truncated stream as a clean end, so compare the gzip trailer's ISIZE (the last four bytes
    /// of the member: uncompressed length mod 2^32) with what came out.
    /// </summary>
    private void CheckGzipEnd()
    {
        var tail = _source!.Tail;
        if (_source.TotalRead < 18 || (uint)_decompressed != System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(4)))
            throw new TraceFormatException(
                $"line {LineNumber + 1}: truncated or corrupt compressed data (gzip stream ended after {_decompressed} bytes without its trailer)",
                LineNumber + 1);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_leaveOpen || IsGzip)
            _stream.Dispose();
        if (_buf.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buf);
            _buf = [];
        }
    }

    /// <summary>Two streams read one after the other (puts the peeked magic back in front); remembers the last 8 bytes.</summary>
    private sealed class ConcatStream(Stream first, Stream second, bool leaveSecondOpen) : Stream
    {
        public byte[] Tail { get; } = new byte[8];
        public long TotalRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = first.Read(buffer);
            if (n == 0)
                n = second.Read(buffer);
            if (n > 0)
            {
                // Keep the last 8 bytes seen: the gzip trailer (CRC32, ISIZE) once the stream ends.
                var got = buffer[..n];
                if (n >= 8)
                {
                    got[^8..].CopyTo(Tail);
                }
                else
                {
                    Tail.AsSpan(n).CopyTo(Tail);
                    got.CopyTo(Tail.AsSpan(8 - n));
                }
                TotalRead += n;
            }
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing && !leaveSecondOpen)
                second.Dispose();
            base.Dispose(disposing);
        }
    }
}
