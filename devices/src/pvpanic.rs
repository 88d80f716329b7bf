//! The pvpanic device (QEMU's ISA variant): the guest kernel writes to one I/O port when it
//! panics, so the VMM can report a crash at once instead of waiting for a reboot or timeout.
//! Linux binds its `pvpanic-mmio` driver to the ACPI id `QEMU0001`.

use std::sync::Arc;

use acpi_tables::{Aml, AmlSink, aml};

use crate::bus::BusDevice;
use crate::power::{PowerEvent, PowerEventSink};

pub const PVPANIC_PORT: u16 = 0x505;
pub const PVPANIC_LEN: u64 = 1;
const PANICKED: u8 = 1 << 0;
const CRASH_LOADED: u8 = 1 << 1;

pub struct PvPanicDevice {
    sink: Arc<dyn PowerEventSink>,
}

impl PvPanicDevice {
    pub fn new(sink: Arc<dyn PowerEventSink>) -> Self {
        Self { sink }
    }
}

impl BusDevice for PvPanicDevice {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        data[0] = PANICKED | CRASH_LOADED; // the events we understand
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.first().is_some_and(|v| v & PANICKED != 0) {
            self.sink.power_event(PowerEvent::GuestPanic);
        }
    }
}

impl Aml for PvPanicDevice {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let hid = aml::Name::new("_HID".into(), &"QEMU0001");
        let io = aml::IO::new(PVPANIC_PORT, PVPANIC_PORT, 1, PVPANIC_LEN as u8);
        let crs = aml::Name::new("_CRS".into(), &aml::ResourceTemplate::new(vec![&io]));
        let sta = aml::Name::new("_STA".into(), &0xfu8);
        aml::Device::new("PEVT".into(), vec![&hid, &crs, &sta]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::RecordingSink;

    #[test]
    fn panic_bit_reports_a_guest_panic() {
        let sink = Arc::new(RecordingSink::default());
        let mut d = PvPanicDevice::new(sink.clone());
        d.write(0, &[CRASH_LOADED]);
        assert!(sink.0.lock().unwrap().is_empty());
        d.write(0, &[PANICKED]);
        assert_eq!(*sink.0.lock().unwrap(), vec![PowerEvent::GuestPanic]);
    }
}
