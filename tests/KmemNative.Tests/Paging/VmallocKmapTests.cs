using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>vmalloc/vfree/vmap and kmap/kunmap/kmap_local: real PTEs, page tables returned, counters.</summary>
public class VmallocKmapTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Vmalloc_maps_scattered_pages_contiguously_and_vfree_returns_everything(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        long allocated = m.CheckConsistency().Total.Allocated;
        ulong va = m.Vmalloc(cpu, 5 * 4096 + 100);
        Assert.Equal(m.VmallocStart, va);
        Assert.Equal(AddressKind.Vmalloc, m.ClassifyAddress(va));
        var area = Assert.Single(m.VmallocAreas);
        Assert.Equal(6, area.Pfns.Count);
        for (int i = 0; i < 6; i++)
        {
            ulong page = va + (ulong)i * 4096;
            Assert.Equal(area.Pfns[i] << 12, m.Translate(cpu, page));
            Assert.Equal(area.Pfns[i], m.VmallocToPage(page)!.Value.Pfn);
        }
        Assert.False(m.TryTranslate(cpu, va + 6 * 4096, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out _)); // guard page
        Assert.Contains("VmallocUsed:          24 kB", m.Proc.Meminfo());
        long tables = m.NodeState(NodeStat.NrPageTablePages);
        Assert.True(tables >= 1);                                          // a PTE table (and on x86-64 a PMD table)
        Assert.Equal(allocated + 6 + tables, m.CheckConsistency().Total.Allocated);
        foreach (var s in m.WalkPageTables(va).Steps.Skip(arch == ArchKind.X86_64 ? 2 : 1))
            Assert.True(m.ReadPage(s.EntryPhys >> 12).IsPageTable);        // typed PGTY_table

        // A second area goes after the first one's guard page.
        ulong va2 = m.Vmalloc(cpu, 4096);
        Assert.Equal(va + 7 * 4096, va2);
        m.Vfree(cpu, va);
        m.Vfree(cpu, va2);
        Assert.Empty(m.VmallocAreas);
        Assert.Contains("VmallocUsed:           0 kB", m.Proc.Meminfo());
        Assert.Equal(0, m.NodeState(NodeStat.NrPageTablePages));
        Assert.Equal(allocated, m.CheckConsistency().Total.Allocated);
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out _));
    }

    [Fact]
    public void I386_vmalloc_takes_highmem_pages_and_reaches_them_without_a_permanent_mapping()
    {
        using var m = Machines.I386(1024);
        var cpu = m.GetCpu(0);
        ulong va = m.Vmalloc(cpu, 3 * 4096);
        var area = m.VmallocAreas.Single();
        Assert.All(area.Pfns, pfn => Assert.True(pfn >= m.MaxLowPfn));     // __GFP_HIGHMEM
        m.WriteVirtual(cpu, va + 4090, "hello highmem"u8);                   // crosses into the second page
        Assert.Equal((byte)'h', m.Memory.ReadByte((area.Pfns[0] << 12) + 4090));
        Assert.Equal((byte)'h', m.Memory.ReadByte((area.Pfns[1] << 12) + 0));
        Assert.Equal(0UL, m.PageAddress(m.PfnToPage(area.Pfns[0])));       // no lowmem address
        m.Vfree(cpu, va);
        m.CheckConsistency();
    }

    [Fact]
    public void I386_a_user_pgd_sees_a_vmalloc_table_created_after_it_and_loses_it_when_freed()
    {
        using var m = Machines.I386(64);
        var cpu = m.GetCpu(0);
        var mm = m.CreateAddressSpace(cpu);
        ulong va = m.Vmalloc(cpu, 4096);
        // arch_sync_kernel_mappings(): the new PDE was copied into the other directory on pgd_list.
        Assert.Equal(m.Translate(cpu, va), m.TranslatePgd(mm.Pgd, va).Physical);
        m.Vfree(cpu, va);
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out _));
        Assert.Equal(0UL, m.WalkPageTables(va, mm).LastEntry);            // the PDE is gone there too
        mm.Dispose();
        m.CheckConsistency();
    }

    [Fact]
    public void Vmap_maps_given_pages_and_vunmap_leaves_them_allocated()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var pages = Enumerable.Range(0, 3).Select(_ => m.AllocPage(Gfp.Kernel)!.Value).ToList();
        ulong va = m.Vmap(cpu, pages, PageProt.KernelRo);
        Assert.Equal(pages[2].PhysAddr + 8, m.Translate(cpu, va + 2 * 4096 + 8));
        Assert.False(m.TryTranslate(cpu, va, MemoryAccess.Write, PrivilegeMode.Supervisor, out _, out var f));
        Assert.Equal(0x3u, (uint)f.ErrorCode);
        Assert.Throws<VirtualAddressException>(() => m.Vunmap(cpu, va + 4096));
        m.Vunmap(cpu, va);
        Assert.Equal(1, pages[0].Refcount);
        pages.ForEach(p => m.FreePages(cpu, p, 0));
        m.CheckConsistency();
    }

    [Fact]
    public void Bad_vmalloc_requests_fail_cleanly()
    {
        using var m = Machines.I386(32);
        var cpu = m.GetCpu(0);
        long allocated = m.CheckConsistency().Total.Allocated;
        Assert.Equal(0UL, m.Vmalloc(cpu, 0));
        Assert.Contains(m.Log.Lines, l => l.Contains("vmalloc error: size 0", StringComparison.Ordinal));
        Assert.Equal(0UL, m.Vmalloc(cpu, 1UL << 30));                       // larger than the area
        Assert.Equal(0UL, m.Vmalloc(cpu, 64UL << 20));                      // more pages than RAM: pages given back
        Assert.Equal(allocated, m.CheckConsistency().Total.Allocated);  // every page and table given back
        Assert.Empty(m.VmallocAreas);
        Assert.Throws<VirtualAddressException>(() => m.Vfree(cpu, m.VmallocStart + 4096));
        m.Vfree(cpu, 0);
        m.CheckConsistency();
    }

    [Fact]
    public void Kmap_of_a_highmem_page_uses_a_pkmap_slot_unmapped_lazily()
    {
        using var m = Machines.I386(1024);
        var cpu = m.GetCpu(0);
        var page = m.AllocPage(Gfp.HighUser)!.Value;
        Assert.True(page.Pfn >= m.MaxLowPfn);
        Assert.Equal(0UL, m.PageAddress(page));
        ulong va = m.Kmap(cpu, page);
        Assert.Equal(AddressKind.Pkmap, m.ClassifyAddress(va));
        Assert.Equal(I386Layout.PkmapBase + 4096, va);                    // last_pkmap_nr starts at 0: slot 1 first
        Assert.Equal(va, m.PageAddress(page));
        Assert.Equal(va, m.Kmap(cpu, page));                              // a second user shares the slot
        m.WriteVirtualUInt(cpu, va + 16, 8, 0x0123_4567_89ab_cdef);
        Assert.Equal(0x0123_4567_89ab_cdefUL, m.Memory.ReadUInt64(page.PhysAddr + 16));
        m.Kunmap(cpu, page);
        m.Kunmap(cpu, page);
        Assert.Throws<KmemException>(() => m.Kunmap(cpu, page));
        // kunmap() does not unmap: the slot waits for flush_all_zero_pkmaps().
        Assert.Equal(page.PhysAddr, m.WalkPageTables(va).Physical);
        m.KmapFlushUnused(cpu);
        Assert.False(m.WalkPageTables(va).IsMapped);
        Assert.Equal(0UL, m.PageAddress(page));
        m.FreePages(cpu, page, 0);
        var low = m.AllocPage(Gfp.Kernel)!.Value;
        Assert.Equal(m.PageAddress(low), m.Kmap(cpu, low));              // lowmem: page_address()
        m.Kunmap(cpu, low);
        m.FreePages(cpu, low, 0);
    }

    [Fact]
    public void Kmap_local_is_a_per_cpu_stack_of_fixmap_slots()
    {
        using var m = Machines.I386(1024);
        var cpu = m.GetCpu(1);
        var a = m.AllocPage(Gfp.HighUser)!.Value;
        var b = m.AllocPage(Gfp.HighUser)!.Value;
        ulong va = m.KmapLocalPage(cpu, a);
        ulong vb = m.KmapAtomic(cpu, b);
        Assert.Equal(I386Layout.FixToVirt(I386Layout.FixKmapBegin + I386Layout.KmMaxIdx * 1), va);
        Assert.Equal(va - 4096, vb);
        Assert.Equal(AddressKind.Fixmap, m.ClassifyAddress(va));
        Assert.Equal(b.PhysAddr, m.Translate(cpu, vb));
        Assert.Throws<KmemException>(() => m.KunmapLocal(cpu, va));      // not the innermost
        m.KunmapAtomic(cpu, vb);
        Assert.False(m.TryTranslate(cpu, vb, MemoryAccess.Read, PrivilegeMode.Supervisor, out _, out _)); // flushed locally
        m.KunmapLocal(cpu, va);
        Assert.False(m.WalkPageTables(va).IsMapped);
        var low = m.AllocPage(Gfp.Kernel)!.Value;
        Assert.Equal(m.PageAddress(low), m.KmapLocalPage(cpu, low));     // lowmem takes no slot
        m.KunmapLocal(cpu, m.PageAddress(low));
        new[] { a, b, low }.ToList().ForEach(p => m.FreePages(cpu, p, 0));
        m.CheckConsistency();
    }

    [Fact]
    public void Kmap_on_x86_64_is_page_address()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var p = m.AllocPage(Gfp.HighUser)!.Value;
        Assert.Equal(m.PageAddress(p), m.Kmap(cpu, p));
        Assert.Equal(m.PageAddress(p), m.KmapLocalPage(cpu, p));
        m.KunmapLocal(cpu, m.PageAddress(p));
        m.Kunmap(cpu, p);
        m.FreePages(cpu, p, 0);
    }
}
