

namespace KmemNative.Slab;

// validate_slab_cache() and the call-site table behind %pS.
internal sealed unsafe partial class SlabAllocator<TArch>
{
    // ---- validate_slab_cache() ------------------------------------------------------------------------------

    /// <summary>
    /// validate_slab_cache(): flush the CPU slabs, then check every slab and every object (free ones against
    /// SLUB_RED_INACTIVE, allocated ones against SLUB_RED_ACTIVE), repairing what it reports.
    /// </summary>
    public (SlabBugReport[] Reports, int Errors) Validate(Cpu cpu, KmemCache s)
    {
        CheckCpu(cpu);
        CheckCache(s);
        BeginOp();
        try
        {
            FlushAll(cpu, s);
            SpinLock(s.NodeHost);
            try
            {
                var listed = ListSlabs(s.NodeVa + (ulong)NodeOff.Partial);
                if ((ulong)listed.Count != Ld(s.NodeHost + NodeOff.NrPartial))
                {
                    string msg = $"SLUB {s.Name}: {listed.Count} partial slabs counted but counter={Ld(s.NodeHost + NodeOff.NrPartial)}";
                    Report(SlabBug.SlabCorrupt, s.Name, s.NodeVa, msg);
                }
                foreach (ulong slab in AllSlabsOf(s))
                    ValidateSlab(s, slab);
            }
            finally
            {
                SpinUnlock(s.NodeHost);
            }
        }
        catch
        {
            t_op!.Depth--;
            throw;
        }
        return EndOpCollect();
    }

    private void ValidateSlab(KmemCache s, ulong slabVa)
    {
        if (!CheckSlab(s, slabVa) || !OnFreelist(s, slabVa, 0))
            return;
        var free = FreeObjectsOf(s, slabVa);
        byte* slab = SlabHost(slabVa);
        uint objects = SlabCounters.Objects(Ld(slab + HotSlab<TArch>.SlabCounters));
        ulong p = PageAddress(PfnOfSlab(slabVa)) + (ulong)s.RedLeftPad;
        for (uint i = 0; i < objects; i++, p += (ulong)s.Size)
        {
            if (!CheckObject(s, slabVa, p, free.Contains(p) ? SlabPoison.RedInactive : SlabPoison.RedActive))
                break;
        }
    }

    // ---- call sites (%pS) -----------------------------------------------------------------------------------

    private readonly List<string> _sites = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _siteIndex = new(StringComparer.Ordinal);
    private readonly Lock _siteLock = new();
    private const ulong SiteStride = 0x40;

    /// <summary>
    /// The text address recorded for a call site: each distinct site (a kernel function name, or what the caller
    /// set in <see cref="Cpu.Caller"/>) gets a 64-byte slot in the image's .text, so tracks hold real addresses.
    /// </summary>
    private ulong CallSiteAddress(string site)
    {
        // Lock-free for a known site (every debug alloc and free records one); the lock only to add a site.
        if (_siteIndex.TryGetValue(site, out int i))
            return SiteBase + (ulong)i * SiteStride;
        lock (_siteLock)
        {
            if (!_siteIndex.TryGetValue(site, out i))
            {
                i = _sites.Count;
                _sites.Add(site);
                _siteIndex[site] = i;
            }
            return SiteBase + (ulong)i * SiteStride;
        }
    }

    private ulong SiteBase => _m.Image.VirtualBase + 0x1000;

    /// <summary>%pS of a recorded address: "func+0x0/0x40", or the caller's own "func+off/len" text.</summary>
    internal string CallSiteText(ulong addr)
    {
        lock (_siteLock)
        {
            ulong off = addr - SiteBase;
            if (addr >= SiteBase && off / SiteStride < (ulong)_sites.Count)
            {
                string name = _sites[(int)(off / SiteStride)];
                return name.Contains('+', StringComparison.Ordinal) ? name : $"{name}+0x{off % SiteStride:x}/0x{SiteStride:x}";
            }
        }
        return "0x" + P(addr);
    }

    private string CallSiteText(Cpu cpu, string site) => CallSiteText(CallSiteAddress(cpu.Caller ?? site));
}

/// <summary>enum track_item.</summary>
internal enum TrackItem
{
    /// <summary>TRACK_ALLOC.</summary>
    Alloc = 0,
    /// <summary>TRACK_FREE.</summary>
    Free = 1,
}
