using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>The kernel address space built at boot: linear map, vmemmap, text mapping, and DirectMap counts.</summary>
public class KernelMapTests
{
    /// <summary>Sums the linear map's leaves by size, walking the built tables.</summary>
    private static (ulong K4, ulong K2M, ulong K4M, ulong K1G) WalkDirectMap(Machine m)
    {
        ulong k4 = 0, k2 = 0, k4m = 0, k1g = 0;
        ulong end = m.HighMemory;
        for (ulong va = m.PageOffset; va < end;)
        {
            var w = m.WalkPageTables(va);
            ulong size = w.IsMapped ? w.PageSize : (m.Arch == ArchKind.I386 ? 4UL << 20 : 2UL << 20);
            if (w.IsMapped)
            {
                Assert.Equal(va - m.PageOffset, w.Physical!.Value - (va & (size - 1)));
                switch (size >> 10)
                {
                    case 4: k4 += 4; break;
                    case 2048: k2 += 2048; break;
                    case 4096: k4m += 4096; break;
                    default: k1g += size >> 10; break;
                }
            }
            va = (va & ~(size - 1)) + size;
        }
        return (k4, k2, k4m, k1g);
    }

    [Fact]
    public void I386_lowmem_is_4M_pages_but_the_first_4M_the_kernel_text_and_the_tail()
    {
        using var m = Machines.I386(1024);
        var dm = m.DirectMapKb();
        Assert.Equal(WalkDirectMap(m), dm);
        ulong lowKb = m.MaxLowPfn * 4;
        Assert.Equal(lowKb, dm.K4 + dm.K4M);
        // [0, 4M) and the 4 MiB page holding the read-only text were made 4 KiB, and the tail past the last 4 MiB boundary.
        Assert.Equal(4096UL + 4096 + (lowKb % 4096), dm.K4);
        Assert.Equal(m.PageOffset + (m.MaxLowPfn << 12), m.HighMemory);
        var meminfo = m.Proc.Meminfo();
        Assert.Contains($"DirectMap4k:    {dm.K4,8} kB", meminfo);
        Assert.Contains($"DirectMap4M:    {dm.K4M,8} kB", meminfo);
    }

    [Fact]
    public void I386_without_pse_maps_lowmem_with_4K_tables()
    {
        using var m = Machine.Boot(new MachineConfig { Arch = ArchKind.I386, MemBytes = 128UL << 20, Pse = false });
        var dm = m.DirectMapKb();
        Assert.Equal((m.MaxLowPfn * 4, 0UL, 0UL, 0UL), dm);
        Assert.Equal(WalkDirectMap(m), dm);
        Assert.False(m.GetCpu(0).Cr4Pse);
        Assert.Equal(0x123456UL, m.Translate(m.GetCpu(0), m.PageOffset + 0x123456));
        Assert.DoesNotContain("PSE", m.Ptdump().Text);
    }

    [Fact]
    public void X86_64_maps_all_ram_with_1G_2M_and_4K_pages_nx_and_global()
    {
        using var m = Machines.X64(2304);
        var dm = m.DirectMapKb();
        Assert.Equal(WalkDirectMap(m), dm);
        Assert.Equal(2048UL, dm.K4);                  // [0, 2M): the ISA range and the head below the first 2 MiB
        Assert.Equal(1UL << 20, dm.K1G);              // [1G, 2G)
        Assert.Equal((511UL + 128) * 2048, dm.K2M);   // [2M, 1G) and [2G, 2.25G) in 2 MiB pages
        foreach (ulong pa in new ulong[] { 0x10_0000, 0x40_0000, 0x4000_0000, 0x8000_0000 })
        {
            var w = m.WalkPageTables(m.PageOffset + pa);
            Assert.Equal(pa, w.Physical);
            var leaf = new Pte64(w.LastEntry);
            Assert.True(leaf.NoExecute && leaf.Global && leaf.Writable && !leaf.User);
        }
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Pa_va_and_translate_agree_on_the_linear_map(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 96);
        var cpu = m.GetCpu(0);
        var rnd = new Random(1);
        for (int i = 0; i < 200; i++)
        {
            ulong pa = (ulong)rnd.NextInt64(0x10_0000, (long)(m.MaxLowPfn << 12));
            ulong va = m.Va(pa);
            Assert.Equal(pa, m.Pa(va));
            Assert.Equal(pa, m.Translate(cpu, va));
            Assert.Equal(AddressKind.Logical, m.ClassifyAddress(va));
            Assert.True(m.IsLogicalAddress(va));
        }
    }

    [Fact]
    public void X86_64_vmemmap_maps_the_mem_map_and_the_text_mapping_maps_the_image()
    {
        using var m = Machines.X64(256);
        var cpu = m.GetCpu(0);
        var mi = (Machine<X86_64>)m;
        ulong memmapPhys = mi.MemMap.MemmapPhys;
        foreach (ulong pfn in new ulong[] { 0, 1, 4095, 0xfff0 })
            Assert.Equal(memmapPhys + pfn * 64, m.Translate(cpu, m.PageDescriptorAddress(pfn)));
        Assert.Equal(AddressKind.Vmemmap, m.ClassifyAddress(m.PageDescriptorAddress(5)));
        var img = m.Image;
        Assert.Equal(img.Start + 0x1234, m.Translate(cpu, img.VirtualBase + 0x1234, MemoryAccess.Execute));
        Assert.Equal(img.Start + 0x10, m.Pa(img.VirtualBase + 0x10));           // __pa() of a text address
        Assert.True(m.VirtAddrValid(img.VirtualBase));
        Assert.Equal(AddressKind.KernelText, m.ClassifyAddress(img.VirtualBase));
        // Text is read-only and executable, rodata read-only NX, data writable NX: no W+X anywhere.
        Assert.False(m.TryTranslate(cpu, img.VirtualBase, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out var f));
        Assert.Equal(0x3u, (uint)f.ErrorCode);
        Assert.False(m.TryTranslate(cpu, X86_64Layout.StartKernelMap + img.RodataStart, MemoryAccess.Execute, PrivilegeMode.Supervisor, out _, out f));
        Assert.Equal(0x11u, (uint)f.ErrorCode);
        Assert.True(m.TryTranslate(cpu, X86_64Layout.StartKernelMap + img.DataStart, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out _));
        Assert.Equal(0, m.Ptdump().WxPages);
        Assert.Contains("x86/mm: Checked W+X mappings: passed, no W+X pages found.", m.Log.Lines);
    }

