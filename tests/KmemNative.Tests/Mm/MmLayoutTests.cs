using KmemNative.Arch;
using KmemNative.Mm;
using KmemNative.Tests.TestUtil;

namespace KmemNative.Tests.Mm;

/// <summary>The process structures' layouts per profile, their slab caches, and the arena bytes behind the API.</summary>
public class MmLayoutTests
{
    [Fact]
    public void X86_64_mm_struct_offsets_follow_the_list_and_rbtree_layout()
    {
        var l = MmLayouts.Of(ArchKind.X86_64).MmStruct;
        (string Field, int Offset)[] expected =
        [
            ("mmap", 0), ("mm_rb", 8), ("vmacache_seqnum", 16), ("get_unmapped_area", 24), ("mmap_base", 32),
            ("mmap_legacy_base", 40), ("mmap_compat_base", 48), ("mmap_compat_legacy_base", 56), ("task_size", 64),
            ("highest_vm_end", 72), ("pgd", 80), ("membarrier_state", 88), ("mm_users", 92), ("mm_count", 96),
            ("pgtables_bytes", 104), ("map_count", 112), ("page_table_lock", 116), ("mmap_lock", 120), ("mmlist", 160),
            ("hiwater_rss", 176), ("hiwater_vm", 184), ("total_vm", 192), ("locked_vm", 200), ("pinned_vm", 208),
            ("data_vm", 216), ("exec_vm", 224), ("stack_vm", 232), ("def_flags", 240), ("start_code", 256), ("end_code", 264),
            ("start_data", 272), ("end_data", 280), ("start_brk", 288), ("brk", 296), ("start_stack", 304), ("arg_start", 312),
            ("arg_end", 320), ("env_start", 328), ("env_end", 336), ("saved_auxv", 344), ("rss_stat", 760), ("binfmt", 792),
            ("context", 800), ("flags", 928), ("exe_file", 968), ("cpu_bitmap", 1088),
        ];
        foreach (var (field, offset) in expected)
            Assert.Equal((field, offset), (field, l.Offset(field)));
        Assert.Equal(1600, MmLayouts.Of(ArchKind.X86_64).MmObjectSize);
    }

    [Fact]
    public void I386_mm_struct_offsets_have_32_bit_words_and_no_compat_bases()
    {
        var l = MmLayouts.Of(ArchKind.I386).MmStruct;
        (string Field, int Offset)[] expected =
        [
            ("mmap", 0), ("mm_rb", 4), ("vmacache_seqnum", 8), ("get_unmapped_area", 16), ("mmap_base", 20),
            ("mmap_legacy_base", 24), ("task_size", 28), ("highest_vm_end", 32), ("pgd", 36), ("mm_users", 44),
            ("mm_count", 48), ("pgtables_bytes", 52), ("map_count", 56), ("mmap_lock", 64), ("mmlist", 88),
            ("total_vm", 104), ("pinned_vm", 112), ("data_vm", 120), ("exec_vm", 124), ("stack_vm", 128),
            ("start_code", 144), ("start_brk", 160), ("brk", 164), ("start_stack", 168), ("env_end", 184),
            ("saved_auxv", 188), ("rss_stat", 396), ("exe_file", 496), ("cpu_bitmap", 576),
        ];
        foreach (var (field, offset) in expected)
            Assert.Equal((field, offset), (field, l.Offset(field)));
        Assert.Throws<KeyNotFoundException>(() => l.Offset("mmap_compat_base"));
        Assert.Equal(640, MmLayouts.Of(ArchKind.I386).MmObjectSize);
    }

    [Theory]
    [InlineData(ArchKind.X86_64, new[] { 0, 8, 16, 24, 32, 56, 64, 72, 80, 88, 120, 136, 152, 160 }, 200)]
    [InlineData(ArchKind.I386, new[] { 0, 4, 8, 12, 16, 28, 32, 36, 40, 44, 60, 68, 76, 80 }, 96)]
    public void Vm_area_struct_offsets(ArchKind arch, int[] offsets, int size)
    {
        var l = MmLayouts.Of(arch).Vma;
        string[] fields = ["vm_start", "vm_end", "vm_next", "vm_prev", "vm_rb", "rb_subtree_gap", "vm_mm", "vm_page_prot",
                           "vm_flags", "shared.rb", "anon_vma_chain", "anon_vma", "vm_pgoff", "vm_file"];
        Assert.Equal(offsets, fields.Select(l.Offset).ToArray());
        Assert.Equal(size, l.Size);
    }

