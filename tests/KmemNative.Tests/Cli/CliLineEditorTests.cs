using KmemNative.Cli;
using KmemNative.Cli.Commands;
using KmemNative.Cli.Scripting;

namespace KmemNative.Tests.Cli;

/// <summary>The interactive shell's line editor: keys, history, Tab completion — driven by a scripted terminal.</summary>
public sealed class CliLineEditorTests
{
    /// <summary>A terminal that plays back keys and records what is written.</summary>
    private sealed class FakeTerminal(params ConsoleKeyInfo[] keys) : ILineEditorConsole
    {
        private readonly Queue<ConsoleKeyInfo> _keys = new(keys);
        public readonly System.Text.StringBuilder Screen = new();
        public ConsoleKeyInfo ReadKey() => _keys.Count > 0 ? _keys.Dequeue() : Ctrl(ConsoleKey.D);
        public void Write(string text) => Screen.Append(text);
    }

    private static ConsoleKeyInfo K(ConsoleKey key) => new('\0', key, false, false, false);
    private static ConsoleKeyInfo Ctrl(ConsoleKey key) => new('\0', key, false, false, true);
    private static IEnumerable<ConsoleKeyInfo> Type(string text) => text.Select(c => new ConsoleKeyInfo(c, c switch
    {
        ' ' => ConsoleKey.Spacebar,
        >= 'a' and <= 'z' => ConsoleKey.A + (c - 'a'),
        >= 'A' and <= 'Z' => ConsoleKey.A + (c - 'A'),
        _ => ConsoleKey.Oem1,
    }, char.IsUpper(c), false, false));

    private static ConsoleKeyInfo[] Keys(params object[] parts) =>
        [.. parts.SelectMany(p => p switch { string s => Type(s), ConsoleKeyInfo k => [k], ConsoleKey k => [K(k)], _ => [] })];

    private static (Session Session, ScriptInterpreter Interpreter) NewShell()
    {
        var io = new CliIo(TextReader.Null, new StringWriter(), new StringWriter(), InteractiveInput: true);
        var session = new Session(CommandRegistry.Default, io, CommandScope.Script, new MachineConfig { MemBytes = 64UL << 20 });
        return (session, new ScriptInterpreter(session));
    }

    [Fact]
    public void Editing_keys_build_the_line()
    {
        var t = new FakeTerminal(Keys("echo wrld", ConsoleKey.LeftArrow, ConsoleKey.LeftArrow, ConsoleKey.LeftArrow, "o", ConsoleKey.End, "!",
            ConsoleKey.Home, ConsoleKey.Delete, "E", ConsoleKey.Enter));
        var editor = new LineEditor(t, "kmem> ", new ShellHistory(null), null);
        Assert.Equal("Echo world!", editor.ReadLine());
        Assert.StartsWith("kmem> ", t.Screen.ToString());
        Assert.Null(new LineEditor(new FakeTerminal(Ctrl(ConsoleKey.D)), "> ", new ShellHistory(null), null).ReadLine()); // ^D on empty: end
        var kill = new FakeTerminal(Keys("abc def", Ctrl(ConsoleKey.W), "x", ConsoleKey.Enter));
        Assert.Equal("abc x", new LineEditor(kill, "> ", new ShellHistory(null), null).ReadLine());
        var cancel = new FakeTerminal(Keys("oops", Ctrl(ConsoleKey.C)));
        Assert.Equal("", new LineEditor(cancel, "> ", new ShellHistory(null), null).ReadLine());
    }

