using System.CommandLine;
using KmemNative.Arch;

namespace KmemNative.Cli.Commands;

/// <summary>
/// <c>--arch i386|x86_64</c>, <c>--mem SIZE</c>, <c>--cpus N</c> on one command. Options not given fall back to
/// the session's defaults (the run/shell options in a script, <see cref="MachineConfig"/>'s defaults on the CLI).
/// </summary>
internal sealed class MachineOptions
{
    internal MachineOptions(CommandBuilder builder)
    {
        Arch = builder.Option("--arch", "Architecture profile: i386 or x86_64 [default: i386]", MachineConfig.ParseArch, "i386|x86_64");
        Mem = builder.Option("--mem", "Installed RAM, a number with a K/M/G suffix such as 64M [default: 1G]", MachineConfig.ParseSize, "SIZE");
        Cpus = builder.Option("--cpus", "Number of emulated CPUs [default: 2]", CliValues.ParseInt, "N");
        NoPse = builder.Flag("--no-pse", "i386: a CPU without CR4.PSE: lowmem is mapped with 4 KiB page tables, not 4 MiB pages");
    }

    /// <summary>--arch.</summary>
    public Option<ArchKind> Arch { get; }

    /// <summary>--mem, in bytes.</summary>
    public Option<ulong> Mem { get; }

    /// <summary>--cpus.</summary>
    public Option<int> Cpus { get; }

    /// <summary>--no-pse.</summary>
    public Option<bool> NoPse { get; }

    /// <summary>Hides the options from help, or shows them (script lines, where only boot takes them).</summary>
    public void SetHidden(bool hidden)
    {
        Arch.Hidden = hidden;
        Mem.Hidden = hidden;
        Cpus.Hidden = hidden;
        NoPse.Hidden = hidden;
    }

    /// <summary>The configuration the options describe, <paramref name="defaults"/> for what they leave out.</summary>
    public MachineConfig Read(ParseResult parse, MachineConfig defaults)
    {
        var config = defaults;
        if (parse.GetResult(Arch) is { Implicit: false } arch)
            config = config with { Arch = arch.GetValueOrDefault<ArchKind>() };
        if (parse.GetResult(Mem) is { Implicit: false } mem)
            config = config with { MemBytes = mem.GetValueOrDefault<ulong>() };
        if (parse.GetResult(Cpus) is { Implicit: false } cpus)
            config = config with { Cpus = cpus.GetValueOrDefault<int>() };
        if (parse.GetResult(NoPse) is { Implicit: false } noPse && noPse.GetValueOrDefault<bool>())
            config = config with { Pse = false };
        return config;
    }

    /// <summary>True when any of the three options was typed.</summary>
    public bool AnyGiven(ParseResult parse) =>
        new Option[] { Arch, Mem, Cpus, NoPse }.Any(o => parse.GetResult(o) is { Implicit: false });
}
