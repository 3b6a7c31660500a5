using KmemNative.Arch;
using KmemNative.PhysMem;

namespace KmemNative.Mm;

/// <summary>
/// The process structures the emulator lays out in the arena with the C rules and the profile's widths:
/// <c>struct mm_struct</c>, <c>struct vm_area_struct</c>, a small <c>struct task_struct</c>, <c>struct anon_vma</c>,
/// <c>struct anon_vma_chain</c>, <c>struct file</c> and <c>struct inode</c> with its embedded <c>address_space</c>.
/// </summary>
/// <remarks>
/// <para>The issue asks for the VMA list (<c>mm-&gt;mmap</c>, <c>vm_next</c>/<c>vm_prev</c>) and an index beside it,
/// which is the design of the last kernels before the maple tree (4.x to 6.0: the list plus the augmented rbtree
/// <c>mm_rb</c>/<c>vm_rb</c>/<c>rb_subtree_gap</c>). <c>mm_struct</c> and <c>vm_area_struct</c> therefore follow the
/// field order of those kernels (5.x: <c>mmap, mm_rb, vmacache_seqnum, get_unmapped_area, mmap_base, ...</c>);
/// 6.1+ replaced the first fields with <c>struct maple_tree mm_mt</c> and moved <c>mm_count</c> into its own cache line.
/// Fields the emulator does not use keep their size (opaque) so every offset is where such a kernel has it for
/// the configuration modelled (x86-64: NUMA, COMPAT mmap bases, MEMCG, AIO, MMU_NOTIFIER, NUMA_BALANCING; i386:
/// none of NUMA/COMPAT/MEMCG). The offsets are pinned by MmLayoutTests and listed in Mm/README.md.</para>
/// <para>The <c>mm_struct</c> object is padded to the reference machine's slab object size (1600 bytes on x86-64),
/// and the small <c>task_struct</c> to the reference <c>task_struct</c> object (4288 bytes on x86-64): slabinfo shows
/// the kernel's numbers while the emulator uses the fields it needs.</para>
/// </remarks>
internal sealed class MmLayouts
{
    public MmLayouts(ArchKind arch)
    {
        bool x64 = arch == ArchKind.X86_64;
        int p = x64 ? 8 : 4;
        int rwsem = x64 ? 40 : 24;       // count, owner, osq, wait_lock, wait_list
        int rbNode = 3 * p;              // __rb_parent_color, rb_right, rb_left
        int atVectorSize = 52;           // 2 * (AT_VECTOR_SIZE_ARCH 3 + AT_VECTOR_SIZE_BASE 22 + 1)

        var mm = new KStructLayout("mm_struct")
            .Add("mmap", p)
            .Add("mm_rb", p)
            .Add("vmacache_seqnum", 8, x64 ? 8 : 4)
            .Add("get_unmapped_area", p)
            .Add("mmap_base", p)
            .Add("mmap_legacy_base", p);
        if (x64)
            mm.Add("mmap_compat_base", p).Add("mmap_compat_legacy_base", p);
        mm.Add("task_size", p)
            .Add("highest_vm_end", p)
            .Add("pgd", p)
            .Add("membarrier_state", 4)
            .Add("mm_users", 4)
            .Add("mm_count", 4)
            .Add("pgtables_bytes", p)
            .Add("map_count", 4)
            .Add("page_table_lock", 4)
            .Add("mmap_lock", rwsem, p)
            .Add("mmlist", 2 * p, p)
            .Add("hiwater_rss", p)
            .Add("hiwater_vm", p)
            .Add("total_vm", p)
            .Add("locked_vm", p)
            .Add("pinned_vm", 8)
            .Add("data_vm", p)
            .Add("exec_vm", p)
            .Add("stack_vm", p)
            .Add("def_flags", p)
            .Add("write_protect_seq", 4)
            .Add("arg_lock", 4)
            .Add("start_code", p).Add("end_code", p).Add("start_data", p).Add("end_data", p)
            .Add("start_brk", p).Add("brk", p).Add("start_stack", p)
            .Add("arg_start", p).Add("arg_end", p).Add("env_start", p).Add("env_end", p)
            .Add("saved_auxv", atVectorSize * p, p)
            .Add("rss_stat", 4 * p, p)
            .Add("binfmt", p)
            .Add("context", x64 ? 128 : 64, p)
            .Add("flags", p)
            .Add("ioctx_lock", 4)
            .Add("ioctx_table", p);
        if (x64)
            mm.Add("owner", p);
        mm.Add("user_ns", p)
            .Add("exe_file", p)
            .Add("notifier_subscriptions", p);
        if (x64)
            mm.Add("numa_next_scan", p).Add("numa_scan_offset", p).Add("numa_scan_seq", 4);
        mm.Add("tlb_flush_pending", 4)
            .Add("tlb_flush_batched", 4)
            .Add("uprobes_state", p)
            .Add("hugetlb_usage", p)
            .Add("async_put_work", 4 * p, p)
            .AlignTo(64);
        // cpu_bitmap[] follows the struct (mm_cpumask), then the padding up to the slab object size.
        mm.Add("cpu_bitmap", p);
        MmStruct = mm;
        MmObjectSize = x64 ? 1600 : (mm.Size + 63) / 64 * 64;

        var vma = new KStructLayout("vm_area_struct")
            .Add("vm_start", p)
            .Add("vm_end", p)
            .Add("vm_next", p)
            .Add("vm_prev", p)
            .Add("vm_rb", rbNode, p)
            .Add("rb_subtree_gap", p)
            .Add("vm_mm", p)
            .Add("vm_page_prot", p)
            .Add("vm_flags", p)
            .Add("shared.rb", rbNode, p)
            .Add("shared.rb_subtree_last", p)
            .Add("anon_vma_chain", 2 * p, p)
            .Add("anon_vma", p)
            .Add("vm_ops", p)
            .Add("vm_pgoff", p)
            .Add("vm_file", p)
            .Add("vm_private_data", p)
            .Add("swap_readahead_info", p);
        if (x64)
            vma.Add("vm_policy", p);
        vma.Add("vm_userfaultfd_ctx", p);
        Vma = vma;

        // A small task_struct: the fields the memory manager and the views use, in the kernel's order, padded.
        var task = new KStructLayout("task_struct")
            .Add("thread_info", x64 ? 24 : 16, p)
            .Add("__state", 4)
            .Add("stack", p)
            .Add("usage", 4)
            .Add("flags", 4)
            .Add("tasks", 2 * p, p)
            .Add("mm", p)
            .Add("active_mm", p)
            .Add("exit_state", 4)
            .Add("exit_code", 4)
            .Add("exit_signal", 4)
            .Add("pid", 4)
            .Add("tgid", 4)
            .Add("real_parent", p)
            .Add("parent", p)
            .Add("children", 2 * p, p)
            .Add("sibling", 2 * p, p)
            .Add("group_leader", p)
            .Add("nvcsw", p)
            .Add("nivcsw", p)
            .Add("min_flt", p)
            .Add("maj_flt", p)
            .Add("comm", 16, 1);
        Task = task;
        TaskObjectSize = x64 ? 4288 : 1792;

        // struct anon_vma: the interval tree root (rb_root_cached, two words) holds a list_head of the AVCs here.
        AnonVma = new KStructLayout("anon_vma")
            .Add("root", p)
            .Add("rwsem", rwsem, p)
            .Add("refcount", 4)
            .Add("num_children", 4)
            .Add("num_active_vmas", 4)
            .Add("parent", p)
            .Add("rb_root", 2 * p, p);

        // struct anon_vma_chain: rb's first two words link the AVC on its anon_vma's list (the interval tree's node).
        AnonVmaChain = new KStructLayout("anon_vma_chain")
            .Add("vma", p)
            .Add("anon_vma", p)
            .Add("same_vma", 2 * p, p)
            .Add("rb", rbNode, p)
            .Add("rb_subtree_last", p);

        File = new KStructLayout("file")
            .Add("f_count", p)
            .Add("f_lock", 4)
            .Add("f_mode", 4)
            .Add("f_op", p)
            .Add("f_mapping", p)
            .Add("private_data", p)
            .Add("f_inode", p)
            .Add("f_flags", 4)
            .Add("f_iocb_flags", 4)
            .Add("f_cred", p)
            .Add("f_path.mnt", p)
            .Add("f_path.dentry", p)
            .Add("f_pos", 8)
            .Add("f_version", 8)
            .AlignTo(64);
        FileObjectSize = x64 ? 192 : File.Size;

        // struct inode with i_data (struct address_space) embedded, as the kernel embeds it.
        var inode = new KStructLayout("inode")
            .Add("i_mode", 2)
            .Add("i_opflags", 2)
            .Add("i_uid", 4)
            .Add("i_gid", 4)
            .Add("i_flags", 4)
            .Add("i_op", p)
            .Add("i_sb", p)
            .Add("i_mapping", p)
            .Add("i_ino", p)
            .Add("i_nlink", 4)
            .Add("i_rdev", 4)
            .Add("i_size", 8)
            .Add("i_count", 4)
            .Add("i_path", p)            // emulator: the file's path (a kstrdup()ed string), the dentry's stand-in
            .Add("i_data.host", p)
            .Add("i_data.i_pages.xa_lock", 4)
            .Add("i_data.i_pages.xa_flags", 4)
            .Add("i_data.i_pages.xa_head", p)
            .Add("i_data.gfp_mask", 4)
            .Add("i_data.i_mmap_writable", 4)
            .Add("i_data.i_mmap", 2 * p, p)
            .Add("i_data.nrpages", p)
            .Add("i_data.writeback_index", p)
            .Add("i_data.a_ops", p)
            .Add("i_data.flags", p);
        Inode = inode;
        InodeObjectSize = x64 ? 624 : (inode.Size + 7) / 8 * 8;
    }

