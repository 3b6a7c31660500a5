using System.Diagnostics;
using System.Globalization;
using KmemNative.Tests.Cli;
using Xunit.Abstractions;

namespace KmemNative.Tests.Integration;

/// <summary>
/// The real procps tools read the emulator's /proc files: written by <c>kmem proc ... &gt; FILE</c>, bind-mounted over
/// /proc/meminfo, /proc/slabinfo and /proc/vmstat in a private mount namespace (<c>unshare -m</c>, root), then
/// <c>free -k</c>, <c>slabtop -o</c> and <c>vmstat -s</c> must report the emulator's numbers. Skipped, with the reason,
/// where that cannot be done (not Linux, not root, no unshare/mount, no procps: <c>./build.sh test</c> installs procps
/// when it runs as root).
/// </summary>
public sealed class ProcpsIntegrationTests(ITestOutputHelper output)
{
    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static string? WhyNot()
    {
        if (!OperatingSystem.IsLinux())
            return "not Linux: /proc and mount namespaces are Linux's";
        if (!Environment.IsPrivilegedProcess)
            return "not root: bind mounts in a private mount namespace need CAP_SYS_ADMIN";
        foreach (var tool in new[] { "unshare", "mount", "sh", "free", "slabtop", "vmstat" })
            if (Which(tool) is null)
                return $"'{tool}' is not installed (procps provides free, slabtop and vmstat; util-linux unshare and mount)";
        return null;
    }

    private static (int Code, string Out, string Err) Sh(string script)
    {
        var psi = new ProcessStartInfo("unshare", ["-m", "sh", "-c", script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd(), e = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, o, e);
    }

    private static long Kb(string meminfo, string key) =>
        long.Parse(meminfo.Split('\n').Single(l => l.StartsWith(key + ":", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    [SkippableFact]
    public void Free_slabtop_and_vmstat_read_the_emulators_proc_files()
    {
        string? why = WhyNot();
        if (why is not null)
            output.WriteLine($"skipped: {why}");
        Skip.If(why is not null, why);

        string dir = Directory.CreateTempSubdirectory("kmem-procps-").FullName;
        try
        {
            // kmem proc FILE > FILE, for a fresh 3 GiB x86_64 machine (the host has other sizes).
            var meminfo = CliRunner.Run("proc", "meminfo", "--arch", "x86_64", "--mem", "3G");
            var vmstat = CliRunner.Run("proc", "vmstat", "--arch", "x86_64", "--mem", "3G");
            Assert.Equal((0, 0), (meminfo.ExitCode, vmstat.ExitCode));
            // A script whose machine has a cache of its own with objects in it, then its slabinfo.
            var script = "boot --arch x86_64 --mem 3G\n$c = kmem_cache_create procps_probe 200\n" +
                         string.Concat(Enumerable.Repeat("try kmem_cache_alloc procps_probe GFP_KERNEL\n", 45)) +
                         string.Concat(Enumerable.Repeat("try kmalloc 3000 GFP_KERNEL\n", 20)) + "proc slabinfo\n";
            var run = CliRunner.RunScript(script, out _);
            Assert.Equal(0, run.ExitCode);
            string slabinfo = run.Out[run.Out.IndexOf("slabinfo - version: 2.1", StringComparison.Ordinal)..];
            File.WriteAllText(Path.Combine(dir, "meminfo"), meminfo.Out);
            File.WriteAllText(Path.Combine(dir, "vmstat"), vmstat.Out);
            File.WriteAllText(Path.Combine(dir, "slabinfo"), slabinfo);

            var (code, o, e) = Sh($"mount --bind {dir}/meminfo /proc/meminfo && mount --bind {dir}/vmstat /proc/vmstat && " +
                                  $"mount --bind {dir}/slabinfo /proc/slabinfo && echo ==free && free -k && echo ==slabtop && slabtop -o && echo ==vmstat && vmstat -s");
            output.WriteLine(o);
            Assert.True(code == 0, $"exit {code}: {e}");
            var sections = o.Split("==", StringSplitOptions.RemoveEmptyEntries).ToDictionary(s => s[..s.IndexOf('\n')], s => s[(s.IndexOf('\n') + 1)..]);

            // free -k: the emulator's MemTotal, MemFree and MemAvailable.
            var mem = sections["free"].Split('\n').Single(l => l.StartsWith("Mem:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Kb(meminfo.Out, "MemTotal"), long.Parse(mem[1], CultureInfo.InvariantCulture));
            Assert.Equal(Kb(meminfo.Out, "MemFree"), long.Parse(mem[3], CultureInfo.InvariantCulture));
            Assert.Equal(Kb(meminfo.Out, "MemAvailable"), long.Parse(mem[6], CultureInfo.InvariantCulture));

            // slabtop -o: every cache with objects, with the slabinfo's object counts.
            var rows = sections["slabtop"].Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(w => w.Length >= 8 && long.TryParse(w[0], out _)).ToDictionary(w => w[^1], w => (Objs: long.Parse(w[0], CultureInfo.InvariantCulture), Active: long.Parse(w[1], CultureInfo.InvariantCulture)));
            foreach (var line in slabinfo.Split('\n').Skip(2).Where(l => l.Length > 0))
            {
                var w = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                long active = long.Parse(w[1], CultureInfo.InvariantCulture), total = long.Parse(w[2], CultureInfo.InvariantCulture);
                Assert.True(rows.ContainsKey(w[0]), $"slabtop does not list {w[0]}");
                Assert.Equal((total, active), rows[w[0]]);
            }
            Assert.True(rows["procps_probe"].Active >= 45);
            Assert.True(rows["kmalloc-4k"].Active >= 20);

            // vmstat -s: memory from /proc/meminfo, paging and swapping counters from /proc/vmstat.
            string Stat(string label) => sections["vmstat"].Split('\n').Single(l => l.EndsWith(label, StringComparison.Ordinal)).Trim().Split(' ')[0];
            Assert.Equal(Kb(meminfo.Out, "MemTotal").ToString(CultureInfo.InvariantCulture), Stat("K total memory"));
            Assert.Equal(Kb(meminfo.Out, "MemFree").ToString(CultureInfo.InvariantCulture), Stat("K free memory"));
            long V(string key) => long.Parse(vmstat.Out.Split('\n').Single(l => l.StartsWith(key + " ", StringComparison.Ordinal)).Split(' ')[1], CultureInfo.InvariantCulture);
            Assert.Equal(V("pswpin").ToString(CultureInfo.InvariantCulture), Stat("pages swapped in"));
            Assert.Equal(V("pswpout").ToString(CultureInfo.InvariantCulture), Stat("pages swapped out"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