    [Theory]
    [MemberData(nameof(Machines.Arches), MemberType = typeof(Machines))]
    public unsafe void A_vma_in_the_arena_holds_what_the_api_reports(ArchKind arch)
    {
        using var m = Machines.Boot(arch, 64);
        var cpu = m.GetCpu(0);
        var p = m.Spawn(cpu, "layout");
        var l = MmLayouts.Of(arch);
        int ps = arch == ArchKind.X86_64 ? 8 : 4;
        ulong Long(ulong va, int off)
        {
            var b = new byte[8];
            m.ReadVirtual(cpu, va + (ulong)off, b.AsSpan(0, ps));
            return BitConverter.ToUInt64(b);
        }
        var vmas = p.Vmas;
        ulong prev = 0;
        for (int i = 0; i < vmas.Count; i++)
        {
            var v = vmas[i];
            Assert.Equal(v.Start, Long(v.Address, l.Vma.Offset("vm_start")));
            Assert.Equal(v.End, Long(v.Address, l.Vma.Offset("vm_end")));
            Assert.Equal(i + 1 < vmas.Count ? vmas[i + 1].Address : 0, Long(v.Address, l.Vma.Offset("vm_next")));
            Assert.Equal(prev, Long(v.Address, l.Vma.Offset("vm_prev")));
            Assert.Equal(p.MmAddress, Long(v.Address, l.Vma.Offset("vm_mm")));
            Assert.Equal((ulong)v.Flags, Long(v.Address, l.Vma.Offset("vm_flags")));
            Assert.Equal(v.Pgoff, Long(v.Address, l.Vma.Offset("vm_pgoff")));
            prev = v.Address;
        }
        // mm->mmap is the first VMA, mm->pgd the page directory's kernel address, mm->map_count the VMAs.
        Assert.Equal(vmas[0].Address, Long(p.MmAddress, l.MmStruct.Offset("mmap")));
        Assert.Equal(p.AddressSpace.PgdVa, Long(p.MmAddress, l.MmStruct.Offset("pgd")));
        Assert.Equal((ulong)vmas.Count, Long(p.MmAddress, l.MmStruct.Offset("map_count")) & 0xffff_ffff);
        Assert.Equal(vmas[^1].End, Long(p.MmAddress, l.MmStruct.Offset("highest_vm_end")));
        // task->mm and task->comm.
        Assert.Equal(p.MmAddress, Long(p.TaskAddress, l.Task.Offset("mm")));
        var comm = new byte[16];
        m.ReadVirtual(cpu, p.TaskAddress + (ulong)l.Task.Offset("comm"), comm);
        Assert.Equal("layout", System.Text.Encoding.ASCII.GetString(comm).TrimEnd('\0'));
        // The objects come from their caches.
        Assert.Equal("vm_area_struct", m.VirtToCache(vmas[0].Address)!.Name);
        Assert.Equal("mm_struct", m.VirtToCache(p.MmAddress)!.Name);
        Assert.Equal("task_struct", m.VirtToCache(p.TaskAddress)!.Name);
    }

    [Theory]
    [InlineData(ArchKind.X86_64, 1600, 200, 4288, 64)]
    [InlineData(ArchKind.I386, 640, 96, 1792, 32)]
    public void Slabinfo_lists_the_process_caches_with_their_object_sizes(ArchKind arch, int mm, int vma, int task, int avc)
    {
        using var m = Machines.Boot(arch, 64);
        var p = m.Spawn(m.GetCpu(0), "slab");
        string slabinfo = m.Proc.Read("slabinfo");
        int Objsize(string cache) => int.Parse(slabinfo.Split('\n').First(l => l.StartsWith(cache + " ", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(mm, Objsize("mm_struct"));
        Assert.Equal(vma, Objsize("vm_area_struct"));
        Assert.Equal(task, Objsize("task_struct"));
        Assert.Equal(avc, Objsize("anon_vma_chain"));
        // One process: one mm_struct, one task_struct, and its VMAs (text, data, bss, stack) active.
        var vmaInfo = m.Slabinfo(m.FindKmemCache("vm_area_struct")!);
        Assert.True(vmaInfo.ActiveObjs >= p.Vmas.Count);
        Assert.Equal(4, p.Vmas.Count);
    }
}
