//! A minimal in-process virtio driver: guest memory, a split queue laid out in it, and
//! helpers to publish descriptor chains and read the used ring. Used by the unit tests, the
//! request-path benchmark and the fuzz targets (which need it without virtio-queue's
//! `test-utils` feature).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use virtio_bindings::virtio_ring as ring;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::virtio::{GuestMemoryMmap, InterruptKind, VirtioInterrupt};

/// Descriptor flags as the 16-bit field of a split-ring descriptor holds them.
pub const VRING_DESC_F_NEXT: u16 = ring::VRING_DESC_F_NEXT as u16;
pub const VRING_DESC_F_WRITE: u16 = ring::VRING_DESC_F_WRITE as u16;
pub const VRING_DESC_F_INDIRECT: u16 = ring::VRING_DESC_F_INDIRECT as u16;

/// Counts interrupts instead of raising them.
#[derive(Default)]
pub struct CountingVirtioInterrupt(pub AtomicUsize);

impl CountingVirtioInterrupt {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl VirtioInterrupt for CountingVirtioInterrupt {
    fn signal(&self, _kind: InterruptKind) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// One descriptor as the driver writes it.
#[derive(Clone, Copy, Debug)]
pub struct RawDesc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// Guest memory with one split queue at its start and a bump allocator for buffers after it.
pub struct TestQueue {
    pub mem: GuestMemoryMmap,
    pub size: u16,
    pub desc_table: u64,
    pub avail: u64,
    pub used: u64,
    next_desc: u16,
    avail_idx: u16,
    data_start: u64,
    data_next: u64,
    data_end: u64,
}

impl TestQueue {
    /// `size` must be a power of two <= 32768; memory is `mem_size` bytes at address 0.
    pub fn new(mem_size: usize, size: u16) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), mem_size)])
            .expect("test guest memory");
        let n = u64::from(size);
        let data_start = (16 * n + 6 + 2 * n + 4 + 6 + 8 * n).next_multiple_of(4096);
        Self::with_layout(mem, 0, size, data_start..mem_size as u64)
    }

    /// A queue whose rings start at `ring_base` in existing memory `mem`, allocating buffers
    /// from `data`; several queues (e.g. a NIC's RX and TX) can share one memory this way.
    pub fn with_layout(
        mem: GuestMemoryMmap,
        ring_base: u64,
        size: u16,
        data: std::ops::Range<u64>,
    ) -> Self {
        let n = u64::from(size);
        let desc_table = ring_base;
        let avail = desc_table + 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        Self {
            mem,
            size,
            desc_table,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            data_start: data.start,
            data_next: data.start,
            data_end: data.end,
        }
    }

    /// A ready [`Queue`] pointing at this layout.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).expect("queue size");
        q.set_size(self.size);
        q.set_desc_table_address(Some(self.desc_table as u32), Some(0));
        q.set_avail_ring_address(Some(self.avail as u32), Some(0));
        q.set_used_ring_address(Some(self.used as u32), Some(0));
        q.set_ready(true);
        q
    }

    /// Reserves `len` bytes of buffer space, aligned to its size rounded up to a power of two
    /// (at least 16 bytes, at most 4 KiB), as a driver's allocator would; wraps to the start
    /// of the data area when memory runs out, which is fine for tests that complete requests
    /// in order.
    pub fn alloc(&mut self, len: u64) -> u64 {
        let align = len.next_power_of_two().clamp(16, 4096);
        let mut a = self.data_next.next_multiple_of(align);
        if a + len > self.data_end {
            a = self.data_start;
        }
        self.data_next = a + len;
        a
    }

    /// Forgets all allocations.
    pub fn reset_alloc(&mut self) {
        self.data_next = self.data_start;
    }

    pub fn write_desc(&self, index: u16, d: RawDesc) {
        let a = GuestAddress(self.desc_table + 16 * u64::from(index % self.size));
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..16].copy_from_slice(&d.next.to_le_bytes());
        self.mem.write_slice(&b, a).unwrap();
    }

    /// Puts `head` into the available ring and bumps its index.
    pub fn publish(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        self.mem
            .write_obj(head, GuestAddress(self.avail + 4 + 2 * slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx, GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// Writes `descs` into consecutive table slots linked with NEXT (the `next` and NEXT
    /// fields given are overwritten) and publishes the chain. Returns the head index.
    pub fn add_chain(&mut self, descs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let idx = self.next_desc;
            self.next_desc = (self.next_desc + 1) % self.size;
            let last = i + 1 == descs.len();
            let flags = if write { VRING_DESC_F_WRITE } else { 0 }
                | if last { 0 } else { VRING_DESC_F_NEXT };
            self.write_desc(
                idx,
                RawDesc {
                    addr,
                    len,
                    flags,
                    next: self.next_desc,
                },
            );
        }
        self.publish(head);
        head
    }

    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// (descriptor head, bytes written) of used-ring entry `i`.
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let a = self.used + 4 + 8 * u64::from(i % self.size);
        (
            self.mem.read_obj(GuestAddress(a)).unwrap(),
            self.mem.read_obj(GuestAddress(a + 4)).unwrap(),
        )
    }

    pub fn interrupt() -> Arc<CountingVirtioInterrupt> {
        Arc::new(CountingVirtioInterrupt::default())
    }
}

/// Builds the 16-byte virtio-blk request header.
pub fn blk_header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    h
}
