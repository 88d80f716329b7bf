//! Per-vCPU architectural state: CPUID (from what KVM supports, minus a mask), MSRs, FPU,
//! LAPIC LINT pins, and the boot vCPU's registers for each entry mode.

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment,
};
use kvm_ioctls::{Kvm, VcpuFd};
use vm_memory::{Bytes, GuestAddress};

use crate::config::{CpuFeature, CpuidReg};
use crate::error::Error;
use crate::layout::*;
use crate::loader::Entry;
use crate::memory::GuestMemoryMmap;

/// The CPUID template for all vCPUs: what KVM can offer, with the caller's mask applied and
/// the hypervisor bit set. Per-vCPU fields (APIC ids) are patched in [`cpuid_for`].
pub fn base_cpuid(kvm: &Kvm, mask: &[CpuFeature]) -> Result<CpuId, Error> {
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
    for e in cpuid.as_mut_slice() {
        if e.function == 1 {
            e.ecx |= 1 << 31; // hypervisor present: lets the guest look for KVM's PV leaves
        }
        for f in mask {
            for bit in &f.bits {
                if bit.leaf == e.function && bit.subleaf.is_none_or(|s| s == e.index) {
                    let reg = match bit.reg {
                        CpuidReg::Eax => &mut e.eax,
                        CpuidReg::Ebx => &mut e.ebx,
                        CpuidReg::Ecx => &mut e.ecx,
                        CpuidReg::Edx => &mut e.edx,
                    };
                    *reg &= !(1u32 << bit.bit);
                }
            }
        }
    }
    // With XSAVE hidden, the XSAVE state leaf must not advertise components either.
    let xsave_hidden = mask
        .iter()
        .any(|f| f.bits.iter().any(|b| b.leaf == 1 && b.bit == 26));
    if xsave_hidden {
        for e in cpuid.as_mut_slice() {
            if e.function == 0xd {
                (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0);
            }
        }
    }
    Ok(cpuid)
}

/// Patches the topology fields for vCPU `id` of `count`.
pub fn cpuid_for(base: &CpuId, id: u32, count: u32) -> CpuId {
    let mut cpuid = base.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((count.min(255)) << 16);
                if count > 1 {
                    e.edx |= 1 << 28; // HTT: the logical-count field is valid
                }
            }
            0xb | 0x1f => {
                e.edx = id; // x2APIC id
                // One thread per core, `count` cores in the package.
                match e.index {
                    0 => {
                        e.eax = 0; // no SMT: the thread level adds no APIC-id bits
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = count.next_power_of_two().trailing_zeros();
                        e.ebx = count;
                        e.ecx = (2 << 8) | 1;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            _ => {}
        }
    }
    cpuid
}

// MSR numbers.
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MISC_ENABLE_FAST_STRING: u64 = 1;
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;

/// Boot-time MSR values: syscall MSRs cleared, fast strings on, MTRRs default write-back
/// (without that a guest treats all RAM as uncached and crawls).
pub fn set_msrs(vcpu: &VcpuFd) -> Result<(), Error> {
    let entries: Vec<kvm_msr_entry> = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect();
    let msrs = Msrs::from_entries(&entries)
        .map_err(|e| Error::Setup(format!("building the MSR list: {e:?}")))?;
    let n = vcpu.set_msrs(&msrs).map_err(Error::kvm("KVM_SET_MSRS"))?;
    if n != entries.len() {
        // Name the first MSR KVM refused: it is the one this host lacks.
        return Err(Error::Setup(format!(
            "KVM accepted only {n} of {} boot MSRs (MSR {:#x} refused)",
            entries.len(),
            entries[n].index
        )));
    }
    Ok(())
}

pub fn set_fpu(vcpu: &VcpuFd) -> Result<(), Error> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(Error::kvm("KVM_SET_FPU"))
}

/// LINT0 = ExtINT (the legacy PIC path), LINT1 = NMI, as firmware leaves them.
pub fn set_lint(vcpu: &VcpuFd) -> Result<(), Error> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const DELIVERY_EXTINT: u32 = 0x7;
    const DELIVERY_NMI: u32 = 0x4;
    let mut lapic = vcpu.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
    let mut set = |off: usize, mode: u32| {
        let mut raw = [0u8; 4];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = lapic.regs[off + i] as u8;
        }
        let v = (u32::from_le_bytes(raw) & !0x700) | (mode << 8);
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            lapic.regs[off + i] = *b as _;
        }
    };
    set(APIC_LVT0, DELIVERY_EXTINT);
    set(APIC_LVT1, DELIVERY_NMI);
    vcpu.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))
}

// GDT entries: flat code/data segments.
const GDT_NULL: u64 = 0;
const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
const GDT_CODE32: u64 = 0x00cf_9b00_0000_ffff;
const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;
const GDT_TSS: u64 = 0x0080_8b00_0000_0000;

