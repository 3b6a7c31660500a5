using System.Diagnostics;
using KmemNative.Arch;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>A fact that is skipped, with the reason, when /usr/bin/xxd is not installed.</summary>
public sealed class XxdFactAttribute : FactAttribute
{
    public XxdFactAttribute()
    {
        if (!File.Exists(HexdumpTests.Xxd))
            Skip = $"{HexdumpTests.Xxd} is not installed: the round trip needs the real xxd";
    }
}

/// <summary>hexdump is byte-for-byte xxd's format, and xxd -r restores the bytes.</summary>
public class HexdumpTests
{
    internal const string Xxd = "/usr/bin/xxd";

    [Fact]
    public void Lines_are_exactly_what_xxd_prints()
    {
        byte[] data = [.. "Hello, world!\n"u8.ToArray(), 0, 1, 0xff, .. "~ abcdefghijkl"u8.ToArray()];
        // Captured from xxd 2022-01-14 on this data.
        Assert.Equal(
            "00000000: 4865 6c6c 6f2c 2077 6f72 6c64 210a 0001  Hello, world!...\n" +
            "00000010: ff7e 2061 6263 6465 6667 6869 6a6b 6c    .~ abcdefghijkl\n",
            Hexdump.Format(0, data));
        Assert.StartsWith("c0100000: 6162 63                                  abc\n", Hexdump.Format(0xc0100000, "abc"u8));
        Assert.StartsWith("100000000: 61", Hexdump.Format(0x1_0000_0000, "a"u8));
        Assert.Equal("", Hexdump.Format(0, []));
    }

    /// <summary>Runs xxd -r with the offset taken back to 0, guarded by a timeout and an output-size check.</summary>
    private static byte[] Revert(string dump, ulong offset)
    {
        Assert.True(offset < 1UL << 32, "xxd seeks to file offsets: keep them small");
        string dir = Path.Combine(Path.GetTempPath(), $"kmem-xxd-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string input = Path.Combine(dir, "dump.hex"), output = Path.Combine(dir, "out.bin");
            File.WriteAllText(input, dump);
            var psi = new ProcessStartInfo(Xxd) { RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-r");
            if (offset != 0)
            {
                psi.ArgumentList.Add("-s");
                psi.ArgumentList.Add($"-0x{offset:x}");
            }
            psi.ArgumentList.Add(input);
            psi.ArgumentList.Add(output);
            using var p = Process.Start(psi)!;
            if (!p.WaitForExit(10_000))
            {
                p.Kill(entireProcessTree: true);
                Assert.Fail("xxd -r did not finish");
            }
            Assert.Equal(0, p.ExitCode);
            Assert.True(new FileInfo(output).Length <= 1 << 20);
            return File.ReadAllBytes(output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [XxdFact]
    public void Xxd_restores_a_physical_dump()
    {
        using var m = Machines.X64(64);
        var data = new byte[1000];
        new Random(11).NextBytes(data);
        const ulong phys = 0x20_0123;
        m.Memory.Write(phys, data);
        Assert.Equal(data, Revert(Hexdump.Format(phys, data), phys));
    }

    [XxdFact]
    public void Xxd_restores_a_virtual_dump_read_through_the_mmu()
    {
        using var m = Machines.I386(64);
        var cpu = m.GetCpu(0);
        ulong va = m.Vmalloc(cpu, 3 * 4096);
        var data = new byte[3 * 4096 - 77];
        new Random(12).NextBytes(data);
        m.WriteVirtual(cpu, va + 77, data);
        var back = new byte[data.Length];
        m.ReadVirtual(cpu, va + 77, back);
        Assert.Equal(data, Revert(Hexdump.Format(va + 77, back), va + 77));
        // x86-64 kernel addresses are no file offsets: dump them relative to 0.
        using var m64 = Machines.X64(64);
        var cpu64 = m64.GetCpu(0);
        ulong v64 = m64.Vmalloc(cpu64, 4096);
        m64.WriteVirtual(cpu64, v64, data.AsSpan(0, 4096));
        var r = Cli.CliRunner.Run("hexdump", $"0x{m64.PageOffset + 0x1000:x}", "64", "--relative", "--arch", "x86_64", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(new byte[64], Revert(r.Out, 0));
    }
}
