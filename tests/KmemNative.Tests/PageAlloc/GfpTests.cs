using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

public class GfpTests
{
    [Theory]
    [InlineData(Gfp.Dma, 0x1u)]
    [InlineData(Gfp.HighMem, 0x2u)]
    [InlineData(Gfp.Dma32, 0x4u)]
    [InlineData(Gfp.Movable, 0x8u)]
    [InlineData(Gfp.Reclaimable, 0x10u)]
    [InlineData(Gfp.High, 0x20u)]
    [InlineData(Gfp.Io, 0x40u)]
    [InlineData(Gfp.Fs, 0x80u)]
    [InlineData(Gfp.Zero, 0x100u)]
    [InlineData(Gfp.DirectReclaim, 0x400u)]
    [InlineData(Gfp.KswapdReclaim, 0x800u)]
    [InlineData(Gfp.Write, 0x1000u)]
    [InlineData(Gfp.NoWarn, 0x2000u)]
    [InlineData(Gfp.RetryMayFail, 0x4000u)]
    [InlineData(Gfp.NoFail, 0x8000u)]
    [InlineData(Gfp.NoRetry, 0x10000u)]
    [InlineData(Gfp.Memalloc, 0x20000u)]
    [InlineData(Gfp.Comp, 0x40000u)]
    [InlineData(Gfp.NoMemalloc, 0x80000u)]
    [InlineData(Gfp.Hardwall, 0x100000u)]
    [InlineData(Gfp.ThisNode, 0x200000u)]
    [InlineData(Gfp.Account, 0x400000u)]
    [InlineData(Gfp.ZeroTags, 0x800000u)]
    [InlineData(Gfp.NoObjExt, 0x1000000u)]
    [InlineData(Gfp.Atomic, 0x820u)]
    [InlineData(Gfp.Kernel, 0xcc0u)]
    [InlineData(Gfp.KernelAccount, 0x400cc0u)]
    [InlineData(Gfp.NoWait, 0x2800u)]
    [InlineData(Gfp.NoIo, 0xc00u)]
    [InlineData(Gfp.NoFs, 0xc40u)]
    [InlineData(Gfp.User, 0x100cc0u)]
    [InlineData(Gfp.HighUser, 0x100cc2u)]
    [InlineData(Gfp.HighUserMovable, 0x100ccau)]
    [InlineData(Gfp.TransHugeLight, 0x1c20cau)]
    [InlineData(Gfp.TransHuge, 0x1c24cau)]
    public void Flags_have_the_linux_6_18_values(Gfp gfp, uint value) => Assert.Equal(value, (uint)gfp);

    [Theory]
    [InlineData(0u, "none")]
    [InlineData(0xcc0u, "GFP_KERNEL")]
    [InlineData(0xdc0u, "GFP_KERNEL|__GFP_ZERO")]
    [InlineData(0x100ccau, "GFP_HIGHUSER_MOVABLE")]
    [InlineData(0x4u, "GFP_DMA32")]
    [InlineData(0x2880u, "GFP_NOWAIT|__GFP_FS")]
    [InlineData(0x200u, "0x200")]
    [InlineData(0x4000cc0u, "GFP_KERNEL|0x4000000")]
    public void Format_prints_like_print_flags(uint value, string text) => Assert.Equal(text, GfpFlags.Format((Gfp)value));

    [Fact]
    public void Every_gfp_string_of_the_real_trace_round_trips()
    {
        var lines = File.ReadAllLines(Machines.DataFile("gfp-strings-trace-a.txt")).Where(l => !l.StartsWith('#')).ToList();
        Assert.Equal(49, lines.Count);
        foreach (var line in lines)
        {
            string text = line.Split(' ')[0];
            var gfp = GfpFlags.Parse(text);
            Assert.Equal(text, GfpFlags.Format(gfp));
            Assert.Equal(0u, GfpFlags.UnknownBits(gfp));
        }
    }

    [Theory]
    [InlineData("GFP_KERNEL|__GFP_ZERO", 0xdc0u)]
    [InlineData("0xdc0", 0xdc0u)]
    [InlineData("3520", 0xdc0u)]
    [InlineData("KERNEL|ZERO", 0xdc0u)]
    [InlineData("none", 0u)]
    [InlineData("GFP_ATOMIC | __GFP_NOWARN", 0x2820u)]
    public void Parse_accepts_names_and_numbers(string text, uint value) => Assert.Equal(value, (uint)GfpFlags.Parse(text));

    [Theory]
    [InlineData("GFP_BOGUS")]
    [InlineData("")]
    [InlineData("GFP_KERNEL|")]
    [InlineData("0xzz")]
    public void Parse_rejects_garbage_with_a_typed_error(string text) => Assert.Throws<GfpFormatException>(() => GfpFlags.Parse(text));

    [Theory]
    [InlineData(0x0u, ZoneType.Normal, ZoneType.Normal)]
    [InlineData(0x1u, ZoneType.Dma, ZoneType.Dma)]
    [InlineData(0x2u, ZoneType.Normal, ZoneType.HighMem)]
    [InlineData(0x4u, ZoneType.Dma32, ZoneType.Normal)]
    [InlineData(0x8u, ZoneType.Normal, ZoneType.Normal)]
    [InlineData(0x9u, ZoneType.Dma, ZoneType.Dma)]
    [InlineData(0xau, ZoneType.Movable, ZoneType.Movable)]
    [InlineData(0xcu, ZoneType.Dma32, ZoneType.Normal)]
    public void Gfp_zone_follows_the_zone_table(uint bits, ZoneType x64, ZoneType i386)
    {
        Assert.Equal(x64, GfpFlags.ZoneType((Gfp)bits, ArchKind.X86_64));
        Assert.Equal(i386, GfpFlags.ZoneType((Gfp)bits, ArchKind.I386));
    }

    [Fact]
    public void Zone_tables_are_the_kernel_constants()
    {
        Assert.Equal(0x1320122u, X86_64.GfpZoneTable);
        Assert.Equal(0x1310121u, I386.GfpZoneTable);
        foreach (uint bad in new uint[] { 3, 5, 6, 7, 0xb, 0xd, 0xe, 0xf })
            Assert.False(GfpFlags.ZoneValid((Gfp)bad));
        Assert.True(GfpFlags.ZoneValid(Gfp.HighUserMovable));
    }

    [Theory]
    [InlineData(Gfp.Kernel, MigrateType.Unmovable)]
    [InlineData(Gfp.HighUserMovable, MigrateType.Movable)]
    [InlineData(Gfp.Kernel | Gfp.Reclaimable, MigrateType.Reclaimable)]
    public void Migratetype_comes_from_movable_and_reclaimable_bits(Gfp gfp, MigrateType mt) =>
        Assert.Equal(mt, GfpFlags.Migratetype(gfp));
}
