//! virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2).
//!
//! One 4 KiB window and one GSI per device. The guest drives everything through 32-bit
//! register accesses; values it writes are validated before they reach a [`Queue`] (sizes,
//! alignment, ring placement inside guest memory) and the status register follows the
//! driver-initialisation state machine, so a confused or hostile driver cannot activate a
//! device with queues pointing outside its memory.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use acpi_tables::{Aml, AmlSink, aml};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::EventFd;

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_mmio as m;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

use super::{GuestMemoryMmap, MmioInterrupt, VirtioDevice, feature, status};
use crate::bus::BusDevice;
use crate::interrupt::InterruptLine;

/// Size of each device's MMIO window.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;
/// Offset of QueueNotify; the VMM registers a KVM ioeventfd here per queue (datamatch = index).
pub const QUEUE_NOTIFY_OFFSET: u64 = reg::QUEUE_NOTIFY;

/// What MagicValue reads: "virt" in little-endian.
const MAGIC: u32 = u32::from_le_bytes(*b"virt");
/// The non-legacy register layout (virtio 1.2, 4.2.2); version 1 is the legacy one.
const VERSION: u32 = 2;
/// Vendor ID reported to the guest ("VMTS"); drivers do not interpret it.
const VENDOR_ID: u32 = u32::from_le_bytes(*b"VMTS");
/// Where the device-specific configuration space starts.
const CONFIG_OFFSET: u64 = reg::at(m::VIRTIO_MMIO_CONFIG);

/// Register offsets, as the kernel's `virtio_mmio.h` names them (QueueDriver and QueueDevice
/// are its QUEUE_AVAIL and QUEUE_USED), widened to the bus's offset type.
mod reg {
    use super::m;

    pub const fn at(offset: u32) -> u64 {
        offset as u64
    }

    pub const MAGIC: u64 = at(m::VIRTIO_MMIO_MAGIC_VALUE);
    pub const VERSION: u64 = at(m::VIRTIO_MMIO_VERSION);
    pub const DEVICE_ID: u64 = at(m::VIRTIO_MMIO_DEVICE_ID);
    pub const VENDOR_ID: u64 = at(m::VIRTIO_MMIO_VENDOR_ID);
    pub const DEVICE_FEATURES: u64 = at(m::VIRTIO_MMIO_DEVICE_FEATURES);
    pub const DEVICE_FEATURES_SEL: u64 = at(m::VIRTIO_MMIO_DEVICE_FEATURES_SEL);
    pub const DRIVER_FEATURES: u64 = at(m::VIRTIO_MMIO_DRIVER_FEATURES);
    pub const DRIVER_FEATURES_SEL: u64 = at(m::VIRTIO_MMIO_DRIVER_FEATURES_SEL);
    pub const QUEUE_SEL: u64 = at(m::VIRTIO_MMIO_QUEUE_SEL);
    pub const QUEUE_NUM_MAX: u64 = at(m::VIRTIO_MMIO_QUEUE_NUM_MAX);
    pub const QUEUE_NUM: u64 = at(m::VIRTIO_MMIO_QUEUE_NUM);
    pub const QUEUE_READY: u64 = at(m::VIRTIO_MMIO_QUEUE_READY);
    pub const QUEUE_NOTIFY: u64 = at(m::VIRTIO_MMIO_QUEUE_NOTIFY);
    pub const INTERRUPT_STATUS: u64 = at(m::VIRTIO_MMIO_INTERRUPT_STATUS);
    pub const INTERRUPT_ACK: u64 = at(m::VIRTIO_MMIO_INTERRUPT_ACK);
    pub const STATUS: u64 = at(m::VIRTIO_MMIO_STATUS);
    pub const QUEUE_DESC_LOW: u64 = at(m::VIRTIO_MMIO_QUEUE_DESC_LOW);
    pub const QUEUE_DESC_HIGH: u64 = at(m::VIRTIO_MMIO_QUEUE_DESC_HIGH);
    pub const QUEUE_DRIVER_LOW: u64 = at(m::VIRTIO_MMIO_QUEUE_AVAIL_LOW);
    pub const QUEUE_DRIVER_HIGH: u64 = at(m::VIRTIO_MMIO_QUEUE_AVAIL_HIGH);
    pub const QUEUE_DEVICE_LOW: u64 = at(m::VIRTIO_MMIO_QUEUE_USED_LOW);
    pub const QUEUE_DEVICE_HIGH: u64 = at(m::VIRTIO_MMIO_QUEUE_USED_HIGH);
    pub const SHM_SEL: u64 = at(m::VIRTIO_MMIO_SHM_SEL);
    pub const SHM_LEN_LOW: u64 = at(m::VIRTIO_MMIO_SHM_LEN_LOW);
    pub const SHM_LEN_HIGH: u64 = at(m::VIRTIO_MMIO_SHM_LEN_HIGH);
    pub const SHM_BASE_LOW: u64 = at(m::VIRTIO_MMIO_SHM_BASE_LOW);
    pub const SHM_BASE_HIGH: u64 = at(m::VIRTIO_MMIO_SHM_BASE_HIGH);
    pub const CONFIG_GENERATION: u64 = at(m::VIRTIO_MMIO_CONFIG_GENERATION);
}