    public KStructLayout MmStruct { get; }
    public int MmObjectSize { get; }
    public KStructLayout Vma { get; }
    public KStructLayout Task { get; }
    public int TaskObjectSize { get; }
    public KStructLayout AnonVma { get; }
    public KStructLayout AnonVmaChain { get; }
    public KStructLayout File { get; }
    public int FileObjectSize { get; }
    public KStructLayout Inode { get; }
    public int InodeObjectSize { get; }

    private static MmLayouts? s_i386, s_x64;

    /// <summary>The layouts of a profile (built once).</summary>
    public static MmLayouts Of(ArchKind arch) => arch == ArchKind.X86_64
        ? s_x64 ??= new MmLayouts(ArchKind.X86_64)
        : s_i386 ??= new MmLayouts(ArchKind.I386);
}

/// <summary>The offsets the hot paths use, as JIT constants per profile (static readonly of a generic class).</summary>
internal static class MmOff<TArch> where TArch : struct, IArch
{
    private static readonly MmLayouts L = MmLayouts.Of(TArch.Kind);

    // mm_struct
    public static readonly int Mmap = L.MmStruct.Offset("mmap");
    public static readonly int MmRb = L.MmStruct.Offset("mm_rb");
    public static readonly int MmapBase = L.MmStruct.Offset("mmap_base");
    public static readonly int MmapLegacyBase = L.MmStruct.Offset("mmap_legacy_base");
    public static readonly int TaskSize = L.MmStruct.Offset("task_size");
    public static readonly int HighestVmEnd = L.MmStruct.Offset("highest_vm_end");
    public static readonly int Pgd = L.MmStruct.Offset("pgd");
    public static readonly int MmUsers = L.MmStruct.Offset("mm_users");
    public static readonly int MmCount = L.MmStruct.Offset("mm_count");
    public static readonly int PgtablesBytes = L.MmStruct.Offset("pgtables_bytes");
    public static readonly int MapCount = L.MmStruct.Offset("map_count");
    public static readonly int Mmlist = L.MmStruct.Offset("mmlist");
    public static readonly int HiwaterRss = L.MmStruct.Offset("hiwater_rss");
    public static readonly int HiwaterVm = L.MmStruct.Offset("hiwater_vm");
    public static readonly int TotalVm = L.MmStruct.Offset("total_vm");
    public static readonly int LockedVm = L.MmStruct.Offset("locked_vm");
    public static readonly int PinnedVm = L.MmStruct.Offset("pinned_vm");
    public static readonly int DataVm = L.MmStruct.Offset("data_vm");
    public static readonly int ExecVm = L.MmStruct.Offset("exec_vm");
    public static readonly int StackVm = L.MmStruct.Offset("stack_vm");
    public static readonly int DefFlags = L.MmStruct.Offset("def_flags");
    public static readonly int StartCode = L.MmStruct.Offset("start_code");
    public static readonly int EndCode = L.MmStruct.Offset("end_code");
    public static readonly int StartData = L.MmStruct.Offset("start_data");
    public static readonly int EndData = L.MmStruct.Offset("end_data");
    public static readonly int StartBrk = L.MmStruct.Offset("start_brk");
    public static readonly int Brk = L.MmStruct.Offset("brk");
    public static readonly int StartStack = L.MmStruct.Offset("start_stack");
    public static readonly int ArgStart = L.MmStruct.Offset("arg_start");
    public static readonly int ArgEnd = L.MmStruct.Offset("arg_end");
    public static readonly int EnvStart = L.MmStruct.Offset("env_start");
    public static readonly int EnvEnd = L.MmStruct.Offset("env_end");
    public static readonly int SavedAuxv = L.MmStruct.Offset("saved_auxv");
    public static readonly int RssStat = L.MmStruct.Offset("rss_stat");
    public static readonly int MmFlags = L.MmStruct.Offset("flags");
    public static readonly int ExeFile = L.MmStruct.Offset("exe_file");
    public static readonly int CpuBitmap = L.MmStruct.Offset("cpu_bitmap");

