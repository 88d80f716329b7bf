//! virtio-blk against hostile and well-formed chains, over virtio-queue's MockSplitQueue and
//! a real (temporary) image file.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::tempfile::TempFile;

use super::request::*;
use super::test_utils::{TestQueue, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, blk_header};
use super::*;
use crate::virtio::{GuestMemoryMmap, VirtioDevice, feature};
use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_RO};

const MEM_SIZE: usize = 0x10_0000;
const DISK_SIZE: u64 = 64 * 1024;
const HDR: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;

struct Fixture {
    _file: TempFile,
    block: Block,
    mem: GuestMemoryMmap,
}

fn fixture(ro: bool, serial: Option<&str>) -> Fixture {
    let file = TempFile::new().unwrap();
    file.as_file().set_len(DISK_SIZE).unwrap();
    // Recognisable content: byte i of sector s is s.
    for s in 0..DISK_SIZE / 512 {
        file.as_file()
            .write_all_at(&[s as u8; 512], s * 512)
            .unwrap();
    }
    let mut cfg = BlockConfig::new(file.as_path());
    cfg.read_only = ro;
    cfg.serial = serial.map(String::from);
    let block = Block::new(cfg.open().unwrap()).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    Fixture {
        _file: file,
        block,
        mem,
    }
}

fn desc(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, 0))
}

const W: u16 = VRING_DESC_F_WRITE;

/// Publishes `descs` as one chain (linked in order), runs the device, and returns
/// (used length, status byte at STATUS).
fn run_chain(f: &mut Fixture, kind: u32, sector: u64, descs: &[RawDescriptor]) -> (u32, u8) {
    f.mem
        .write_slice(&blk_header(kind, sector), GuestAddress(HDR))
        .unwrap();
    f.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    // Link descriptors 0..n with NEXT, keep the caller's flags otherwise.
    let linked: Vec<RawDescriptor> = descs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = SplitDescriptor::from(*d);
            let last = i + 1 == descs.len();
            let flags = if last {
                d.flags() & !VRING_DESC_F_NEXT
            } else {
                d.flags() | VRING_DESC_F_NEXT
            };
            RawDescriptor::from(SplitDescriptor::new(
                d.addr().0,
                d.len(),
                flags,
                i as u16 + 1,
            ))
        })
        .collect();
    vq.add_desc_chains(&linked, 0).unwrap();
    run_queue(f, &vq)
}

fn run_queue(f: &mut Fixture, vq: &MockSplitQueue<GuestMemoryMmap>) -> (u32, u8) {
    let q: Queue = vq.create_queue().unwrap();
    f.block.reset();
    f.block
        .activate(f.mem.clone(), TestQueue::interrupt(), vec![q])
        .unwrap();
    assert_eq!(f.block.process_queue(), 1);
    assert_eq!(vq.used().idx().load(), 1);
    let elem = vq.used().ring().ref_at(0).unwrap().load();
    assert_eq!(elem.id(), 0);
    (elem.len(), f.mem.read_obj(GuestAddress(STATUS)).unwrap())
}

fn read_req(len: u32) -> Vec<RawDescriptor> {
    vec![desc(HDR, 16, 0), desc(DATA, len, W), desc(STATUS, 1, W)]
}

fn write_req(len: u32) -> Vec<RawDescriptor> {
    vec![desc(HDR, 16, 0), desc(DATA, len, 0), desc(STATUS, 1, W)]
}

#[test]
fn reads_and_writes_reach_the_file() {
    let mut f = fixture(false, None);
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 3, &read_req(1024));
    assert_eq!((len, st), (1025, VIRTIO_BLK_S_OK));
    let mut buf = [0u8; 1024];
    f.mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf[..512].iter().all(|&b| b == 3) && buf[512..].iter().all(|&b| b == 4));

    f.mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_OUT, 7, &write_req(512));
    assert_eq!((len, st), (1, VIRTIO_BLK_S_OK));
    let mut back = [0u8; 512];
    f.block
        .disk()
        .file
        .read_exact_at(&mut back, 7 * 512)
        .unwrap();
    assert_eq!(back, [0xab; 512]);

    let (len, st) = run_chain(
        &mut f,
        VIRTIO_BLK_T_FLUSH,
        0,
        &[desc(HDR, 16, 0), desc(STATUS, 1, W)],
    );
    assert_eq!((len, st), (1, VIRTIO_BLK_S_OK));
    assert_eq!(f.block.stats.read_bytes, 1024);
    assert_eq!(f.block.stats.write_bytes, 512);
}