/// What the driver has configured for one queue; turned into a [`Queue`] only once it has
/// been checked.
#[derive(Clone, Copy, Debug, Default)]
struct QueueSetup {
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

fn set_low(v: &mut u64, low: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(low);
}

fn set_high(v: &mut u64, high: u32) {
    *v = (*v & 0xffff_ffff) | (u64::from(high) << 32);
}

/// A virtio device behind a virtio-mmio register window.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMemoryMmap,
    interrupt: MmioInterrupt,
    base: u64,
    gsi: u32,
    /// Duplicates of the device's queue eventfds, so the VMM can register them as ioeventfds
    /// without locking the device.
    notify_evts: Vec<EventFd>,
    queue_max: Vec<u16>,
    device_type: u32,
    avail_features: u64,

    device_features_sel: u32,
    driver_features_sel: u32,
    acked_features: u64,
    queue_sel: u32,
    queues: Vec<QueueSetup>,
    status: u32,
    activated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    #[error("cannot duplicate a queue notification eventfd: {0}")]
    EventFd(std::io::Error),
    #[error("device offers no queues")]
    NoQueues,
}

fn lock(dev: &Mutex<dyn VirtioDevice>) -> std::sync::MutexGuard<'_, dyn VirtioDevice + 'static> {
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

impl MmioTransport {
    /// `base` and `gsi` only feed the device's ACPI description; the VMM places the window on
    /// its MMIO bus at `base` and backs `irq` with an irqfd on `gsi`.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: GuestMemoryMmap,
        irq: Arc<dyn InterruptLine>,
        base: u64,
        gsi: u32,
    ) -> Result<Self, MmioError> {
        let (notify_evts, queue_max, device_type, avail_features) = {
            let d = lock(&device);
            let evts = d
                .queue_events()
                .iter()
                .map(|e| e.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(MmioError::EventFd)?;
            (
                evts,
                d.queue_max_sizes().to_vec(),
                d.device_type(),
                d.avail_features() | feature(VIRTIO_F_VERSION_1),
            )
        };
        if queue_max.is_empty() {
            return Err(MmioError::NoQueues);
        }
        let queues = vec![QueueSetup::default(); queue_max.len()];
        let mut t = Self {
            device,
            mem,
            interrupt: MmioInterrupt::new(irq),
            base,
            gsi,
            notify_evts,
            queue_max,
            device_type,
            avail_features,
            device_features_sel: 0,
            driver_features_sel: 0,
            acked_features: 0,
            queue_sel: 0,
            queues,
            status: 0,
            activated: false,
        };
        t.reset_queues();
        Ok(t)
    }

    /// One eventfd per queue, index = queue number. Register each as a KVM ioeventfd at
    /// `base + QUEUE_NOTIFY_OFFSET`, 4 bytes, datamatch = its index.
    pub fn queue_notify_evts(&self) -> &[EventFd] {
        &self.notify_evts
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// The device behind this transport (for the VMM to register it with its event manager).
    pub fn device(&self) -> &Arc<Mutex<dyn VirtioDevice>> {
        &self.device
    }

    /// Current device status as the driver sees it.
    pub fn status(&self) -> u32 {
        self.status
    }

    fn reset_queues(&mut self) {
        for (q, &max) in self.queues.iter_mut().zip(&self.queue_max) {
            *q = QueueSetup {
                size: max,
                ..Default::default()
            };
        }
    }

    fn reset(&mut self) {
        if self.activated {
            lock(&self.device).reset();
            self.activated = false;
        }
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.acked_features = 0;
        self.queue_sel = 0;
        self.status = 0;
        self.interrupt.status.store(0, Ordering::SeqCst);
        self.reset_queues();
    }

    fn selected_queue(&mut self) -> Option<&mut QueueSetup> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Queue configuration is only writable between FEATURES_OK and DRIVER_OK, and only
    /// while the selected queue is not enabled.
    fn queue_writable(&mut self) -> Option<&mut QueueSetup> {
        let phase_ok = self.status & status::FEATURES_OK != 0
            && self.status & (status::DRIVER_OK | status::FAILED) == 0;
        let q = self.selected_queue()?;
        (phase_ok && !q.ready).then_some(q)
    }

    /// Builds a checked [`Queue`] from the driver's setup; `None` (with a log line naming the
    /// problem) when the guest gave a bad size, misaligned or out-of-memory rings.
    fn build_queue(&self, index: usize, setup: &QueueSetup) -> Option<Queue> {
        let max = self.queue_max[index];
        let mut q = Queue::new(max).ok()?;
        let bad = |what: &str| {
            tracing::warn!(
                "virtio-mmio@{:#x} queue {index}: {what}; refusing to enable it",
                self.base
            );
        };
        if q.try_set_size(setup.size).is_err() {
            bad(&format!(
                "size {} is not a power of two in 1..={max}",
                setup.size
            ));
            return None;
        }
        if q.try_set_desc_table_address(GuestAddress(setup.desc))
            .and_then(|_| q.try_set_avail_ring_address(GuestAddress(setup.avail)))
            .and_then(|_| q.try_set_used_ring_address(GuestAddress(setup.used)))
            .is_err()
        {
            bad("ring address misaligned");
            return None;
        }
        q.set_ready(true);
        if !q.is_valid(&self.mem) {
            bad("rings not inside guest memory");
            return None;
        }
        q.set_event_idx(self.acked_features & feature(VIRTIO_RING_F_EVENT_IDX) != 0);
        Some(q)
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        // The driver only ever adds bits (virtio 1.2, 3.1.1); anything else is a bug we do
        // not try to interpret.
        if v & self.status != self.status {
            tracing::warn!(
                "virtio-mmio@{:#x}: driver cleared status bits ({:#x} -> {v:#x}); ignored",
                self.base,
                self.status
            );
            return;
        }
        let new = v & !self.status;
        if new & status::FAILED != 0 {
            self.status |= status::FAILED;
            return;
        }
        if new & status::ACKNOWLEDGE != 0 {
            self.status |= status::ACKNOWLEDGE;
        }
        if new & status::DRIVER != 0 && self.status & status::ACKNOWLEDGE != 0 {
            self.status |= status::DRIVER;
        }
        if new & status::FEATURES_OK != 0 && self.status & status::DRIVER != 0 {
            // Refuse FEATURES_OK (the driver re-reads it and gives up) unless the driver
            // acked only offered features and speaks virtio 1.
            if self.acked_features & !self.avail_features == 0
                && self.acked_features & feature(VIRTIO_F_VERSION_1) != 0
            {
                self.status |= status::FEATURES_OK;
                lock(&self.device).set_acked_features(self.acked_features);
            } else {
                tracing::warn!(
                    "virtio-mmio@{:#x}: driver features {:#x} not acceptable (offered {:#x})",
                    self.base,
                    self.acked_features,
                    self.avail_features
                );
            }
        }
        if new & status::DRIVER_OK != 0 && self.status & status::FEATURES_OK != 0 {
            self.status |= status::DRIVER_OK;
            self.activate();
        }
    }

    fn activate(&mut self) {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, setup) in self.queues.iter().enumerate() {
            if !setup.ready {
                tracing::warn!(
                    "virtio-mmio@{:#x}: DRIVER_OK with queue {i} not enabled",
                    self.base
                );
                self.status |= status::DEVICE_NEEDS_RESET;
                return;
            }
            match self.build_queue(i, setup) {
                Some(q) => queues.push(q),
                None => {
                    self.status |= status::DEVICE_NEEDS_RESET;
                    return;
                }
            }
        }
        let irq = Arc::new(self.interrupt.clone());
        match lock(&self.device).activate(self.mem.clone(), irq, queues) {
            Ok(()) => self.activated = true,
            Err(e) => {
                tracing::error!("virtio-mmio@{:#x}: activation failed: {e}", self.base);
                self.status |= status::DEVICE_NEEDS_RESET;
            }
        }
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device_type,
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.avail_features as u32,
                1 => (self.avail_features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => q.map_or(0, |_| self.queue_max[self.queue_sel as usize].into()),
            reg::QUEUE_READY => q.map_or(0, |q| q.ready.into()),
            reg::INTERRUPT_STATUS => self.interrupt.status.load(Ordering::SeqCst),
            reg::STATUS => self.status,
            // No shared memory regions: length all-ones means "does not exist".
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => self.interrupt.config_generation.load(Ordering::SeqCst),
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => {
                // Features are negotiated only in the DRIVER phase, before FEATURES_OK.
                if self.status & status::DRIVER == 0 || self.status & status::FEATURES_OK != 0 {
                    return;
                }
                match self.driver_features_sel {
                    0 => set_low(&mut self.acked_features, v),
                    1 => set_high(&mut self.acked_features, v),
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => {
                if let Some(q) = self.queue_writable() {
                    q.size = v.min(u32::from(u16::MAX)) as u16;
                    if v > u32::from(u16::MAX) {
                        q.size = 0; // never valid; caught when the queue is enabled
                    }
                }
            }
            reg::QUEUE_READY => {
                if v == 1 {
                    let sel = self.queue_sel as usize;
                    let Some(setup) = self.queue_writable().copied() else {
                        return;
                    };
                    // Check now so a driver that reads QueueReady back sees the refusal.
                    if self.build_queue(sel, &setup).is_some() {
                        self.queues[sel].ready = true;
                    }
                } else if v == 0
                    && self.status & status::DRIVER_OK == 0
                    && let Some(q) = self.selected_queue()
                {
                    q.ready = false;
                }
            }
            reg::QUEUE_NOTIFY => {
                // Normally KVM's ioeventfd swallows this write; without one it lands here.
                if let Some(evt) = self.notify_evts.get(v as usize)
                    && let Err(e) = evt.write(1)
                {
                    tracing::warn!("virtio-mmio@{:#x}: notify failed: {e}", self.base);
                }
            }
            reg::INTERRUPT_ACK => {
                self.interrupt.status.fetch_and(!v, Ordering::SeqCst);
            }
            reg::STATUS => self.write_status(v),
            reg::QUEUE_DESC_LOW => {
                if let Some(q) = self.queue_writable() {
                    set_low(&mut q.desc, v)
                }
            }
            reg::QUEUE_DESC_HIGH => {
                if let Some(q) = self.queue_writable() {
                    set_high(&mut q.desc, v)
                }
            }
            reg::QUEUE_DRIVER_LOW => {
                if let Some(q) = self.queue_writable() {
                    set_low(&mut q.avail, v)
                }
            }
            reg::QUEUE_DRIVER_HIGH => {
                if let Some(q) = self.queue_writable() {
                    set_high(&mut q.avail, v)
                }
            }
            reg::QUEUE_DEVICE_LOW => {
                if let Some(q) = self.queue_writable() {
                    set_low(&mut q.used, v)
                }
            }
            reg::QUEUE_DEVICE_HIGH => {
                if let Some(q) = self.queue_writable() {
                    set_high(&mut q.used, v)
                }
            }
            reg::SHM_SEL => {}
            _ => tracing::debug!(
                "virtio-mmio@{:#x}: write {v:#x} to unknown register {offset:#x}",
                self.base
            ),
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            lock(&self.device).read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        // Registers are 32 bits wide and must be accessed as such (virtio 1.2, 4.2.2.2).
        if data.len() != 4 || !offset.is_multiple_of(4) {
            data.fill(0);
            return;
        }
        data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            // Config writes only make sense once the driver has taken the device.
            if self.status & status::DRIVER != 0 {
                lock(&self.device).write_config(offset - CONFIG_OFFSET, data);
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        if !offset.is_multiple_of(4) {
            return;
        }
        self.write_reg(offset, u32::from_le_bytes(bytes));
    }
}

impl Aml for MmioTransport {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        // Names must be unique in the DSDT: derive one from the window's page number.
        let name = format!("V{:03X}", (self.base >> 12) & 0xfff);
        let hid = aml::Name::new("_HID".into(), &"LNRO0005");
        let uid = aml::Name::new("_UID".into(), &((self.base >> 12) as u32));
        let mem = aml::Memory32Fixed::new(true, self.base as u32, MMIO_WINDOW_SIZE as u32);
        let irq = aml::Interrupt::new(true, true, false, false, self.gsi);
        let crs = aml::Name::new("_CRS".into(), &aml::ResourceTemplate::new(vec![&mem, &irq]));
        aml::Device::new(name.as_str().into(), vec![&hid, &uid, &crs]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests;
