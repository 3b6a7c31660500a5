using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary><c>gfp</c>: decoding GFP flags as the kernel's tracepoints print them. Needs no machine.</summary>
internal sealed class GfpCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("gfp", "Decode GFP flags: print the value in hex and its kernel names", b =>
        {
            var value = b.Argument("VALUE", CliValues.GfpHelp, CliValues.ParseGfp);
            var zone = b.Flag("--zone", "Also print the zone gfp_zone() picks and the migratetype gfp_migratetype() gives");
            // Not a machine option: nothing boots. It only picks the GFP_ZONE_TABLE --zone reads.
            var arch = b.Option("--arch", "Profile whose zones --zone uses [default: i386, or the script's machine]", MachineConfig.ParseArch, "i386|x86_64");
            return ctx =>
            {
                var gfp = ctx.GetValue(value);
                string text = $"{CliValues.Hex((uint)gfp)} {GfpFlags.Format(gfp)}";
                if (ctx.GetValue(zone))
                    text += " " + ZoneText(gfp, ctx.IsGiven(arch) ? ctx.GetValue(arch) : ctx.BootedMachine?.Arch ?? ctx.MachineConfig.Arch);
                ctx.Out.WriteLine(text);
                ctx.SetResult(CliValues.Hex((uint)gfp));
            };
        });
    }

    /// <summary>"zone Normal migratetype Movable", or why there is no zone.</summary>
    private static string ZoneText(Gfp gfp, ArchKind arch)
    {
        if (!GfpFlags.ZoneValid(gfp))
            return "zone invalid (GFP_ZONE_BAD: these zone modifiers name no zone)";
        var zone = ZoneNames.Of(GfpFlags.ZoneType(gfp, arch));
        return $"zone {zone} migratetype {PageBits.MigratetypeNames[(int)GfpFlags.Migratetype(gfp)]}";
    }
}
