//! ACPI tables for a hardware-reduced machine: RSDP → XSDT → FADT (→ DSDT), MADT.
//!
//! The DSDT is the concatenation of what each device says about itself (every device
//! implements [`acpi_tables::Aml`]), wrapped in `\_SB_`, plus the `_S5_` package.

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, MADT, ProcessorLocalApic,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, aml};
use devices::acpi_pm::{
    ACPI_PM_PORT, RESET_OFFSET, RESET_VALUE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
    SleepStateS5,
};
use vm_memory::{Bytes, GuestAddress};

use crate::error::Error;
use crate::layout::*;
use crate::memory::GuestMemoryMmap;

const OEM_ID: [u8; 6] = *b"VMTEST";
const OEM_TABLE_ID: [u8; 8] = *b"VMTESTMV";
const OEM_REVISION: u32 = 1;

/// IAPC_BOOT_ARCH: no VGA, no CMOS RTC (we emulate neither), MSI not supported (no PCI).
const BOOT_ARCH_NO_VGA: u16 = 1 << 2;
const BOOT_ARCH_MSI_NOT_SUPPORTED: u16 = 1 << 3;
const BOOT_ARCH_NO_CMOS_RTC: u16 = 1 << 5;

/// The tables as bytes, in the order they are laid out in guest memory.
pub struct AcpiTables {
    pub rsdp: Vec<u8>,
    pub xsdt: Vec<u8>,
    pub fadt: Vec<u8>,
    pub madt: Vec<u8>,
    pub dsdt: Vec<u8>,
}

fn to_bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

fn io_register(port: u64) -> GAS {
    GAS::new(AddressSpace::SystemIo, 8, 0, AccessSize::ByteAccess, port)
}

/// `device_aml`: one AML blob per device (what its `Aml` impl produced).
pub fn dsdt(device_aml: &[Vec<u8>]) -> Vec<u8> {
    let mut sdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    let body = aml::Scope::raw("\\_SB_".into(), device_aml.concat());
    sdt.append_slice(&body);
    sdt.append_slice(&to_bytes(&SleepStateS5));
    sdt.as_slice().to_vec()
}

pub fn madt(vcpus: u32) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LAPIC_ADDR as u32),
    );
    for id in 0..vcpus {
        madt.add_structure(ProcessorLocalApic::new(
            id as u8,
            id as u8,
            EnabledStatus::Enabled,
        ));
    }
    // IOAPIC id after the last LAPIC id, all 24 pins from GSI 0.
    madt.add_structure(IoApic::new(vcpus as u8, IOAPIC_ADDR as u32, 0));
    to_bytes(&madt)
}

pub fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton) // no fixed power button: the guest must not wait for one
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_addr);
    let pm = u64::from(ACPI_PM_PORT);
    fadt.reset_reg = io_register(pm + RESET_OFFSET);
    fadt.reset_value = RESET_VALUE;
    fadt.sleep_control_reg = io_register(pm + SLEEP_CONTROL_OFFSET);
    fadt.sleep_status_reg = io_register(pm + SLEEP_STATUS_OFFSET);
    fadt.iapc_boot_arch =
        (BOOT_ARCH_NO_VGA | BOOT_ARCH_MSI_NOT_SUPPORTED | BOOT_ARCH_NO_CMOS_RTC).into();
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"VMTEST\0\0").into();
    to_bytes(&fadt.finalize())
}

impl AcpiTables {
    /// Builds every table with its final guest address, so pointers between them are right.
    pub fn build(vcpus: u32, device_aml: &[Vec<u8>]) -> Self {
        let dsdt = dsdt(device_aml);
        let align = |a: u64| a.next_multiple_of(16);
        let rsdp_addr = ACPI_START;
        let xsdt_addr = align(rsdp_addr + Rsdp::len() as u64);
        // XSDT: header + 2 entries (FADT, MADT).
        let xsdt_len = 36 + 2 * 8;
        let fadt_addr = align(xsdt_addr + xsdt_len);
        let fadt_bytes_len = acpi_tables::fadt::FADT::len() as u64;
        let madt_addr = align(fadt_addr + fadt_bytes_len);
        let madt = madt(vcpus);
        let dsdt_addr = align(madt_addr + madt.len() as u64);
        let fadt = fadt(dsdt_addr);
        let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
        xsdt.add_entry(fadt_addr);
        xsdt.add_entry(madt_addr);
        let xsdt = to_bytes(&xsdt);
        debug_assert_eq!(xsdt.len() as u64, xsdt_len);
        let rsdp = to_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
        AcpiTables {
            rsdp,
            xsdt,
            fadt,
            madt,
            dsdt,
        }
    }

