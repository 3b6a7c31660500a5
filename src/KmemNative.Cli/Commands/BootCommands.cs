namespace KmemNative.Cli.Commands;

/// <summary><c>boot</c> and <c>dmesg</c>: bringing the machine up and reading its kernel log.</summary>
internal sealed class BootCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("boot", "Boot a machine and print its boot log (in a script: boot the script's machine, as its first use)", b =>
        {
            b.UsesMachine(scriptMayConfigure: true);
            return ctx => WriteLines(ctx.Out, ctx.BootMachine().Log.Lines);
        });

        registry.Add("dmesg", "Print the kernel log: the boot messages and everything logged since (-c: then clear it; -C: only clear it)", b =>
        {
            var readClear = b.Flag("-c", "--read-clear: print, then clear the log (the next dmesg starts after these lines)");
            var clear = b.Flag("-C", "--clear: clear the log without printing it");
            b.UsesMachine();
            return ctx =>
            {
                var log = ctx.Machine.Log;
                int end = log.Count;
                if (!ctx.GetValue(clear))
                    WriteLines(ctx.Out, log.Since(ctx.Session.DmesgMark));
                if (ctx.GetValue(clear) || ctx.GetValue(readClear))
                    ctx.Session.DmesgMark = end;
            };
        });
    }

    private static void WriteLines(TextWriter output, IReadOnlyList<string> lines)
    {
        foreach (var line in lines)
            output.WriteLine(line);
    }
}
