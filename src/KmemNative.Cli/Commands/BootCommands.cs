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

        registry.Add("dmesg", "Print the kernel log: the boot messages and everything logged since", b =>
        {
            b.UsesMachine();
            return ctx => WriteLines(ctx.Out, ctx.Machine.Log.Lines);
        });
    }

    private static void WriteLines(TextWriter output, IReadOnlyList<string> lines)
    {
        foreach (var line in lines)
            output.WriteLine(line);
    }
}
