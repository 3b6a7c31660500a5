using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using KmemNative.Tests.Trace;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Cli;

/// <summary>kmem replay and kmem map on the command line and in scripts; kmem run --trace.</summary>
public sealed class CliReplayTests
{
    private static string TraceA => TraceAReplayTests.TraceA;

    private static string Temp(string ext) => Path.Combine(Path.GetTempPath(), $"kmem-test-{Guid.NewGuid():N}{ext}");

    [Fact]
    public void Replay_json_has_the_required_fields()
    {
        var r = CliRunner.Run("replay", TraceA, "--json", "--limit", "60000");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Out);
        var root = doc.RootElement;
        foreach (var key in new[] { "events", "replayed", "skipped", "failed", "malformed", "kmalloc_size_class_mismatches", "buddyinfo", "top_slab_caches", "cache_strides", "peak_pages_in_use" })
            Assert.True(root.TryGetProperty(key, out _), key);
        Assert.Equal(60000, root.GetProperty("total_events").GetInt64());
        Assert.Equal(0, root.GetProperty("kmalloc_size_class_mismatches").GetInt64());
        Assert.Equal("x86_64", root.GetProperty("machine").GetProperty("arch").GetString());   // the default for replays
        Assert.Equal(2048, root.GetProperty("machine").GetProperty("mem_mib").GetInt64());
        Assert.Equal(2, root.GetProperty("machine").GetProperty("cpus").GetInt64());           // #P:2
        long sum = root.GetProperty("events").EnumerateObject().Sum(p => p.Value.GetInt64());
        Assert.Equal(sum, root.GetProperty("replayed").GetInt64() + root.GetProperty("skipped").GetInt64());
    }

    [Fact]
    public void Replay_summary_text_lists_events_skips_fidelity_buddyinfo_and_caches()
    {
        var r = CliRunner.Run("replay", TraceA, "--limit", "30000", "--mem", "512M", "--cpus", "4");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Machine: x86_64, 512 MiB, 4 CPUs (trace header #P:2)", r.Out);
        Assert.Matches(@"kmem_cache_alloc +[\d,]+ +[\d,]+ +[\d,]+ +0\n", r.Out);
        Assert.Contains("slab pages (the emulator's slab allocator makes its own)", r.Out);
        Assert.Contains("mismatches", r.Out);
        Assert.Contains("Final /proc/buddyinfo:\nNode 0, zone      DMA", r.Out);
        Assert.Contains("Top slab caches by memory:", r.Out);
        Assert.Matches(@"Time: \d+\.\d{3} s", r.Out);
    }

    [Fact]
    public void Replay_reads_standard_input()
    {
        string t = TraceReplayTests.Header + TraceReplayTests.Km(0, TraceReplayTests.Obj, 64, 64) + TraceReplayTests.Kf(0, TraceReplayTests.Obj);
        var r = CliRunner.RunWithInput(t, "replay", "-", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(2, JsonDocument.Parse(r.Out).RootElement.GetProperty("replayed").GetInt64());
    }

    [Fact]
    public void Bad_traces_fail_with_exit_1_and_a_clear_message()
    {
        string missing = Temp(".txt");
        var r = CliRunner.Run("replay", missing);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"kmem: cannot read trace '{missing}'", r.Err);

        string empty = Temp(".txt");
        File.WriteAllText(empty, "");
        r = CliRunner.Run("replay", empty);
        Assert.Equal((1, $"kmem: {empty}: empty trace (no lines)\n"), (r.ExitCode, r.Err));

        string binary = Temp(".bin");
        var junk = new byte[100_000];
        new Random(11).NextBytes(junk);
        File.WriteAllBytes(binary, junk);
        r = CliRunner.Run("replay", binary);
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"^kmem: .*: no kmem events, \d+ malformed lines \(first: line 1: .*\): not an ftrace text file\?\n$", r.Err);
        Assert.Contains("Malformed lines:", r.Out);                       // the report still says which lines

        string truncated = Temp(".gz");
        var gz = File.ReadAllBytes(TraceA);
        File.WriteAllBytes(truncated, gz[..(gz.Length / 3)]);
        r = CliRunner.Run("replay", truncated);
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"^kmem: .*: line \d+: truncated or corrupt compressed data", r.Err);

        string garbage = Temp(".txt");
        File.WriteAllText(garbage, TraceReplayTests.Header + TraceReplayTests.Km(0, TraceReplayTests.Obj, 8, 8) + "not a line\n");
        r = CliRunner.Run("replay", garbage);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("  line 6: no ' [CPU]' column", r.Out);
        r = CliRunner.Run("replay", garbage, "--strict");
        Assert.Equal((1, $"kmem: {garbage}: line 6: malformed trace line: no ' [CPU]' column\n"), (r.ExitCode, r.Err));
        foreach (var f in new[] { empty, binary, truncated, garbage })
            File.Delete(f);
    }

    [Fact]
    public void Bad_options_are_usage_errors()
    {
        CliRunner.AssertUsageError(CliRunner.Run("replay", TraceA, "--limit", "many"), "replay", "'many' is not a valid event count");
        CliRunner.AssertUsageError(CliRunner.Run("replay", TraceA, "--arch", "i386", "--mem", "8G"), "replay", "4 GiB");
        CliRunner.AssertUsageError(CliRunner.Run("replay"), "replay");
        CliRunner.AssertUsageError(CliRunner.Run("map", "--frag", "--virt"), "map", "choose one");
    }

    [Fact]
    public void Replay_writes_its_trace_and_pictures_and_the_trace_replays_to_the_same_state()
    {
        string trace = Temp(".trace"), svg = Temp(".svg"), frag = Temp(".svg");
        var r1 = CliRunner.Run("replay", TraceA, "--limit", "80000", "--json", "--trace", trace, "--svg", svg, "--frag-svg", frag);
        Assert.Equal(0, r1.ExitCode);
        Assert.Contains($"wrote the emulator's trace to {trace}", r1.Err);    // notes go to stderr with --json
        var r2 = CliRunner.Run("replay", trace, "--json");
        Assert.Equal(0, r2.ExitCode);
        var a = JsonDocument.Parse(r1.Out).RootElement;
        var b = JsonDocument.Parse(r2.Out).RootElement;
        Assert.Equal(a.GetProperty("buddyinfo").GetRawText(), b.GetProperty("buddyinfo").GetRawText());
        Assert.Equal(a.GetProperty("top_slab_caches").GetRawText(), b.GetProperty("top_slab_caches").GetRawText());
        Assert.Equal(0, b.GetProperty("malformed").GetInt64());
        Assert.Equal("svg", XDocument.Load(svg).Root!.Name.LocalName);
        Assert.Equal("svg", XDocument.Load(frag).Root!.Name.LocalName);
        foreach (var f in new[] { trace, svg, frag })
            File.Delete(f);
    }

    [Fact]
    public void Run_trace_replays_to_the_same_buddyinfo_and_slabinfo()
    {
        const string work = """
            boot --arch i386 --mem 128M
            $c = kmem_cache_create demo_cache 72
            $o1 = kmem_cache_alloc demo_cache GFP_KERNEL
            $o2 = kmem_cache_alloc demo_cache GFP_KERNEL
            $k = kmalloc 300 GFP_KERNEL
            $big = kmalloc 40000 GFP_KERNEL
            $p = alloc_pages GFP_HIGHUSER 3
            $q = alloc_pages GFP_KERNEL 0
            kmem_cache_free demo_cache $o1
            kfree $big
            __free_pages $q 0
            $gone = kmem_cache_create short_lived 500
            $x = kmem_cache_alloc short_lived GFP_KERNEL
            kmem_cache_free short_lived $x
            kmem_cache_destroy short_lived
            """;
        string trace = Temp(".trace");
        var run = CliRunner.RunScript(work + "\nproc buddyinfo\nproc slabinfo\n", out _, "--trace", trace);
        Assert.Equal("", run.Err);
        Assert.Equal(0, run.ExitCode);
        var replay = CliRunner.RunScript($"boot --arch i386 --mem 128M\ntry replay {trace} --json\nproc buddyinfo\nproc slabinfo\n", out _);
        Assert.Equal("", replay.Err);
        string Tail(string o) => o[o.IndexOf("Node 0, zone", StringComparison.Ordinal)..];
        string runState = Tail(run.Out[run.Out.IndexOf("\nNode 0, zone", StringComparison.Ordinal)..]);
        string replayState = replay.Out[(replay.Out.LastIndexOf("}\n", StringComparison.Ordinal) + 2)..];
        Assert.Equal(runState, replayState);
        Assert.DoesNotContain("short_lived", replayState);             // destroyed in both
        Assert.Contains("demo_cache", replayState);
        // Without a boot line the CLI boots what the trace's machine annotation names.
        var cli = CliRunner.Run("replay", trace, "--json");
        Assert.Equal("i386", JsonDocument.Parse(cli.Out).RootElement.GetProperty("machine").GetProperty("arch").GetString());
        File.Delete(trace);
    }

    [Fact]
    public void Map_prints_numbers_and_writes_svg_from_scripts()
    {
        string svg = Temp(".svg");
        var r = CliRunner.RunScript($"""
            boot --arch x86_64 --mem 64M
            $p = kmalloc 5000 GFP_KERNEL
            map
            map --frag
            map --virt
            $f = map --svg {svg}
            echo result $f
            check
            """, out _);
        Assert.Equal("", r.Err);
        Assert.Contains("Pages by owner:", r.Out);
        Assert.Matches(@"  slab +[\d,]+  slab\n", r.Out);
        Assert.Contains("Unusable free space index per order (/sys/kernel/debug/extfrag/unusable_index):", r.Out);
        Assert.Contains("ffff888000000000-ffff888003ffffff  direct map of RAM", r.Out);
        Assert.Contains($"result {svg}", r.Out);
        Assert.Contains("consistent", r.Out);
        Assert.Equal("svg", XDocument.Load(svg).Root!.Name.LocalName);
        File.Delete(svg);
    }

    [Fact]
    public void Script_errors_name_their_line_and_leave_the_machine_consistent()
    {
        var r = CliRunner.RunWithInput("$p = kmalloc 64 GFP_KERNEL\nfrobnicate\nkmalloc 64\necho $nope\nreplay /no/such/trace\nkfree $p\ncheck\n", "shell", "--mem", "64M");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(4, r.ErrLines.Length);
        Assert.Equal("<stdin>:2: unknown command 'frobnicate'", r.ErrLines[0]);
        Assert.StartsWith("<stdin>:3: ", r.ErrLines[1]);                 // a missing GFP argument
        Assert.Equal("<stdin>:4: undefined variable $nope", r.ErrLines[2]);
        Assert.StartsWith("<stdin>:5: cannot read trace '/no/such/trace'", r.ErrLines[3]);
        Assert.StartsWith("consistent", r.OutLines[^1]);
    }
}
