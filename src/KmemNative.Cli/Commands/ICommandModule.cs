namespace KmemNative.Cli.Commands;

/// <summary>
/// The commands of one subsystem (boot, /proc, the page allocator, slab...). A module registers each command once;
/// the same definition then serves the top-level CLI (<c>kmem NAME ...</c>) and the script language (a line
/// <c>NAME ...</c> in <c>kmem run</c> or <c>kmem shell</c>).
/// </summary>
/// <remarks>To add a module: implement this interface in its own file and add one line to <see cref="CommandModules.All"/>.</remarks>
internal interface ICommandModule
{
    /// <summary>Adds the module's commands to <paramref name="registry"/>.</summary>
    void Register(CommandRegistry registry);
}
