//! PCI configuration mechanism #1 (ports 0xCF8-0xCFF) with no PCI bus behind it.
//!
//! The machine has no PCI: devices are virtio-mmio, described by ACPI. Guests still poke
//! these ports while probing; answering all-ones everywhere (including the address
//! register, so the conf1 sanity check fails) tells them plainly that nothing is there,
//! without a VM exit to the VMM's "unhandled port" path for every probe.

use crate::bus::BusDevice;

pub const PCI_CONF1_PORT: u16 = 0xcf8;
pub const PCI_CONF1_LEN: u64 = 8;

#[derive(Default)]
pub struct PciConf1Absent;

impl BusDevice for PciConf1Absent {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_reads_all_ones() {
        let mut d = PciConf1Absent;
        d.write(0, &0x8000_0000u32.to_le_bytes());
        let mut b = [0u8; 4];
        d.read(0, &mut b);
        assert_eq!(b, [0xff; 4]);
        d.read(4, &mut b[..2]);
        assert_eq!(b[..2], [0xff; 2]);
    }
}
