//! Guest register accesses -> the virtio-mmio transport in front of a virtio-blk device.
//! The input is a sequence of (offset, width, value) accesses; the transport must keep its
//! state machine consistent and never activate the device with unchecked queues.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use devices::BusDevice;
use devices::interrupt::CountingInterrupt;
use devices::virtio::block::{Block, BlockConfig};
use devices::virtio::mmio::MmioTransport;
use libfuzzer_sys::fuzz_target;
use vm_memory::GuestAddress;

fn image() -> &'static std::path::PathBuf {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("vmtest-fuzz-mmio-{}.img", std::process::id()));
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let mem =
        devices::virtio::GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1_0000)]).unwrap();
    let mut cfg = BlockConfig::new(image());
    cfg.read_only = true; // shared lock: every iteration may open it
    let blk = Arc::new(Mutex::new(Block::new(cfg.open().unwrap()).unwrap()));
    let mut t = MmioTransport::new(
        blk,
        mem,
        Arc::new(CountingInterrupt::default()),
        0xd000_0000,
        5,
    )
    .unwrap();
    for op in data.chunks_exact(7) {
        let offset = u64::from(u16::from_le_bytes([op[0], op[1]]) & 0x1fff);
        let width = [1usize, 2, 4, 8][usize::from(op[2] & 3)];
        let value = &op[3..7];
        if op[2] & 4 == 0 {
            let mut b = [0u8; 8];
            t.read(offset, &mut b[..width]);
        } else {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(value);
            t.write(offset, &b[..width]);
        }
    }
});
