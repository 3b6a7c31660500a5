using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>
/// The page allocator's calls, named after the kernel functions and taking their arguments in the kernel's order.
/// Script-only: what they change only matters to the lines that follow.
/// </summary>
internal sealed class PageAllocCommands : ICommandModule
{
    /// <inheritdoc/>
    public void Register(CommandRegistry registry)
    {
        registry.Add("alloc_pages", "alloc_pages(GFP, ORDER): allocate 2^ORDER pages; result: the struct page address", b =>
        {
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            var order = b.Argument("ORDER", CliValues.OrderHelp, CliValues.ParseOrder);
            b.UsesMachine();
            return ctx =>
            {
                var machine = ctx.Machine;
                int mark = machine.Log.Count;
                var page = machine.AllocPages(ctx.GetValue(gfp), ctx.GetValue(order))
                    ?? throw PageText.AllocationFailed("alloc_pages", ctx.GetValue(gfp), ctx.GetValue(order), machine, mark);
                ctx.Out.WriteLine(PageText.Line(page, ctx.GetValue(order)));
                ctx.SetResult(CliValues.Hex(page.DescriptorAddress));
            };
        }, CommandScope.Script);

        registry.Add("alloc_pages_bulk", "alloc_pages_bulk(GFP, N): order-0 pages one by one until N or the first failure (the pages stay allocated); result: how many", b =>
        {
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            var count = b.Argument("N", "How many pages at most", CliValues.ParseInt);
            var cpu = MmCommands.CpuOption(b);
            b.UsesMachine();
            return ctx =>
            {
                var machine = ctx.Machine;
                var c = MmCommands.GetCpu(ctx, cpu);
                int n = ctx.GetValue(count);
                if (n < 0)
                    throw new UsageException($"alloc_pages_bulk: N {n} is negative", "alloc_pages_bulk");
                // As the kernel's bulk allocator: stop at the first page the allocator refuses, without a second try.
                int got = 0;
                while (got < n && machine.AllocPages(c, ctx.GetValue(gfp), 0) is not null)
                    got++;
                ctx.Out.WriteLine($"alloc_pages_bulk({GfpFlags.Format(ctx.GetValue(gfp))}, {n}): {got} pages{(got < n ? " (then the allocator refused)" : "")}");
                ctx.SetResult(got.ToString(System.Globalization.CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);

        registry.Add("__free_pages", "__free_pages(PAGE, ORDER): drop a reference to a block from alloc_pages; the last frees it", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            var order = b.Argument("ORDER", CliValues.OrderHelp, CliValues.ParseOrder);
            b.UsesMachine();
            return ctx => ctx.Machine.FreePages(ctx.GetValue(page).Resolve(ctx.Machine), ctx.GetValue(order));
        }, CommandScope.Script);

        registry.Add("__get_free_pages", "__get_free_pages(GFP, ORDER): allocate 2^ORDER lowmem pages; result: their kernel virtual address", b =>
        {
            var gfp = b.Argument("GFP", CliValues.GfpHelp, CliValues.ParseGfp);
            var order = b.Argument("ORDER", CliValues.OrderHelp, CliValues.ParseOrder);
            b.UsesMachine();
            return ctx =>
            {
                var machine = ctx.Machine;
                int mark = machine.Log.Count;
                ulong address = machine.GetFreePages(ctx.GetValue(gfp), ctx.GetValue(order));
                if (address == 0)
                    throw PageText.AllocationFailed("__get_free_pages", ctx.GetValue(gfp), ctx.GetValue(order), machine, mark);
                var page = machine.VirtToPage(address);
                ctx.Out.WriteLine($"addr {CliValues.Hex(address)} pfn {CliValues.Hex(page.Pfn)} order {ctx.GetValue(order)} zone {PageText.ZoneName(page)}");
                ctx.SetResult(CliValues.Hex(address));
            };
        }, CommandScope.Script);

        registry.Add("free_pages", "free_pages(ADDR, ORDER): free by kernel virtual address (0 is ignored, as in the kernel)", b =>
        {
            var address = b.Argument("ADDR", "A kernel virtual address from __get_free_pages", CliValues.ParseAddress);
            var order = b.Argument("ORDER", CliValues.OrderHelp, CliValues.ParseOrder);
            b.UsesMachine();
            return ctx => ctx.Machine.FreePages(ctx.GetValue(address), ctx.GetValue(order));
        }, CommandScope.Script);

        registry.Add("get_page", "get_page(PAGE): take a reference to an allocated page", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx => ctx.Machine.GetPage(ctx.GetValue(page).Resolve(ctx.Machine));
        }, CommandScope.Script);

        registry.Add("put_page", "put_page(PAGE): drop a reference; the last one frees the page", b =>
        {
            var page = b.Argument("PAGE", CliValues.PageHelp, CliValues.ParsePage);
            b.UsesMachine();
            return ctx => ctx.Machine.PutPage(ctx.GetValue(page).Resolve(ctx.Machine));
        }, CommandScope.Script);

        registry.Add("drain_all_pages", "drain_all_pages(): return every CPU's per-CPU list pages to the buddy lists", b =>
        {
            b.UsesMachine();
            return ctx =>
            {
                long drained = ctx.Machine.DrainAllPages();
                ctx.Out.WriteLine($"drained {drained} pages from the per-CPU lists");
                ctx.SetResult(drained.ToString(System.Globalization.CultureInfo.InvariantCulture));
            };
        }, CommandScope.Script);
    }
}