    // vm_area_struct
    public static readonly int VmStart = L.Vma.Offset("vm_start");
    public static readonly int VmEnd = L.Vma.Offset("vm_end");
    public static readonly int VmNext = L.Vma.Offset("vm_next");
    public static readonly int VmPrev = L.Vma.Offset("vm_prev");
    public static readonly int VmRb = L.Vma.Offset("vm_rb");
    public static readonly int RbSubtreeGap = L.Vma.Offset("rb_subtree_gap");
    public static readonly int VmMm = L.Vma.Offset("vm_mm");
    public static readonly int VmPageProt = L.Vma.Offset("vm_page_prot");
    public static readonly int VmFlagsOff = L.Vma.Offset("vm_flags");
    public static readonly int SharedRb = L.Vma.Offset("shared.rb");
    public static readonly int AnonVmaChain = L.Vma.Offset("anon_vma_chain");
    public static readonly int AnonVma = L.Vma.Offset("anon_vma");
    public static readonly int VmOps = L.Vma.Offset("vm_ops");
    public static readonly int VmPgoff = L.Vma.Offset("vm_pgoff");
    public static readonly int VmFile = L.Vma.Offset("vm_file");
    public static readonly int VmaSize = L.Vma.Size;

    // task_struct
    public static readonly int TaskState = L.Task.Offset("__state");
    public static readonly int TaskUsage = L.Task.Offset("usage");
    public static readonly int TaskFlags = L.Task.Offset("flags");
    public static readonly int TaskTasks = L.Task.Offset("tasks");
    public static readonly int TaskMm = L.Task.Offset("mm");
    public static readonly int TaskActiveMm = L.Task.Offset("active_mm");
    public static readonly int TaskPid = L.Task.Offset("pid");
    public static readonly int TaskTgid = L.Task.Offset("tgid");
    public static readonly int TaskRealParent = L.Task.Offset("real_parent");
    public static readonly int TaskParent = L.Task.Offset("parent");
    public static readonly int TaskChildren = L.Task.Offset("children");
    public static readonly int TaskSibling = L.Task.Offset("sibling");
    public static readonly int TaskGroupLeader = L.Task.Offset("group_leader");
    public static readonly int TaskMinFlt = L.Task.Offset("min_flt");
    public static readonly int TaskMajFlt = L.Task.Offset("maj_flt");
    public static readonly int TaskComm = L.Task.Offset("comm");

