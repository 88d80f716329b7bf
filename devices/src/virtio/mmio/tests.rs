use std::sync::atomic::AtomicUsize;

use super::*;
use crate::interrupt::CountingInterrupt;
use crate::virtio::{ActivateError, InterruptKind, VirtioInterrupt};

/// A device that records what the transport did to it.
struct Dummy {
    evts: Vec<EventFd>,
    acked: u64,
    config: [u8; 8],
    activated: Option<(usize, Arc<dyn VirtioInterrupt>)>,
    resets: usize,
}

impl Dummy {
    fn new() -> Self {
        Self {
            evts: (0..2)
                .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
                .collect(),
            acked: 0,
            config: *b"abcdefgh",
            activated: None,
            resets: 0,
        }
    }
}

impl VirtioDevice for Dummy {
    fn device_type(&self) -> u32 {
        42
    }
    fn avail_features(&self) -> u64 {
        feature(VIRTIO_F_VERSION_1) | 1 << 5
    }
    fn set_acked_features(&mut self, f: u64) {
        self.acked = f;
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn queue_events(&self) -> &[EventFd] {
        &self.evts
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::virtio::read_config_bytes(&self.config, offset, data)
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if let Some(b) = self.config.get_mut(offset as usize) {
            *b = data[0];
        }
    }
    fn activate(
        &mut self,
        _mem: GuestMemoryMmap,
        irq: Arc<dyn VirtioInterrupt>,
        queues: Vec<Queue>,
    ) -> Result<(), ActivateError> {
        self.activated = Some((queues.len(), irq));
        Ok(())
    }
    fn reset(&mut self) {
        self.activated = None;
        self.resets += 1;
    }
}

const MEM_SIZE: usize = 0x10_0000;

struct Fixture {
    t: MmioTransport,
    dev: Arc<Mutex<Dummy>>,
    irq: Arc<CountingInterrupt>,
}

fn fixture() -> Fixture {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let dev = Arc::new(Mutex::new(Dummy::new()));
    let irq = Arc::new(CountingInterrupt(AtomicUsize::new(0)));
    let t = MmioTransport::new(dev.clone(), mem, irq.clone(), 0xd000_0000, 5).unwrap();
    Fixture { t, dev, irq }
}

fn rd(t: &mut MmioTransport, off: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(off, &mut b);
    u32::from_le_bytes(b)
}

fn wr(t: &mut MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

fn negotiate(t: &mut MmioTransport) {
    wr(t, reg::STATUS, status::ACKNOWLEDGE);
    wr(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    wr(t, reg::DRIVER_FEATURES_SEL, 1);
    wr(t, reg::DRIVER_FEATURES, 1);
    wr(t, reg::DRIVER_FEATURES_SEL, 0);
    wr(t, reg::DRIVER_FEATURES, 1 << 5);
    wr(
        t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
}

fn setup_queue(t: &mut MmioTransport, idx: u32, size: u32, base: u64) {
    wr(t, reg::QUEUE_SEL, idx);
    wr(t, reg::QUEUE_NUM, size);
    wr(t, reg::QUEUE_DESC_LOW, base as u32);
    wr(t, reg::QUEUE_DESC_HIGH, (base >> 32) as u32);
    wr(t, reg::QUEUE_DRIVER_LOW, base.wrapping_add(0x1000) as u32);
    wr(t, reg::QUEUE_DRIVER_HIGH, 0);
    wr(t, reg::QUEUE_DEVICE_LOW, base.wrapping_add(0x2000) as u32);
    wr(t, reg::QUEUE_DEVICE_HIGH, 0);
    wr(t, reg::QUEUE_READY, 1);
}

const ALL_OK: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

#[test]
fn identifies_as_virtio_mmio_v2() {
    let mut f = fixture();
    assert_eq!(rd(&mut f.t, reg::MAGIC), 0x7472_6976);
    assert_eq!(rd(&mut f.t, reg::VERSION), 2);
    assert_eq!(rd(&mut f.t, reg::DEVICE_ID), 42);
    wr(&mut f.t, reg::DEVICE_FEATURES_SEL, 0);
    assert_eq!(rd(&mut f.t, reg::DEVICE_FEATURES), 1 << 5);
    wr(&mut f.t, reg::DEVICE_FEATURES_SEL, 1);
    assert_eq!(rd(&mut f.t, reg::DEVICE_FEATURES), 1);
    wr(&mut f.t, reg::DEVICE_FEATURES_SEL, 7);
    assert_eq!(rd(&mut f.t, reg::DEVICE_FEATURES), 0);
    wr(&mut f.t, reg::QUEUE_SEL, 1);
    assert_eq!(rd(&mut f.t, reg::QUEUE_NUM_MAX), 8);
    wr(&mut f.t, reg::QUEUE_SEL, 2);
    assert_eq!(rd(&mut f.t, reg::QUEUE_NUM_MAX), 0);
    // Sub-word register access reads as zero rather than half a register.
    let mut b = [0xffu8; 2];
    f.t.read(reg::MAGIC, &mut b);
    assert_eq!(b, [0, 0]);
}

#[test]
fn full_handshake_activates_with_all_queues() {
    let mut f = fixture();
    negotiate(&mut f.t);
    assert_eq!(
        rd(&mut f.t, reg::STATUS) & status::FEATURES_OK,
        status::FEATURES_OK
    );
    assert_eq!(
        f.dev.lock().unwrap().acked,
        feature(VIRTIO_F_VERSION_1) | 1 << 5
    );
    setup_queue(&mut f.t, 0, 16, 0x1_0000);
    setup_queue(&mut f.t, 1, 4, 0x2_0000);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 1);
    wr(&mut f.t, reg::STATUS, ALL_OK);
    assert_eq!(rd(&mut f.t, reg::STATUS), ALL_OK);
    let (n, irq) = f.dev.lock().unwrap().activated.clone().unwrap();
    assert_eq!(n, 2);

    // The device's interrupt sets the status bit and raises the line; ACK clears it.
    irq.signal(InterruptKind::Queue(0)).unwrap();
    assert_eq!(rd(&mut f.t, reg::INTERRUPT_STATUS), 1);
    assert_eq!(f.irq.0.load(Ordering::SeqCst), 1);
    wr(&mut f.t, reg::INTERRUPT_ACK, 1);
    assert_eq!(rd(&mut f.t, reg::INTERRUPT_STATUS), 0);
    let gen0 = rd(&mut f.t, reg::CONFIG_GENERATION);
    irq.signal(InterruptKind::Config).unwrap();
    assert_eq!(rd(&mut f.t, reg::INTERRUPT_STATUS), 2);
    assert_ne!(rd(&mut f.t, reg::CONFIG_GENERATION), gen0);

    // Queue setup is frozen after DRIVER_OK.
    wr(&mut f.t, reg::QUEUE_SEL, 0);
    wr(&mut f.t, reg::QUEUE_READY, 0);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 1);

    // Reset returns everything to zero and resets the device.
    wr(&mut f.t, reg::STATUS, 0);
    assert_eq!(rd(&mut f.t, reg::STATUS), 0);
    assert_eq!(rd(&mut f.t, reg::INTERRUPT_STATUS), 0);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 0);
    assert_eq!(f.dev.lock().unwrap().resets, 1);
    assert!(f.dev.lock().unwrap().activated.is_none());
}

#[test]
fn refuses_unoffered_features_or_legacy_driver() {
    let mut f = fixture();
    wr(&mut f.t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    wr(&mut f.t, reg::DRIVER_FEATURES, 1 << 7); // not offered
    wr(&mut f.t, reg::DRIVER_FEATURES_SEL, 1);
    wr(&mut f.t, reg::DRIVER_FEATURES, 1);
    wr(
        &mut f.t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    assert_eq!(rd(&mut f.t, reg::STATUS) & status::FEATURES_OK, 0);

    let mut f = fixture();
    wr(&mut f.t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    wr(&mut f.t, reg::DRIVER_FEATURES, 1 << 5); // no VERSION_1
    wr(
        &mut f.t,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    assert_eq!(rd(&mut f.t, reg::STATUS) & status::FEATURES_OK, 0);
    // DRIVER_OK without FEATURES_OK does nothing.
    wr(&mut f.t, reg::STATUS, ALL_OK & !status::FEATURES_OK);
    assert!(f.dev.lock().unwrap().activated.is_none());
}

#[test]
fn rejects_hostile_queue_setups() {
    let mut f = fixture();
    negotiate(&mut f.t);
    // Not a power of two, larger than max, zero.
    for size in [3, 32, 0, 0x1_0000] {
        setup_queue(&mut f.t, 0, size, 0x1_0000);
        assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 0, "size {size}");
    }
    // Rings outside guest memory, or whose end wraps around the address space.
    setup_queue(&mut f.t, 0, 16, MEM_SIZE as u64);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 0);
    setup_queue(&mut f.t, 0, 16, u64::MAX - 0xfff);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 0);
    // Misaligned descriptor table.
    setup_queue(&mut f.t, 0, 16, 0x1_0008);
    assert_eq!(rd(&mut f.t, reg::QUEUE_READY), 0);
    // Selecting a queue that does not exist must not panic.
    setup_queue(&mut f.t, 9, 16, 0x1_0000);
    wr(&mut f.t, reg::QUEUE_NOTIFY, 9);
    // DRIVER_OK with queues not ready: device not activated, NEEDS_RESET reported.
    wr(&mut f.t, reg::STATUS, ALL_OK);
    assert!(f.dev.lock().unwrap().activated.is_none());
    assert_ne!(rd(&mut f.t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn queue_notify_write_signals_the_queue_eventfd() {
    let mut f = fixture();
    wr(&mut f.t, reg::QUEUE_NOTIFY, 1);
    assert_eq!(f.dev.lock().unwrap().evts[1].read().unwrap(), 1);
    assert!(f.dev.lock().unwrap().evts[0].read().is_err()); // EAGAIN: not signalled
    assert_eq!(f.t.queue_notify_evts().len(), 2);
}

#[test]
fn config_space_is_passed_through() {
    let mut f = fixture();
    let mut b = [0u8; 4];
    f.t.read(0x100, &mut b);
    assert_eq!(&b, b"abcd");
    let mut b = [0u8; 2];
    f.t.read(0x106, &mut b);
    assert_eq!(&b, b"gh");
    f.t.read(0x107, &mut b);
    assert_eq!(&b, b"h\0");
    f.t.read(0xfff, &mut b);
    assert_eq!(&b, b"\0\0");
    // Writes before the driver took the device are ignored.
    f.t.write(0x100, b"z");
    assert_eq!(f.dev.lock().unwrap().config[0], b'a');
    wr(&mut f.t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    f.t.write(0x100, b"z");
    assert_eq!(f.dev.lock().unwrap().config[0], b'z');
}

#[test]
fn status_cannot_skip_or_clear_steps() {
    let mut f = fixture();
    wr(&mut f.t, reg::STATUS, ALL_OK); // all at once without negotiation
    assert_eq!(
        rd(&mut f.t, reg::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
    assert!(f.dev.lock().unwrap().activated.is_none());
    wr(&mut f.t, reg::STATUS, status::ACKNOWLEDGE); // clearing DRIVER is ignored
    assert_eq!(
        rd(&mut f.t, reg::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
}

#[test]
fn aml_describes_lnro0005_window_and_gsi() {
    let f = fixture();
    let mut v = Vec::new();
    f.t.to_aml_bytes(&mut v);
    assert!(v.windows(8).any(|w| w == b"LNRO0005"));
    // Memory32Fixed descriptor (0x86) carrying the base address.
    let base = 0xd000_0000u32.to_le_bytes();
    assert!(v.windows(4).any(|w| w == base));
    assert!(v.windows(4).any(|w| w == b"V000"));
}
