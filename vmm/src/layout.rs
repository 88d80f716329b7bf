//! Guest-physical memory map (x86-64). Low addresses follow the PC conventions a Linux
//! guest expects; everything the VMM writes for the guest lives below 1 MiB.

/// Where the GDT used for the boot vCPU lives.
pub const BOOT_GDT: u64 = 0x500;
/// An empty IDT (limit 0): any exception before the guest loads its own one triple-faults.
pub const BOOT_IDT: u64 = 0x520;
/// PVH `hvm_start_info`, followed by its memory map and module list.
pub const PVH_INFO: u64 = 0x6000;
pub const PVH_MEMMAP: u64 = 0x6040;
pub const PVH_MODLIST: u64 = 0x6fc0;
/// Linux zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// Initial stack for the boot vCPU (grows down from here).
pub const BOOT_STACK: u64 = 0x8ff0;
/// Boot page tables for the 64-bit Linux entry: PML4, PDPT, one PD (1 GiB of 2 MiB pages).
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE: u64 = 0x20000;
pub const CMDLINE_MAX: usize = 0x10000;
/// End of conventional memory; the EBDA/BIOS area above it is reported as reserved.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables, in the BIOS read-only area where guests also search for the RSDP.
pub const ACPI_START: u64 = 0xe0000;
pub const ACPI_END: u64 = RESET_VECTOR;
/// Where an x86 CPU starts after a reset (F000:FFF0), and where Linux's BIOS reboot path
/// (`machine_real_restart`) jumps. There is no firmware here, so the VMM puts a stub there
/// that pulls the i8042 reset line: a guest that falls back to the BIOS path still ends
/// as a reboot instead of running whatever bytes lie there.
pub const RESET_VECTOR: u64 = 0xffff0;
/// First byte of "high" memory; kernels are loaded from here up.
pub const HIMEM_START: u64 = 0x100000;
/// The 32-bit MMIO hole: RAM stops here and resumes at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// Windows for memory-mapped devices (virtio-mmio), 4 KiB each, inside the hole.
pub const DEVICE_MMIO_START: u64 = 0xd000_0000;
pub const DEVICE_MMIO_WINDOW: u64 = 0x1000;
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
/// KVM needs three pages for the VMX TSS and one for the identity map, out of guest RAM's way.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// GSIs free for devices on the in-kernel IOAPIC (0-4 are legacy; 4 is COM1).
pub const FIRST_DEVICE_GSI: u32 = 5;
pub const LAST_DEVICE_GSI: u32 = 23;
