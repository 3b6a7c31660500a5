using KmemNative.Tests.TestUtil;
using Xunit.Abstractions;
namespace KmemNative.Tests.Paging;
public class ScratchTests(ITestOutputHelper o)
{
    [Fact]
    public void Show()
    {
        foreach (var m in new[] { Machines.I386(64), Machines.X64(64) })
        {
            using var _ = m;
            o.WriteLine(m.Ptdump().Text);
            o.WriteLine(m.CheckWxLine(m.Ptdump().WxPages) ?? "(no wx)");
            o.WriteLine(m.Vtop(m.PageOffset + 0x123456));
            o.WriteLine(m.Vtop(m.Image.VirtualBase + 0x10));
            var (k4, k2, k4m, k1g) = m.DirectMapKb();
            o.WriteLine($"{k4} {k2} {k4m} {k1g}");
            o.WriteLine(string.Join("\n", m.Log.Lines.Where(l => l.Contains("protect") || l.Contains("W+X") || l.Contains("layout") || l.Contains("lowmem"))));
            ulong v = m.Vmalloc(10000);
            o.WriteLine($"vmalloc {v:x}");
            o.WriteLine(m.Vtop(v + 5000));
            m.WriteVirtualUInt(m.Cpus[0], v + 4094, 8, 0x1122334455667788);
            o.WriteLine($"{m.ReadVirtualUInt(m.Cpus[0], v + 4094, 8):x}");
            m.Vfree(v);
            o.WriteLine(m.CheckConsistency().Total.ToString());
        }
    }
}
