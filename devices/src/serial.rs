//! COM1: a 16550A UART (vm-superio) whose output goes to any number of writers (a log file,
//! the terminal, an in-memory capture), and whose input comes from a [`SerialInput`] (the
//! interactive console, or a test feeding keystrokes).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

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

/// How many input bytes may wait for the guest before [`SerialInput::send`] blocks: far
/// more than anyone types, small enough that piping a large file in cannot eat memory
/// while the guest is not reading.
pub const INPUT_BACKLOG_LIMIT: usize = 64 << 10;

/// Bytes from the host for the guest to read on COM1: the interactive console's keystrokes,
/// or what a test types. Clones share one queue.
///
/// The 16550's receive FIFO holds 64 bytes. What does not fit waits here, in order, and
/// moves into the FIFO as the guest reads it (each read of the data register refills it):
/// nothing is dropped and nobody polls. Bytes sent before the VM starts wait for it.
#[derive(Clone, Default)]
pub struct SerialInput {
    shared: Arc<InputShared>,
}

#[derive(Default)]
struct InputShared {
    state: Mutex<InputState>,
    /// Signalled when the backlog shrinks or the device goes away.
    room: Condvar,
}

#[derive(Default)]
struct InputState {
    backlog: VecDeque<u8>,
    /// The UART while a VM runs. Weak: the VM owns its devices, the input only reaches in.
    device: Option<Weak<Mutex<SerialDevice>>>,
}

impl SerialInput {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, InputState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `bytes` for the guest and moves what fits into the receive FIFO at once
    /// (raising the receive interrupt). While a VM runs and more than
    /// [`INPUT_BACKLOG_LIMIT`] bytes wait, blocks until the guest reads or the VM ends.
    pub fn send(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let device = {
            let mut st = self.state();
            while st.backlog.len() >= INPUT_BACKLOG_LIMIT && st.device.is_some() {
                st = self.shared.room.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.backlog.extend(bytes);
            st.device.as_ref().and_then(Weak::upgrade)
        };
        // Lock order: device, then input state (as on the guest's reads).
        if let Some(device) = device {
            device
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pull_input();
        }
    }

    /// Queues as much of `bytes` as fits under [`INPUT_BACKLOG_LIMIT`] (attached to a VM
    /// or not) and moves what fits into the receive FIFO; returns how many bytes it took.
    /// Never waits: for a caller that must stay responsive while the guest reads nothing
    /// (the interactive console keeps reading its keys for Ctrl-A x).
    pub fn try_send(&self, bytes: &[u8]) -> usize {
        let (taken, device) = {
            let mut st = self.state();
            let taken = bytes
                .len()
                .min(INPUT_BACKLOG_LIMIT.saturating_sub(st.backlog.len()));
            st.backlog.extend(&bytes[..taken]);
            (taken, st.device.as_ref().and_then(Weak::upgrade))
        };
        // Lock order: device, then input state (as on the guest's reads).
        if taken > 0
            && let Some(device) = device
        {
            device
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pull_input();
        }
        taken
    }

    /// How many bytes wait for room in the guest's receive FIFO.
    pub fn backlog(&self) -> usize {
        self.state().backlog.len()
    }

    /// Connects this input to a VM's UART and moves what already waits into its FIFO.
    pub fn attach(&self, device: &Arc<Mutex<SerialDevice>>) {
        let mut dev = device.lock().unwrap_or_else(|e| e.into_inner());
        dev.input = Some(self.clone());
        self.state().device = Some(Arc::downgrade(device));
        dev.pull_input();
    }

    /// Disconnects from the VM (it has ended); bytes still waiting stay for the next one,
    /// and a sender blocked on a full backlog returns.
    pub fn detach(&self) {
        self.state().device = None;
        self.shared.room.notify_all();
    }
}

pub struct SerialDevice {
    uart: Serial<SuperioTrigger, vm_superio::serial::NoEvents, FanOut>,
    gsi: u32,
    input: Option<SerialInput>,
}

impl SerialDevice {
    pub fn new(irq: Arc<dyn InterruptLine>, gsi: u32, out: FanOut) -> Self {
        Self {
            uart: Serial::new(SuperioTrigger(irq), out),
            gsi,
            input: None,
        }
    }

