//! Guest-controlled bytes -> virtio-blk queue processing.
//!
//! The input is split into the descriptor table, the available ring (which heads the guest
//! offers) and the contents of the rest of a small guest memory, so the fuzzer controls
//! every byte the device reads: descriptor addresses, lengths, flags, `next` links
//! (loops), indirect tables, request headers, discard segments. The device must answer or
//! drop every chain without panicking, and never touch memory outside the guest's.
#![no_main]

use std::sync::OnceLock;

use devices::virtio::VirtioDevice;
use devices::virtio::block::test_utils::TestQueue;
use devices::virtio::block::{Block, BlockConfig};
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress};

const MEM_SIZE: usize = 0x1_0000;
const QUEUE_SIZE: u16 = 16;
const DISK_SIZE: u64 = 64 * 1024;

struct Disks {
    rw: std::sync::Mutex<Block>,
    ro: std::sync::Mutex<Block>,
    _dir: std::path::PathBuf,
}

fn disks() -> &'static Disks {
    static DISKS: OnceLock<Disks> = OnceLock::new();
    DISKS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vmtest-fuzz-blk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = |name: &str, ro: bool| {
            let p = dir.join(name);
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(DISK_SIZE).unwrap();
            let mut c = BlockConfig::new(&p);
            c.read_only = ro;
            c.serial = Some("fuzz-serial".into());
            std::sync::Mutex::new(Block::new(c.open().unwrap()).unwrap())
        };
        Disks {
            rw: open("rw.img", false),
            ro: open("ro.img", true),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (flags, rest) = data.split_at(1);
    let tq = TestQueue::new(MEM_SIZE, QUEUE_SIZE);
    // Descriptor table (16 x 16 bytes), then the avail ring, then everything else.
    let table_len = 16 * usize::from(QUEUE_SIZE);
    let (table, rest) = rest.split_at(rest.len().min(table_len));
    tq.mem
        .write_slice(table, GuestAddress(tq.desc_table))
        .unwrap();
    let (avail, rest) = rest.split_at(rest.len().min(4 + 2 * usize::from(QUEUE_SIZE)));
    tq.mem.write_slice(avail, GuestAddress(tq.avail)).unwrap();
    let body = &rest[..rest.len().min(MEM_SIZE - 0x1000)];
    tq.mem.write_slice(body, GuestAddress(0x1000)).unwrap();

    let disk = if flags[0] & 1 == 0 {
        &disks().rw
    } else {
        &disks().ro
    };
    let mut block = disk.lock().unwrap();
    block.reset();
    let mut q = tq.queue();
    if flags[0] & 2 != 0 {
        use virtio_queue::QueueT;
        q.set_event_idx(true);
    }
    block
        .activate(tq.mem.clone(), TestQueue::interrupt(), vec![q])
        .unwrap();
    // Bounded: at most 2^16 heads can be consumed before avail idx catches up.
    block.process_queue();
    block.reset();
});
