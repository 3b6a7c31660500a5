using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class BuddyTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Allocating_every_page_then_freeing_all_restores_the_boot_buddyinfo(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 32);
        var before = Machines.FreeAreas(m);
        string buddyinfo = m.Proc.Buddyinfo();
        var rng = new Random(1234);
        var held = new List<(Page Page, int Order)>();
        // __GFP_MEMALLOC ignores watermarks, so the machine can be emptied completely.
        var gfp = Gfp.HighUser | Gfp.Memalloc;
        for (int order = 10; order >= 0; order--)
        {
            while (true)
            {
                int o = rng.Next(0, order + 1);
                var page = m.AllocPages(gfp | Gfp.NoWarn, o);
                if (page is null)
                {
                    if (o == 0)
                        break;
                    continue;
                }
                held.Add((page.Value, o));
                if (held.Count % 512 == 0)
                    m.CheckConsistency();
            }
        }
        var full = m.CheckConsistency();
        Assert.Equal(0, full.Total.Free);
        Assert.Equal(full.Total.Present - full.Total.Reserved, full.Total.Allocated);
        Assert.Equal(full.Total.Allocated, held.Sum(h => 1L << h.Order));

        foreach (var (page, order) in held.OrderBy(_ => rng.Next()))
            m.FreePages(page, order);
        m.DrainAllPages();
        var after = m.CheckConsistency();
        Assert.Equal(0, after.Total.Allocated);
        Assert.Equal(0, after.Total.PerCpu);
        Assert.Equal(before, Machines.FreeAreas(m));
        Assert.Equal(buddyinfo, m.Proc.Buddyinfo());
    }

    [Fact]
    public void Split_takes_the_smallest_block_and_puts_upper_halves_back()
    {
        using var m = Machines.X64(64);
        var dma = m.Zones[0];
        // DMA starts as 1×256 + 1×512 + 3×1024 free pages (pfns 256..4095).
        Assert.Equal([0L, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3], Enumerable.Range(0, 11).Select(o => dma.NrFree(o)));
        // A movable request (an unmovable one would claim a whole pageblock from the largest movable block).
        var page = m.AllocPages(Gfp.Dma | Gfp.Movable, 4)!.Value;
        // The order-8 block at pfn 256 is the smallest that fits: split into 4+4 | 5 | 6 | 7.
        Assert.Equal(256UL, page.Pfn);
        Assert.Equal([0L, 0, 0, 0, 1, 1, 1, 1, 0, 1, 3], Enumerable.Range(0, 11).Select(o => dma.NrFree(o)));
        Assert.Equal(4, m.ReadPage(256 + 16).BuddyOrder);
        Assert.Equal(7, m.ReadPage(256 + 128).BuddyOrder);
        m.FreePages(page, 4);
        // Freeing merges 4 -> 5 -> 6 -> 7 -> 8 back (the buddy of 256 at order 8 is 0, reserved: stop).
        Assert.Equal([0L, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3], Enumerable.Range(0, 11).Select(o => dma.NrFree(o)));
        Assert.Equal(8, m.ReadPage(256).BuddyOrder);
        m.CheckConsistency();
    }

    [Fact]
    public void Buddy_of_a_block_is_pfn_xor_size()
    {
        using var m = Machines.X64(64);
        // Order 4 bypasses the per-CPU lists (orders 0-3), so frees reach the buddy lists at once.
        var a = m.AllocPages(Gfp.Dma | Gfp.Movable, 4)!.Value;
        var b = m.AllocPages(Gfp.Dma | Gfp.Movable, 4)!.Value;
        Assert.Equal(a.Pfn ^ 16, b.Pfn);                         // the upper half of the split is the buddy
        m.FreePages(a, 4);
        Assert.Equal(4, m.ReadPage(a.Pfn).BuddyOrder);            // buddy still allocated: no merge
        m.FreePages(b, 4);
        Assert.False(m.ReadPage(b.Pfn).IsBuddy);                  // merged into the block at a.Pfn & b.Pfn
        Assert.True(m.ReadPage(a.Pfn & b.Pfn).BuddyOrder >= 5);
    }

    [Fact]
    public void Compound_pages_mark_head_and_tails()
    {
        using var m = Machines.X64(64);
        var page = m.AllocPages(Gfp.Kernel | Gfp.Comp, 3)!.Value;
        var head = page.Descriptor;
        Assert.True(head.IsHead);
        Assert.Equal(1, head.Refcount);
        Assert.Equal(3UL, m.ReadPage(page.Pfn + 1).Flags & 0xff);     // folio order in page[1]
        for (ulong i = 1; i < 8; i++)
        {
            var t = m.ReadPage(page.Pfn + i);
            Assert.True(t.IsTail);
            Assert.Equal(head.Address | 1, t.LruNext);                 // compound_head
            Assert.Equal(0xdead000000000400UL, t.Mapping);              // TAIL_MAPPING
            Assert.Equal(0, t.Refcount);
        }
        // put_page() on a tail drops the head's reference and frees the whole compound page.
        m.PutPage(m.PfnToPage(page.Pfn + 5));
        Assert.False(m.ReadPage(page.Pfn + 1).IsTail);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
    }

    [Fact]
    public void Get_page_keeps_a_page_alive_across_free_pages()
    {
        using var m = Machines.I386(32);
        var page = m.AllocPages(Gfp.Kernel, 0)!.Value;
        m.GetPage(page);
        Assert.Equal(2, page.Refcount);
        m.FreePages(page, 0);                                          // drops one reference only
        Assert.Equal(1, page.Refcount);
        Assert.Equal(1, m.CheckConsistency().Total.Allocated);
        m.PutPage(page);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
    }

    [Fact]
    public void Free_pages_with_extra_references_frees_the_tails_of_a_non_compound_block()
    {
        using var m = Machines.I386(32);
        var page = m.AllocPages(Gfp.Kernel, 2)!.Value;
        m.GetPage(page);
        m.FreePages(page, 2);
        Assert.Equal(1, m.CheckConsistency().Total.Allocated);         // the head stays for its other user
        m.PutPage(page);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
    }

    [Fact]
    public void Alloc_pages_exact_uses_exactly_the_pages_asked_for()
    {
        using var m = Machines.X64(64);
        ulong addr = m.AllocPagesExact(5 * 4096 - 100, Gfp.Kernel);
        Assert.NotEqual(0UL, addr);
        Assert.Equal(5, m.CheckConsistency().Total.Allocated);
        m.FreePagesExact(addr, 5 * 4096 - 100);
        Assert.Equal(0, m.CheckConsistency().Total.Allocated);
    }

    [Fact]
    public void Get_free_pages_returns_linear_addresses_and_zeroes_with_gfp_zero()
    {
        using var m = Machines.I386(64);
        ulong addr = m.GetFreePages(Gfp.Kernel, 1);
        ulong pa = m.Pa(addr);
        m.Memory.WriteUInt64(pa + 8, 0x1122334455667788);
        m.FreePages(addr, 1);
        ulong z = m.GetZeroedPage(Gfp.Kernel);
        Assert.Equal(m.PageOffset, z & 0xf0000000);
        var buf = new byte[4096];
        m.Memory.Read(m.Pa(z), buf);
        Assert.All(buf, b => Assert.Equal(0, b));
        Assert.Throws<InvalidAllocationException>(() => m.GetFreePages(Gfp.HighUser, 0));
    }

    [Fact]
    public void Allocation_that_cannot_be_met_returns_null_and_warns()
    {
        using var m = Machines.X64(64);
        int lines = m.Log.Count;
        int got = 0;
        while (m.AllocPages(Gfp.Dma, 10) is not null)
            got++;
        Assert.Equal(3, got);                                          // DMA holds three order-10 blocks
        var warn = m.Log.Since(lines);
        Assert.Contains("kmem: page allocation failure: order:10, mode:0x1(GFP_DMA), nodemask=(null)", warn);
        int count = m.Log.Count;
        Assert.Null(m.AllocPages(Gfp.Dma | Gfp.NoWarn, 10));
        Assert.Equal(count, m.Log.Count);                              // __GFP_NOWARN: no report
        Assert.NotNull(m.AllocPages(Gfp.Kernel, 0));                   // the machine is still usable
        m.CheckConsistency();
    }

    [Theory]
    [InlineData(11, 0xcc0u)]
    [InlineData(-1, 0xcc0u)]
    [InlineData(0, 0x200u)]
    [InlineData(0, 0x2000000u)]
    [InlineData(0, 0x3u)]     // __GFP_DMA | __GFP_HIGHMEM names no zone
    [InlineData(0, 0x6u)]     // __GFP_HIGHMEM | __GFP_DMA32
    public void Bad_requests_are_rejected_before_anything_changes(int order, uint gfp)
    {
        using var m = Machines.I386(32);
        var before = Machines.FreeAreas(m);
        Assert.Throws<InvalidAllocationException>(() => m.AllocPages((Gfp)gfp, order));
        Assert.Equal(before, Machines.FreeAreas(m));
        m.CheckConsistency();
    }
}
