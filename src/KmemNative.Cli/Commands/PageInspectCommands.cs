using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary><c>page</c> and <c>check</c>: looking at struct pages and at the allocator as a whole.</summary>
internal sealed class PageInspectCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("page", "Print a struct page: flags, refcount, mapcount, mapping, private, zone, buddy order", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx =>
            {
                var p = ctx.GetValue(page).Resolve(ctx.Machine);
                WriteDescriptor(ctx.Out, ctx.Machine, p.Descriptor);
                ctx.SetResult(CliValues.Hex(p.DescriptorAddress));
            };
        });

        registry.Add("check", "Check the allocator's consistency: free + pcp + allocated + reserved == present in every zone", b =>
        {
            b.UsesMachine();
            return ctx =>
            {
                // Throws ConsistencyException listing the problems; then the command fails with that report.
                var report = ctx.Machine.CheckConsistency();
                foreach (var z in report.Zones.Where(z => z.Present > 0).Append(report.Total))
                    ctx.Out.WriteLine($"{z.Zone,-8} free {z.Free,8} + pcp {z.PerCpu,5} + allocated {z.Allocated,8} + reserved {z.Reserved,7} == present {z.Present,8}");
                ctx.Out.WriteLine("consistent: free lists, per-CPU lists and struct pages agree");
            };
        });
    }

    private static void WriteDescriptor(TextWriter output, Machine machine, PageDescriptor d)
    {
        output.WriteLine($"page {CliValues.Hex(d.Address)} pfn {CliValues.Hex(d.Pfn)} zone {PageText.ZoneName(machine, d.ZoneIndex)}");
        output.WriteLine($"  flags:       {d.FlagsText}");
        output.WriteLine($"  refcount:    {d.Refcount}");
        output.WriteLine($"  mapcount:    {d.Mapcount}");
        output.WriteLine($"  mapping:     {CliValues.Hex(d.Mapping)}");
        output.WriteLine($"  index:       {CliValues.Hex(d.Index)}");
        output.WriteLine($"  private:     {CliValues.Hex(d.Private)}");
        string type = d.PageType is { } t ? PageBits.PageTypeName(t) ?? CliValues.Hex(t) : "none";
        output.WriteLine($"  page_type:   {type}");
        output.WriteLine($"  buddy order: {(d.IsBuddy ? d.BuddyOrder.ToString(System.Globalization.CultureInfo.InvariantCulture) : "- (not a free block head)")}");
        if (d.IsHead || d.IsTail)
            output.WriteLine($"  compound:    {(d.IsHead ? "head" : $"tail of {CliValues.Hex(d.LruNext & ~1UL)}")}");
    }
}
