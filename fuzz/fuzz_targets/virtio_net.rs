//! Guest-controlled bytes -> virtio-net TX and RX queue processing.
//!
//! The input fills the TX queue's descriptor table and avail ring, the RX queue's, and the
//! rest of guest memory; a few frames wait on the backend for RX. The device must consume
//! or drop every chain without panicking, never send more than one frame's worth per chain,
//! and never write outside the guest's memory.
#![no_main]

use std::os::fd::AsRawFd;

use devices::virtio::VirtioDevice;
use devices::virtio::block::test_utils::TestQueue;
use devices::virtio::net::{MAX_FRAME_LEN, MacAddr, Net, SocketBackend, recv_frame, send_frame};
use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const MEM_SIZE: usize = 0x1_0000;
const QSIZE: u16 = 16;
const TX_BASE: u64 = 0x800;

fuzz_target!(|data: &[u8]| {
    let rxq = TestQueue::new(MEM_SIZE, QSIZE);
    let mem = rxq.mem.clone();
    // RX queue at the TestQueue layout (0x0..), TX queue's rings at TX_BASE.
    let table = 16 * usize::from(QSIZE);
    let ring = 4 + 2 * usize::from(QSIZE);
    let mut rest = data;
    let mut take = |n: usize| {
        let (a, b) = rest.split_at(rest.len().min(n));
        rest = b;
        a
    };
    mem.write_slice(take(table), GuestAddress(rxq.desc_table))
        .unwrap();
    mem.write_slice(take(ring), GuestAddress(rxq.avail))
        .unwrap();
    mem.write_slice(take(table), GuestAddress(TX_BASE)).unwrap();
    mem.write_slice(take(ring), GuestAddress(TX_BASE + 0x100))
        .unwrap();
    let body = take(MEM_SIZE - 0x1000);
    mem.write_slice(body, GuestAddress(0x1000)).unwrap();

    let mut txq = Queue::new(QSIZE).unwrap();
    txq.set_desc_table_address(Some(TX_BASE as u32), Some(0));
    txq.set_avail_ring_address(Some((TX_BASE + 0x100) as u32), Some(0));
    txq.set_used_ring_address(Some((TX_BASE + 0x200) as u32), Some(0));
    txq.set_ready(true);

    let (backend, peer) = SocketBackend::pair().unwrap();
    let mut net = Net::new(MacAddr::default_for_nic(0), Box::new(backend)).unwrap();
    net.activate(mem.clone(), TestQueue::interrupt(), vec![rxq.queue(), txq])
        .unwrap();
    // Frames waiting for the guest: a small one, a full-size one, an oversized one.
    for len in [60, MAX_FRAME_LEN, MAX_FRAME_LEN + 100] {
        send_frame(peer.as_raw_fd(), &vec![0xab; len]).unwrap();
    }
    net.process_tx();
    net.process_rx();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = recv_frame(peer.as_raw_fd(), &mut buf).unwrap() {
        assert!(n <= MAX_FRAME_LEN, "device sent a {n}-byte frame");
    }
});