    [Fact]
    public void History_recalls_lines_and_persists_them()
    {
        string file = Path.Combine(Path.GetTempPath(), $"kmem-history-{Guid.NewGuid():N}");
        try
        {
            var history = new ShellHistory(file);
            var t = new FakeTerminal(Keys("proc meminfo", ConsoleKey.Enter, "gfp GFP_KERNEL", ConsoleKey.Enter, "dr", ConsoleKey.UpArrow, ConsoleKey.UpArrow,
                ConsoleKey.DownArrow, ConsoleKey.DownArrow, ConsoleKey.UpArrow, ConsoleKey.Enter));
            var editor = new LineEditor(t, "> ", history, null);
            Assert.Equal("proc meminfo", editor.ReadLine());
            Assert.Equal("gfp GFP_KERNEL", editor.ReadLine());
            // ↑↑ = proc meminfo, ↓ = gfp, ↓ = the draft "dr", ↑ = gfp again.
            Assert.Equal("gfp GFP_KERNEL", editor.ReadLine());
            Assert.Equal(["proc meminfo", "gfp GFP_KERNEL"], File.ReadAllLines(file));   // repeats are not recorded twice
            var next = new ShellHistory(file);                                            // a later session
            Assert.Equal(["proc meminfo", "gfp GFP_KERNEL"], next.Lines);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Tab_completes_commands_options_proc_files_variables_and_gfp_flags()
    {
        var (session, interpreter) = NewShell();
        using (session)
        {
            var c = new ShellCompleter(session, interpreter.Variables);
            Assert.Equal(["kmalloc", "kmap", "kmap_flush_unused", "kmap_local_page", "kmem", "kmem_cache_alloc"],
                c.Complete("km").Candidates.Take(6));
            Assert.Contains("replay", c.Complete("rep").Candidates);
            Assert.Equal(["meminfo"], c.Complete("proc mem").Candidates);
            Assert.Contains("/proc/slabinfo", c.Complete("proc /proc/s").Candidates);
            Assert.Equal(["--frag-svg", "--free-at-end"], c.Complete("replay x.gz --fr").Candidates);
            Assert.Contains("--virt", c.Complete("map --").Candidates);
            Assert.Equal(["GFP_KERNEL", "GFP_KERNEL_ACCOUNT"], c.Complete("kmalloc 64 GFP_KERN").Candidates);
            Assert.Contains("GFP_KERNEL|__GFP_ZERO", c.Complete("alloc_pages GFP_KERNEL|__GFP_Z").Candidates);
            interpreter.Execute("$ptr = gfp GFP_KERNEL");
            interpreter.Execute("$pages = gfp GFP_DMA");
            Assert.Equal(["$pages", "$ptr"], c.Complete("kfree $p").Candidates);
            var (start, cands) = c.Complete("try proc zonei");
            Assert.Equal(9, start);
            Assert.Equal(["zoneinfo"], cands);
            Assert.Contains("kmalloc", c.Complete("$x = kma").Candidates);
        }
    }

    [Fact]
    public void Tab_inserts_a_single_candidate_and_lists_several()
    {
        var (session, interpreter) = NewShell();
        using (session)
        {
            var c = new ShellCompleter(session, interpreter.Variables);
            var t = new FakeTerminal(Keys("proc memi", ConsoleKey.Tab, ConsoleKey.Enter, "proc ", ConsoleKey.Tab, ConsoleKey.Enter));
            var editor = new LineEditor(t, "kmem> ", new ShellHistory(null), c);
            Assert.Equal("proc meminfo ", editor.ReadLine());
            Assert.Equal("proc ", editor.ReadLine());                   // several files: listed, not guessed
            Assert.Contains("slabinfo", t.Screen.ToString());
        }
    }

    [Fact]
    public void The_shell_uses_the_editor_on_a_terminal_and_plain_lines_otherwise()
    {
        var t = new FakeTerminal(Keys("echo hi", ConsoleKey.Enter, "quit", ConsoleKey.Enter));
        var stdout = new StringWriter();
        var io = new CliIo(new StringReader("echo piped\n"), stdout, new StringWriter(), InteractiveInput: true) { Terminal = t };
        Assert.Equal(0, KmemCli.Run(["shell", "--no-history"], io));
        Assert.Contains("hi", stdout.ToString());
        Assert.DoesNotContain("piped", stdout.ToString());            // keys came from the terminal, not the reader
        var plain = CliRunner.RunWithInput("echo piped\n", "shell", "--no-history");
        Assert.Equal(["piped"], plain.OutLines);
    }
}