#[test]
fn framing_does_not_matter() {
    // Header split over two descriptors, data and status sharing the last one.
    let mut f = fixture(false, None);
    f.mem
        .write_slice(&blk_header(VIRTIO_BLK_T_IN, 2), GuestAddress(HDR))
        .unwrap();
    let descs = [
        desc(HDR, 10, 0),
        desc(HDR + 10, 6, 0),
        desc(DATA, 512 + 1, W),
    ];
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    vq.build_desc_chain(&descs).unwrap();
    let (len, _) = run_queue(&mut f, &vq);
    assert_eq!(len, 513);
    assert_eq!(
        f.mem.read_obj::<u8>(GuestAddress(DATA + 512)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    assert_eq!(f.mem.read_obj::<u8>(GuestAddress(DATA + 100)).unwrap(), 2);
}

#[test]
fn get_id_returns_the_serial() {
    let mut f = fixture(false, Some("curtin-disk-1"));
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_GET_ID, 0, &read_req(20));
    assert_eq!((len, st), (21, VIRTIO_BLK_S_OK));
    let mut id = [0u8; 20];
    f.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id[..14], b"curtin-disk-1\0");
    // A short buffer gets a truncated serial, not an overflow.
    let (len, _) = run_chain(&mut f, VIRTIO_BLK_T_GET_ID, 0, &read_req(4));
    assert_eq!(len, 5);
}

#[test]
fn chain_too_short_is_dropped_or_failed() {
    let mut f = fixture(false, None);
    // Only a header: no status byte anywhere, so nothing is written and used len is 0.
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &[desc(HDR, 16, 0)]);
    assert_eq!((len, st), (0, 0xff));
    assert_eq!(f.block.stats.dropped, 1);
    // Header shorter than 16 bytes: status reports IOERR.
    let (len, st) = run_chain(
        &mut f,
        VIRTIO_BLK_T_IN,
        0,
        &[desc(HDR, 8, 0), desc(STATUS, 1, W)],
    );
    assert_eq!((len, st), (1, VIRTIO_BLK_S_IOERR));
    // Only a status byte.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &[desc(STATUS, 1, W)]);
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Zero-length status descriptor.
    let (len, st) = run_chain(
        &mut f,
        VIRTIO_BLK_T_IN,
        0,
        &[desc(HDR, 16, 0), desc(STATUS, 0, W)],
    );
    assert_eq!((len, st), (0, 0xff));
}

#[test]
fn wrong_direction_is_an_io_error() {
    let mut f = fixture(false, None);
    // Read whose data buffer is device-readable.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &write_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Write whose data buffer is device-writable: the disk must not change.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_OUT, 0, &read_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Readable descriptor after a writable one.
    let descs = [
        desc(HDR, 16, 0),
        desc(DATA, 512, W),
        desc(DATA, 512, 0),
        desc(STATUS, 1, W),
    ];
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Status descriptor not writable: nothing can be reported, so the chain is dropped.
    let descs = [desc(HDR, 16, 0), desc(DATA, 512, W), desc(STATUS, 1, 0)];
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!((len, st), (0, 0xff));
    let mut b = [0u8; 1];
    f.block.disk().file.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(b[0], 0);
}

#[test]
fn addresses_outside_guest_memory_are_refused() {
    let mut f = fixture(false, None);
    let end = MEM_SIZE as u64;
    for (addr, len) in [
        (end, 512),                 // just past the end
        (end - 256, 512),           // straddles the end
        (u64::MAX - 100, 512),      // wraps around
        (0x8_0000, u32::MAX - 511), // longer than memory
    ] {
        let descs = [desc(HDR, 16, 0), desc(addr, len, W), desc(STATUS, 1, W)];
        let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
        assert_eq!((len, st), (1, VIRTIO_BLK_S_IOERR), "addr {addr:#x}");
    }
    // Header outside memory.
    let descs = [desc(end + 4096, 16, 0), desc(STATUS, 1, W)];
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Status outside memory: dropped without a write anywhere.
    let descs = [desc(HDR, 16, 0), desc(DATA, 512, W), desc(end, 1, W)];
    let (len, _) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!(len, 0);
    let descs = [desc(HDR, 16, 0), desc(u64::MAX, 2, W)];
    let (len, _) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!(len, 0);
}

