using System.Xml.Linq;
using KmemNative.Cli.Commands;

namespace KmemNative.Tests.Cli;

/// <summary>The process commands in scripts: spawn, mmap and friends, touch, fork, exit, proc PID/..., pagemap, vtop --pid.</summary>
public sealed class CliMmTests
{
    [Fact]
    public void The_fork_cow_study_script_shows_one_frame_shared_read_only_then_two()
    {
        string text = StudyScripts.Get("05-fork-cow.kmem")!;
        var r = CliRunner.RunScript(text, "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines;
        // The physical address of every "VIRTUAL PHYSICAL" pair, in order: before fork, parent and child after
        // fork, the child after its write, the parent after it.
        string[] pairs = [.. lines.Select((l, i) => (l, i)).Where(x => x.l.StartsWith("VIRTUAL", StringComparison.Ordinal))
            .Select(x => lines[x.i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])];
        Assert.Equal(5, pairs.Length);
        Assert.Equal(pairs[0], pairs[1]);
        Assert.Equal(pairs[0], pairs[2]);
        Assert.NotEqual(pairs[0], pairs[3]);
        Assert.Equal(pairs[0], pairs[4]);
        // The PTE flags: RW before fork, read-only in both after, RW again for the child's copy.
        string[] flags = [.. lines.Where(l => l.Contains("(PRESENT", StringComparison.Ordinal)).Select(l => l[l.IndexOf('(', StringComparison.Ordinal)..])];
        Assert.Equal(["(PRESENT|RW|USER|ACCESSED|DIRTY|NX)", "(PRESENT|USER|ACCESSED|DIRTY|NX)", "(PRESENT|USER|DIRTY|NX)",
                      "(PRESENT|RW|USER|ACCESSED|DIRTY|NX)", "(PRESENT|USER|ACCESSED|DIRTY|NX)"], flags);
        Assert.Contains(lines, l => l.StartsWith("touch 1001 0x7ffff7ffb000+0x1000 write: 1 pages, 1 minor faults", StringComparison.Ordinal));
        // After the child exits the parent's pages are exclusive again.
        Assert.Equal(4, lines.TakeLast(10).Count(l => l.EndsWith("present exclusive soft-dirty", StringComparison.Ordinal)));
        Assert.StartsWith("consistent", lines[^1]);
        // Deterministic: a second run prints the same.
        Assert.Equal(r.Out, CliRunner.RunScript(text, "--mem", "64M").Out);
    }

    [Fact]
    public void Syscall_errors_and_signals_fail_the_command_with_the_kernels_words()
    {
        var r = CliRunner.RunScript("""
            $p = spawn err
            $a = mmap $p 0 8K PROT_READ MAP_PRIVATE|MAP_ANONYMOUS
            expect-fail mmap $p $a 4K PROT_READ MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE
            expect-fail munmap $p 0x20000001 4K
            expect-fail munmap $p $a 0
            expect-fail mprotect $p 0x30000000 4K PROT_READ
            expect-fail touch $p $a 4K write
            expect-fail touch $p 0x10000 1 read
            expect-fail touch 4242 0 1 read
            expect-fail mmap $p 0 4K PROT_READ MAP_PRIVATE 7
            brk $p 0x1000
            exit $p
            check
            """, "--arch", "x86_64", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var failures = r.OutLines.Where(l => l.StartsWith("expected failure: ", StringComparison.Ordinal)).Select(l => l["expected failure: ".Length..]).ToArray();
        Assert.Equal(8, failures.Length);
        Assert.EndsWith("= -EEXIST (File exists)", failures[0]);
        Assert.Equal("munmap(0x20000001, 4096) = -EINVAL (Invalid argument)", failures[1]);
        Assert.EndsWith("= -EINVAL (Invalid argument)", failures[2]);
        Assert.EndsWith("= -ENOMEM (Cannot allocate memory)", failures[3]);
        Assert.EndsWith("0 pages, 0 minor faults, 0 major faults, then SIGSEGV at 0x7ffff7ffd000 (SEGV_ACCERR, error 0x6)", failures[4]);
        Assert.EndsWith("then SIGSEGV at 0x10000 (SEGV_MAPERR, error 0x4)", failures[5]);
        Assert.Equal("no process 4242 (-ESRCH)", failures[6]);
        Assert.EndsWith("= -EBADF (Bad file descriptor)", failures[7]);
        Assert.Contains("brk(0x1000) = 0x414000", r.OutLines);   // refused: the break stays
        Assert.StartsWith("consistent", r.OutLines[^1]);
    }

    [Fact]
    public void Proc_files_pagemap_vtop_ps_vm_and_files_for_a_process()
    {
        var r = CliRunner.RunScript("""
            $p = spawn views
            $fd = file_create /data/db 12K
            $f = mmap $p 0 12K PROT_READ|PROT_WRITE MAP_SHARED $fd 0
            touch $p $f 8K write --value 7
            proc $p/maps
            proc /proc/$p/status
            pagemap $p $f 3
            pagemap $p $f 1 --raw
            vtop $f --pid $p
            ps
            vm $p
            files
            sysctl vm.max_map_count 100
            $c = fork $p
            ps
            exit $c
            exit $p
            file_close $fd
            files
            check
            """, "--arch", "i386", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines;
        Assert.Contains(lines, l => l.StartsWith("b7ffd000-b8000000 rw-s 00000000 08:01 ", StringComparison.Ordinal) && l.EndsWith(" /data/db", StringComparison.Ordinal));
        Assert.Contains("RssFile:\t       8 kB", lines);   // the two file pages written
        Assert.Contains(lines, l => l.StartsWith("b7ffd000  ", StringComparison.Ordinal) && l.EndsWith("present file/shared-anon exclusive", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("b7fff000  0000000000000000  -", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("VMA", StringComparison.Ordinal) && l.Contains("FLAGS FILE", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith(" fb /data/db", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.TrimStart().StartsWith("PID    PPID  CPU", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("PID: 1000   TASK: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith("/data/db", StringComparison.Ordinal) && l.TrimStart().StartsWith("3 ", StringComparison.Ordinal));
        Assert.Contains("vm.max_map_count = 100", lines);
        Assert.Contains("fork 1000: child pid 1001", lines);
        Assert.StartsWith("consistent", lines[^1]);
    }

    [Fact]
    public void Bad_prot_or_flags_are_usage_errors()
    {
        var r = CliRunner.RunScript("$p = spawn u\nmmap $p 0 4K PROT_READX MAP_PRIVATE\n", out var path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("'PROT_READX' is not a PROT_* name", r.Err);
        r = CliRunner.RunScript("$p = spawn u\ntouch $p 0 4K modify\n", out path, "--mem", "64M");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("'modify' is not read, write or exec", r.Err);
    }

    [Fact]
    public void Map_virt_pid_lists_and_draws_the_process_vmas()
    {
        string svg = Path.Combine(Path.GetTempPath(), $"kmem-virt-{Guid.NewGuid():N}.svg");
        var r = CliRunner.RunScript($"""
            $p = spawn pic
            $a = mmap $p 0 16K PROT_READ|PROT_WRITE MAP_PRIVATE|MAP_ANONYMOUS
            sbrk $p 8K
            map --virt --pid $p
            map --virt --pid $p --svg {svg}
            expect-fail map --virt --pid 4242
            exit $p
            expect-fail map --virt --pid $p
            check
            """, "--arch", "i386", "--mem", "64M");
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines;
        // Highest first: the kernel's areas, then the VMAs below TASK_SIZE with the gaps between them.
        Assert.Contains("bffdf000-bfffffff  [stack] rw-p", lines);
        Assert.Contains("b7ffc000-b7ffffff  [anon] rw-p", lines);
        Assert.Contains("0805c000-0805dfff  [heap] rw-p", lines);
        Assert.Contains("08048000-08057fff  /usr/bin/pic r-xp", lines);
        Assert.Contains("00000000-08047fff  unmapped", lines);
        Assert.True(lines.IndexOf("c0000000-c3ffffff  lowmem linear map (PAGE_OFFSET 0xc0000000 → phys 0x0–0x3ffffff; ends at high_memory 0xc4000000)") <
                    lines.IndexOf("bffdf000-bfffffff  [stack] rw-p"));
        Assert.Contains(lines, l => l.StartsWith($"wrote {svg}: virtual address space, ", StringComparison.Ordinal));
        Assert.Equal(6, XDocument.Load(svg).Descendants().Count(e => (string?)e.Attribute("data-kind") == "vma")); // text, data, bss, heap, mmap, stack
        Assert.Equal(["no process 4242 (-ESRCH)", "no process 1000 (-ESRCH)"],
            lines.Where(l => l.StartsWith("expected failure: ", StringComparison.Ordinal)).Select(l => l["expected failure: ".Length..]));
        Assert.StartsWith("consistent", lines[^1]);
        CliRunner.AssertUsageError(CliRunner.Run("map", "--pid", "1000"), "map", "--pid goes with --virt");
        File.Delete(svg);
    }

    [Fact]
    public void The_address_space_study_script_splits_merges_and_grows_vmas()
    {
        var r = CliRunner.RunScript(StudyScripts.Get("07-address-space.kmem")!);
        Assert.Equal("", r.Err);
        Assert.Equal(0, r.ExitCode);
        var lines = r.OutLines;
        // The two 64 KiB mmaps meet at mmap_base - 64 KiB and merge: one VMA of 128 KiB.
        Assert.Contains("b7fe0000-b8000000 rw-p 00000000 00:00 0 ", lines);
        // munmap of 0xb7ff0000 and mprotect of 0xb7fe8000 cut it in four (a hole, a read-only page).
        string[] after = [.. lines.Where(l => l.StartsWith("b7f", StringComparison.Ordinal) && l.Contains(" 00:00 0", StringComparison.Ordinal)).TakeLast(4)];
        Assert.Equal(["b7fe0000-b7fe8000 rw-p", "b7fe8000-b7fe9000 r--p", "b7fe9000-b7ff0000 rw-p", "b7ff1000-b8000000 rw-p"],
            after.Select(l => l[..22]));
        // The write below the stack grew it down to the page written.
        Assert.Contains(lines, l => l.StartsWith("bffd0000-c0000000 rw-p ", StringComparison.Ordinal) && l.EndsWith("[stack]", StringComparison.Ordinal));
        // map --virt --pid: the kernel's part, TASK_SIZE, then the VMAs highest first, the hole unmapped.
        int task = lines.IndexOf("--------  TASK_SIZE 0xc0000000");
        Assert.StartsWith("c0000000-", lines[task - 1]);
        Assert.Equal("bffd0000-bfffffff  [stack] rw-p", lines[task + 1]);
        Assert.Contains("b7ff0000-b7ff0fff  unmapped", lines);
        Assert.Contains("b7fe8000-b7fe8fff  [anon] r--p", lines);
        Assert.Equal("00000000-08047fff  unmapped", lines[lines.IndexOf("exit 1000 (layout)") - 1]);
        Assert.StartsWith("consistent", lines[^1]);
    }
}
