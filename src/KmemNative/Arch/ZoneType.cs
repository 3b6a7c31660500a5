namespace KmemNative.Arch;

/// <summary>Zone types by name (<c>enum zone_type</c>); each profile lists the ones it configures, in index order.</summary>
public enum ZoneType
{
    /// <summary>ZONE_DMA: the first 16 MiB, for ISA-DMA-limited devices.</summary>
    Dma,

    /// <summary>ZONE_DMA32: below 4 GiB (x86-64 only).</summary>
    Dma32,

    /// <summary>ZONE_NORMAL: directly mapped memory.</summary>
    Normal,

    /// <summary>ZONE_HIGHMEM: above the lowmem limit, not permanently mapped (i386 only).</summary>
    HighMem,

    /// <summary>ZONE_MOVABLE: configured but empty here (no kernelcore=/movablecore=).</summary>
    Movable,

    /// <summary>ZONE_DEVICE: configured but empty (x86-64 only).</summary>
    Device,
}

/// <summary>Names the kernel prints for zones (<c>zone_names[]</c> in mm/page_alloc.c).</summary>
public static class ZoneNames
{
    /// <summary>The kernel's name of <paramref name="type"/>.</summary>
    public static string Of(ZoneType type) => type switch
    {
        ZoneType.Dma => "DMA",
        ZoneType.Dma32 => "DMA32",
        ZoneType.Normal => "Normal",
        ZoneType.HighMem => "HighMem",
        ZoneType.Movable => "Movable",
        _ => "Device",
    };
}
