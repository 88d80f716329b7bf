//! The virtio-blk device: feature set, config space, and the queue-processing loop.

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::config::{DiskImage, SECTOR_SIZE};
use super::request::{self, MAX_DISCARD_SEGMENTS, Parsed};
use crate::virtio::{
    ActivateError, GuestMemoryMmap, InterruptKind, TYPE_BLOCK, VIRTIO_F_VERSION_1,
    VIRTIO_RING_F_EVENT_IDX, VirtioDevice, VirtioInterrupt, read_config_bytes,
};

pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
pub const VIRTIO_BLK_F_TOPOLOGY: u64 = 1 << 10;
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
pub const VIRTIO_BLK_F_WRITE_ZEROES: u64 = 1 << 14;

/// Descriptors per queue. Linux uses at most queue_size - 2 data segments per request.
pub const QUEUE_SIZE: u16 = 256;
const QUEUE_SIZES: [u16; 1] = [QUEUE_SIZE];
/// Size of `struct virtio_blk_config` up to and including the write-zeroes fields.
const CONFIG_LEN: usize = 60;

/// Counters a test or benchmark can read; also useful in logs at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockStats {
    pub requests: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub errors: u64,
    /// Chains so broken that not even a status byte could be written.
    pub dropped: u64,
}

pub(crate) struct Active {
    pub(crate) mem: GuestMemoryMmap,
    pub(crate) interrupt: Arc<dyn VirtioInterrupt>,
    pub(crate) queue: Queue,
}

/// A virtio-blk device over one [`DiskImage`].
pub struct Block {
    pub(crate) disk: DiskImage,
    config: [u8; CONFIG_LEN],
    avail_features: u64,
    acked_features: u64,
    queue_evts: Vec<EventFd>,
    /// Written on activation (on a vCPU thread) so the event-manager thread starts serving.
    pub(crate) activate_evt: EventFd,
    pub(crate) active: Option<Active>,
    pub stats: BlockStats,
}

impl Block {
    pub fn new(disk: DiskImage) -> std::io::Result<Self> {
        let mut avail = VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_TOPOLOGY
            | VIRTIO_BLK_F_FLUSH;
        if disk.read_only {
            avail |= VIRTIO_BLK_F_RO;
        } else {
            avail |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
        }
        let config = build_config(&disk);
        Ok(Self {
            disk,
            config,
            avail_features: avail,
            acked_features: 0,
            queue_evts: vec![EventFd::new(EFD_NONBLOCK)?],
            activate_evt: EventFd::new(EFD_NONBLOCK)?,
            active: None,
            stats: BlockStats::default(),
        })
    }

    pub fn disk(&self) -> &DiskImage {
        &self.disk
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Serves every available request, then interrupts the guest if the queue asks for it.
    /// Returns the number of requests completed.
    pub fn process_queue(&mut self) -> usize {
        let Some(active) = self.active.as_mut() else {
            return 0;
        };
        let mem = &active.mem;
        let queue = &mut active.queue;
        let mut done = 0;
        loop {
            // With notifications off the guest need not kick us while we drain the ring;
            // re-enabling returns true if more arrived meanwhile.
            if queue.disable_notification(mem).is_err() {
                break;
            }
            let mut popped = 0;
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                popped += 1;
                let head = chain.head_index();
                let used_len = match request::parse(mem, chain) {
                    Parsed::Ok(req) => {
                        let out = request::execute(&self.disk, &req);
                        req.status.copy_from(&[out.status]);
                        self.stats.requests += 1;
                        match (out.status, req.kind) {
                            (request::VIRTIO_BLK_S_OK, request::VIRTIO_BLK_T_IN) => {
                                self.stats.read_bytes += u64::from(out.written)
                            }
                            (request::VIRTIO_BLK_S_OK, request::VIRTIO_BLK_T_OUT) => {
                                self.stats.write_bytes += req.readable_len
                            }
                            (request::VIRTIO_BLK_S_OK, _) => {}
                            _ => self.stats.errors += 1,
                        }
                        out.written + 1
                    }
                    Parsed::Bad(e, Some(status)) => {
                        tracing::debug!(
                            "virtio-blk {}: bad request: {e}",
                            self.disk.path.display()
                        );
                        status.copy_from(&[request::VIRTIO_BLK_S_IOERR]);
                        self.stats.errors += 1;
                        1
                    }
                    Parsed::Bad(e, None) => {
                        tracing::debug!(
                            "virtio-blk {}: dropped chain: {e}",
                            self.disk.path.display()
                        );
                        self.stats.dropped += 1;
                        0
                    }
                };
                if let Err(e) = queue.add_used(mem, head, used_len) {
                    tracing::warn!("virtio-blk: cannot update used ring: {e}");
                }
                done += 1;
            }
            match queue.enable_notification(mem) {
                Ok(true) if popped > 0 => continue,
                // "More available" yet nothing could be popped: the guest's avail index is
                // more than a queue size ahead. Looping would spin forever.
                Ok(true) => {
                    tracing::warn!(
                        "virtio-blk {}: guest avail index is invalid; ignoring the queue until the next notification",
                        self.disk.path.display()
                    );
                    break;
                }
                _ => break,
            }
        }
        if done > 0
            && queue.needs_notification(mem).unwrap_or(true)
            && let Err(e) = active.interrupt.signal(InterruptKind::Queue(0))
        {
            tracing::warn!("virtio-blk: cannot interrupt the guest: {e}");
        }
        done
    }
}

fn build_config(disk: &DiskImage) -> [u8; CONFIG_LEN] {
    let mut c = [0u8; CONFIG_LEN];
    let mut put = |off: usize, bytes: &[u8]| c[off..off + bytes.len()].copy_from_slice(bytes);
    // capacity is always in 512-byte sectors, whatever the block size.
    put(0, &(disk.capacity / SECTOR_SIZE).to_le_bytes());
    put(12, &u32::from(QUEUE_SIZE - 2).to_le_bytes()); // seg_max
    put(20, &disk.block_size.to_le_bytes()); // blk_size
    // topology: physical block = logical block, no misalignment, min/opt I/O = one block.
    put(24, &[0, 0]);
    put(26, &1u16.to_le_bytes()); // min_io_size, in logical blocks
    put(28, &0u32.to_le_bytes()); // opt_io_size
    // discard / write zeroes limits (in 512-byte sectors).
    let max_sectors = u32::MAX / SECTOR_SIZE as u32;
    put(36, &max_sectors.to_le_bytes());
    put(40, &MAX_DISCARD_SEGMENTS.to_le_bytes());
    put(44, &(disk.block_size / SECTOR_SIZE as u32).to_le_bytes());
    put(48, &max_sectors.to_le_bytes());
    put(52, &MAX_DISCARD_SEGMENTS.to_le_bytes());
    put(56, &[1]); // write_zeroes_may_unmap
    c
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features;
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_evts
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which we do
        // not offer: every write is ignored.
        tracing::debug!("virtio-blk: ignoring config write at {offset:#x}");
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        interrupt: Arc<dyn VirtioInterrupt>,
        mut queues: Vec<Queue>,
    ) -> Result<(), ActivateError> {
        if self.active.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        if queues.len() != 1 {
            return Err(ActivateError::QueueCount {
                expected: 1,
                got: queues.len(),
            });
        }
        let queue = queues.remove(0);
        self.active = Some(Active {
            mem,
            interrupt,
            queue,
        });
        // The event-manager thread does the rest (it may have requests waiting already).
        self.activate_evt.write(1).map_err(ActivateError::Signal)
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
    }
}