#[test]
fn lengths_that_overflow_or_split_sectors_fail() {
    let mut f = fixture(false, None);
    // Sector number whose byte offset overflows u64.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, u64::MAX / 2, &read_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_OUT, u64::MAX, &write_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Not a whole number of sectors.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &read_req(100));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // Many maximal descriptors (sum beyond 4 GiB) pointing at the same memory.
    let mut descs = vec![desc(HDR, 16, 0)];
    descs.extend((0..8).map(|_| desc(0, u32::MAX, W)));
    descs.push(desc(STATUS, 1, W));
    // virtio-queue stops the chain once it passes 4 GiB (a driver must not build such a
    // chain), so the status descriptor is never reached: the chain is dropped untouched.
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!((len, st), (0, 0xff));
    // Below 4 GiB in total but far beyond guest memory: IOERR.
    let mut descs = vec![desc(HDR, 16, 0)];
    descs.extend((0..3).map(|_| desc(0, 1 << 30, W)));
    descs.push(desc(STATUS, 1, W));
    let (len, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 0, &descs);
    assert_eq!((len, st), (1, VIRTIO_BLK_S_IOERR));
}

#[test]
fn requests_past_the_end_of_the_disk_fail() {
    let mut f = fixture(false, None);
    let last = DISK_SIZE / 512 - 1;
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, last, &read_req(512));
    assert_eq!(st, VIRTIO_BLK_S_OK);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, last, &read_req(1024));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, last + 1, &read_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_OUT, last + 1, &write_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    assert_eq!(f.block.disk().file.metadata().unwrap().len(), DISK_SIZE);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut f = fixture(true, None);
    assert_ne!(f.block.avail_features() & feature(VIRTIO_BLK_F_RO), 0);
    assert_eq!(f.block.avail_features() & feature(VIRTIO_BLK_F_DISCARD), 0);
    f.mem.write_slice(&[0xee; 512], GuestAddress(DATA)).unwrap();
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_OUT, 0, &write_req(512));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let seg = [0u8; 16];
    f.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &write_req(16));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let mut b = [0u8; 1];
    f.block.disk().file.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(b[0], 0);
    // Reads and flushes still work.
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_IN, 1, &read_req(512));
    assert_eq!(st, VIRTIO_BLK_S_OK);
    let (_, st) = run_chain(
        &mut f,
        VIRTIO_BLK_T_FLUSH,
        0,
        &[desc(HDR, 16, 0), desc(STATUS, 1, W)],
    );
    assert_eq!(st, VIRTIO_BLK_S_OK);
}

#[test]
fn descriptor_loops_terminate() {
    let mut f = fixture(false, None);
    f.mem
        .write_slice(&blk_header(VIRTIO_BLK_T_IN, 0), GuestAddress(HDR))
        .unwrap();
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    // 0 -> 1 -> 0 -> ... forever, as far as the guest is concerned.
    let descs = [
        RawDescriptor::from(SplitDescriptor::new(HDR, 16, VRING_DESC_F_NEXT, 1)),
        RawDescriptor::from(SplitDescriptor::new(STATUS, 1, VRING_DESC_F_NEXT | W, 0)),
    ];
    vq.add_desc_chains(&descs, 0).unwrap();
    let (len, st) = run_queue(&mut f, &vq);
    assert_eq!((len, st), (1, VIRTIO_BLK_S_IOERR));
    // A descriptor pointing at itself.
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    let descs = [RawDescriptor::from(SplitDescriptor::new(
        STATUS,
        1,
        VRING_DESC_F_NEXT | W,
        0,
    ))];
    vq.add_desc_chains(&descs, 0).unwrap();
    let (_, st) = run_queue(&mut f, &vq);
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    // `next` beyond the table ends the chain.
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    let descs = [RawDescriptor::from(SplitDescriptor::new(
        HDR,
        16,
        VRING_DESC_F_NEXT,
        999,
    ))];
    vq.add_desc_chains(&descs, 0).unwrap();
    let (len, _) = run_queue(&mut f, &vq);
    assert_eq!(len, 0);
}

