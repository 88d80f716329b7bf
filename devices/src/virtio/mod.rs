//! Virtio devices and the transport that presents them to the guest.
//!
//! A device ([`VirtioDevice`]) knows its own job (block I/O, networking) and nothing about how
//! the guest reaches it; a transport ([`mmio::MmioTransport`] today, virtio-pci maybe later)
//! owns the register interface, feature negotiation and queue configuration, and hands the
//! device its queues on activation. Devices signal the guest through [`VirtioInterrupt`], which
//! each transport implements its own way (an interrupt status register plus one GSI for mmio).
//!
//! Threading: the transport runs on vCPU threads (guest MMIO exits); queue processing runs on
//! the VMM's event-manager thread. Both reach the device through one `Arc<Mutex<_>>`; the
//! lock order is always transport -> device, so the two threads cannot deadlock.
//!
//! # Wiring a device into the VMM
//!
//! Per device, with guest memory `mem`, a free 4 KiB window `base` and a free GSI `gsi`:
//!
//! 1. Build the device: `Block::new(BlockConfig::open()?)` (after
//!    [`block::validate_disks`] over all disks), or `Net::new(mac, Box::new(backend))` with
//!    the backend from `usernet::UserNet::start` (keep the `UserNet` alive while the VM runs).
//! 2. `let dev = Arc::new(Mutex::new(device));` register `dev.clone()` with the VMM's
//!    `EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>` (its `init` registers the
//!    device's eventfds; nothing else is needed at run time).
//! 3. `let irq = EventFd::new(EFD_NONBLOCK)`; register it with KVM as an irqfd on `gsi`; wrap
//!    it as `Arc::new(EventFdInterrupt::new(irq))`.
//! 4. `MmioTransport::new(dev, mem.clone(), irq, base, gsi)`, put it on the MMIO bus at
//!    `[base, base + MMIO_WINDOW_SIZE)`, and append its AML to the DSDT.
//! 5. For each `(i, evt)` in `transport.queue_notify_evts()`: KVM ioeventfd at
//!    `base + QUEUE_NOTIFY_OFFSET`, 4 bytes, datamatch `i as u32`. (Without it, QueueNotify
//!    writes reach the transport as MMIO exits and work anyway, just slower.)
//!
//! Shutdown: stop the event-manager thread, drop the transports and the event manager (the
//! image files close and their locks go), then drop each `UserNet` (joins its thread).

pub mod block;
pub mod mmio;
pub mod net;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::interrupt::InterruptLine;

/// Guest memory as every virtio device here sees it.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// Device IDs, feature bits, status bits and register offsets come from the kernel's uapi
/// headers through `virtio-bindings`; nothing here restates a number of the spec.
pub use virtio_bindings::virtio_ids::{VIRTIO_ID_BLOCK, VIRTIO_ID_NET};

/// A feature bit number (as `virtio-bindings` gives them) as a mask of the 64-bit feature
/// word the transport negotiates.
pub const fn feature(bit: u32) -> u64 {
    1 << bit
}

/// Device status bits (virtio 1.2, section 2.1).
pub mod status {
    pub use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE as ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER as DRIVER,
        VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK, VIRTIO_CONFIG_S_FAILED as FAILED,
        VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK,
        VIRTIO_CONFIG_S_NEEDS_RESET as DEVICE_NEEDS_RESET,
    };
}

/// Why the device needs the guest's attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptKind {
    /// The device put buffers into the used ring of this queue.
    Queue(u16),
    /// The device changed its configuration space.
    Config,
}

/// How a device interrupts the guest; implemented by each transport.
pub trait VirtioInterrupt: Send + Sync {
    fn signal(&self, kind: InterruptKind) -> io::Result<()>;
}

/// The mmio flavour of [`VirtioInterrupt`]: sets a bit in the shared interrupt-status word and
/// raises the device's single GSI.
#[derive(Clone)]
pub struct MmioInterrupt {
    pub(crate) status: Arc<AtomicU32>,
    pub(crate) config_generation: Arc<AtomicU32>,
    line: Arc<dyn InterruptLine>,
}

impl MmioInterrupt {
    pub fn new(line: Arc<dyn InterruptLine>) -> Self {
        Self {
            status: Arc::new(AtomicU32::new(0)),
            config_generation: Arc::new(AtomicU32::new(0)),
            line,
        }
    }
}

impl VirtioInterrupt for MmioInterrupt {
    fn signal(&self, kind: InterruptKind) -> io::Result<()> {
        let bit = match kind {
            InterruptKind::Queue(_) => VIRTIO_MMIO_INT_VRING,
            InterruptKind::Config => {
                self.config_generation.fetch_add(1, Ordering::SeqCst);
                VIRTIO_MMIO_INT_CONFIG
            }
        };
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.line.trigger()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("device expects {expected} queues, the driver enabled {got}")]
    QueueCount { expected: usize, got: usize },
    #[error("device cannot be activated twice without a reset")]
    AlreadyActive,
    #[error("cannot signal the device's event thread: {0}")]
    Signal(io::Error),
    #[error("{0}")]
    Backend(String),
}

/// One virtio device, independent of the transport.
///
/// Config-space accessors are given the offset inside the device-specific configuration
/// (0 = first byte of e.g. `struct virtio_blk_config`); out-of-range bytes read as zero and
/// out-of-range writes are ignored.
pub trait VirtioDevice: Send {
    /// Virtio device ID ([`VIRTIO_ID_BLOCK`], [`VIRTIO_ID_NET`], ...).
    fn device_type(&self) -> u32;
    /// Every feature the device offers (a mask of [`feature`]s), including
    /// `VIRTIO_F_VERSION_1`.
    fn avail_features(&self) -> u64;
    /// Called once the driver set FEATURES_OK; `features` is a subset of `avail_features`.
    fn set_acked_features(&mut self, features: u64);
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// One eventfd per queue, signalled when the driver notifies that queue. They exist for
    /// the device's whole life (not only while active) so the VMM can register them once as
    /// KVM ioeventfds and the device's event subscriber can watch them from the start.
    fn queue_events(&self) -> &[EventFd];
    fn read_config(&self, offset: u64, data: &mut [u8]);
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Hands the device its (validated) queues. Called on a vCPU thread: the device must not
    /// do I/O here, only store its state and wake its event-manager subscriber.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<Queue>,
    ) -> Result<(), ActivateError>;
    /// Drops queues and guest-memory references and returns to the pre-activation state.
    fn reset(&mut self);
}

/// Reads `data.len()` bytes at `offset` out of a device's config bytes; bytes past the end
/// read as zero.
pub(crate) fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= config.len() {
        return;
    }
    let n = data.len().min(config.len() - start);
    data[..n].copy_from_slice(&config[start..start + n]);
}
