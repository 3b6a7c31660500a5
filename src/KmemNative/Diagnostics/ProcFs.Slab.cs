using System.Text;

namespace KmemNative.Diagnostics;

// /proc/slabinfo (mm/slab_common.c: print_slabinfo_header, cache_show), version 2.1 as SLUB prints it.
public sealed partial class ProcFs
{
    private static readonly bool s_slabFiles = Register("slabinfo", p => p.Slabinfo());

    /// <summary>
    /// /proc/slabinfo: the 2.1 header, then one line per cache, newest first (slab_caches order): active and total
    /// objects, object stride, objects and pages per slab, SLUB's zero tunables, and the slab counts.
    /// </summary>
    public string Slabinfo()
    {
        var sb = new StringBuilder();
        sb.Append("slabinfo - version: 2.1\n");
        sb.Append("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>");
        sb.Append(" : tunables <limit> <batchcount> <sharedfactor>");
        sb.Append(" : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
        foreach (var cache in _m.KmemCaches)
        {
            var i = _m.Slabinfo(cache);
            sb.Append(Fmt($"{i.Name,-17} {i.ActiveObjs,6} {i.NumObjs,6} {i.ObjSize,6} {i.ObjPerSlab,4} {i.PagesPerSlab,4}"));
            sb.Append(Fmt($" : tunables {0,4} {0,4} {0,4}"));
            sb.Append(Fmt($" : slabdata {i.ActiveSlabs,6} {i.NumSlabs,6} {0,6}\n"));
        }
        return sb.ToString();
    }
}
