using KmemNative.Diagnostics;

namespace KmemNative.Cli.Commands;

/// <summary><c>proc FILE</c>: the machine's /proc files, verbatim.</summary>
internal sealed class ProcCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("proc", "Print a /proc file of the machine, exactly as Linux formats it", b =>
        {
            // The list is read when the tree is built, so files later subsystems register show up in help.
            var file = b.Argument("FILE", $"The file: {string.Join(", ", ProcFs.Files)}; in a script, for a process: {ProcFs.PidFilesText} (a /proc/ prefix is allowed)");
            b.UsesMachine();
            return ctx =>
            {
                string name = ctx.GetValue(file);
                if (name.StartsWith("/proc/", StringComparison.Ordinal))
                    name = name["/proc/".Length..];
                // ProcFs knows every file, including ones later subsystems register; an unknown name is a usage error.
                if (!ProcFs.Exists(name))
                    throw new UsageException($"no such /proc file '{name}' (known: {string.Join(", ", ProcFs.Files)}, {ProcFs.PidFilesText})", "proc");
                ctx.Out.Write(ctx.Machine.Proc.Read(name));
            };
        });
    }
}