    [Fact]
    public void I386_kernel_text_and_rodata_are_read_only_in_lowmem()
    {
        using var m = Machines.I386(64);
        var cpu = m.GetCpu(0);
        var img = m.Image;
        Assert.False(m.TryTranslate(cpu, m.PageOffset + img.Start, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out var f));
        Assert.Equal(0x3u, (uint)f.ErrorCode);
        Assert.False(m.TryTranslate(cpu, m.PageOffset + img.DataStart - 1, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out _));
        Assert.True(m.TryTranslate(cpu, m.PageOffset + img.DataStart, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out _));
        Assert.Contains($"Write protecting kernel text and read-only data: {(img.TextBytes + img.RodataBytes) >> 10}k", m.Log.Lines);
    }

    [Fact]
    public void Swapper_pg_dir_sits_in_the_image_bss_and_the_boot_tables_are_reserved()
    {
        foreach (var m in new[] { Machines.I386(64), Machines.X64(64) })
        {
            using var _ = m;
            ulong pgd = m.InitMm.Pgd;
            Assert.Equal(m.Image.BssStart + 4096, pgd);
            Assert.Contains(m.Memblock.Reserved, r => r.Name == "page tables");
            Assert.Equal(0, m.NodeState(NodeStat.NrPageTablePages));    // boot tables are not NR_PAGETABLE
            foreach (var s in m.WalkPageTables(m.PageOffset + 0x1000).Steps)
                Assert.True(m.ReadPage(s.EntryPhys >> 12).IsReserved);
            Assert.Equal(m.InitMm.Pgd, m.GetCpu(0).Cr3);
        }
    }

    [Fact]
    public void I386_boot_layout_lines_come_from_the_tables()
    {
        using var m = Machines.I386(1024);
        Assert.Equal(0xf6ffe000UL, m.HighMemory);
        Assert.Equal(0xf77fe000UL, m.VmallocStart);
        Assert.Equal(I386Layout.VmallocEnd, m.VmallocEnd);
        Assert.Contains($"    lowmem  : 0xc0000000 - 0x{m.HighMemory:x8}   ( 879 MB)", m.Log.Lines);
        Assert.Contains($"    vmalloc : 0x{m.VmallocStart:x8} - 0x{m.VmallocEnd:x8}   ( 120 MB)", m.Log.Lines);
        // The pkmap and fixmap page tables exist from boot: their PDEs are present.
        Assert.Equal(2, m.WalkPageTables(I386Layout.PkmapBase).Steps.Count);
        Assert.Equal(2, m.WalkPageTables(I386Layout.FixaddrStart).Steps.Count);
    }

    public static TheoryData<ArchKind, ulong, AddressKind> Classification => new()
    {
        { ArchKind.I386, 0x0804_8000, AddressKind.User },
        { ArchKind.I386, 0xc010_0000, AddressKind.Logical },
        { ArchKind.I386, 0xc480_0000, AddressKind.Vmalloc },        // 64 MiB: high_memory 0xc4000000 + 8 MiB
        { ArchKind.I386, 0xc410_0000, AddressKind.Unused },         // the 8 MiB gap
        { ArchKind.I386, I386Layout.PkmapBase + 0x5000, AddressKind.Pkmap },
        { ArchKind.I386, I386Layout.FixaddrStart, AddressKind.Fixmap },
        { ArchKind.I386, 0x1_0000_0000, AddressKind.NonCanonical },
        { ArchKind.X86_64, 0x0000_7fff_ffff_f000, AddressKind.User },
        { ArchKind.X86_64, 0x0000_8000_0000_0000, AddressKind.NonCanonical },
        { ArchKind.X86_64, 0xffff_8000_0000_0000, AddressKind.GuardHole },
        { ArchKind.X86_64, 0xffff_8880_0010_0000, AddressKind.Logical },
        { ArchKind.X86_64, 0xffff_c900_0000_1000, AddressKind.Vmalloc },
        { ArchKind.X86_64, 0xffff_ea00_0000_0040, AddressKind.Vmemmap },
        { ArchKind.X86_64, 0xffff_ffff_8100_0000, AddressKind.KernelText },
        { ArchKind.X86_64, 0xffff_ffff_c000_0000, AddressKind.Modules },
        { ArchKind.X86_64, 0xffff_ffff_ff60_0000, AddressKind.Fixmap },
    };

    [Theory]
    [MemberData(nameof(Classification))]
    public void Addresses_are_classified_as_the_kernel_lays_them_out(ArchKind arch, ulong va, AddressKind kind)
    {
        using var m = Machines.Boot(arch, 64);
        Assert.Equal(kind, m.ClassifyAddress(va));
        Assert.Equal(kind == AddressKind.User, m.IsUserAddress(va));
        Assert.Equal(kind is not (AddressKind.User or AddressKind.NonCanonical), m.IsKernelAddress(va));
        Assert.Equal(kind is AddressKind.Vmalloc or AddressKind.Pkmap or AddressKind.Fixmap, m.IsVirtualAddress(va));
    }
}
