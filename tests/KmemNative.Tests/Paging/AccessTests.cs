using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Paging.MmuTests;

namespace KmemNative.Tests.Paging;

/// <summary>Loads, stores and copies at virtual addresses, across pages, and copy_{from,to}_user.</summary>
public class AccessTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Integers_of_every_size_cross_page_boundaries_between_scattered_pages(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        // Two pages mapped in reverse physical order: the crossing accesses really go to two unrelated frames.
        var pages = Enumerable.Range(0, 3).Select(_ => m.AllocPage(Gfp.Kernel | Gfp.Zero)!.Value).ToList();
        ulong va = m.Vmap(cpu, [pages[2], pages[0]], PageProt.Kernel);
        ulong[] pfns = [pages[2].Pfn, pages[0].Pfn];
        Assert.NotEqual(pfns[0] + 1, pfns[1]);
        foreach (int size in new[] { 1, 2, 4, 8 })
        {
            for (int off = 4096 - size - 1; off <= 4096; off++)
            {
                ulong value = 0x1122_3344_5566_7788UL >> (64 - 8 * size);
                m.WriteVirtualUInt(cpu, va + (ulong)off, size, value);
                Assert.Equal(value, m.ReadVirtualUInt(cpu, va + (ulong)off, size));
                // Little endian, byte by byte in physical memory.
                for (int i = 0; i < size; i++)
                {
                    int at = off + i;
                    ulong phys = (pfns[at / 4096] << 12) + (ulong)(at % 4096);
                    Assert.Equal((byte)(value >> (8 * i)), m.Memory.ReadByte(phys));
                }
            }
        }
        Assert.Throws<ArgumentException>(() => m.ReadVirtualUInt(cpu, va, 3));
        // A store that would cross into the guard page stores nothing.
        m.WriteVirtualUInt(cpu, va + 8188, 4, 0xaaaaaaaa);
        var e = Assert.Throws<PageFaultException>(() => m.WriteVirtualUInt(cpu, va + 8190, 4, 0x55555555));
        Assert.Equal(va + 8192, e.Address);
        Assert.Equal(0xaaaaaaaaUL, m.ReadVirtualUInt(cpu, va + 8188, 4));
        m.Vunmap(cpu, va);
        pages.ForEach(p => m.FreePages(cpu, p, 0));
        m.CheckConsistency();
    }

    [Fact]
    public void Spans_and_virtual_to_virtual_copies_go_page_by_page()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        ulong a = m.Vmalloc(cpu, 5 * 4096), b = m.Vmalloc(cpu, 5 * 4096);
        var data = new byte[5 * 4096 - 300];
        new Random(7).NextBytes(data);
        m.WriteVirtual(cpu, a + 150, data);
        m.Mmu_Copy(cpu, b + 7, a + 150, (ulong)data.Length);
        var back = new byte[data.Length];
        m.ReadVirtual(cpu, b + 7, back);
        Assert.Equal(data, back);
        var e = Assert.Throws<PageFaultException>(() => m.ReadVirtual(cpu, a, new byte[6 * 4096]));
        Assert.Equal(a + 5 * 4096, e.Address);
        m.Vfree(cpu, a);
        m.Vfree(cpu, b);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Copy_from_user_reports_the_bytes_not_copied_and_zeroes_the_rest(ArchKind arch)
    {
        var (m, cpu, mm) = UserSpace(arch);
        ulong phys = NewPage(m);
        for (int i = 0; i < 4096; i++)
            m.Memory.WriteByte(phys + (ulong)i, (byte)(i & 0xff | 1));
        mm.MapPage(cpu, UserVa, phys, PageProt.ReadOnly);
        var buffer = new byte[200];
        buffer.AsSpan().Fill(0xee);
        ulong left = m.CopyFromUser(cpu, buffer, UserVa + 4096 - 50, out ulong fault);
        Assert.Equal(150UL, left);
        Assert.Equal(UserVa + 4096, fault);
        Assert.Equal(m.Memory.ReadByte(phys + 4046), buffer[0]);
        Assert.All(buffer[50..], b => Assert.Equal(0, b));              // the kernel zeroes what it could not copy
        Assert.Equal(0UL, m.CopyFromUser(cpu, buffer.AsSpan(0, 50), UserVa + 10, out _));
        // copy_to_user into a read-only page faults at once (WP is set): nothing copied.
        Assert.Equal(8UL, m.CopyToUser(cpu, UserVa, new byte[8], out fault));
        Assert.Equal(UserVa, fault);
        // access_ok() refuses kernel addresses before touching anything.
        Assert.Equal(16UL, m.CopyFromUser(cpu, new byte[16], m.PageOffset, out fault));
        Assert.Equal(m.PageOffset, fault);
        mm.SetPte(cpu, UserVa, phys | (PageProt.Shared & 0xfff) | (arch == ArchKind.I386 ? 0 : 1UL << 63));
        Assert.Equal(0UL, m.CopyToUser(cpu, UserVa + 4000, new byte[96], out _));
        Assert.Equal(0, m.Memory.ReadByte(phys + 4000));
        Done(m, cpu, mm);
    }
}

internal static class MmuTestExtensions
{
    /// <summary>Mmu.Copy through the profile-specific machine.</summary>
    public static void Mmu_Copy(this Machine m, Cpu cpu, ulong dst, ulong src, ulong len)
    {
        if (m is Machine<X86_64> x)
            x.Mmu.Copy(cpu, dst, src, len);
        else
            ((Machine<I386>)m).Mmu.Copy(cpu, dst, src, len);
    }
}
