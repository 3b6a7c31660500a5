using System.Numerics;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;

namespace KmemNative.Slab;

// Geometry: calculate_sizes() (object layout, free pointer offset, red zones, tracking, padding) and
// calculate_order() (slab order and objects per slab from the present CPUs).
internal sealed unsafe partial class SlabAllocator<TArch>
{
    // ---- calculate_sizes() / calculate_order() ----------------------------------------------------------

    /// <summary>calculate_sizes(): object layout (free pointer, red zones, tracking, padding), stride and order.</summary>
    private bool CalculateSizes(KmemCache s)
    {
        uint ptr = (uint)TArch.PointerSize;
        SlabFlags flags = s.Flags;
        uint objectSize = (uint)s.ObjectSize;
        uint size = Align(objectSize, ptr);

        if ((flags & SlabFlags.Poison) != 0 && (flags & SlabFlags.TypesafeByRcu) == 0 && s.Ctor is null)
            s.Flags |= SlabFlags.ObjectPoison;
        else
            s.Flags &= ~SlabFlags.ObjectPoison;

        // Red zoning needs at least a word between the object and what follows.
        if ((flags & SlabFlags.RedZone) != 0 && size == objectSize)
            size += ptr;
        s.Inuse = (int)size;

        bool origSize = (flags & (SlabFlags.StoreUser | SlabFlags.Kmalloc)) == (SlabFlags.StoreUser | SlabFlags.Kmalloc);
        if (origSize || (flags & (SlabFlags.TypesafeByRcu | SlabFlags.Poison)) != 0 ||
            ((flags & SlabFlags.RedZone) != 0 && objectSize < ptr) || s.Ctor is not null)
        {
            // The free pointer may not overwrite the object: it goes after it.
            s.Offset = (int)size;
            size += ptr;
        }
        else
        {
            // In the middle, away from the edges small overflows of the neighbours hit.
            s.Offset = (int)((objectSize / 2) & ~(ptr - 1));
        }

        if ((flags & SlabFlags.StoreUser) != 0)
        {
            size += 2 * (uint)_l.Track.Size;
            if ((flags & SlabFlags.Kmalloc) != 0)
                size += sizeof(uint);
        }
        if ((flags & SlabFlags.RedZone) != 0)
        {
            size += ptr;
            s.RedLeftPad = (int)Align(ptr, (uint)s.Align);
            size += (uint)s.RedLeftPad;
        }
        else
        {
            s.RedLeftPad = 0;
        }

        size = Align(size, (uint)s.Align);
        s.Size = (int)size;
        s.SetSizeDivisor();
        s.FpOffset = (uint)s.Offset;
        SetFpBounds(s);
        int order = CalculateOrder(size);
        if (order < 0)
            return false;
        Gfp allocflags = Gfp.None;
        if (order != 0)
            allocflags |= Gfp.Comp;
        if ((s.Flags & SlabFlags.CacheDma) != 0)
            allocflags |= Gfp.Dma;
        if ((s.Flags & SlabFlags.CacheDma32) != 0)
            allocflags |= Gfp.Dma32;
        if ((s.Flags & SlabFlags.ReclaimAccount) != 0)
            allocflags |= Gfp.Reclaimable;
        s.AllocFlags = allocflags;
        s.Order = order;
        s.ObjectsPerSlab = (int)OrderObjects(order, size);
        s.MinOrder = PageSize.GetOrder(size);
        return s.ObjectsPerSlab != 0;
    }

    private static uint Align(uint v, uint a) => (v + a - 1) & ~(a - 1);

    /// <summary>The fast paths' precomputed free-pointer address base and bound for the cache's offset.</summary>
    private void SetFpBounds(KmemCache s)
    {
        s.Owner = this;
        s.FpHost = (ulong)_base + s.FpOffset;
        // Encoded free pointers are decoded out of line, so the inline fast paths stay free of the test.
        s.FpLimit = s.Hardened || s.SheafCapacity != 0 ? 0 : _longLimit - s.FpOffset;
        s.ArenaBase = _base;
        s.SheafLimit = s.SheafCapacity == 0 ? 0 : _lowmemBytes - (ulong)_l.SheafBytes(s.SheafCapacity);
    }

    /// <summary>order_objects().</summary>
    private static uint OrderObjects(int order, uint size) => (uint)(PageSize.Bytes << order) / size;

    /// <summary>
    /// calculate_order(): at least 4 * (fls(present CPUs) + 1) objects per slab, then the smallest order up to
    /// slub_max_order that wastes at most 1/16 (then 1/8, 1/4, 1/2) of the slab.
    /// </summary>
    internal int CalculateOrder(uint size)
    {
        int nrCpus = _m.Cpus.Count;
        uint minObjects = (uint)(4 * (32 - BitOperations.LeadingZeroCount((uint)nrCpus) + 1));
        uint maxObjects = Math.Max(OrderObjects(SlubConst.MaxOrder, size), 1);
        minObjects = Math.Min(minObjects, maxObjects);
        int minOrder = PageSize.GetOrder((ulong)minObjects * size);
        if (OrderObjects(minOrder, size) > SlubConst.MaxObjsPerPage)
            return PageSize.GetOrder((ulong)size * SlubConst.MaxObjsPerPage) - 1;
        for (uint fraction = 16; fraction > 1; fraction /= 2)
        {
            int order = CalcSlabOrder(size, minOrder, SlubConst.MaxOrder, fraction);
            if (order <= SlubConst.MaxOrder)
                return order;
        }
        int o = PageSize.GetOrder(size);
        return o <= PageSize.MaxOrder ? o : -1;
    }

    private static int CalcSlabOrder(uint size, int minOrder, int maxOrder, uint fractLeftover)
    {
        int order;
        for (order = minOrder; order <= maxOrder; order++)
        {
            uint slabSize = (uint)PageSize.Bytes << order;
            if (slabSize % size <= slabSize / fractLeftover)
                break;
        }
        return order;
    }
}
