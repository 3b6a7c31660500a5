using KmemNative.Cli;
using KmemNative.Cli.Commands;
using KmemNative.Cli.Scripting;

namespace KmemNative.Tests.Cli;

/// <summary>The tokenizer, variables and PAGE arguments on their own.</summary>
public sealed class CliScriptingUnitTests
{
    [Theory]
    [InlineData("", new string[0])]
    [InlineData("   # only a comment", new string[0])]
    [InlineData("a  b\tc", new[] { "a", "b", "c" })]
    [InlineData("echo \"a b\" c#d", new[] { "echo", "a b", "c" })]
    [InlineData("x\"y z\"w \"\"", new[] { "xy zw", "" })]
    [InlineData("\"say \\\"hi\\\" \\\\\"", new[] { "say \"hi\" \\" })]
    [InlineData("\"# in quotes\" # out", new[] { "# in quotes" })]
    public void Tokenizer_splits_words(string line, string[] words) => Assert.Equal(words, Tokenizer.Split(line));

    [Fact]
    public void Tokenizer_rejects_an_open_quote() => Assert.Throws<UsageException>(() => Tokenizer.Split("echo \"abc"));

    [Fact]
    public void Variables_expand_names_braces_and_leave_lone_dollars()
    {
        var v = new Variables();
        v.Set("p", "1234");
        v.Set("p_2", "x");
        Assert.Equal("1234/maps", v.Expand("$p/maps"));
        Assert.Equal("x", v.Expand("$p_2"));
        Assert.Equal("1234_2", v.Expand("${p}_2"));
        Assert.Equal("$ $5 a$", v.Expand("$ $5 a$"));
        Assert.Equal("undefined variable $q", Assert.Throws<UsageException>(() => v.Expand("a$q")).Message);
        Assert.Throws<UsageException>(() => v.Expand("${p"));
    }

    [Theory]
    [InlineData("$x", "x")]
    [InlineData("$_a1", "_a1")]
    [InlineData("$1", null)]
    [InlineData("$x/y", null)]
    [InlineData("x", null)]
    public void Assignment_targets(string word, string? name) => Assert.Equal(name, Variables.AsTarget(word));

    [Fact]
    public void Page_refs_resolve_against_the_machine()
    {
        using var m = Machine.Boot(new MachineConfig { MemBytes = 64UL << 20 });
        ulong first = m.PageDescriptorAddress(0), size = m.PageDescriptorAddress(1) - first;
        Assert.Equal(5UL, PageRef.Parse($"0x{first + 5 * size:x}").Resolve(m).Pfn);
        Assert.Equal(0x10UL, PageRef.Parse("pfn:0x10").Resolve(m).Pfn);
        Assert.Equal(16UL, PageRef.Parse("pfn:16").Resolve(m).Pfn);
        Assert.Throws<CommandFailedException>(() => PageRef.Parse($"0x{first + 1:x}").Resolve(m));
        Assert.Throws<CommandFailedException>(() => PageRef.Parse($"0x{first - size:x}").Resolve(m));
        Assert.Throws<CommandFailedException>(() => PageRef.Parse($"0x{first + m.MaxPfn * size:x}").Resolve(m));
        Assert.Throws<UsageException>(() => PageRef.Parse("page1"));
    }
}

/// <summary>The registry: every module's commands, and a new module plugging in without other changes.</summary>
public sealed class CliRegistryTests
{
    [Fact]
    public void Default_registry_has_the_commands_of_every_module()
    {
        var names = CommandRegistry.Default.Commands.Select(c => c.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        foreach (var name in new[] { "boot", "dmesg", "gfp", "proc", "run", "shell", "demo", "alloc_pages", "__free_pages",
                     "__get_free_pages", "free_pages", "get_page", "put_page", "drain_all_pages", "check", "page", "echo", "try", "expect-fail" })
            Assert.Contains(name, names);
        Assert.All(CommandRegistry.Default.Commands, c => Assert.False(string.IsNullOrWhiteSpace(c.Description)));
    }

    [Fact]
    public void Registering_a_name_twice_is_refused()
    {
        var registry = new CommandRegistry();
        registry.AddRaw("x", "x", "x", (_, _) => { });
        Assert.Throws<InvalidOperationException>(() => registry.AddRaw("x", "x", "x", (_, _) => { }));
    }

    /// <summary>What a later issue's module looks like: a command with a machine and a result.</summary>
    private sealed class ZoneCountModule : ICommandModule
    {
        public void Register(CommandRegistry registry) =>
            registry.Add("nr_zones", "Count populated zones", b =>
            {
                var prefix = b.Option("--prefix", "Text before the count", s => s, defaultValue: () => "zones: ");
                b.UsesMachine();
                return ctx =>
                {
                    int n = ctx.Machine.Zones.Count(z => z.IsPopulated);
                    ctx.Out.WriteLine($"{ctx.GetValue(prefix)}{n}");
                    ctx.SetResult(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
                };
            });
    }

    [Fact]
    public void A_new_module_works_in_scripts_and_on_the_command_line()
    {
        var registry = CommandRegistry.FromModules([.. CommandModules.All, new ZoneCountModule()]);
        var stdout = new StringWriter { NewLine = "\n" };
        var io = new CliIo(TextReader.Null, stdout, new StringWriter(), InteractiveInput: false);

        using (var script = new Session(registry, io, CommandScope.Script, new MachineConfig { Arch = KmemNative.Arch.ArchKind.X86_64, MemBytes = 64UL << 20 }))
        {
            var interpreter = new ScriptInterpreter(script);
            interpreter.Execute("$n = nr_zones --prefix \"n=\"");
            interpreter.Execute("echo got $n");
            Assert.Throws<UsageException>(() => interpreter.Execute("nr_zones --mem 1G"));
        }
        using (var cli = new Session(registry, io, CommandScope.Cli, new MachineConfig()))
            cli.Execute(["nr_zones", "--mem", "64M"]);

        Assert.Equal("n=2\ngot 2\nzones: 2\n", stdout.ToString());
    }
}

/// <summary>kmem demo.</summary>
public sealed class CliDemoTests
{
    [Fact]
    public void Demo_tours_both_machines_and_ends_consistent()
    {
        var r = CliRunner.Run("demo");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("  i386 with 1G of RAM", r.OutLines);
        Assert.Contains("  x86_64 with 4G of RAM", r.OutLines);
        // The tour boots two machines, then every study script boots its own.
        int scripts = KmemNative.Cli.Commands.StudyScripts.All().Count();
        Assert.True(scripts >= 1);
        Assert.Equal(2 + scripts, r.OutLines.Count(l => l == "Zone ranges:"));
        Assert.Contains(r.OutLines, l => l.StartsWith("page ", StringComparison.Ordinal) && l.EndsWith("zone HighMem", StringComparison.Ordinal));
        Assert.Contains(r.OutLines, l => l.StartsWith("page ", StringComparison.Ordinal) && l.EndsWith("zone DMA", StringComparison.Ordinal));
        Assert.True(r.OutLines.Count(l => l.StartsWith("consistent", StringComparison.Ordinal)) >= 2);
        Assert.DoesNotContain(r.OutLines, l => l.Contains("inconsistent", StringComparison.Ordinal));
    }
}