fn segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xff_ffff) | (((entry >> 56) & 0xff) << 24);
    let limit = (entry & 0xffff) | (((entry >> 48) & 0xf) << 16);
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base,
        limit: if g == 1 {
            ((limit as u32) << 12) | 0xfff
        } else {
            limit as u32
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

fn write_mem(mem: &GuestMemoryMmap, addr: u64, data: &[u8]) -> Result<(), Error> {
    mem.write_slice(data, GuestAddress(addr))
        .map_err(|e| Error::Setup(format!("writing boot structures at {addr:#x}: {e}")))
}

/// Boot vCPU state for the chosen entry. Writes the GDT (and page tables for the 64-bit
/// entry) into guest memory.
pub fn setup_boot_vcpu(vcpu: &VcpuFd, mem: &GuestMemoryMmap, entry: Entry) -> Result<(), Error> {
    let mut sregs = vcpu.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
    let long_mode = matches!(entry, Entry::Linux64 { .. });
    let code = if long_mode { GDT_CODE64 } else { GDT_CODE32 };
    let gdt = [GDT_NULL, code, GDT_DATA, GDT_TSS];
    let bytes: Vec<u8> = gdt.iter().flat_map(|e| e.to_le_bytes()).collect();
    write_mem(mem, BOOT_GDT, &bytes)?;
    write_mem(mem, BOOT_IDT, &[0u8; 8])?;
    sregs.gdt.base = BOOT_GDT;
    sregs.gdt.limit = (bytes.len() - 1) as u16;
    sregs.idt.base = BOOT_IDT;
    sregs.idt.limit = 0;
    sregs.cs = segment_from_gdt(code, 1);
    let data = segment_from_gdt(GDT_DATA, 2);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment_from_gdt(GDT_TSS, 3);

    const CR0_PE: u64 = 1;
    const CR0_ET: u64 = 1 << 4;
    const CR0_PG: u64 = 1 << 31;
    const CR4_PAE: u64 = 1 << 5;
    const EFER_LME: u64 = 1 << 8;
    const EFER_LMA: u64 = 1 << 10;

    let mut regs = kvm_regs {
        rflags: 0x2,
        ..Default::default()
    };
    match entry {
        Entry::Linux64 { rip } => {
            write_identity_page_tables(mem)?;
            sregs.cr3 = PML4;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
            regs.rip = rip;
            regs.rsi = ZERO_PAGE;
            regs.rsp = BOOT_STACK;
            regs.rbp = BOOT_STACK;
        }
        Entry::Pvh { rip } => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = rip;
            regs.rbx = PVH_INFO;
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(Error::kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(Error::kvm("KVM_SET_REGS"))
}

/// Identity-maps the first 1 GiB with 2 MiB pages: enough for the kernel, the zero page
/// and the command line; the kernel builds its own tables straight away.
fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<(), Error> {
    write_mem(mem, PML4, &(PDPT | 0x3).to_le_bytes())?;
    write_mem(mem, PDPT, &(PD | 0x3).to_le_bytes())?;
    let pd: Vec<u8> = (0..512u64)
        .flat_map(|i| ((i << 21) | 0x83).to_le_bytes())
        .collect();
    write_mem(mem, PD, &pd)
}

/// A readable dump of a vCPU's registers, for crash reports.
pub fn dump_registers(vcpu: &VcpuFd) -> String {
    let mut out = String::new();
    match vcpu.get_regs() {
        Ok(r) => out.push_str(&format!(
            "rip={:#018x} rsp={:#018x} rflags={:#x}\n\
             rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
             rsi={:#018x} rdi={:#018x} rbp={:#018x}\n\
             r8={:#018x} r9={:#018x} r10={:#018x} r11={:#018x}\n\
             r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n",
            r.rip,
            r.rsp,
            r.rflags,
            r.rax,
            r.rbx,
            r.rcx,
            r.rdx,
            r.rsi,
            r.rdi,
            r.rbp,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15
        )),
        Err(e) => out.push_str(&format!("(registers unavailable: {e})\n")),
    }
    match vcpu.get_sregs() {
        Ok(s) => out.push_str(&format!(
            "cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x}\n\
             cs={:#x} (base {:#x}, l={}, db={}) ss={:#x} gdt={:#x}/{:#x} idt={:#x}/{:#x}\n",
            s.cr0,
            s.cr2,
            s.cr3,
            s.cr4,
            s.efer,
            s.cs.selector,
            s.cs.base,
            s.cs.l,
            s.cs.db,
            s.ss.selector,
            s.gdt.base,
            s.gdt.limit,
            s.idt.base,
            s.idt.limit
        )),
        Err(e) => out.push_str(&format!("(segment registers unavailable: {e})\n")),
    }
    // Whether the vCPU runs at all: an application processor the guest never started (or
    // one whose start failed) is still waiting for INIT/SIPI here.
    match vcpu.get_mp_state() {
        Ok(s) => out.push_str(&format!("mp_state={}\n", mp_state_name(s.mp_state))),
        Err(e) => out.push_str(&format!("(mp_state unavailable: {e})\n")),
    }
    out
}

fn mp_state_name(state: u32) -> String {
    match state {
        kvm_bindings::KVM_MP_STATE_RUNNABLE => "runnable".into(),
        kvm_bindings::KVM_MP_STATE_UNINITIALIZED => "uninitialized (waiting for INIT)".into(),
        kvm_bindings::KVM_MP_STATE_INIT_RECEIVED => "init-received (waiting for SIPI)".into(),
        kvm_bindings::KVM_MP_STATE_HALTED => "halted".into(),
        kvm_bindings::KVM_MP_STATE_SIPI_RECEIVED => "sipi-received".into(),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_flat_segments() {
        let cs = segment_from_gdt(GDT_CODE64, 1);
        assert_eq!(
            (cs.base, cs.limit, cs.l, cs.db, cs.selector),
            (0, 0xffff_ffff, 1, 0, 8)
        );
        let cs32 = segment_from_gdt(GDT_CODE32, 1);
        assert_eq!((cs32.l, cs32.db, cs32.type_), (0, 1, 0xb));
        let ds = segment_from_gdt(GDT_DATA, 2);
        assert_eq!((ds.type_, ds.s, ds.present), (3, 1, 1));
    }
}
