using KmemNative.Cli.Commands;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Cli;

/// <summary>Every study script prints exactly its Scripts/NN-name.expected (see src/KmemNative.Cli/Scripts/README.md).</summary>
public sealed class StudyScriptExpectedTests
{
    public static TheoryData<string> Scripts => [.. StudyScripts.All().Select(s => s.Name)];

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script_output_matches_its_expected_file(string name)
    {
        string expectedFile = Machines.DataFile("Scripts", Path.ChangeExtension(name, ".expected"));
        Assert.True(File.Exists(expectedFile),
            $"{name} has no expected output: create src/KmemNative.Cli/Scripts/{Path.ChangeExtension(name, ".expected")} (see Scripts/README.md)");
        var r = CliRunner.RunWithInput(StudyScripts.Get(name)!, "run", "-");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        string expected = File.ReadAllText(expectedFile).ReplaceLineEndings("\n");
        if (expected != r.Out)
        {
            var want = expected.Split('\n');
            var got = r.Out.Split('\n');
            int i = 0;
            while (i < want.Length && i < got.Length && want[i] == got[i])
                i++;
            Assert.Fail($"{name}: output differs from {Path.GetFileName(expectedFile)} at line {i + 1}:\n" +
                        $"  expected: {(i < want.Length ? want[i] : "<end>")}\n  actual:   {(i < got.Length ? got[i] : "<end>")}\n" +
                        "If the change is intended, regenerate the file (Scripts/README.md) and review the diff.");
        }
    }

    [Fact]
    public void The_fragmentation_study_shows_the_unusable_index_rise()
    {
        var lines = File.ReadAllLines(Machines.DataFile("Scripts", "03-fragmentation-map.expected"));
        var dma32 = lines.Where(l => l.StartsWith("Node 0, zone    DMA32 0.", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, dma32.Count);                                    // before and after the holes
        double Last(string l) => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Last(dma32[1]) > Last(dma32[0]));
    }
}