#[test]
fn unknown_request_types_are_unsupported() {
    let mut f = fixture(false, None);
    let (len, st) = run_chain(&mut f, 0xdead, 0, &read_req(512));
    assert_eq!((len, st), (1, VIRTIO_BLK_S_UNSUPP));
}

#[test]
fn discard_and_write_zeroes_zero_the_range() {
    let mut f = fixture(false, None);
    let mut seg = [0u8; 16];
    seg[0..8].copy_from_slice(&4u64.to_le_bytes());
    seg[8..12].copy_from_slice(&8u32.to_le_bytes()); // 8 sectors = one 4 KiB page
    f.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_WRITE_ZEROES, 0, &write_req(16));
    assert_eq!(st, VIRTIO_BLK_S_OK);
    let mut back = vec![0u8; 8 * 512];
    f.block
        .disk()
        .file
        .read_exact_at(&mut back, 4 * 512)
        .unwrap();
    assert!(back.iter().all(|&b| b == 0));
    let mut b = [0u8; 1];
    f.block.disk().file.read_exact_at(&mut b, 12 * 512).unwrap();
    assert_eq!(b[0], 12);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_DISCARD, 0, &write_req(16));
    assert_eq!(st, VIRTIO_BLK_S_OK);
    // Unknown flags, ranges past the end, partial segments.
    seg[12] = 2;
    f.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_DISCARD, 0, &write_req(16));
    assert_eq!(st, VIRTIO_BLK_S_UNSUPP);
    seg[12] = 0;
    seg[0..8].copy_from_slice(&(DISK_SIZE / 512).to_le_bytes());
    f.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_DISCARD, 0, &write_req(16));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
    let (_, st) = run_chain(&mut f, VIRTIO_BLK_T_DISCARD, 0, &write_req(10));
    assert_eq!(st, VIRTIO_BLK_S_IOERR);
}

#[test]
fn config_space_reports_capacity_block_size_and_limits() {
    let f = fixture(false, None);
    let mut b = [0u8; 8];
    f.block.read_config(0, &mut b);
    assert_eq!(u64::from_le_bytes(b), DISK_SIZE / 512);
    let mut b = [0u8; 4];
    f.block.read_config(20, &mut b);
    assert_eq!(u32::from_le_bytes(b), 512);
    f.block.read_config(1000, &mut b);
    assert_eq!(b, [0; 4]);

    let file = TempFile::new().unwrap();
    file.as_file().set_len(1 << 20).unwrap();
    let mut cfg = BlockConfig::new(file.as_path());
    cfg.block_size = 4096;
    let block = Block::new(cfg.open().unwrap()).unwrap();
    block.read_config(20, &mut b);
    assert_eq!(u32::from_le_bytes(b), 4096);
    let mut c = [0u8; 8];
    block.read_config(0, &mut c);
    assert_eq!(u64::from_le_bytes(c), 2048);
}

