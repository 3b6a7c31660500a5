using CsCheck;
using KmemNative.Arch;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Paging;

/// <summary>Random map/unmap/access sequences against a dictionary model of the user address space.</summary>
public class PagingPropertyTests
{
    [Fact]
    public void Random_mappings_translate_like_a_model_and_teardown_returns_every_table()
    {
        // An op is (kind, page slot, frame pick): kind 0-2 map, 3 unmap, 4 write+read through the MMU, 5 switch CR3.
        var op = Gen.Select(Gen.Int[0, 5], Gen.Int[0, 4095], Gen.Int[0, 63]);
        Gen.Select(Gen.Bool, op.Array[1, 200]).Sample((x64, ops) =>
        {
            using var m = Machines.Boot(x64 ? ArchKind.X86_64 : ArchKind.I386, 32);
            var cpu = m.GetCpu(0);
            long allocated = m.CheckConsistency().Total.Allocated;
            var frames = Enumerable.Range(0, 64).Select(_ => m.AllocPage(Gfp.HighUser | Gfp.Zero)!.Value).ToList();
            var mm = m.CreateAddressSpace(cpu);
            m.SwitchMm(cpu, mm);
            var model = new Dictionary<ulong, ulong>();
            // Slots spread over many page tables: 64 slots per 4 MiB region, up to the top of user space.
            ulong Va(int slot) => ((ulong)(slot / 64) << 24) * (x64 ? 1024UL : 1UL) % (x64 ? 1UL << 46 : 0xbf00_0000UL) + (ulong)(slot % 64) * 4096;
            foreach (var (kind, slot, pick) in ops)
            {
                ulong va = Va(slot);
                switch (kind)
                {
                    case <= 2 when !model.ContainsKey(va):
                        mm.MapPage(cpu, va, frames[pick].PhysAddr, PageProt.Shared);
                        model[va] = frames[pick].PhysAddr;
                        break;
                    case 3:
                        Assert.Equal(model.ContainsKey(va), mm.UnmapPage(cpu, va) != 0);
                        model.Remove(va);
                        break;
                    case 4 when model.TryGetValue(va, out ulong pa):
                        m.WriteVirtualUInt(cpu, va + 8, 8, (ulong)pick, PrivilegeMode.User);
                        Assert.Equal((ulong)pick, m.Memory.ReadUInt64(pa + 8));
                        break;
                    case 5:
                        m.SwitchMm(cpu, m.InitMm);
                        m.SwitchMm(cpu, mm);
                        break;
                }
                bool ok = m.TryTranslate(cpu, va + 0x10, MemoryAccess.Read, PrivilegeMode.User, out ulong phys, out var f);
                Assert.Equal(model.ContainsKey(va), ok);
                if (ok)
                    Assert.Equal(model[va] + 0x10, phys);
                else
                    Assert.True(f.NotPresent);
            }
            m.SwitchMm(cpu, m.InitMm);
            mm.Dispose();
            frames.ForEach(p => m.FreePages(cpu, p, 0));
            Assert.Equal(0, m.NodeState(NodeStat.NrPageTablePages));
            Assert.Equal(allocated, m.CheckConsistency().Total.Allocated);
        }, iter: 40);
    }

    [Fact]
    public void Large_leaves_carry_pat_in_bit_12_and_splitting_moves_it_back()
    {
        ulong prot = PageProt.Kernel | (ulong)PteFlags.Pat | (ulong)PteFlags.Pwt;    // PAT index 5
        ulong pmd = PageTables<X86_64>.MakeLeaf(0x4020_0000, prot, 2);
        Assert.Equal(0x8000_0000_4020_0000UL | 0x1000 | 0x80 | 0x163 | 0x8, pmd);   // PSE in bit 7, PAT in bit 12
        Assert.Equal(5, new Pte64(pmd).CacheIndex(2));
        ulong pte = PageTables<X86_64>.MakeLeaf(0x4020_1000, prot, 1);
        Assert.Equal(0x8000_0000_4020_1000UL | 0x80 | 0x163 | 0x8, pte);            // PAT in bit 7
        Assert.Equal(5, new Pte64(pte).CacheIndex(1));
        ulong pde = PageTables<I386>.MakeLeaf(0x12_0040_0000, PageProt.KernelExec, 2);
        Assert.Equal(0x0040_0000UL | (0x12UL << 13) | 0x1e3, pde);                  // PSE-36 bits

        using var m = Machines.X64(64);
        var cpu = m.GetCpu(0);
        var mm = m.CreateAddressSpace(cpu);
        var big = m.AllocPages(cpu, Gfp.HighUser, 9)!.Value;
        mm.MapPage(cpu, 0x4000_0000, big.PhysAddr, PageProt.Shared | (ulong)PteFlags.Pat, 2UL << 20);
        var t = ((Machine<X86_64>)m).Paging.Tables;
        Assert.True(t.SplitLarge(cpu, mm.Pgd, 0x4000_0000, user: true));
        var (e, level) = mm.LookupPte(0x4000_3000);
        Assert.Equal(1, level);
        Assert.Equal(big.PhysAddr + 0x3000, new Pte64(e).FrameAddress(1));
        Assert.True(new Pte64(e).Pat(1));
        Assert.Equal(big.PhysAddr + 0x3abc, m.TranslatePgd(mm.Pgd, 0x4000_3abc).Physical);
        mm.Dispose();
        m.FreePages(cpu, big, 9);
        m.CheckConsistency();
    }
}
