//! The whole virtio-blk stack as the VMM wires it: transport on the bus, device on an event
//! manager, a driver that speaks only registers and guest memory (as Linux's virtio_mmio
//! does). Uses only the public API the VMM uses.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use devices::BusDevice;
use devices::interrupt::EventFdInterrupt;
use devices::virtio::block::request::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN};
use devices::virtio::block::test_utils::{TestQueue, blk_header};
use devices::virtio::block::{Block, BlockConfig, validate_disks};
use devices::virtio::mmio::{MMIO_WINDOW_SIZE, MmioTransport, QUEUE_NOTIFY_OFFSET};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::tempfile::TempFile;

fn wr(t: &mut MmioTransport, off: u64, v: u32) {
    t.write(off, &v.to_le_bytes());
}

fn rd(t: &mut MmioTransport, off: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(off, &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn linux_like_driver_reads_a_sector_and_the_serial() {
    let img = TempFile::new().unwrap();
    img.as_file().set_len(1 << 20).unwrap();
    img.as_file().write_all_at(&[0x42; 512], 512 * 9).unwrap();
    let disks: Vec<BlockConfig> = vec![
        format!("{},serial=vmtest-0", img.as_path().display())
            .parse()
            .unwrap(),
    ];
    validate_disks(&disks).unwrap();

    let mut tq = TestQueue::new(0x10_0000, 16);
    let blk = Arc::new(Mutex::new(Block::new(disks[0].open().unwrap()).unwrap()));
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    em.add_subscriber(blk.clone());
    let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
    let irq = Arc::new(EventFdInterrupt::new(irqfd.try_clone().unwrap()));
    let mut t = MmioTransport::new(blk, tq.mem.clone(), irq, 0xd000_0000, 5).unwrap();
    assert_eq!(MMIO_WINDOW_SIZE, 0x1000);
    assert_eq!(t.queue_notify_evts().len(), 1);

    // Probe and negotiate.
    assert_eq!(rd(&mut t, 0x0), 0x7472_6976);
    assert_eq!(rd(&mut t, 0x8), 2); // block
    wr(&mut t, 0x70, 0);
    wr(&mut t, 0x70, 1);
    wr(&mut t, 0x70, 3);
    wr(&mut t, 0x14, 1);
    let hi = rd(&mut t, 0x10);
    wr(&mut t, 0x14, 0);
    let lo = rd(&mut t, 0x10);
    assert_ne!(hi & 1, 0, "VIRTIO_F_VERSION_1 offered");
    wr(&mut t, 0x24, 1);
    wr(&mut t, 0x20, 1);
    wr(&mut t, 0x24, 0);
    wr(&mut t, 0x20, lo & (1 << 9)); // FLUSH only
    wr(&mut t, 0x70, 0xb);
    assert_eq!(rd(&mut t, 0x70), 0xb);
    // Capacity from config space, as two 32-bit reads.
    assert_eq!(rd(&mut t, 0x100), 2048);
    assert_eq!(rd(&mut t, 0x104), 0);

    // Queue 0 at the TestQueue layout.
    wr(&mut t, 0x30, 0);
    assert_eq!(rd(&mut t, 0x44), 0);
    assert!(rd(&mut t, 0x34) >= 16);
    wr(&mut t, 0x38, 16);
    wr(&mut t, 0x80, tq.desc_table as u32);
    wr(&mut t, 0x84, 0);
    wr(&mut t, 0x90, tq.avail as u32);
    wr(&mut t, 0x94, 0);
    wr(&mut t, 0xa0, tq.used as u32);
    wr(&mut t, 0xa4, 0);
    wr(&mut t, 0x44, 1);
    assert_eq!(rd(&mut t, 0x44), 1);
    wr(&mut t, 0x70, 0xf);
    assert_eq!(rd(&mut t, 0x70), 0xf, "DRIVER_OK accepted");

    // Read sector 9 and GET_ID, then kick through the bus (no ioeventfd here).
    let (h1, d1, s1) = (tq.alloc(16), tq.alloc(512), tq.alloc(1));
    tq.mem
        .write_slice(&blk_header(VIRTIO_BLK_T_IN, 9), GuestAddress(h1))
        .unwrap();
    tq.add_chain(&[(h1, 16, false), (d1, 512, true), (s1, 1, true)]);
    let (h2, d2, s2) = (tq.alloc(16), tq.alloc(20), tq.alloc(1));
    tq.mem
        .write_slice(&blk_header(VIRTIO_BLK_T_GET_ID, 0), GuestAddress(h2))
        .unwrap();
    tq.add_chain(&[(h2, 16, false), (d2, 20, true), (s2, 1, true)]);
    wr(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    // The activation kick and the notify may be served in one or two rounds.
    for _ in 0..2 {
        if tq.used_idx() == 2 {
            break;
        }
        em.run_with_timeout(1000).unwrap();
    }
    assert_eq!(tq.used_idx(), 2);
    assert_eq!(
        tq.mem.read_obj::<u8>(GuestAddress(s1)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    assert_eq!(tq.mem.read_obj::<u8>(GuestAddress(d1 + 100)).unwrap(), 0x42);
    let mut id = [0u8; 20];
    tq.mem.read_slice(&mut id, GuestAddress(d2)).unwrap();
    assert_eq!(&id[..9], b"vmtest-0\0");
    // Interrupt raised on the irqfd, status bit set, ACK clears it.
    assert!(irqfd.read().unwrap() >= 1);
    assert_eq!(rd(&mut t, 0x60), 1);
    wr(&mut t, 0x64, 1);
    assert_eq!(rd(&mut t, 0x60), 0);

    // Reset by the driver: the device stops serving.
    wr(&mut t, 0x70, 0);
    tq.add_chain(&[(h1, 16, false), (d1, 512, true), (s1, 1, true)]);
    wr(&mut t, QUEUE_NOTIFY_OFFSET, 0);
    em.run_with_timeout(100).unwrap();
    assert_eq!(tq.used_idx(), 2);
}
