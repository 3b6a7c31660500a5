using CsCheck;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.PhysMem;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.PageAlloc;

/// <summary>Random operation sequences against a simple model: pages are conserved and every held block stays allocated.</summary>
public class BuddyPropertyTests
{
    private static readonly Gfp[] s_gfps = [Gfp.Kernel, Gfp.Dma, Gfp.HighUserMovable, Gfp.Atomic, Gfp.Kernel | Gfp.Comp, Gfp.NoWait, Gfp.Kernel | Gfp.Reclaimable];

    [Fact]
    public void Random_alloc_free_sequences_keep_the_allocator_consistent()
    {
        // An op is (kind, order, gfp index, pick): kind 0-1 allocate, 2 free a held block, 3 drain.
        var op = Gen.Select(Gen.Int[0, 3], Gen.Int[0, 10], Gen.Int[0, s_gfps.Length - 1], Gen.Int[0, 1 << 20]);
        Gen.Select(Gen.Bool, op.Array[1, 300]).Sample((x64, ops) =>
        {
            using var m = Machines.Boot(x64 ? ArchKind.X86_64 : ArchKind.I386, 16);
            var before = Machines.FreeAreas(m);
            var held = new List<(Page Page, int Order)>();
            foreach (var (kind, order, g, pick) in ops)
            {
                if (kind <= 1)
                {
                    if (m.AllocPages(s_gfps[g] | Gfp.NoWarn, order) is { } p)
                        held.Add((p, order));
                }
                else if (kind == 2 && held.Count > 0)
                {
                    int i = pick % held.Count;
                    m.FreePages(held[i].Page, held[i].Order);
                    held.RemoveAt(i);
                }
                else
                {
                    m.DrainAllPages();
                }
            }
            var mid = m.CheckConsistency();
            if (mid.Total.Allocated != held.Sum(h => 1L << h.Order))
                throw new InvalidOperationException($"allocated {mid.Total.Allocated} != held {held.Sum(h => 1L << h.Order)}");
            foreach (var h in held)
                if (h.Page.Refcount != 1)
                    throw new InvalidOperationException($"held page {h.Page} has refcount {h.Page.Refcount}");
            foreach (var (p, o) in held)
                m.FreePages(p, o);
            m.DrainAllPages();
            m.CheckConsistency();
            var after = Machines.FreeAreas(m);
            if (!before.Zip(after).All(z => z.First.SequenceEqual(z.Second)))
                throw new InvalidOperationException("buddy state differs from boot after freeing everything");
        }, iter: 60);
    }
}
