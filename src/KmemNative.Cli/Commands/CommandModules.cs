namespace KmemNative.Cli.Commands;

/// <summary>The one list of command modules. Adding a subsystem's commands = adding its module here.</summary>
/// <remarks>
/// An explicit list rather than reflection: the CLI is AOT-compatible (no assembly scanning), and the order below
/// is the order <c>kmem --help</c> and the script <c>help</c> list the commands in.
/// </remarks>
internal static class CommandModules
{
    /// <summary>Every module, in help order.</summary>
    public static IReadOnlyList<ICommandModule> All { get; } =
    [
        new BootCommands(),
        new GfpCommands(),
        new ProcCommands(),
        new PageAllocCommands(),
        new PageInspectCommands(),
        new PagingCommands(),
        new SlabCommands(),
        new MmCommands(),
        new ReclaimCommands(),
        new ReplayCommands(),
        new MapCommands(),
        new ScriptCommands(),
        new DemoCommands(),
    ];
}
