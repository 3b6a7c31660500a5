using System.Runtime.InteropServices;
using KmemNative.Paging;
using KmemNative.PhysMem;

namespace KmemNative.Interop;

// Address conversions (virtual <-> physical <-> host pointer, pfn <-> struct page), the MMU, virtual memory access.
internal static unsafe partial class Exports
{
    // ---- conversions ---------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_virt_to_phys")]
    public static int VirtToPhys(MachineHandle h, ulong va, ulong* pa)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_virt_to_phys", "machine");
            if (pa == null)
                return LastError.Set(Errno.EINVAL, "kmem_virt_to_phys: out is NULL");
            *pa = m.Machine.Pa(va);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_virt_to_phys");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_phys_to_virt")]
    public static int PhysToVirt(MachineHandle h, ulong pa, ulong* va)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_phys_to_virt", "machine");
            if (va == null)
                return LastError.Set(Errno.EINVAL, "kmem_phys_to_virt: out is NULL");
            if (!m.Machine.Memory.IsRam(pa))
                return LastError.Set(Errno.EFAULT, $"kmem_phys_to_virt: physical 0x{pa:x} is not RAM");
            *va = m.Machine.Va(pa);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_phys_to_virt");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_phys_to_host")]
    public static void* PhysToHost(MachineHandle h, ulong pa)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
            {
                LastError.BadHandle("kmem_phys_to_host", "machine");
                return null;
            }
            if (!m.Machine.Memory.IsRam(pa))
            {
                LastError.Set(Errno.EFAULT, $"kmem_phys_to_host: physical 0x{pa:x} is not RAM of this machine");
                return null;
            }
            return m.Arena + pa;
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_phys_to_host");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_host_to_phys")]
    public static int HostToPhys(MachineHandle h, void* p, ulong* pa)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_host_to_phys", "machine");
            if (pa == null)
                return LastError.Set(Errno.EINVAL, "kmem_host_to_phys: out is NULL");
            ulong off = (ulong)((byte*)p - m.Arena);
            if (off >= m.ArenaSize)
                return LastError.Set(Errno.EFAULT, $"kmem_host_to_phys: 0x{(nuint)p:x} is outside the machine's arena");
            *pa = off;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_host_to_phys");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_virt_to_host")]
    public static void* VirtToHost(MachineHandle h, ulong va)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
            {
                LastError.BadHandle("kmem_virt_to_host", "machine");
                return null;
            }
            ulong pa;
            if (m.Machine.VirtAddrValid(va))
                pa = m.Machine.Pa(va);
            else
            {
                var walk = m.Machine.WalkPageTables(va);
                if (walk.Physical is not { } p || !m.Machine.Memory.IsRam(p))
                {
                    LastError.Set(Errno.EFAULT, $"kmem_virt_to_host: 0x{va:x} is not mapped to RAM in init_mm{(walk.Error is { } why ? ": " + why : "")}");
                    return null;
                }
                pa = p;
            }
            return m.Arena + pa;
        }
        catch (Exception e)
        {
            LastError.Set(e, "kmem_virt_to_host");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_host_to_virt")]
    public static int HostToVirt(MachineHandle h, void* p, ulong* va)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_host_to_virt", "machine");
            if (va == null)
                return LastError.Set(Errno.EINVAL, "kmem_host_to_virt: out is NULL");
            if (!InLowmem(m, p))
                return LastError.Set(Errno.EFAULT, $"kmem_host_to_virt: 0x{(nuint)p:x} is not a host pointer into lowmem (it has no linear-map address)");
            *va = m.VaOf(p);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_host_to_virt");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_pfn_to_page")]
    public static int PfnToPage(MachineHandle h, ulong pfn, ulong* page)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_pfn_to_page", "machine");
            if (page == null)
                return LastError.Set(Errno.EINVAL, "kmem_pfn_to_page: out is NULL");
            if (pfn >= m.Machine.MaxPfn)
                return LastError.Set(Errno.EFAULT, $"kmem_pfn_to_page: pfn 0x{pfn:x} is beyond max_pfn 0x{m.Machine.MaxPfn:x}");
            *page = m.Machine.PageDescriptorAddress(pfn);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_pfn_to_page");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_page_to_pfn")]
    public static int PageToPfn(MachineHandle h, ulong page, ulong* pfn)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_page_to_pfn", "machine");
            if (pfn == null)
                return LastError.Set(Errno.EINVAL, "kmem_page_to_pfn: out is NULL");
            ulong size = m.X64 is not null ? 64UL : 32UL;
            ulong off = page - m.Machine.PageDescriptorAddress(0);
            if (off % size != 0 || off / size >= m.Machine.MaxPfn)
                return LastError.Set(Errno.EFAULT, $"kmem_page_to_pfn: 0x{page:x} is not the address of a struct page");
            *pfn = off / size;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_page_to_pfn");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_virt_to_page")]
    public static int VirtToPage(MachineHandle h, ulong va, ulong* page)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_virt_to_page", "machine");
            if (page == null)
                return LastError.Set(Errno.EINVAL, "kmem_virt_to_page: out is NULL");
            *page = m.Machine.VirtToPage(va).DescriptorAddress;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_virt_to_page");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_page_info")]
    public static int PageInfo(MachineHandle h, ulong pfn, KmemPageInfo* info)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_page_info", "machine");
            if (info == null || info->Size < (uint)sizeof(KmemPageInfo))
                return LastError.Set(Errno.EINVAL, $"kmem_page_info: info is NULL or info->size is below {sizeof(KmemPageInfo)}");
            var d = m.Machine.ReadPage(pfn);
            var r = new KmemPageInfo
            {
                Size = (uint)sizeof(KmemPageInfo),
                Refcount = d.Refcount,
                Pfn = d.Pfn,
                Page = d.Address,
                Flags = d.Flags,
                Mapping = d.Mapping,
                Index = d.Index,
                Private = d.Private,
                CompoundHead = d.LruNext,
                PageType = d.PageTypeRaw,
                Zone = d.ZoneIndex,
            };
            CopyName(d.FlagsText, r.FlagsText, 128);
            *info = r;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_page_info");
        }
    }

    // ---- the MMU -------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "kmem_last_fault")]
    public static int LastFault(KmemFault* result)
    {
        try
        {
            if (result == null || !LastError.TryGetFault(out var f))
                return -Errno.ENOENT;
            *result = new KmemFault
            {
                Address = f.Address,
                ErrorCode = (uint)f.ErrorCode,
                Kind = (uint)f.Kind,
                Level = (uint)f.Level,
                Entry = f.Entry,
            };
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_last_fault");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_translate")]
    public static long Translate(CpuHandle cpu, ulong va, uint access, uint mode)
    {
        try
        {
            if (RunOn(cpu, "kmem_translate") is not { } c)
                return LastError.Code;
            if (access > 2 || mode > 1)
                return BadAccess("kmem_translate", access, mode);
            // Cpu.Translate: a TLB hit is one masked compare and an add; a miss walks (and may fault).
            return (long)c.Cpu.Translate(va, (MemoryAccess)access, (PrivilegeMode)mode);
        }
        catch (PageFaultException e) when (mode == 1)
        {
            return UserFault(cpu, e, "kmem_translate");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_translate");
        }
    }

    private static int BadAccess(string function, uint access, uint mode) =>
        LastError.Set(Errno.EINVAL, $"{function}: access {access} (KMEM_ACCESS_READ/WRITE/EXEC) or mode {mode} (KMEM_MODE_KERNEL/USER) is invalid");

    [UnmanagedCallersOnly(EntryPoint = "kmem_translate_pgd")]
    public static int TranslatePgd(MachineHandle h, ulong cr3, ulong va, uint access, uint mode, KmemTranslation* result)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_translate_pgd", "machine");
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_translate_pgd: out is NULL");
            if (access > 2 || mode > 1)
                return BadAccess("kmem_translate_pgd", access, mode);
            if (!m.Machine.IsRamPfn((cr3 & ~0xfffUL) >> 12))
                return LastError.Set(Errno.EFAULT, $"kmem_translate_pgd: CR3 0x{cr3:x} does not point at RAM");
            var t = m.Machine.TranslatePgd(cr3, va, (MemoryAccess)access, (PrivilegeMode)mode);
            *result = new KmemTranslation { Phys = t.Physical, Virt = t.Virtual, PageSize = t.PageSize, Entry = t.Entry, Level = (uint)t.Level };
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_translate_pgd");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_read_virt")]
    public static int ReadVirt(CpuHandle cpu, ulong va, void* dst, nuint len, uint mode)
    {
        try
        {
            if (RunOn(cpu, "kmem_read_virt") is not { } c)
                return LastError.Code;
            if (mode > 1 || len > int.MaxValue || (dst == null && len != 0))
                return LastError.Set(Errno.EINVAL, "kmem_read_virt: bad mode, length or NULL buffer");
            c.M.Machine.ReadVirtual(c.Cpu, va, new Span<byte>(dst, (int)len), (PrivilegeMode)mode);
            return 0;
        }
        catch (PageFaultException e) when (mode == 1)
        {
            return UserFault(cpu, e, "kmem_read_virt");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_read_virt");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_write_virt")]
    public static int WriteVirt(CpuHandle cpu, ulong va, void* src, nuint len, uint mode)
    {
        try
        {
            if (RunOn(cpu, "kmem_write_virt") is not { } c)
                return LastError.Code;
            if (mode > 1 || len > int.MaxValue || (src == null && len != 0))
                return LastError.Set(Errno.EINVAL, "kmem_write_virt: bad mode, length or NULL buffer");
            c.M.Machine.WriteVirtual(c.Cpu, va, new ReadOnlySpan<byte>(src, (int)len), (PrivilegeMode)mode);
            return 0;
        }
        catch (PageFaultException e) when (mode == 1)
        {
            return UserFault(cpu, e, "kmem_write_virt");
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_write_virt");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_cpu_cr3")]
    public static int CpuCr3(CpuHandle cpu, ulong* cr3)
    {
        try
        {
            if (Handles.Cpu(cpu) is not { } c)
                return LastError.BadHandle("kmem_cpu_cr3", "CPU");
            if (cr3 == null)
                return LastError.Set(Errno.EINVAL, "kmem_cpu_cr3: out is NULL");
            *cr3 = c.Cpu.Cr3;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_cpu_cr3");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_vmalloc")]
    public static int Vmalloc(CpuHandle cpu, ulong size, ulong* va)
    {
        try
        {
            if (va == null)
                return LastError.Set(Errno.EINVAL, "kmem_vmalloc: out is NULL");
            *va = 0;
            if (RunOn(cpu, "kmem_vmalloc") is not { } c)
                return LastError.Code;
            ulong addr = c.M.Machine.Vmalloc(c.Cpu, size);
            if (addr == 0)
                return LastError.Set(Errno.ENOMEM, $"kmem_vmalloc({size}): vmalloc error: size {size}, failed");
            *va = addr;
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_vmalloc");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_vfree")]
    public static int Vfree(CpuHandle cpu, ulong va)
    {
        try
        {
            if (RunOn(cpu, "kmem_vfree") is not { } c)
                return LastError.Code;
            c.M.Machine.Vfree(c.Cpu, va);
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_vfree");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_flush_tlb_all")]
    public static int FlushTlbAll(MachineHandle h)
    {
        try
        {
            if (Handles.Machine(h) is not { } m)
                return LastError.BadHandle("kmem_flush_tlb_all", "machine");
            m.Machine.FlushTlbAll();
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_flush_tlb_all");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "kmem_tlb_stats")]
    public static int TlbStats(CpuHandle cpu, KmemTlbStats* result)
    {
        try
        {
            if (Handles.Cpu(cpu) is not { } c)
                return LastError.BadHandle("kmem_tlb_stats", "CPU");
            if (result == null)
                return LastError.Set(Errno.EINVAL, "kmem_tlb_stats: out is NULL");
            var s = c.Cpu.TlbStatistics;
            *result = new KmemTlbStats
            {
                Hits = s.Hits, Misses = s.Misses, Walks = s.Walks, Faults = s.Faults,
                FullFlushes = s.FullFlushes, PageFlushes = s.PageFlushes, RangeFlushes = s.RangeFlushes, Shootdowns = s.Shootdowns,
            };
            return 0;
        }
        catch (Exception e)
        {
            return LastError.Set(e, "kmem_tlb_stats");
        }
    }
}
