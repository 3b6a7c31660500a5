using KmemNative.PhysMem;

namespace KmemNative.Cli.Commands;

/// <summary>
/// A PAGE argument as typed: a <c>struct page</c> address (what <c>alloc_pages</c> prints and stores) or
/// <c>pfn:N</c>. Parsing needs no machine; <see cref="Resolve"/> checks it against one.
/// </summary>
/// <param name="Value">The address, or the pfn.</param>
/// <param name="IsPfn">True for <c>pfn:N</c>.</param>
internal readonly record struct PageRef(ulong Value, bool IsPfn)
{
    /// <summary>Parses <c>0x...</c> (or decimal) as a descriptor address, <c>pfn:N</c> as a page frame number.</summary>
    /// <exception cref="UsageException">Neither form.</exception>
    public static PageRef Parse(string text)
    {
        if (text.StartsWith("pfn:", StringComparison.OrdinalIgnoreCase))
            return new(CliValues.ParseNumber(text[4..], "pfn"), IsPfn: true);
        return CliValues.TryParseNumber(text, out ulong address)
            ? new(address, IsPfn: false)
            : throw new UsageException($"'{text}' is not a page (expected a struct page address such as 0xc1000000, or pfn:N)");
    }

    /// <summary>
    /// The page on <paramref name="machine"/>. A descriptor address must be the start of one of the mem_map's
    /// descriptors: the array is virtually contiguous on both profiles (flat mem_map in i386 lowmem, vmemmap on
    /// x86-64), so pfn = (address - &amp;mem_map[0]) / sizeof(struct page).
    /// </summary>
    /// <exception cref="CommandFailedException">Not a descriptor address of this machine.</exception>
    /// <exception cref="PhysicalAddressException">The pfn is beyond max_pfn.</exception>
    public Page Resolve(Machine machine)
    {
        if (IsPfn)
            return machine.PfnToPage(Value);
        ulong first = machine.PageDescriptorAddress(0);
        ulong size = machine.PageDescriptorAddress(1) - first;
        ulong end = first + machine.MaxPfn * size;
        if (Value < first || Value >= end)
            throw new CommandFailedException(
                $"{CliValues.Hex(Value)} is not a struct page address: the memory map is {CliValues.Hex(first)}-{CliValues.Hex(end - 1)}");
        if ((Value - first) % size != 0)
            throw new CommandFailedException(
                $"{CliValues.Hex(Value)} points inside a struct page, not at its start (struct page is {size} bytes)");
        return machine.PfnToPage((Value - first) / size);
    }

    /// <inheritdoc/>
    public override string ToString() => IsPfn ? $"pfn:{Value}" : CliValues.Hex(Value);
}
