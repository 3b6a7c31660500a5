using CsCheck;
using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Paging;
using KmemNative.Tests.TestUtil;
using static KmemNative.Tests.Mm.MmTestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>
/// Long random sequences of mmap/munmap/mprotect/brk/madvise (and accesses) checked after every step against a
/// page-by-page reference model: the VMA list and tree invariants, the flags of every page, the counters, and the
/// memory contents.
/// </summary>
public class VmaPropertyTests
{
    private const int Window = 64;         // pages in the window the operations work on
    private const ulong Base = 0x2000_0000;

    private static readonly Prot[] Prots = [Prot.None, Prot.Read, Prot.Read | Prot.Write, Prot.Read | Prot.Exec];

    /// <summary>An op: kind, first page, page count, protection pick, value.</summary>
    private static readonly Gen<(int Kind, int Page, int Pages, int Prot, ulong Value)> Op =
        Gen.Select(Gen.Int[0, 7], Gen.Int[0, Window - 1], Gen.Int[1, 16], Gen.Int[0, 3], Gen.ULong[1, 1000]);

    [Fact]
    public void Without_accesses_the_vmas_are_exactly_the_maximal_runs_of_equal_protection()
    {
        Gen.Select(Gen.Bool, Op.Array[1, 60]).Sample((x64, ops) =>
        {
            using var m = Machines.Boot(x64 ? ArchKind.X86_64 : ArchKind.I386, 32);
            var cpu = m.GetCpu(0);
            var p = m.Spawn(cpu, "prop");
            var model = new Prot?[Window];
            ulong startBrk = p.Mm.StartBrk, brk = startBrk;
            foreach (var (kind, page, pages, protPick, value) in ops)
            {
                int n = Math.Min(pages, Window - page);
                ulong addr = Base + ((ulong)page << 12), len = (ulong)n << 12;
                var prot = Prots[protPick];
                switch (kind)
                {
                    case 0 or 1:
                        Assert.Equal(addr, p.Mmap(cpu, addr, len, prot, Anon | MapFlags.Fixed).Unwrap());
                        for (int i = page; i < page + n; i++)
                            model[i] = prot;
                        break;
                    case 2 or 3:
                        Assert.True(p.Munmap(cpu, addr, len).IsOk);
                        for (int i = page; i < page + n; i++)
                            model[i] = null;
                        break;
                    case 4 or 5:
                        {
                            bool covered = Enumerable.Range(page, n).All(i => model[i] is not null);
                            var r = p.Mprotect(cpu, addr, len, prot);
                            Assert.Equal(covered, r.IsOk);
                            if (!covered)
                                Assert.Equal(Errno.ENOMEM, r.Error);
                            // The kernel applies the change up to the first hole.
                            for (int i = page; i < page + n && model[i] is not null; i++)
                                model[i] = prot;
                            break;
                        }
                    case 6:
                        {
                            ulong want = startBrk + (value % 40) * 0x1000;
                            brk = p.Brk(cpu, want);
                            Assert.Equal(want, brk);
                            break;
                        }
                    default:
                        Assert.True(p.Madvise(cpu, addr, len, Madvise.DontNeed).IsOk == Enumerable.Range(page, n).All(i => model[i] is not null));
                        break;
                }
                p.Validate();
                CheckWindow(p, model);
                // The heap is [start_brk, PAGE_ALIGN(brk)).
                var heap = p.Vmas.Where(v => v.Name == "[heap]").ToList();
                if (brk == startBrk)
                    Assert.Empty(heap);
                else
                    Assert.Equal((startBrk, (brk + 0xfff) & ~0xfffUL), (heap.Single().Start, heap.Single().End));
                CheckCounters(m, p);
            }
            p.Exit(cpu);
            Assert.Equal(0, Committed(m));
        }, iter: 60);
    }

    /// <summary>The window's VMAs: every mapped page in one with the model's protection, runs merged maximally.</summary>
    private static void CheckWindow(Process p, Prot?[] model)
    {
        var vmas = p.Vmas.Where(v => v.End > Base && v.Start < Base + ((ulong)Window << 12)).ToList();
        var expected = new List<(ulong Start, ulong End, Prot Prot)>();
        for (int i = 0; i < Window;)
        {
            if (model[i] is not { } prot)
            {
                i++;
                continue;
            }
            int j = i;
            while (j < Window && model[j] == prot)
                j++;
            expected.Add((Base + ((ulong)i << 12), Base + ((ulong)j << 12), prot));
            i = j;
        }
        var actual = vmas.Select(v => (v.Start, v.End, ProtOf(v.Flags))).ToList();
        Assert.Equal(expected, actual);
        foreach (var v in vmas)
        {
            // Private anonymous memory: pgoff is the address' page number, so neighbours can merge.
            Assert.Equal(v.Start >> 12, v.Pgoff);
            Assert.Equal(VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec, v.Flags & (VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec));
            Assert.Equal((v.Flags & VmFlags.Write) != 0, (v.Flags & VmFlags.Account) != 0);
        }
    }

    private static Prot ProtOf(VmFlags f) =>
        ((f & VmFlags.Read) != 0 ? Prot.Read : 0) | ((f & VmFlags.Write) != 0 ? Prot.Write : 0) | ((f & VmFlags.Exec) != 0 ? Prot.Exec : 0);

