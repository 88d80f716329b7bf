//! The hardware-reduced ACPI sleep control, sleep status and reset registers.
//!
//! A hardware-reduced FADT has no PM1 blocks; instead it points SLEEP_CONTROL_REG,
//! SLEEP_STATUS_REG and RESET_REG at registers of the platform's choosing. We put all three
//! in one three-byte I/O window. Linux powers off by writing `SLP_TYP << 2 | SLP_EN` with the
//! SLP_TYP it read from the DSDT's `_S5_` package, and reboots by writing RESET_VALUE.

use std::sync::Arc;

use acpi_tables::{Aml, AmlSink, aml};

use crate::bus::BusDevice;
use crate::power::{PowerEvent, PowerEventSink, ResetSource};

/// Default port of the window; the FADT and the VMM's bus take it from here.
pub const ACPI_PM_PORT: u16 = 0x600;
pub const ACPI_PM_LEN: u64 = 3;
pub const SLEEP_CONTROL_OFFSET: u64 = 0;
pub const SLEEP_STATUS_OFFSET: u64 = 1;
pub const RESET_OFFSET: u64 = 2;
/// The value the FADT tells the guest to write into RESET_REG.
pub const RESET_VALUE: u8 = 0x0f;
/// SLP_TYP of S5 as declared in `_S5_`; any value works as long as both sides agree.
pub const S5_SLEEP_TYPE: u8 = 5;

const SLP_EN: u8 = 1 << 5;
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0b111;
const WAK_STS: u8 = 1 << 7;

pub struct AcpiPmDevice {
    sink: Arc<dyn PowerEventSink>,
    sleep_status: u8,
}

impl AcpiPmDevice {
    pub fn new(sink: Arc<dyn PowerEventSink>) -> Self {
        Self {
            sink,
            sleep_status: 0,
        }
    }
}

impl BusDevice for AcpiPmDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == SLEEP_STATUS_OFFSET {
            data[0] = self.sleep_status;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            SLEEP_CONTROL_OFFSET if value & SLP_EN != 0 => {
                let slp_typ = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if slp_typ == S5_SLEEP_TYPE {
                    self.sink.power_event(PowerEvent::PowerOff);
                } else {
                    // We only declare _S5_; other sleep states are not offered, so a write
                    // naming one is a confused guest. Ignore it, as firmware would.
                    tracing::warn!(slp_typ, "guest asked for an unsupported ACPI sleep state");
                }
            }
            // Write-1-to-clear.
            SLEEP_STATUS_OFFSET => self.sleep_status &= !(value & WAK_STS),
            RESET_OFFSET if value == RESET_VALUE => self
                .sink
                .power_event(PowerEvent::Reboot(ResetSource::AcpiResetRegister)),
            _ => {}
        }
    }
}

/// `Name (_S5_, Package () { 5, 5, 0, 0 })`: without it Linux installs no ACPI power-off
/// handler at all and `poweroff` ends in a halt loop.
pub struct SleepStateS5;

impl Aml for SleepStateS5 {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let typ = S5_SLEEP_TYPE;
        aml::Name::new(
            "_S5_".into(),
            &aml::Package::new(vec![&typ, &typ, &aml::ZERO, &aml::ZERO]),
        )
        .to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::RecordingSink;

    fn dev() -> (AcpiPmDevice, Arc<RecordingSink>) {
        let sink = Arc::new(RecordingSink::default());
        (AcpiPmDevice::new(sink.clone()), sink)
    }

    #[test]
    fn s5_write_powers_off() {
        let (mut d, sink) = dev();
        d.write(SLEEP_CONTROL_OFFSET, &[(S5_SLEEP_TYPE << 2) | SLP_EN]);
        assert_eq!(*sink.0.lock().unwrap(), vec![PowerEvent::PowerOff]);
    }

    #[test]
    fn other_sleep_states_and_missing_enable_are_ignored() {
        let (mut d, sink) = dev();
        d.write(SLEEP_CONTROL_OFFSET, &[S5_SLEEP_TYPE << 2]);
        d.write(SLEEP_CONTROL_OFFSET, &[(3 << 2) | SLP_EN]);
        d.write(SLEEP_CONTROL_OFFSET, &[]);
        assert!(sink.0.lock().unwrap().is_empty());
    }

    #[test]
    fn reset_register_reboots_only_with_the_declared_value() {
        let (mut d, sink) = dev();
        d.write(RESET_OFFSET, &[1]);
        assert!(sink.0.lock().unwrap().is_empty());
        d.write(RESET_OFFSET, &[RESET_VALUE]);
        assert_eq!(
            *sink.0.lock().unwrap(),
            vec![PowerEvent::Reboot(ResetSource::AcpiResetRegister)]
        );
    }

    #[test]
    fn s5_package_encodes() {
        let mut v = Vec::new();
        SleepStateS5.to_aml_bytes(&mut v);
        // NameOp "_S5_" PackageOp len=6 count=4 BytePrefix 5 BytePrefix 5 Zero Zero
        assert_eq!(
            v,
            [
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00
            ]
        );
    }
}