    /// Queues bytes for the guest to read directly, without an input's backlog. Returns how
    /// many fitted in the receive FIFO; the caller keeps the rest.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        let fits = bytes.len().min(self.uart.fifo_capacity());
        match self.uart.enqueue_raw_bytes(&bytes[..fits]) {
            Ok(n) => n,
            // The bytes are in the FIFO; only the interrupt failed (the guest still sees
            // data-ready in LSR when it polls).
            Err(vm_superio::serial::Error::Trigger(e)) => {
                tracing::warn!("serial receive interrupt failed: {e}");
                fits
            }
            Err(_) => 0,
        }
    }

    /// Moves waiting input into the receive FIFO, as much as fits.
    fn pull_input(&mut self) {
        let Some(input) = self.input.clone() else {
            return;
        };
        let mut st = input.state();
        if st.backlog.is_empty() {
            return;
        }
        let room = self.uart.fifo_capacity().min(st.backlog.len());
        if room == 0 {
            return;
        }
        let chunk: Vec<u8> = st.backlog.iter().take(room).copied().collect();
        let taken = self.enqueue_input(&chunk);
        st.backlog.drain(..taken);
        if taken > 0 {
            input.shared.room.notify_all();
        }
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
            if offset == 0 {
                // The guest took a byte (or read the divisor latch): refill the FIFO.
                self.pull_input();
            }
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

    const RBR: u64 = 0;
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LSR: u64 = 5;
    const LSR_DATA_READY: u8 = 1;

    fn reg(s: &Arc<Mutex<SerialDevice>>, offset: u64) -> u8 {
        let mut b = [0u8];
        s.lock().unwrap().read(offset, &mut b);
        b[0]
    }

    fn uart_with_input() -> (
        Arc<Mutex<SerialDevice>>,
        Arc<CountingInterrupt>,
        SerialInput,
    ) {
        let irq = Arc::new(CountingInterrupt::default());
        let s = Arc::new(Mutex::new(SerialDevice::new(
            irq.clone(),
            COM1_GSI,
            FanOut::new(),
        )));
        s.lock().unwrap().write(IER, &[1]); // received-data interrupt on
        let input = SerialInput::new();
        input.attach(&s);
        (s, irq, input)
    }

    fn interrupts(irq: &CountingInterrupt) -> usize {
        irq.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn input_is_readable_from_the_data_register() {
        let (s, irq, input) = uart_with_input();
        assert_eq!(reg(&s, LSR) & LSR_DATA_READY, 0, "nothing to read yet");
        assert_eq!(interrupts(&irq), 0);
        input.send(b"hi");
        assert!(interrupts(&irq) >= 1, "the receive interrupt was raised");
        assert_eq!(reg(&s, IIR) & 0x0f, 0x04, "IIR: received data available");
        assert_eq!(reg(&s, LSR) & LSR_DATA_READY, 1);
        assert_eq!(reg(&s, RBR), b'h');
        assert_eq!(reg(&s, LSR) & LSR_DATA_READY, 1);
        assert_eq!(reg(&s, RBR), b'i');
        assert_eq!(reg(&s, LSR) & LSR_DATA_READY, 0, "drained");
        assert_eq!(input.backlog(), 0);
    }

    #[test]
    fn input_beyond_the_fifo_waits_and_arrives_in_order() {
        let (s, irq, input) = uart_with_input();
        let data: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8).collect();
        input.send(&data);
        // The 16550's FIFO holds 64 bytes; the rest waits instead of being dropped.
        assert_eq!(input.backlog(), 200 - 64);
        assert_eq!(s.lock().unwrap().enqueue_input(b"z"), 0, "FIFO full");
        let before = interrupts(&irq);
        let mut got = Vec::new();
        while reg(&s, LSR) & LSR_DATA_READY != 0 {
            got.push(reg(&s, RBR));
            assert!(got.len() <= 200, "more bytes than were sent");
        }
        assert_eq!(got, data);
        assert_eq!(input.backlog(), 0);
        assert!(
            interrupts(&irq) > before,
            "refills raise the interrupt again"
        );
    }

    #[test]
    fn input_sent_before_the_vm_starts_waits_for_it() {
        let input = SerialInput::new();
        input.send(b"early");
        assert_eq!(input.backlog(), 5);
        let s = Arc::new(Mutex::new(SerialDevice::new(
            Arc::new(CountingInterrupt::default()),
            COM1_GSI,
            FanOut::new(),
        )));
        input.attach(&s);
        assert_eq!(input.backlog(), 0);
        let got: Vec<u8> = (0..5).map(|_| reg(&s, RBR)).collect();
        assert_eq!(got, b"early");
        // After the VM ends, input waits for the next one.
        input.detach();
        input.send(b"x");
        assert_eq!(input.backlog(), 1);
        assert_eq!(reg(&s, LSR) & LSR_DATA_READY, 0);
    }

    #[test]
    fn a_sender_over_the_backlog_limit_waits_for_the_guest_or_the_end() {
        let (s, _irq, input) = uart_with_input();
        input.send(&vec![b'a'; INPUT_BACKLOG_LIMIT + 64]);
        assert_eq!(input.backlog(), INPUT_BACKLOG_LIMIT);
        let (tx, rx) = std::sync::mpsc::channel();
        let sender = {
            let input = input.clone();
            std::thread::spawn(move || {
                input.send(b"b");
                tx.send(()).unwrap();
            })
        };
        let wait = std::time::Duration::from_millis(200);
        assert!(rx.recv_timeout(wait).is_err(), "blocked while full");
        reg(&s, RBR); // the guest reads one byte: room again
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("released by the guest's read");
        sender.join().unwrap();

        // Full again (the byte read made room for "b" only); this time the VM ends.
        assert_eq!(input.backlog(), INPUT_BACKLOG_LIMIT);
        let (tx, rx) = std::sync::mpsc::channel();
        let sender = {
            let input = input.clone();
            std::thread::spawn(move || {
                input.send(b"d");
                tx.send(()).unwrap();
            })
        };
        assert!(rx.recv_timeout(wait).is_err(), "blocked while full");
        input.detach();
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("released when the VM ends");
        sender.join().unwrap();
    }

    #[test]
    fn try_send_takes_what_fits_and_never_waits() {
        let (s, _irq, input) = uart_with_input();
        // The backlog takes its limit; 64 of those move on into the FIFO at once.
        let taken = input.try_send(&vec![b'a'; INPUT_BACKLOG_LIMIT + 1000]);
        assert_eq!(taken, INPUT_BACKLOG_LIMIT);
        assert_eq!(input.backlog(), INPUT_BACKLOG_LIMIT - 64);
        assert_eq!(input.try_send(&[b'a'; 100]), 64, "the room the FIFO made");
        assert_eq!(input.try_send(b"more"), 0, "full: nothing taken, no wait");
        reg(&s, RBR); // the guest reads one byte: one byte of room
        assert_eq!(input.try_send(b"bc"), 1);
        assert_eq!(input.backlog(), INPUT_BACKLOG_LIMIT);
        // Without a VM the same limit holds.
        let idle = SerialInput::new();
        assert_eq!(
            idle.try_send(&vec![0; INPUT_BACKLOG_LIMIT + 1]),
            INPUT_BACKLOG_LIMIT
        );
    }

    #[test]
    fn aml_names_com1() {
        let s = SerialDevice::new(Arc::new(CountingInterrupt::default()), 4, FanOut::new());
        let mut v = Vec::new();
        s.to_aml_bytes(&mut v);
        assert!(v.windows(4).any(|w| w == b"COM1"));
    }
}
