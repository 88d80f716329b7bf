//! The virtio-blk device: feature set, config space, and the queue-processing loop.

use std::sync::Arc;

use std::mem::{offset_of, size_of};

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_WRITE_ZEROES, virtio_blk_config,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::ByteValued;
use vm_memory::endian::{Le16, Le32, Le64};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::config::{DiskImage, SECTOR_SIZE};
use super::request::{self, MAX_DISCARD_SEGMENTS, Parsed};
use crate::virtio::{
    ActivateError, GuestMemoryMmap, InterruptKind, VIRTIO_ID_BLOCK, VirtioDevice, VirtioInterrupt,
    feature, read_config_bytes,
};

/// Descriptors per queue. Linux uses at most queue_size - 2 data segments per request.
pub const QUEUE_SIZE: u16 = 256;
const QUEUE_SIZES: [u16; 1] = [QUEUE_SIZE];

/// `struct virtio_blk_config` (virtio 1.2, 5.2.4) up to the secure-erase fields, as the
/// guest reads it. Fields past what the offered features cover read as zero. Every field is
/// little-endian and naturally aligned, so the struct has no padding and is plain bytes; the
/// assertions below hold it to the kernel header's layout (`virtio-bindings`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct ConfigSpace {
    capacity: Le64,
    size_max: Le32,
    seg_max: Le32,
    geometry_cylinders: Le16,
    geometry_heads: u8,
    geometry_sectors: u8,
    blk_size: Le32,
    physical_block_exp: u8,
    alignment_offset: u8,
    min_io_size: Le16,
    opt_io_size: Le32,
    wce: u8,
    unused: u8,
    num_queues: Le16,
    max_discard_sectors: Le32,
    max_discard_seg: Le32,
    discard_sector_alignment: Le32,
    max_write_zeroes_sectors: Le32,
    max_write_zeroes_seg: Le32,
    write_zeroes_may_unmap: u8,
    unused1: [u8; 3],
    max_secure_erase_sectors: Le32,
    max_secure_erase_seg: Le32,
    secure_erase_sector_alignment: Le32,
}

// SAFETY: `ConfigSpace` is `repr(C)` with only integer fields (u8 arrays and the
// `repr(transparent)` little-endian integers of vm-memory), each at an offset that is a
// multiple of its alignment and with a total size that is a multiple of the largest one
// (checked below), so it has no padding and every bit pattern is a valid value.
unsafe impl ByteValued for ConfigSpace {}

/// The layout is the kernel's: same offsets as `virtio_blk_config`, ending where its zoned
/// characteristics start, with no padding anywhere.
const _: () = {
    macro_rules! same_offset {
        ($($ours:ident => $theirs:ident),* $(,)?) => {
            $(assert!(offset_of!(ConfigSpace, $ours) == offset_of!(virtio_blk_config, $theirs));)*
        };
    }
    same_offset!(
        capacity => capacity,
        size_max => size_max,
        seg_max => seg_max,
        geometry_cylinders => geometry,
        blk_size => blk_size,
        physical_block_exp => physical_block_exp,
        alignment_offset => alignment_offset,
        min_io_size => min_io_size,
        opt_io_size => opt_io_size,
        wce => wce,
        num_queues => num_queues,
        max_discard_sectors => max_discard_sectors,
        max_discard_seg => max_discard_seg,
        discard_sector_alignment => discard_sector_alignment,
        max_write_zeroes_sectors => max_write_zeroes_sectors,
        max_write_zeroes_seg => max_write_zeroes_seg,
        write_zeroes_may_unmap => write_zeroes_may_unmap,
        max_secure_erase_sectors => max_secure_erase_sectors,
        max_secure_erase_seg => max_secure_erase_seg,
        secure_erase_sector_alignment => secure_erase_sector_alignment,
    );
    assert!(size_of::<ConfigSpace>() == offset_of!(virtio_blk_config, zoned));
    assert!(
        offset_of!(ConfigSpace, geometry_heads) == offset_of!(ConfigSpace, geometry_cylinders) + 2
    );
    assert!(
        offset_of!(ConfigSpace, unused1) + 3 == offset_of!(ConfigSpace, max_secure_erase_sectors)
    );
};

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
    config: ConfigSpace,
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
        let mut avail = feature(VIRTIO_F_VERSION_1)
            | feature(VIRTIO_RING_F_EVENT_IDX)
            | feature(VIRTIO_BLK_F_SEG_MAX)
            | feature(VIRTIO_BLK_F_BLK_SIZE)
            | feature(VIRTIO_BLK_F_TOPOLOGY)
            | feature(VIRTIO_BLK_F_FLUSH);
        if disk.read_only {
            avail |= feature(VIRTIO_BLK_F_RO);
        } else {
            avail |= feature(VIRTIO_BLK_F_DISCARD) | feature(VIRTIO_BLK_F_WRITE_ZEROES);
        }
        let config = config_space(&disk);
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

fn config_space(disk: &DiskImage) -> ConfigSpace {
    // Discard and write-zeroes limits are in 512-byte sectors, like the capacity, whatever
    // the block size.
    let max_sectors = u32::MAX / SECTOR_SIZE as u32;
    ConfigSpace {
        capacity: (disk.capacity / SECTOR_SIZE).into(),
        seg_max: u32::from(QUEUE_SIZE - 2).into(),
        blk_size: disk.block_size.into(),
        // Topology: physical block = logical block, no misalignment, minimum I/O one
        // block, no optimal size.
        physical_block_exp: 0,
        alignment_offset: 0,
        min_io_size: 1.into(),
        opt_io_size: 0.into(),
        max_discard_sectors: max_sectors.into(),
        max_discard_seg: MAX_DISCARD_SEGMENTS.into(),
        discard_sector_alignment: (disk.block_size / SECTOR_SIZE as u32).into(),
        max_write_zeroes_sectors: max_sectors.into(),
        max_write_zeroes_seg: MAX_DISCARD_SEGMENTS.into(),
        write_zeroes_may_unmap: 1,
        ..ConfigSpace::default()
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
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
        read_config_bytes(self.config.as_slice(), offset, data);
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
