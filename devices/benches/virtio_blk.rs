//! virtio-blk request path vs plain pread/pwrite on the same file.
//!
//! Guest memory lives in this process; requests go through the real queue code (descriptor
//! chains in guest memory, `Block::process_queue`, used ring), batched as a guest with a
//! queue depth of `DEPTH` would. The raw column does the same transfers with one
//! pread/pwrite each into an ordinary buffer. Both run on a warm page cache, so the figures
//! show the device's overhead rather than the disk's speed.
//!
//! Only the device's side is timed for virtio (from the kick to the filled used ring); the
//! guest driver's work of building chains is not, just as the raw column does not time
//! choosing offsets.
//!
//! Run: `cargo bench -p devices --bench virtio_blk` (optionally
//! `-- <file-size-MiB> <seconds-per-cell> <workload-name-filter>`).

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use devices::virtio::VirtioDevice;
use devices::virtio::block::request::{VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use devices::virtio::block::test_utils::{TestQueue, blk_header};
use devices::virtio::block::{Block, BlockConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const DEPTH: usize = 32;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    bs: u64,
    random: bool,
    write: bool,
}

/// Byte offsets for round `seed`: random blocks, or the `seed`-th run of `n` consecutive
/// blocks (wrapping at the end of the file).
fn offsets(case: Case, file_size: u64, n: usize, seed: u64) -> Vec<u64> {
    let blocks = file_size / case.bs;
    let mut rng = Rng(seed | 1);
    (0..n as u64)
        .map(|i| {
            let b = if case.random {
                rng.next() % blocks
            } else {
                (seed * n as u64 + i) % blocks
            };
            b * case.bs
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let file_mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let only = args.get(3).cloned();
    let budget = Duration::from_secs_f64(secs);
    let file_size = file_mib << 20;

    let dir = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("vmtest-blk-bench-{}.img", std::process::id()));
    let file = std::fs::File::create(&path).expect("create bench image");
    // Fill it so reads hit real pages, not holes.
    let chunk = vec![0x5au8; 1 << 20];
    for i in 0..file_mib {
        file.write_all_at(&chunk, i << 20).unwrap();
    }
    drop(file);
    let raw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // The device takes an exclusive lock; the raw side uses a separate open file description.
    let mut block = Block::new(BlockConfig::new(&path).open().expect("open image")).unwrap();

    let cases = [
        Case {
            name: "4 KiB random read",
            bs: 4096,
            random: true,
            write: false,
        },
        Case {
            name: "4 KiB random write",
            bs: 4096,
            random: true,
            write: true,
        },
        Case {
            name: "1 MiB sequential read",
            bs: 1 << 20,
            random: false,
            write: false,
        },
        Case {
            name: "1 MiB sequential write",
            bs: 1 << 20,
            random: false,
            write: true,
        },
    ];

    println!(
        "virtio-blk request path vs pread/pwrite, {file_mib} MiB file in {} (page cache warm), queue depth {DEPTH}, {secs} s per cell",
        dir.display()
    );
    println!(
        "{:<24} {:>14} {:>14} {:>12} {:>12} {:>8}",
        "workload", "virtio MiB/s", "raw MiB/s", "virtio IOPS", "raw IOPS", "ratio"
    );
    let mem_size = (DEPTH as u64 * (1 << 20) + (4 << 20)) as usize;
    let mut tq = TestQueue::new(mem_size, 256);
    let irq = TestQueue::interrupt();
    block
        .activate(tq.mem.clone(), irq.clone(), vec![tq.queue()])
        .unwrap();
    let mut rq = TestQueue::new(mem_size, 256);

    let mut worst: f64 = f64::INFINITY;
    for case in cases {
        if only
            .as_ref()
            .is_some_and(|o| !case.name.contains(o.as_str()))
        {
            continue;
        }
        let round_bytes = case.bs * DEPTH as u64;
        let kind = if case.write {
            VIRTIO_BLK_T_OUT
        } else {
            VIRTIO_BLK_T_IN
        };
        let mut expected_used = tq.used_idx();
        // virtio: DEPTH chains per round, one process_queue call (one guest kick).
        let mut virtio_round = |round: u64| {
            tq.reset_alloc();
            for off in offsets(case, file_size, DEPTH, round) {
                let hdr = tq.alloc(16);
                let data = tq.alloc(case.bs);
                let st = tq.alloc(1);
                tq.mem
                    .write_slice(&blk_header(kind, off / 512), GuestAddress(hdr))
                    .unwrap();
                tq.add_chain(&[
                    (hdr, 16, false),
                    (data, case.bs as u32, !case.write),
                    (st, 1, true),
                ]);
            }
            // Building the chains is the guest's work; the device's work starts at the kick.
            let t = Instant::now();
            let n = block.process_queue();
            let spent = t.elapsed();
            assert_eq!(n, DEPTH);
            expected_used = expected_used.wrapping_add(DEPTH as u16);
            assert_eq!(tq.used_idx(), expected_used);
            spent
        };
        // raw: the same transfers with pread/pwrite, into buffers laid out exactly like the
        // guest's but in a second mapping of the same kind, so both sides touch the same
        // amount and kind of memory.
        let mut raw_round = |round: u64| {
            rq.reset_alloc();
            let bufs: Vec<&mut [u8]> = (0..DEPTH)
                .map(|_| {
                    rq.alloc(16);
                    let data = rq.alloc(case.bs);
                    rq.alloc(1);
                    let p = rq.mem.get_host_address(GuestAddress(data)).unwrap();
                    // SAFETY: `rq`'s memory holds a whole round without wrapping (DEPTH MiB
                    // plus 4 MiB), so alloc keeps [data, data+bs) inside its one mapping and
                    // the buffers of a round apart; the mapping outlives the round and only
                    // these slices touch it meanwhile.
                    unsafe { std::slice::from_raw_parts_mut(p, case.bs as usize) }
                })
                .collect();
            let offs = offsets(case, file_size, DEPTH, round);
            let t = Instant::now();
            for (off, buf) in offs.into_iter().zip(bufs) {
                if case.write {
                    raw.write_all_at(buf, off).unwrap();
                } else {
                    raw.read_exact_at(buf, off).unwrap();
                }
            }
            t.elapsed()
        };
        // Alternate rounds so that load from elsewhere on the machine hits both sides alike;
        // odd rounds are raw, even ones virtio, so neither side finds the blocks the other
        // just touched in the CPU cache.
        virtio_round(0);
        raw_round(1);
        let (mut tv, mut tr) = (Duration::ZERO, Duration::ZERO);
        let start = Instant::now();
        let mut rounds = 0u64;
        while start.elapsed() < budget * 2 {
            rounds += 1;
            // Whichever side runs first after the other pays for page-cache work the other
            // left behind (writeback, folio state); swap the order every round.
            if rounds.is_multiple_of(2) {
                tv += virtio_round(2 * rounds);
                tr += raw_round(2 * rounds + 1);
            } else {
                tr += raw_round(2 * rounds + 1);
                tv += virtio_round(2 * rounds);
            }
        }
        let v = (rounds * round_bytes) as f64 / tv.as_secs_f64();
        let r = (rounds * round_bytes) as f64 / tr.as_secs_f64();
        let ratio = v / r;
        worst = worst.min(ratio);
        let mib = |x: f64| x / (1 << 20) as f64;
        println!(
            "{:<24} {:>14.0} {:>14.0} {:>12.0} {:>12.0} {:>7.0}%",
            case.name,
            mib(v),
            mib(r),
            v / case.bs as f64,
            r / case.bs as f64,
            ratio * 100.0
        );
    }
    assert_eq!(
        block.stats.errors, 0,
        "device reported errors: {:?}",
        block.stats
    );
    println!(
        "worst ratio {:.0}% (goal >= 80% of raw); device stats: {:?}",
        worst * 100.0,
        block.stats
    );
    let _ = std::fs::remove_file(&path);
}
