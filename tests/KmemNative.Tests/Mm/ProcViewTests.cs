using System.Buffers.Binary;
using KmemNative.Arch;
using KmemNative.Diagnostics;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>/proc/PID/maps, smaps, status, statm, stat and pagemap in Linux 6.18's formats.</summary>
public class ProcViewTests
{
    [Fact]
    public void Maps_lines_have_the_kernels_columns_and_names_start_at_column_73_on_64_bit()
    {
        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "maps");
        ulong anon = p.MapAnon(cpu, 0x2000);
        p.Brk(cpu, p.Mm.StartBrk + 0x1000);
        int fd = (int)m.FileCreate(cpu, "/data/file", 0x3000).Unwrap();
        ulong file = p.Mmap(cpu, 0, 0x2000, Prot.Read, MapFlags.Shared, fd, 0x1000).Unwrap();
        ulong shm = p.Mmap(cpu, 0, 0x1000, RW, MapFlags.Shared | MapFlags.Anonymous).Unwrap();
        string maps = m.Proc.Read($"{p.Pid}/maps");
        string[] lines = maps.TrimEnd('\n').Split('\n');
        var ino = m.Files.Single(f => f.Fd == fd).Inode;
        var exe = m.Files.Single(f => f.Path == "/usr/bin/maps").Inode;
        string pad(string prefix, string name) => prefix.PadRight(72) + " " + name;
        Assert.Equal(
        [
            pad($"00400000-00410000 r-xp 00000000 08:01 {exe} ", "/usr/bin/maps"),
            pad($"00410000-00412000 rw-p 00010000 08:01 {exe} ", "/usr/bin/maps"),
            "00412000-00414000 rw-p 00000000 00:00 0 ",
            pad("00414000-00415000 rw-p 00000000 00:00 0 ", "[heap]"),
            pad($"{shm:x8}-{shm + 0x1000:x8} rw-s 00000000 00:01 {m.Files.Single(f => f.Shmem).Inode} ", "/dev/zero (deleted)"),
            pad($"{file:x8}-{file + 0x2000:x8} r--s 00001000 08:01 {ino} ", "/data/file"),
            $"{anon:x8}-{anon + 0x2000:x8} rw-p 00000000 00:00 0 ",
            pad("7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 ", "[stack]"),
            pad("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 ", "[vsyscall]"),
        ], lines);
        Assert.Equal(73, lines[0].IndexOf('/', StringComparison.Ordinal));
    }

    [Fact]
    public void Maps_names_start_at_column_49_on_32_bit()
    {
        using var m = Machines.I386(64);
        var p = m.Spawn(m.GetCpu(0), "m32");
        string[] lines = m.Proc.Read($"{p.Pid}/maps").TrimEnd('\n').Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("08048000-08058000 r-xp 00000000 08:01 ", lines[0]);
        Assert.Equal(49, lines[0].IndexOf('/', StringComparison.Ordinal));
        Assert.Equal("bffdf000-c0000000 rw-p 00000000 00:00 0".PadRight(48) + " [stack]", lines[3]);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Smaps_counts_rss_pss_and_sharing_per_vma(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "smaps");
        ulong a = p.MapAnon(cpu, 0x4000);
        p.Touch(cpu, a, 0x4000, MemoryAccess.Write);
        p.Touch(cpu, a + 0x3000, 1, MemoryAccess.Read);
        ulong z = p.MapAnon(cpu, 0x2000, Prot.Read);
        p.Touch(cpu, z, 0x2000, MemoryAccess.Read);   // zero page: not counted
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        c.Poke(cpu, a, 1);                             // one page private to the child again
        string Block(Process q, ulong start)
        {
            string s = m.Proc.Read($"{q.Pid}/smaps");
            int i = s.IndexOf($"{start:x8}-", StringComparison.Ordinal);
            int end = s.IndexOf("VmFlags:", i, StringComparison.Ordinal);
            return s[i..s.IndexOf('\n', end)];
        }
        string[] pb = Block(p, a).Split('\n');
        Assert.Equal("Size:                 16 kB", pb[1]);
        Assert.Equal("KernelPageSize:        4 kB", pb[2]);
        Assert.Equal("MMUPageSize:           4 kB", pb[3]);
        Assert.Equal("Rss:                  16 kB", pb[4]);
        Assert.Equal("Pss:                  10 kB", pb[5]);     // 4 private + 3 shared in two: 4 + 6
        Assert.Equal("Pss_Dirty:            10 kB", pb[6]);
        Assert.Equal("Shared_Clean:          0 kB", pb[7]);
        Assert.Equal("Shared_Dirty:         12 kB", pb[8]);
        Assert.Equal("Private_Clean:         0 kB", pb[9]);
        Assert.Equal("Private_Dirty:         4 kB", pb[10]);
        Assert.Equal("Anonymous:            16 kB", pb[12]);
        Assert.Equal("Private_Hugetlb:       0 kB", pb[19]);
        Assert.Equal("THPeligible:           0", pb[23]);
        Assert.Equal(arch == ArchKind.X86_64 ? "VmFlags: rd wr mr mw me ac sd " : "VmFlags: rd wr mr mw me ac ", pb[24]);
        Assert.Contains("Rss:                   0 kB", Block(p, z));
        string rollup = m.Proc.Read($"{p.Pid}/smaps_rollup");
        Assert.EndsWith(" [rollup]", rollup.Split('\n')[0]);
        Assert.Contains("Pss_Anon:       ", rollup);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Status_statm_and_stat_report_the_mm_counters(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "status");
        ulong a = p.MapAnon(cpu, 0x10000);
        p.Touch(cpu, a, 0x8000, MemoryAccess.Write);
        p.Touch(cpu, p.Mm.StartCode, 0x4000, MemoryAccess.Read);
        string status = m.Proc.Read($"{p.Pid}/status");
        var lines = status.TrimEnd('\n').Split('\n');
        Assert.Equal("Name:\tstatus", lines[0]);
        Assert.Contains($"Pid:\t{p.Pid}", lines);
        Assert.Contains("Kthread:\t0", lines);
        var mm = p.Mm;
        string Kb(string label, ulong kb) => $"{label}:\t{kb,8} kB";
        Assert.Contains(Kb("VmSize", mm.TotalVm * 4), lines);
        Assert.Contains(Kb("VmRSS", (ulong)mm.Rss * 4), lines);
        Assert.Contains(Kb("RssAnon", 9 * 4), lines);    // 8 pages + the stack's argument page
        Assert.Contains(Kb("RssFile", 4 * 4), lines);
        Assert.Contains(Kb("VmData", mm.DataVm * 4), lines);
        Assert.Contains(Kb("VmStk", 132), lines);
        Assert.Contains(Kb("VmExe", 64), lines);
        Assert.Contains(Kb("VmLib", 0), lines);
        Assert.Contains(Kb("VmPTE", mm.PgtablesBytes >> 10), lines);
        Assert.True(mm.PgtablesBytes > 0);
        int vmPeak = Array.FindIndex(lines, l => l.StartsWith("VmPeak:", StringComparison.Ordinal));
        Assert.Equal(["VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap", "HugetlbPages"],
            lines[vmPeak..(vmPeak + 16)].Select(l => l[..l.IndexOf(':', StringComparison.Ordinal)]));
        // statm: size resident shared text lib data dt, in pages.
        Assert.Equal($"{mm.TotalVm} {mm.Rss} 4 16 0 {mm.DataVm + mm.StackVm} 0\n", m.Proc.Read($"{p.Pid}/statm"));
        // stat: fields 10 and 12 are min_flt and maj_flt; 23/24 vsize and rss.
        string[] stat = m.Proc.Read($"{p.Pid}/stat").TrimEnd('\n').Split(' ');
        Assert.Equal(52, stat.Length);
        Assert.Equal("(status)", stat[1]);
        Assert.Equal(p.Faults.Minor.ToString(System.Globalization.CultureInfo.InvariantCulture), stat[9]);
        Assert.Equal("4", stat[11]);
        Assert.Equal((mm.TotalVm * 4096).ToString(System.Globalization.CultureInfo.InvariantCulture), stat[22]);
        Assert.Equal(mm.Rss.ToString(System.Globalization.CultureInfo.InvariantCulture), stat[23]);
    }

    [Fact]
    public void Unknown_pids_and_files_are_not_found()
    {
        using var m = Machines.X64(64);
        var p = m.Spawn(m.GetCpu(0), "x");
        Assert.True(ProcFs.Exists($"{p.Pid}/maps"));
        Assert.Throws<ProcFileNotFoundException>(() => m.Proc.Read("4242/maps"));
        Assert.Throws<ProcFileNotFoundException>(() => m.Proc.Read($"{p.Pid}/nonsense"));
        p.Exit(m.GetCpu(0));
        Assert.Throws<ProcFileNotFoundException>(() => m.Proc.Read($"{p.Pid}/maps"));
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Pagemap_entries_carry_the_pfn_and_the_kernels_bits(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        bool sd = arch == ArchKind.X86_64;
        const ulong Present = 1UL << 63, File = 1UL << 61, Exclusive = 1UL << 56, SoftDirty = 1UL << 55, Pfn = (1UL << 55) - 1;
        int fd = (int)m.FileCreate(cpu, "/pm", 0x1000).Unwrap();
        var p = m.Spawn(cpu, "pm");
        ulong a = p.MapAnon(cpu, 0x4000);
        p.Poke(cpu, a, 1);                    // anon, exclusive
        p.Peek(cpu, a + 0x1000);              // zero page: present, no file/exclusive bits
        ulong f = p.Mmap(cpu, 0, 0x1000, Prot.Read, MapFlags.Shared, fd).Unwrap();
        p.Peek(cpu, f);                       // file page mapped once: file + exclusive
        var e = p.Pagemap(a, 4);
        Assert.Equal(Present | Exclusive | (sd ? SoftDirty : 0), e[0] & ~Pfn);
        Assert.Equal(p.Pfn(m, a), e[0] & Pfn);
        Assert.Equal(Present | (sd ? SoftDirty : 0), e[1] & ~Pfn);
        Assert.Equal(m.ZeroPagePhys >> 12, e[1] & Pfn);
        Assert.Equal(sd ? SoftDirty : 0, e[2]);                     // hole in a VM_SOFTDIRTY VMA
        ulong fe = p.Pagemap(f, 1)[0];
        Assert.Equal(Present | File | Exclusive | (sd ? SoftDirty : 0), fe & ~Pfn);
        Assert.Equal(0UL, p.Pagemap(0x3000_0000, 1)[0]);             // no VMA
        // After fork the shared page is no longer exclusive.
        var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
        Assert.Equal(0UL, p.Pagemap(a, 1)[0] & Exclusive);
        Assert.Equal(e[0] & Pfn, c.Pagemap(a, 1)[0] & Pfn);
        // The binary file: 8 bytes per page at offset (va / 4096) * 8, little endian.
        var buf = new byte[16];
        Assert.Equal(16UL, p.ReadPagemap((a >> 12) * 8, buf).Unwrap());
        Assert.Equal(p.Pagemap(a, 1)[0], BinaryPrimitives.ReadUInt64LittleEndian(buf));
        Assert.Equal(e[1], BinaryPrimitives.ReadUInt64LittleEndian(buf.AsSpan(8)));
        Assert.Equal(Errno.EINVAL, p.ReadPagemap(4, buf).Error);
        Assert.Equal(Errno.EINVAL, p.ReadPagemap(8, buf.AsSpan(0, 12)).Error);
        ulong task = arch == ArchKind.X86_64 ? 0x7fff_ffff_f000UL : 0xc000_0000UL;
        Assert.Equal(0UL, p.ReadPagemap((task >> 12) * 8, buf).Unwrap());
        Assert.Equal(8UL, p.ReadPagemap(((task >> 12) - 1) * 8, buf).Unwrap());
    }
}
