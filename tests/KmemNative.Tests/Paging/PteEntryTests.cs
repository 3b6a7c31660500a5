using KmemNative.Arch;
using KmemNative.Paging;

namespace KmemNative.Tests.Paging;

/// <summary>The entry views decode and encode every bit where Intel's tables put it.</summary>
public class PteEntryTests
{
    public static TheoryData<int, string> Bits64 => new()
    {
        { 0, "Present" }, { 1, "Writable" }, { 2, "User" }, { 3, "WriteThrough" }, { 4, "CacheDisable" },
        { 5, "Accessed" }, { 6, "Dirty" }, { 7, "PageSize" }, { 8, "Global" }, { 63, "NoExecute" },
    };

    [Theory]
    [MemberData(nameof(Bits64))]
    public void Each_flag_bit_of_a_64_bit_entry_sets_exactly_its_property(int bit, string property)
    {
        var e = new Pte64(1UL << bit);
        var props = typeof(Pte64).GetProperties().Where(p => p.PropertyType == typeof(bool)).ToList();
        Assert.Equal(10, props.Count);
        foreach (var p in props)
            Assert.Equal(p.Name == property, (bool)p.GetValue(e)!);
        Assert.Equal((PteFlags)(1UL << bit), e.Flags);
    }

    [Theory]
    [InlineData(0, "Present")]
    [InlineData(1, "Writable")]
    [InlineData(2, "User")]
    [InlineData(3, "WriteThrough")]
    [InlineData(4, "CacheDisable")]
    [InlineData(5, "Accessed")]
    [InlineData(6, "Dirty")]
    [InlineData(7, "PageSize")]
    [InlineData(8, "Global")]
    public void Each_flag_bit_of_a_32_bit_entry_sets_exactly_its_property(int bit, string property)
    {
        var e = new Pte32(1u << bit);
        foreach (var p in typeof(Pte32).GetProperties().Where(p => p.PropertyType == typeof(bool)))
            Assert.Equal(p.Name == property, (bool)p.GetValue(e)!);
    }

    [Fact]
    public void Software_bits_protection_keys_and_the_pfn_field_of_a_64_bit_entry()
    {
        Assert.Equal(7, new Pte64(0xe00).SoftwareLow);          // bits 11:9
        Assert.Equal(3, new Pte64(3UL << 57).SoftwareHigh);      // bits 58:57
        Assert.Equal(0xa, new Pte64(0xaUL << 59).ProtectionKey); // bits 62:59
        Assert.Equal(0xaUL << 59, new Pte64(0).WithProtectionKey(0xa).Value);
        Assert.Equal(0x000f_ffff_ffff_f000UL, Pte64.FrameMask);   // PTE_PFN_MASK: bits 51:12
        var all = new Pte64(ulong.MaxValue);
        Assert.Equal((1UL << 40) - 1, all.Pfn(1));                // a 40-bit frame number
        Assert.Equal(0x000f_ffff_ffe0_0000UL >> 12, all.Pfn(2));
        Assert.Equal(0x000f_ffff_c000_0000UL >> 12, all.Pfn(3));
        Assert.Equal((PteFlags)0xfff0_0000_0000_0fffUL, all.Flags); // pte_flags(): bits 11:0 and 63:52
    }

    [Fact]
    public void The_pat_bit_is_bit_7_in_a_pte_and_bit_12_in_a_large_leaf()
    {
        Assert.True(new Pte64(0x80).Pat(1));
        Assert.False(new Pte64(0x80).Pat(2));
        Assert.True(new Pte64(0x1000).Pat(2));
        Assert.True(new Pte64(0x1000).Pat(3));
        Assert.False(new Pte64(0x1000).Pat(1));                    // an address bit in a 4 KiB PTE
        Assert.Equal(7, new Pte64(0x98).CacheIndex(1));            // PAT|PCD|PWT
        Assert.Equal(5, new Pte32(0x1088).CacheIndex(2));          // PAT_LARGE|PWT in a 4 MiB PDE
        Assert.Equal(0x1000UL, new Pte64(0x1081).FrameAddress(1)); // bit 12 is an address bit at level 1...
        Assert.Equal(0UL, new Pte64(0x1081).FrameAddress(2));      // ... and PAT in a 2 MiB leaf
    }

    [Fact]
    public void A_4_MiB_pde_carries_pse36_address_bits_39_32_in_bits_20_13()
    {
        var pde = Pte32.Make(0x12_c040_0000UL, PteFlags.Present | PteFlags.Rw | PteFlags.Pse, level: 2);
        Assert.Equal(0xc040_0000u | (0x12u << 13) | 0x83u, pde.Value);
        Assert.Equal(0x12_c040_0000UL, pde.FrameAddress(2));
        Assert.Equal(0x12_c040_0000UL, I386.LargePageFrame(pde.Value, 2));
        Assert.True(pde.IsLeaf(2));
        Assert.False(pde.IsLeaf(2, pse: false));                   // without CR4.PSE bit 7 is ignored: a table
        Assert.Equal(0xc042_4000UL, pde.TableAddress);               // the same bits read as a page-table address
        Assert.Equal(1u << 21, Pte32.LargeReservedMask);
        Assert.Equal(1UL << 21, I386.ReservedBits(2, largeLeaf: true, nxe: false));
        Assert.Equal(0UL, I386.ReservedBits(2, largeLeaf: false, nxe: false));
        Assert.Equal(0UL, I386.ReservedBits(1, largeLeaf: false, nxe: false));
    }

