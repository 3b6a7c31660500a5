using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.PageAlloc;
using KmemNative.Paging;
using KmemNative.Tests.Mm;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Reclaim;

/// <summary>Reclaim racing with faults, page-cache I/O and kswapd on its own thread.</summary>
public class ReclaimConcurrencyTests
{
    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public void Processes_files_and_the_kswapd_thread_under_pressure_conserve_every_page(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64, cpus: 3);
        Assert.True(m.Swapon(16 << 20).IsOk);
        var setup = m.GetCpu(0);
        int fd = (int)m.FileCreate(setup, "/data/shared", 16 << 20).Unwrap();
        m.ReleaseCpu(setup);
        m.KswapdThread = true;
        var errors = new List<Exception>();
        string workerLog = "";
        // The worker's memory and the file's page cache must overlap (together they exceed RAM): the writer starts
        // once the worker has faulted its memory in, and the worker exits only after the writer is done.
        using var workerReady = new ManualResetEventSlim();
        using var writerDone = new ManualResetEventSlim();
        var threads = new List<Thread>();
        for (int t = 0; t < 2; t++)
        {
            int id = t;
            threads.Add(new Thread(() =>
            {
                try
                {
                    var cpu = m.GetCpu(id);
                    var rnd = new Random(id);
                    if (id == 0)
                    {
                        var p = m.Spawn(cpu, "worker");
                        ulong a = p.MapAnon(cpu, 44 << 20);
                        for (int round = 0; round < 3; round++)
                        {
                            var r = p.Touch(cpu, a, 44 << 20, MemoryAccess.Write, (byte)(round + 1));
                            workerLog += $" round {round}: {r.Pages} pages {r.Signal}";
                            workerReady.Set();
                            if (!r.IsOk)
                                break;
                            var b = new byte[4096];
                            for (int k = 0; k < 64; k++)
                            {
                                ulong off = (ulong)rnd.Next(0, 44 << 8) << 12;
                                if (!p.Read(cpu, a + off, b).IsOk)
                                    break;
                                Assert.Equal((byte)(round + 1), b[0]);    // Touch writes one byte per page
                            }
                        }
                        workerReady.Set();
                        writerDone.Wait();
                        if (p.IsAlive)
                            p.Exit(cpu);
                    }
                    else
                    {
                        workerReady.Wait();
                        var buf = new byte[64 << 10];
                        for (int round = 0; round < 6; round++)
                        {
                            for (ulong off = 0; off < 16 << 20; off += (ulong)buf.Length)
                            {
                                if (round % 2 == 0)
                                {
                                    Array.Fill(buf, (byte)round);
                                    m.FileWrite(cpu, fd, off, buf);
                                }
                                else
                                {
                                    m.FileRead(cpu, fd, off, buf);
                                    Assert.All(buf, x => Assert.Equal((byte)(round - 1), x));
                                }
                            }
                        }
                    }
                    m.ReleaseCpu(cpu);
                }
                catch (Exception e)
                {
                    lock (errors)
                        errors.Add(e);
                    workerReady.Set();
                }
                finally
                {
                    if (id == 1)
                        writerDone.Set();
                }
            }));
        }
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        m.KswapdThread = false;
        Assert.Empty(errors);
        var cpu0 = m.GetCpu(0);
        m.Sync(cpu0);
        m.CheckConsistency();
        // There was pressure: pages were reclaimed (by kswapd or directly).
        long E(VmEvent e) => m.Cpus.Sum(c => c.Event(e));
        string info = $"kswapd {E(VmEvent.PgstealKswapd)} direct {E(VmEvent.PgstealDirect)} scan {E(VmEvent.PgscanDirect)}/{E(VmEvent.PgscanKswapd)} pswpout {E(VmEvent.Pswpout)} oom {E(VmEvent.OomKill)} wakeups {m.KswapdWakeups} runs {E(VmEvent.Pageoutrun)} free {m.Zones.Sum(z => z.FreePages)} worker{workerLog} log {string.Join(" | ", m.Log.Lines.TakeLast(3))}";
        Assert.True(m.Cpus.Sum(c => c.Event(VmEvent.PgstealKswapd) + c.Event(VmEvent.PgstealDirect)) > 0, info);
    }
}