    /// <summary>total_vm/data_vm/exec_vm/stack_vm and Committed_AS agree with the VMAs.</summary>
    private static void CheckCounters(Machine m, Process p)
    {
        var vmas = p.Vmas;
        var mm = p.Mm;
        Assert.Equal(vmas.Sum(v => (long)v.Pages), (long)mm.TotalVm);
        Assert.Equal(vmas.Where(v => (v.Flags & (VmFlags.Exec | VmFlags.Write | VmFlags.Stack)) == VmFlags.Exec).Sum(v => (long)v.Pages), (long)mm.ExecVm);
        Assert.Equal(vmas.Where(v => (v.Flags & VmFlags.Stack) != 0).Sum(v => (long)v.Pages), (long)mm.StackVm);
        Assert.Equal(vmas.Where(v => (v.Flags & (VmFlags.Write | VmFlags.Shared | VmFlags.Stack)) == VmFlags.Write).Sum(v => (long)v.Pages), (long)mm.DataVm);
        Assert.Equal(vmas.Where(v => (v.Flags & VmFlags.Account) != 0).Sum(v => (long)v.Pages), Committed(m));
    }

    private static long Committed(Machine m) =>
        long.Parse(m.Proc.Read("meminfo").Split('\n').Single(l => l.StartsWith("Committed_AS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 4;

    [Fact]
    public void With_accesses_every_page_holds_what_was_last_written_and_the_structures_stay_consistent()
    {
        // Kinds: 0-1 mmap, 2 munmap, 3 mprotect, 4-5 write, 6 read check, 7 fork-and-exit / madvise.
        Gen.Select(Gen.Bool, Op.Array[1, 50]).Sample((x64, ops) =>
        {
            using var m = Machines.Boot(x64 ? ArchKind.X86_64 : ArchKind.I386, 32);
            var cpu = m.GetCpu(0);
            m.Spawn(cpu, "warmup").Exit(cpu);
            var before = Snapshot(m);
            var p = m.Spawn(cpu, "data");
            var prot = new Prot?[Window];
            var data = new ulong[Window];
            foreach (var (kind, page, pages, protPick, value) in ops)
            {
                int n = Math.Min(pages, Window - page);
                ulong addr = Base + ((ulong)page << 12), len = (ulong)n << 12;
                switch (kind)
                {
                    case 0 or 1:
                        p.Mmap(cpu, addr, len, Prots[protPick], Anon | MapFlags.Fixed).Unwrap();
                        for (int i = page; i < page + n; i++)
                            (prot[i], data[i]) = (Prots[protPick], 0);
                        break;
                    case 2:
                        Assert.True(p.Munmap(cpu, addr, len).IsOk);
                        for (int i = page; i < page + n; i++)
                            (prot[i], data[i]) = (null, 0);
                        break;
                    case 3:
                        p.Mprotect(cpu, addr, len, Prots[protPick]);
                        for (int i = page; i < page + n && prot[i] is not null; i++)
                            prot[i] = Prots[protPick];
                        break;
                    case 4 or 5:
                        {
                            var r = p.Write(cpu, addr + 8, BitConverter.GetBytes(value));
                            bool writable = prot[page] is { } pr && (pr & Prot.Write) != 0;
                            Assert.Equal(writable, r.IsOk);
                            if (writable)
                                data[page] = value;
                            else
                                Assert.Equal(prot[page] is null ? SiCode.SEGV_MAPERR : SiCode.SEGV_ACCERR, r.Signal!.Value.Code);
                            break;
                        }
                    case 6:
                        for (int i = page; i < page + n; i++)
                        {
                            var b = new byte[8];
                            var r = p.Read(cpu, Base + ((ulong)i << 12) + 8, b);
                            bool readable = prot[i] is { } pr && (pr & (Prot.Read | Prot.Write | Prot.Exec)) != 0;
                            Assert.Equal(readable, r.IsOk);
                            if (readable)
                                Assert.Equal(data[i], BitConverter.ToUInt64(b));
                        }
                        break;
                    default:
                        if (value % 2 == 0)
                        {
                            // A child copies everything; its writes never show in the parent.
                            var c = m.FindProcess((int)p.Fork(cpu).Unwrap())!;
                            if (prot[page] is { } cp && (cp & Prot.Write) != 0)
                                c.Poke(cpu, addr + 8, ~value);
                            c.Validate();
                            if (value % 4 == 0)
                                c.Exit(cpu);
                        }
                        else if (Enumerable.Range(page, n).All(i => prot[i] is not null))
                        {
                            Assert.True(p.Madvise(cpu, addr, len, Madvise.DontNeed).IsOk);
                            for (int i = page; i < page + n; i++)
                                data[i] = 0;
                        }
                        break;
                }
                p.Validate();
                foreach (var v in p.Vmas.Where(v => v.Start >= Base && v.End <= Base + ((ulong)Window << 12)))
                    for (ulong a = v.Start; a < v.End; a += 0x1000)
                        Assert.Equal(prot[(a - Base) >> 12], ProtOf(v.Flags));
            }
            foreach (var t in m.Processes.ToList())
                t.Exit(cpu);
            var after = Snapshot(m);
            Assert.Equal(before.Allocated, after.Allocated);
            Assert.Equal(before.Objects, after.Objects);
            Assert.Equal(before.Node, after.Node);
        }, iter: 40);
    }
}
