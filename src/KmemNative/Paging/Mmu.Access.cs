using System.Runtime.CompilerServices;

namespace KmemNative.Paging;

// Memory access at virtual addresses through a CPU's TLB: 1/2/4/8-byte loads and stores (little endian, any
// alignment), spans that cross pages, and copy_{from,to}_user with the kernel's return convention.
public sealed unsafe partial class Mmu<TArch>
{
    // The hit test compares the page number of the access's LAST byte with the tag of the slot picked by its first
    // byte: an access crossing into the next page can never match (QEMU's trick), so one compare covers both.

    /// <summary>A byte load at <paramref name="va"/>.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte ReadU8(Cpu cpu, ulong va, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagRead == va >> 12)
            return *(byte*)(va + (ulong)e->Addend);
        return (byte)ReadSlow(cpu, va, 1, mode);
    }

    /// <summary>A 16-bit little-endian load.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort ReadU16(Cpu cpu, ulong va, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagRead == (va + 1) >> 12)
            return Unsafe.ReadUnaligned<ushort>((void*)(va + (ulong)e->Addend));
        return (ushort)ReadSlow(cpu, va, 2, mode);
    }

    /// <summary>A 32-bit little-endian load.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadU32(Cpu cpu, ulong va, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagRead == (va + 3) >> 12)
            return Unsafe.ReadUnaligned<uint>((void*)(va + (ulong)e->Addend));
        return (uint)ReadSlow(cpu, va, 4, mode);
    }

    /// <summary>A 64-bit little-endian load.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadU64(Cpu cpu, ulong va, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagRead == (va + 7) >> 12)
            return Unsafe.ReadUnaligned<ulong>((void*)(va + (ulong)e->Addend));
        return ReadSlow(cpu, va, 8, mode);
    }

    /// <summary>A byte store.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteU8(Cpu cpu, ulong va, byte value, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagWrite == va >> 12)
        {
            *(byte*)(va + (ulong)e->Addend) = value;
            return;
        }
        WriteSlow(cpu, va, 1, value, mode);
    }

    /// <summary>A 16-bit little-endian store.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteU16(Cpu cpu, ulong va, ushort value, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagWrite == (va + 1) >> 12)
        {
            Unsafe.WriteUnaligned((void*)(va + (ulong)e->Addend), value);
            return;
        }
        WriteSlow(cpu, va, 2, value, mode);
    }

    /// <summary>A 32-bit little-endian store.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteU32(Cpu cpu, ulong va, uint value, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagWrite == (va + 3) >> 12)
        {
            Unsafe.WriteUnaligned((void*)(va + (ulong)e->Addend), value);
            return;
        }
        WriteSlow(cpu, va, 4, value, mode);
    }

    /// <summary>A 64-bit little-endian store.</summary>
    /// <exception cref="PageFaultException">The access faulted.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteU64(Cpu cpu, ulong va, ulong value, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (e->TagWrite == (va + 7) >> 12)
        {
            Unsafe.WriteUnaligned((void*)(va + (ulong)e->Addend), value);
            return;
        }
        WriteSlow(cpu, va, 8, value, mode);
    }

    /// <summary>Host pointer for <paramref name="va"/> after an access check (the TLB, else a walk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte* Host(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode)
    {
        TlbEntry* e = cpu.TlbHot + Tlb.Index(va, mode);
        if (*((ulong*)e + (int)access) == va >> 12)
            return (byte*)(va + (ulong)e->Addend);
        return HostSlow(cpu, va, access, mode);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private byte* HostSlow(Cpu cpu, ulong va, MemoryAccess access, PrivilegeMode mode)
    {
        if (!Miss(cpu, va, access, mode, out ulong phys, out var fault))
            throw new PageFaultException(fault);
        return _base + phys;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong ReadSlow(Cpu cpu, ulong va, int size, PrivilegeMode mode)
    {
        ulong v = 0;
        if ((va & 0xfff) + (ulong)size <= 4096)
        {
            byte* h = HostSlow(cpu, va, MemoryAccess.Read, mode);
            for (int i = size - 1; i >= 0; i--)
                v = (v << 8) | h[i];
            return v;
        }
        // Crossing a page: each byte through its own translation; a fault names the first byte that faulted.
        for (int i = size - 1; i >= 0; i--)
            v = (v << 8) | *Host(cpu, va + (ulong)i, MemoryAccess.Read, mode);
        return v;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void WriteSlow(Cpu cpu, ulong va, int size, ulong value, PrivilegeMode mode)
    {
        if ((va & 0xfff) + (ulong)size <= 4096)
        {
            byte* h = HostSlow(cpu, va, MemoryAccess.Write, mode);
            for (int i = 0; i < size; i++)
                h[i] = (byte)(value >> (8 * i));
            return;
        }
        // Check both pages before storing anything, as a CPU does for a split store.
        byte* first = Host(cpu, va, MemoryAccess.Write, mode);
        ulong next = (va | 0xfff) + 1;
        byte* second = Host(cpu, next, MemoryAccess.Write, mode);
        int firstLen = (int)(next - va);
        for (int i = 0; i < size; i++)
            (i < firstLen ? first + i : second + (i - firstLen))[0] = (byte)(value >> (8 * i));
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="va"/>, page by page.</summary>
    /// <exception cref="PageFaultException">A page faulted; the bytes before it were copied.</exception>
    public void Read(Cpu cpu, ulong va, Span<byte> destination, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong a = va + (ulong)done;
            int chunk = Math.Min(destination.Length - done, 4096 - (int)(a & 0xfff));
            byte* h = Host(cpu, a, MemoryAccess.Read, mode);
            new ReadOnlySpan<byte>(h, chunk).CopyTo(destination.Slice(done, chunk));
            done += chunk;
        }
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="va"/>, page by page.</summary>
    /// <exception cref="PageFaultException">A page faulted; the bytes before it were written.</exception>
    public void Write(Cpu cpu, ulong va, ReadOnlySpan<byte> source, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong a = va + (ulong)done;
            int chunk = Math.Min(source.Length - done, 4096 - (int)(a & 0xfff));
            byte* h = Host(cpu, a, MemoryAccess.Write, mode);
            source.Slice(done, chunk).CopyTo(new Span<byte>(h, chunk));
            done += chunk;
        }
    }

    /// <summary>Copies <paramref name="length"/> bytes from <paramref name="src"/> to <paramref name="dst"/>, both virtual (memcpy in the kernel).</summary>
    /// <exception cref="PageFaultException">A page faulted.</exception>
    public void Copy(Cpu cpu, ulong dst, ulong src, ulong length, PrivilegeMode mode = PrivilegeMode.Supervisor)
    {
        ulong done = 0;
        while (done < length)
        {
            ulong s = src + done, d = dst + done;
            ulong chunk = Math.Min(length - done, Math.Min(4096 - (s & 0xfff), 4096 - (d & 0xfff)));
            byte* hs = Host(cpu, s, MemoryAccess.Read, mode);
            byte* hd = Host(cpu, d, MemoryAccess.Write, mode);
            Buffer.MemoryCopy(hs, hd, chunk, chunk);
            done += chunk;
        }
    }

    /// <summary>access_ok(): [addr, addr + size) lies in user space.</summary>
    public static bool AccessOk(ulong addr, ulong size) => size <= TArch.TaskSizeMax && addr <= TArch.TaskSizeMax - size;

    /// <summary>
    /// copy_from_user(): copies from user address <paramref name="from"/> into <paramref name="to"/> with kernel
    /// privilege (user pages are reachable from the kernel; SMAP is not modelled). Returns the number of bytes NOT
    /// copied (0 on success); on a fault the rest of <paramref name="to"/> is zeroed, as _copy_from_user() does,
    /// and <paramref name="faultAddress"/> is where it stopped.
    /// </summary>
    public ulong CopyFromUser(Cpu cpu, Span<byte> to, ulong from, out ulong faultAddress)
    {
        faultAddress = 0;
        ulong n = (ulong)to.Length;
        if (!AccessOk(from, n))
        {
            faultAddress = from;
            to.Clear();
            return n;
        }
        int done = 0;
        while (done < to.Length)
        {
            ulong a = from + (ulong)done;
            int chunk = Math.Min(to.Length - done, 4096 - (int)(a & 0xfff));
            if (!TryTranslate(cpu, a, MemoryAccess.Read, PrivilegeMode.Supervisor, out ulong phys, out _))
            {
                faultAddress = a;
                to[done..].Clear();
                return (ulong)(to.Length - done);
            }
            new ReadOnlySpan<byte>(_base + phys, chunk).CopyTo(to.Slice(done, chunk));
            done += chunk;
        }
        return 0;
    }

    /// <summary>copy_to_user(): the reverse; returns the bytes not copied, <paramref name="faultAddress"/> where it stopped.</summary>
    public ulong CopyToUser(Cpu cpu, ulong to, ReadOnlySpan<byte> from, out ulong faultAddress)
    {
        faultAddress = 0;
        ulong n = (ulong)from.Length;
        if (!AccessOk(to, n))
        {
            faultAddress = to;
            return n;
        }
        int done = 0;
        while (done < from.Length)
        {
            ulong a = to + (ulong)done;
            int chunk = Math.Min(from.Length - done, 4096 - (int)(a & 0xfff));
            if (!TryTranslate(cpu, a, MemoryAccess.Write, PrivilegeMode.Supervisor, out ulong phys, out _))
            {
                faultAddress = a;
                return (ulong)(from.Length - done);
            }
            from.Slice(done, chunk).CopyTo(new Span<byte>(_base + phys, chunk));
            done += chunk;
        }
        return 0;
    }
}