/// The whole config space at the byte offsets of virtio 1.2, 5.2.4, read the way a driver
/// reads it (little-endian fields at fixed offsets), independent of how the device lays it
/// out.
#[test]
fn config_space_fields_sit_at_the_spec_offsets() {
    let f = fixture(false, None);
    let mut c = [0xaau8; 80];
    f.block.read_config(0, &mut c);
    let u16_at = |o: usize| u16::from_le_bytes([c[o], c[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(c[o..o + 4].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(c[0..8].try_into().unwrap()),
        DISK_SIZE / 512
    );
    assert_eq!(u32_at(8), 0, "size_max (not offered)");
    assert_eq!(u32_at(12), 254, "seg_max: queue size - 2");
    assert_eq!(u32_at(20), 512, "blk_size");
    assert_eq!(
        (c[24], c[25]),
        (0, 0),
        "physical_block_exp, alignment_offset"
    );
    assert_eq!(u16_at(26), 1, "min_io_size");
    assert_eq!(u32_at(28), 0, "opt_io_size");
    assert_eq!(u32_at(36), u32::MAX / 512, "max_discard_sectors");
    assert_eq!(u32_at(40), MAX_DISCARD_SEGMENTS, "max_discard_seg");
    assert_eq!(u32_at(44), 1, "discard_sector_alignment");
    assert_eq!(u32_at(48), u32::MAX / 512, "max_write_zeroes_sectors");
    assert_eq!(u32_at(52), MAX_DISCARD_SEGMENTS, "max_write_zeroes_seg");
    assert_eq!(c[56], 1, "write_zeroes_may_unmap");
    assert!(c[57..].iter().all(|b| *b == 0), "{:?}", &c[57..]);
}

#[test]
fn event_manager_serves_after_activation_on_another_thread() {
    let f = fixture(false, None);
    let mut tq = TestQueue::new(MEM_SIZE, 16);
    let block = Arc::new(Mutex::new(f.block));
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    em.add_subscriber(block.clone());
    let notify = block.lock().unwrap().queue_events()[0].try_clone().unwrap();

    // A notification before activation is drained and ignored.
    notify.write(1).unwrap();
    assert_eq!(em.run_with_timeout(100).unwrap(), 1);

    let hdr = tq.alloc(16);
    let data = tq.alloc(512);
    let st = tq.alloc(1);
    tq.mem
        .write_slice(&blk_header(VIRTIO_BLK_T_IN, 5), GuestAddress(hdr))
        .unwrap();
    tq.add_chain(&[(hdr, 16, false), (data, 512, true), (st, 1, true)]);
    let irq = TestQueue::interrupt();
    // Activation happens on a vCPU thread in the VMM.
    {
        let (block, mem, q, irq) = (block.clone(), tq.mem.clone(), tq.queue(), irq.clone());
        std::thread::spawn(move || block.lock().unwrap().activate(mem, irq, vec![q]).unwrap())
            .join()
            .unwrap();
    }
    // The activate event makes the event thread pick up the request already queued.
    assert!(em.run_with_timeout(1000).unwrap() >= 1);
    assert_eq!(tq.used_idx(), 1);
    assert_eq!(tq.used_elem(0), (0, 513));
    assert_eq!(tq.mem.read_obj::<u8>(GuestAddress(data)).unwrap(), 5);
    assert_eq!(irq.count(), 1);

    // Then a normal notification.
    tq.add_chain(&[(hdr, 16, false), (data, 512, true), (st, 1, true)]);
    notify.write(1).unwrap();
    em.run_with_timeout(1000).unwrap();
    assert_eq!(tq.used_idx(), 2);

    // After a reset, notifications are ignored again.
    block.lock().unwrap().reset();
    tq.add_chain(&[(hdr, 16, false), (data, 512, true), (st, 1, true)]);
    notify.write(1).unwrap();
    em.run_with_timeout(100).unwrap();
    assert_eq!(tq.used_idx(), 2);
}

#[test]
fn activation_checks_queue_count() {
    let mut f = fixture(false, None);
    let e = f
        .block
        .activate(f.mem.clone(), TestQueue::interrupt(), vec![])
        .unwrap_err();
    assert!(e.to_string().contains("expects 1 queues"));
    let q = Queue::new(16).unwrap();
    f.block
        .activate(f.mem.clone(), TestQueue::interrupt(), vec![q])
        .unwrap();
    let q = Queue::new(16).unwrap();
    assert!(
        f.block
            .activate(f.mem.clone(), TestQueue::interrupt(), vec![q])
            .is_err()
    );
}

#[test]
fn bogus_avail_index_does_not_spin() {
    let mut f = fixture(false, None);
    let mem = f.mem.clone();
    let vq = MockSplitQueue::new(&mem, 16);
    vq.add_desc_chains(&read_req(512), 0).unwrap();
    // The guest claims 1000 new entries in a 16-entry ring.
    vq.avail().idx().store(1000);
    let q: Queue = vq.create_queue().unwrap();
    f.block
        .activate(f.mem.clone(), TestQueue::interrupt(), vec![q])
        .unwrap();
    assert_eq!(f.block.process_queue(), 0);
    assert_eq!(vq.used().idx().load(), 0);
}
