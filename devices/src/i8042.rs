//! Just enough of the i8042 keyboard controller for the guest's reset path.
//!
//! Linux's reboot falls back to pulsing the CPU reset line through the controller
//! (command 0xFE on port 0x64). We answer the controller's status and command-byte
//! protocol so probing code sees a sane, empty controller, and report the reset pulse.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::power::{PowerEvent, PowerEventSink, ResetSource};

pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;

const STATUS_OUTPUT_FULL: u8 = 1 << 0;
const STATUS_SYSTEM_FLAG: u8 = 1 << 2;
const STATUS_LAST_WAS_COMMAND: u8 = 1 << 3;

const CMD_READ_COMMAND_BYTE: u8 = 0x20;
const CMD_WRITE_COMMAND_BYTE: u8 = 0x60;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_PULSE_RESET: u8 = 0xfe;
const SELF_TEST_OK: u8 = 0x55;

/// The controller, mapped as one device over a window of 5 ports starting at 0x60:
/// offset 0 is the data port, offset 4 the status/command port.
pub struct I8042Device {
    sink: Arc<dyn PowerEventSink>,
    command_byte: u8,
    output: Option<u8>,
    expecting_command_byte: bool,
    last_was_command: bool,
}

impl I8042Device {
    pub fn new(sink: Arc<dyn PowerEventSink>) -> Self {
        Self {
            sink,
            command_byte: 0,
            output: None,
            expecting_command_byte: false,
            last_was_command: false,
        }
    }

    fn status(&self) -> u8 {
        let mut s = STATUS_SYSTEM_FLAG;
        if self.output.is_some() {
            s |= STATUS_OUTPUT_FULL;
        }
        if self.last_was_command {
            s |= STATUS_LAST_WAS_COMMAND;
        }
        s
    }
}

impl BusDevice for I8042Device {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match offset {
            0 => data[0] = self.output.take().unwrap_or(0),
            4 => data[0] = self.status(),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            0 => {
                self.last_was_command = false;
                if std::mem::take(&mut self.expecting_command_byte) {
                    self.command_byte = value;
                }
            }
            4 => {
                self.last_was_command = true;
                match value {
                    CMD_READ_COMMAND_BYTE => self.output = Some(self.command_byte),
                    CMD_WRITE_COMMAND_BYTE => self.expecting_command_byte = true,
                    CMD_SELF_TEST => self.output = Some(SELF_TEST_OK),
                    CMD_PULSE_RESET => self
                        .sink
                        .power_event(PowerEvent::Reboot(ResetSource::I8042)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::RecordingSink;

    #[test]
    fn reset_pulse_reboots() {
        let sink = Arc::new(RecordingSink::default());
        let mut d = I8042Device::new(sink.clone());
        d.write(4, &[CMD_PULSE_RESET]);
        assert_eq!(
            *sink.0.lock().unwrap(),
            vec![PowerEvent::Reboot(ResetSource::I8042)]
        );
    }

    #[test]
    fn command_byte_round_trips_and_self_test_answers() {
        let sink = Arc::new(RecordingSink::default());
        let mut d = I8042Device::new(sink.clone());
        let mut b = [0u8];
        d.write(4, &[CMD_WRITE_COMMAND_BYTE]);
        d.write(0, &[0x47]);
        d.write(4, &[CMD_READ_COMMAND_BYTE]);
        d.read(4, &mut b);
        assert_ne!(b[0] & STATUS_OUTPUT_FULL, 0);
        d.read(0, &mut b);
        assert_eq!(b[0], 0x47);
        d.read(4, &mut b);
        assert_eq!(b[0] & STATUS_OUTPUT_FULL, 0);
        d.write(4, &[CMD_SELF_TEST]);
        d.read(0, &mut b);
        assert_eq!(b[0], SELF_TEST_OK);
        assert!(sink.0.lock().unwrap().is_empty());
    }
}