    // anon_vma, anon_vma_chain
    public static readonly int AvRoot = L.AnonVma.Offset("root");
    public static readonly int AvRefcount = L.AnonVma.Offset("refcount");
    public static readonly int AvNumChildren = L.AnonVma.Offset("num_children");
    public static readonly int AvNumActiveVmas = L.AnonVma.Offset("num_active_vmas");
    public static readonly int AvParent = L.AnonVma.Offset("parent");
    public static readonly int AvList = L.AnonVma.Offset("rb_root");
    public static readonly int AvcVma = L.AnonVmaChain.Offset("vma");
    public static readonly int AvcAnonVma = L.AnonVmaChain.Offset("anon_vma");
    public static readonly int AvcSameVma = L.AnonVmaChain.Offset("same_vma");
    public static readonly int AvcRb = L.AnonVmaChain.Offset("rb");

    // file, inode/address_space
    public static readonly int FCount = L.File.Offset("f_count");
    public static readonly int FMode = L.File.Offset("f_mode");
    public static readonly int FMapping = L.File.Offset("f_mapping");
    public static readonly int FInode = L.File.Offset("f_inode");
    public static readonly int FFlags = L.File.Offset("f_flags");
    public static readonly int IMode = L.Inode.Offset("i_mode");
    public static readonly int ISb = L.Inode.Offset("i_sb");
    public static readonly int IMapping = L.Inode.Offset("i_mapping");
    public static readonly int IIno = L.Inode.Offset("i_ino");
    public static readonly int INlink = L.Inode.Offset("i_nlink");
    public static readonly int ISize = L.Inode.Offset("i_size");
    public static readonly int ICount = L.Inode.Offset("i_count");
    public static readonly int IPath = L.Inode.Offset("i_path");
    public static readonly int IData = L.Inode.Offset("i_data.host");
    public static readonly int AsHost = L.Inode.Offset("i_data.host");
    public static readonly int AsXaHead = L.Inode.Offset("i_data.i_pages.xa_head");
    public static readonly int AsGfpMask = L.Inode.Offset("i_data.gfp_mask");
    public static readonly int AsMmapWritable = L.Inode.Offset("i_data.i_mmap_writable");
    public static readonly int AsIMmap = L.Inode.Offset("i_data.i_mmap");
    public static readonly int AsNrPages = L.Inode.Offset("i_data.nrpages");
    public static readonly int AsFlags = L.Inode.Offset("i_data.flags");
}