    [Fact]
    public void Encoding_rejects_what_the_layout_cannot_hold()
    {
        Assert.Throws<ArgumentException>(() => Pte32.Make(0x1000, PteFlags.Present | PteFlags.Nx));      // no NX on 2-level
        Assert.Throws<ArgumentException>(() => Pte32.Make(0x1234, PteFlags.Present));                    // not page aligned
        Assert.Throws<ArgumentException>(() => Pte32.Make(0x20_0000, PteFlags.Present | PteFlags.Pse, 2)); // not 4 MiB aligned
        Assert.Throws<ArgumentException>(() => Pte64.Make(0x1000, PteFlags.Present | PteFlags.Pse, 2));   // not 2 MiB aligned
        Assert.Throws<ArgumentException>(() => Pte64.Make(1UL << 52, PteFlags.Present));                 // beyond 52 bits
        Assert.Equal(0x8000_0000_4000_0000UL | 0x1e3, Pte64.Make(0x4000_0000, (PteFlags)PageProt.KernelLarge, 3).Value);
    }

    [Fact]
    public void Reserved_bits_follow_the_sdm_per_level()
    {
        const ulong phys = 0x000f_c000_0000_0000; // bits 51:46 above MAXPHYADDR 46
        Assert.Equal(phys | 0x80, X86_64.ReservedBits(4, false, nxe: true));              // PML4E: PS reserved
        Assert.Equal(phys | 0x3fff_e000, X86_64.ReservedBits(3, true, nxe: true));        // 1 GiB: 29:13
        Assert.Equal(phys | 0x1f_e000, X86_64.ReservedBits(2, true, nxe: true));          // 2 MiB: 20:13
        Assert.Equal(phys, X86_64.ReservedBits(1, false, nxe: true));
        Assert.Equal(phys | (1UL << 63), X86_64.ReservedBits(1, false, nxe: false));      // NX reserved without NXE
    }

    [Fact]
    public void Composite_protections_have_the_kernels_values()
    {
        Assert.Equal(0x067UL, PageProt.PageTable);
        Assert.Equal(0x063UL, PageProt.KernPgTable);
        Assert.Equal(0x163UL, PageProt.KernelExec);
        Assert.Equal(0x8000_0000_0000_0163UL, PageProt.Kernel);
        Assert.Equal(0x8000_0000_0000_0161UL, PageProt.KernelRo);
        Assert.Equal(0x161UL, PageProt.KernelRx);
        Assert.Equal(0x8000_0000_0000_01e3UL, PageProt.KernelLarge);
        Assert.Equal(0x1e3UL, PageProt.KernelLargeExec);
        Assert.Equal(0x165UL, PageProt.KernelVsyscall);
        Assert.Equal(0x8000_0000_0000_0027UL, PageProt.Shared);
        Assert.Equal(0x8000_0000_0000_0025UL, PageProt.ReadOnly);
        Assert.Equal(0x120UL, PageProt.None);
    }

    [Fact]
    public void Error_code_bits_match_trap_pf_h()
    {
        Assert.Equal(0x6u, (uint)(PfErrorCode.Write | PfErrorCode.User));                       // not-present write from user
        Assert.Equal(0x15u, (uint)(PfErrorCode.Prot | PfErrorCode.User | PfErrorCode.Instr));   // NX fetch from user
        Assert.Equal(0x8u, (uint)PfErrorCode.Rsvd);
        Assert.Equal(0x20u, (uint)PfErrorCode.Pk);
        Assert.Equal(0x40u, (uint)PfErrorCode.Shstk);
    }

    [Fact]
    public void Geometry_of_the_two_profiles()
    {
        Assert.Equal((2, 4, 10, 22), (I386.PagingLevels, 1 << I386.PteShift, I386.IndexBits, 12 + I386.IndexBits));
        Assert.Equal((4, 8, 9), (X86_64.PagingLevels, 1 << X86_64.PteShift, X86_64.IndexBits));
        Assert.Equal(39, KmemNative.Paging.PageTables<X86_64>.Shift(4));
        Assert.Equal(30, KmemNative.Paging.PageTables<X86_64>.Shift(3));
        Assert.Equal(21, KmemNative.Paging.PageTables<X86_64>.Shift(2));
        Assert.Equal(22, KmemNative.Paging.PageTables<I386>.Shift(2));
        Assert.Equal(1024, KmemNative.Paging.PageTables<I386>.Ptrs(2));
        Assert.Equal(512, KmemNative.Paging.PageTables<X86_64>.Ptrs(4));
        Assert.Equal(768, I386.KernelPgdBoundary);                  // PAGE_OFFSET >> 22
        Assert.Equal(256, X86_64.KernelPgdBoundary);
        Assert.True(X86_64.IsCanonical(0x0000_7fff_ffff_ffff));
        Assert.True(X86_64.IsCanonical(0xffff_8000_0000_0000));
        Assert.False(X86_64.IsCanonical(0x0000_8000_0000_0000));
        Assert.False(X86_64.IsCanonical(0xffff_7fff_ffff_ffff));
        Assert.False(I386.IsCanonical(0x1_0000_0000));
    }
}
