//! COM1: a 16550A UART (vm-superio) whose output goes to any number of writers (a log file,
//! the terminal, an in-memory capture), and whose input can be fed by the VMM.

use std::io::{self, Write};
use std::sync::Arc;

use acpi_tables::{Aml, AmlSink, aml};
use vm_superio::Serial;

use crate::bus::BusDevice;
use crate::interrupt::{InterruptLine, SuperioTrigger};

pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_LEN: u64 = 8;
pub const COM1_GSI: u32 = 4;

/// Copies serial output to every writer it holds. A writer that fails is dropped (and the
/// failure logged once) so a closed terminal cannot stop the log file from being written.
#[derive(Default)]
pub struct FanOut {
    writers: Vec<Box<dyn Write + Send>>,
}

impl FanOut {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, w: Box<dyn Write + Send>) {
        self.writers.push(w);
    }
}

impl Write for FanOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writers.retain_mut(|w| match w.write_all(buf) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("serial output writer failed, dropping it: {e}");
                false
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        for w in &mut self.writers {
            let _ = w.flush();
        }
        Ok(())
    }
}

pub struct SerialDevice {
    uart: Serial<SuperioTrigger, vm_superio::serial::NoEvents, FanOut>,
    gsi: u32,
}

impl SerialDevice {
    pub fn new(irq: Arc<dyn InterruptLine>, gsi: u32, out: FanOut) -> Self {
        Self {
            uart: Serial::new(SuperioTrigger(irq), out),
            gsi,
        }
    }

    /// Queues bytes for the guest to read (console input). Returns how many fitted in the
    /// receive FIFO; the caller retries the rest later.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    pub fn flush(&mut self) {
        let _ = self.uart.writer_mut().flush();
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if data.len() == 1 && offset < COM1_LEN {
            data[0] = self.uart.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1
            && offset < COM1_LEN
            && let Err(e) = self.uart.write(offset as u8, data[0])
        {
            tracing::warn!("serial write failed: {e:?}");
        }
    }
}

impl Aml for SerialDevice {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
        let uid = aml::Name::new("_UID".into(), &aml::ZERO);
        let io = aml::IO::new(COM1_PORT, COM1_PORT, 1, COM1_LEN as u8);
        let irq = aml::Interrupt::new(true, true, false, false, self.gsi);
        let crs = aml::Name::new("_CRS".into(), &aml::ResourceTemplate::new(vec![&io, &irq]));
        let sta = aml::Name::new("_STA".into(), &0xfu8);
        aml::Device::new("COM1".into(), vec![&hid, &uid, &crs, &sta]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::CountingInterrupt;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmit_reaches_every_working_writer() {
        let a = Capture::default();
        let b = Capture::default();
        let mut out = FanOut::new();
        out.push(Box::new(a.clone()));
        out.push(Box::new(Broken));
        out.push(Box::new(b.clone()));
        let mut s = SerialDevice::new(Arc::new(CountingInterrupt::default()), COM1_GSI, out);
        for c in b"ok\n" {
            s.write(0, &[*c]);
        }
        assert_eq!(a.0.lock().unwrap().as_slice(), b"ok\n");
        assert_eq!(b.0.lock().unwrap().as_slice(), b"ok\n");
    }

    #[test]
    fn input_is_readable_from_the_data_register() {
        let irq = Arc::new(CountingInterrupt::default());
        let mut s = SerialDevice::new(irq.clone(), COM1_GSI, FanOut::new());
        s.write(1, &[1]); // IER: received-data interrupt
        assert_eq!(s.enqueue_input(b"x"), 1);
        let mut b = [0u8];
        s.read(5, &mut b); // LSR
        assert_eq!(b[0] & 1, 1);
        s.read(0, &mut b);
        assert_eq!(b[0], b'x');
        assert!(irq.0.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }

    #[test]
    fn aml_names_com1() {
        let s = SerialDevice::new(Arc::new(CountingInterrupt::default()), 4, FanOut::new());
        let mut v = Vec::new();
        s.to_aml_bytes(&mut v);
        assert!(v.windows(4).any(|w| w == b"COM1"));
    }
}