    fn placed(&self) -> [(u64, &[u8]); 5] {
        let align = |a: u64| a.next_multiple_of(16);
        let rsdp = ACPI_START;
        let xsdt = align(rsdp + self.rsdp.len() as u64);
        let fadt = align(xsdt + self.xsdt.len() as u64);
        let madt = align(fadt + self.fadt.len() as u64);
        let dsdt = align(madt + self.madt.len() as u64);
        [
            (rsdp, &self.rsdp),
            (xsdt, &self.xsdt),
            (fadt, &self.fadt),
            (madt, &self.madt),
            (dsdt, &self.dsdt),
        ]
    }

    /// Writes the tables; returns the RSDP's address.
    pub fn write(&self, mem: &GuestMemoryMmap) -> Result<u64, Error> {
        let placed = self.placed();
        let (last_addr, last) = placed[4];
        if last_addr + last.len() as u64 > ACPI_END {
            return Err(Error::Setup(format!(
                "ACPI tables need {} bytes, more than the {} reserved for them",
                last_addr + last.len() as u64 - ACPI_START,
                ACPI_END - ACPI_START
            )));
        }
        for (addr, bytes) in placed {
            mem.write_slice(bytes, GuestAddress(addr))
                .map_err(|e| Error::Setup(format!("writing ACPI tables: {e}")))?;
        }
        Ok(ACPI_START)
    }

    /// (signature, bytes) of every table but the RSDP, for tools like `iasl -d`.
    pub fn tables(&self) -> Vec<(String, Vec<u8>)> {
        [&self.xsdt, &self.fadt, &self.madt, &self.dsdt]
            .into_iter()
            .map(|t| (String::from_utf8_lossy(&t[..4]).into_owned(), t.clone()))
            .collect()
    }
}

/// The tables a VM with `vcpus` vCPUs and the standard device set gets, without creating
/// a VM: for inspection (e.g. decompiling with `iasl -d` in a test).
pub fn build_tables_for_inspection(vcpus: u32) -> Vec<(String, Vec<u8>)> {
    let platform = crate::vm::PlatformDevices::new_detached();
    AcpiTables::build(vcpus, &platform.aml()).tables()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(t: &[u8]) -> bool {
        t.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    #[test]
    fn tables_checksum_and_point_at_each_other() {
        let t = AcpiTables::build(4, &[]);
        assert!(checksum_ok(&t.rsdp[..20]));
        assert!(checksum_ok(&t.rsdp));
        for (sig, bytes) in t.tables() {
            assert!(checksum_ok(&bytes), "{sig} checksum");
            assert_eq!(
                u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
                bytes.len()
            );
        }
        let placed = t.placed();
        let xsdt_addr = u64::from_le_bytes(t.rsdp[24..32].try_into().unwrap());
        assert_eq!(xsdt_addr, placed[1].0);
        let fadt_ptr = u64::from_le_bytes(t.xsdt[36..44].try_into().unwrap());
        assert_eq!(fadt_ptr, placed[2].0);
        let x_dsdt = u64::from_le_bytes(t.fadt[140..148].try_into().unwrap());
        assert_eq!(x_dsdt, placed[4].0);
    }

    #[test]
    fn madt_has_one_lapic_per_vcpu_and_an_ioapic() {
        let m = madt(3);
        let mut off = 44;
        let (mut lapics, mut ioapics) = (0, 0);
        while off < m.len() {
            match m[off] {
                0 => lapics += 1,
                1 => ioapics += 1,
                _ => {}
            }
            off += m[off + 1] as usize;
        }
        assert_eq!((lapics, ioapics), (3, 1));
    }
}
