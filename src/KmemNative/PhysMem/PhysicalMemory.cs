using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KmemNative.PhysMem;

/// <summary>
/// The machine's RAM: one native allocation in which physical address == offset.
/// </summary>
/// <remarks>
/// The arena is allocated zeroed with <see cref="NativeMemory.AllocZeroed(nuint)"/> (large callocs are fresh
/// anonymous mappings, so untouched pages, including the ones under memory holes, cost the host nothing) and
/// aligned to 4 KiB. It is never moved by the GC and is freed exactly once, when its machine is disposed.
/// Public accessors check every address against the installed RAM ranges and throw
/// <see cref="PhysicalAddressException"/>; the allocator's own hot paths use the internal pointer after
/// validating the PFN once at their entry point. Nothing outside [base, base + size) is ever touched.
/// </remarks>
public sealed unsafe class PhysicalMemory
{
    private byte* _raw;      // what NativeMemory returned, freed in Dispose
    private byte* _base;     // _raw aligned up to PAGE_SIZE: physical address 0
    private readonly ulong _size;
    private readonly MemoryRange[] _ram;

    internal PhysicalMemory(ulong size, MemoryRange[] ram)
    {
        Debug.Assert(size % PageSize.Bytes == 0);
        _size = size;
        _ram = ram;
        try
        {
            _raw = (byte*)NativeMemory.AllocZeroed((nuint)(size + PageSize.Bytes));
        }
        catch (OutOfMemoryException)
        {
            throw new MachineConfigException(
                $"the host cannot back {size >> 20} MiB of emulated physical memory; choose a smaller --mem");
        }
        _base = (byte*)(((nuint)_raw + (nuint)(PageSize.Bytes - 1)) & ~(nuint)(PageSize.Bytes - 1));
    }

    /// <summary>Bytes of physical address space backed by the arena (highest RAM address + 1, holes included).</summary>
    public ulong Size => _size;

    /// <summary>The installed RAM ranges (the e820 "usable" map); holes between them read as not RAM.</summary>
    public IReadOnlyList<MemoryRange> Ram => _ram;

    /// <summary>True once <see cref="Dispose"/> ran.</summary>
    public bool IsDisposed => _base == null;

    /// <summary>Arena base for the types that own parts of the arena (allocator, slab, page tables).</summary>
    internal byte* Base
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _base;
    }

    /// <summary>True when [phys, phys + length) lies inside installed RAM.</summary>
    public bool IsRam(ulong phys, ulong length = 1)
    {
        foreach (var r in _ram)
        {
            if (phys >= r.Start && phys < r.End)
                return length <= r.End - phys;
        }
        return false;
    }

    /// <summary>Host pointer for trusted callers that already validated the range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal byte* HostPtr(ulong phys)
    {
        Debug.Assert(phys < _size);
        return _base + phys;
    }

    /// <summary>Host pointer for [phys, phys + length) after a bounds check against the arena.</summary>
    internal byte* CheckedHostPtr(ulong phys, ulong length)
    {
        ThrowIfDisposed();
        if (phys >= _size || length > _size - phys)
            ThrowHelper.ThrowPhysicalAddress(phys, length, _size);
        return _base + phys;
    }

    private void CheckRam(ulong phys, ulong length)
    {
        ThrowIfDisposed();
        if (!IsRam(phys, length))
            ThrowHelper.ThrowNotRam(phys, length);
    }

    /// <summary>Reads one byte of RAM.</summary>
    /// <exception cref="PhysicalAddressException">The address is not installed RAM.</exception>
    public byte ReadByte(ulong phys)
    {
        CheckRam(phys, 1);
        return _base[phys];
    }

    /// <summary>Reads a little-endian 32-bit value.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public uint ReadUInt32(ulong phys)
    {
        CheckRam(phys, 4);
        return BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_base + phys, 4));
    }

    /// <summary>Reads a little-endian 64-bit value.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public ulong ReadUInt64(ulong phys)
    {
        CheckRam(phys, 8);
        return BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base + phys, 8));
    }

    /// <summary>Writes one byte of RAM.</summary>
    /// <exception cref="PhysicalAddressException">The address is not installed RAM.</exception>
    public void WriteByte(ulong phys, byte value)
    {
        CheckRam(phys, 1);
        _base[phys] = value;
    }

    /// <summary>Writes a little-endian 32-bit value.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public void WriteUInt32(ulong phys, uint value)
    {
        CheckRam(phys, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(_base + phys, 4), value);
    }

    /// <summary>Writes a little-endian 64-bit value.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public void WriteUInt64(ulong phys, ulong value)
    {
        CheckRam(phys, 8);
        BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(_base + phys, 8), value);
    }

    /// <summary>Copies RAM at <paramref name="phys"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public void Read(ulong phys, Span<byte> destination)
    {
        CheckRam(phys, (ulong)destination.Length);
        new ReadOnlySpan<byte>(_base + phys, destination.Length).CopyTo(destination);
    }

    /// <summary>Copies <paramref name="source"/> into RAM at <paramref name="phys"/>.</summary>
    /// <exception cref="PhysicalAddressException">The range is not installed RAM.</exception>
    public void Write(ulong phys, ReadOnlySpan<byte> source)
    {
        CheckRam(phys, (ulong)source.Length);
        source.CopyTo(new Span<byte>(_base + phys, source.Length));
    }

    /// <summary>
    /// Frees the arena. Safe to call more than once; must not race with other calls. Only the owning
    /// <see cref="Machine"/> frees it (<see cref="Machine.Dispose"/>): a caller freeing the RAM of a live machine
    /// would leave every structure in it dangling, so this is not public API.
    /// </summary>
    internal void Dispose()
    {
        byte* raw = _raw;
        _raw = null;
        _base = null;
        if (raw != null)
            NativeMemory.Free(raw);
    }

    private void ThrowIfDisposed()
    {
        if (_base == null)
            ThrowHelper.ThrowDisposed();
    }
}
