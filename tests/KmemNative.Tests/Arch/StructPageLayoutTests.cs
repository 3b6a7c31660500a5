using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Arch;

public class StructPageLayoutTests
{
    [Fact]
    public void X86_64_struct_page_is_64_bytes_in_the_kernel_layout()
    {
        Assert.Equal(64, X86_64.StructPageSize);
        Assert.Equal(8, X86_64.PageLruOffset);
        Assert.Equal(24, X86_64.PageMappingOffset);
        Assert.Equal(32, X86_64.PageIndexOffset);
        Assert.Equal(40, X86_64.PagePrivateOffset);
        Assert.Equal(48, X86_64.PageTypeOffset);
        Assert.Equal(52, X86_64.PageRefcountOffset);
        Assert.Equal(56, X86_64.PageMemcgOffset);
    }

    [Fact]
    public void I386_struct_page_is_32_bytes_in_the_kernel_layout()
    {
        Assert.Equal(32, I386.StructPageSize);
        Assert.Equal(4, I386.PageLruOffset);
        Assert.Equal(12, I386.PageMappingOffset);
        Assert.Equal(16, I386.PageIndexOffset);
        Assert.Equal(20, I386.PagePrivateOffset);
        Assert.Equal(24, I386.PageTypeOffset);
        Assert.Equal(28, I386.PageRefcountOffset);
        Assert.Equal(-1, I386.PageMemcgOffset);
    }

    [Fact]
    public void Vmemmap_address_is_base_plus_64_times_pfn_as_in_the_real_trace()
    {
        using var m = Machines.X64(64);
        // From the trace README: page= is 0xffffea0000000000 + pfn * 64.
        Assert.Equal(0xffffea0000000000UL + 0x1234UL * 64, m.PageDescriptorAddress(0x1234));
    }

    [Fact]
    public void Mem_map_lives_inside_the_arena_in_reserved_pages()
    {
        using var m = Machines.X64(64);
        var memmap = m.Memblock.Reserved.Single(r => r.Name == "mem_map").Range;
        Assert.Equal(m.MaxPfn * 64, m.MemmapBytes);
        Assert.True(memmap.Size >= m.MemmapBytes);
        for (ulong pfn = memmap.StartPfn; pfn < memmap.EndPfn; pfn += 7)
            Assert.True(m.ReadPage(pfn).IsReserved);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Descriptor_bytes_in_ram_match_the_fields(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        var d = page.Descriptor;
        int ptr = arch == ArchKind.I386 ? 4 : 8;
        int refOff = arch == ArchKind.I386 ? 28 : 52;
        int typeOff = arch == ArchKind.I386 ? 24 : 48;
        ulong descPhys = MemmapPhys(m) + page.Pfn * (ulong)(arch == ArchKind.I386 ? 32 : 64);
        Assert.Equal(1, (int)m.Memory.ReadUInt32(descPhys + (ulong)refOff));
        Assert.Equal(0xffffffffu, m.Memory.ReadUInt32(descPhys + (ulong)typeOff));
        ulong flags = ptr == 8 ? m.Memory.ReadUInt64(descPhys) : m.Memory.ReadUInt32(descPhys);
        Assert.Equal(d.Flags, flags);
        // Freshly allocated pages carry the list poison list_del() left in lru, as on a real kernel.
        ulong lru0 = ptr == 8 ? m.Memory.ReadUInt64(descPhys + 8) : m.Memory.ReadUInt32(descPhys + 4);
        Assert.Equal(arch == ArchKind.X86_64 ? 0xdead000000000100UL : 0x100UL, lru0);
        m.FreePages(page, 0);
    }

    private static ulong MemmapPhys(Machine m) => m.Memblock.Reserved.Single(r => r.Name == "mem_map").Range.Start;

    [Theory]
    [InlineData(ArchKind.X86_64, 0, 55)]   // DMA: zone bits 55-57 (NODES_SHIFT 6 above them)
    [InlineData(ArchKind.I386, 2, 30)]     // HighMem: zone bits 30-31
    public void Zone_number_is_packed_in_the_top_bits_of_flags(ArchKind arch, int zoneIdx, int shift)
    {
        using var m = Machines.Boot(arch, 1024);
        var zone = m.Zones[zoneIdx];
        var d = m.ReadPage(zone.StartPfn + 100);
        Assert.Equal((ulong)zoneIdx << shift, d.Flags & ~((1UL << 24) - 1));
        Assert.Equal(zoneIdx, d.ZoneIndex);
    }

    [Fact]
    public void Free_block_head_is_typed_buddy_with_order_in_private()
    {
        using var m = Machines.X64(64);
        var zone = m.Zones.First(z => z.IsPopulated && z.NrFree(10) > 0);
        // Find an order-10 free block and decode it.
        for (ulong pfn = zone.StartPfn & ~1023UL; pfn < zone.EndPfn; pfn += 1024)
        {
            var d = m.ReadPage(pfn);
            if (!d.IsBuddy)
                continue;
            Assert.Equal(10, d.BuddyOrder);
            Assert.Equal(0xf0000000u, d.PageTypeRaw);
            Assert.Equal(0, d.Refcount);
            return;
        }
        Assert.Fail("no order-10 free block found");
    }

    [Fact]
    public void Kernel_layout_structs_have_the_kernel_sizes()
    {
        var l64 = new KernelLayouts(8, 5, numa: true, nrPcpLists: 14);
        Assert.Equal(88, l64.FreeArea.Size);   // 5 list_heads + nr_free
        Assert.Equal(0, l64.Pcp.Offset("lock"));
        Assert.Equal(24, l64.Pcp.Offset("flags"));
        Assert.Equal(28, l64.Pcp.Offset("free_count"));
        Assert.Equal(32, l64.Pcp.Offset("lists"));
        Assert.Equal(256, l64.Pcp.Size);       // 32 + 14 * 16 = 256, cache aligned
        var l32 = new KernelLayouts(4, 4, numa: false, nrPcpLists: 12);
        Assert.Equal(44, l32.FreeArea.Size);
        Assert.Equal(28, l32.Pcp.Offset("lists"));
    }
}
