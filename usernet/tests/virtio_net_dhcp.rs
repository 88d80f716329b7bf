//! The guest side of networking without a VM: a virtio-net device on an event manager,
//! driven through its queues in guest memory, asks the user-mode network for an address
//! and gets the DHCP offer back in an RX buffer. Bounded waits throughout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::virtio::VirtioDevice;
use devices::virtio::block::test_utils::TestQueue;
use devices::virtio::net::{MacAddr, Net};
use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use usernet::filter::GUEST;
use usernet::filter::frames::{GUEST_MAC, dhcp_discover, summary};
use usernet::{UserNet, UserNetConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

#[test]
fn dhcp_through_virtio_net_queues() {
    let mem: GuestMemoryMmap<()> =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let mut rxq = TestQueue::with_layout(mem.clone(), 0, 16, 0x1_0000..0x4_0000);
    let mut txq = TestQueue::with_layout(mem.clone(), 0x4000, 16, 0x4_0000..0x8_0000);

    let (_net, backend) = UserNet::start(&UserNetConfig::default()).expect("libslirp starts");
    let dev = Arc::new(Mutex::new(
        Net::new(MacAddr(GUEST_MAC), Box::new(backend)).unwrap(),
    ));
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    em.add_subscriber(dev.clone());
    dev.lock()
        .unwrap()
        .activate(
            mem.clone(),
            TestQueue::interrupt(),
            vec![rxq.queue(), txq.queue()],
        )
        .unwrap();

    // The guest posts RX buffers the size Linux uses without mergeable buffers.
    let mut rx_bufs = Vec::new();
    for _ in 0..8 {
        let a = rxq.alloc(1530);
        rx_bufs.push((rxq.add_chain(&[(a, 1530, true)]), a));
    }
    // ... and sends a DHCPDISCOVER behind a zeroed virtio-net header.
    let frame = dhcp_discover(0xfeed);
    let tx = txq.alloc(12 + frame.len() as u64);
    mem.write_slice(&[0u8; 12], GuestAddress(tx)).unwrap();
    mem.write_slice(&frame, GuestAddress(tx + 12)).unwrap();
    txq.add_chain(&[(tx, 12 + frame.len() as u32, false)]);
    dev.lock().unwrap().queue_events()[1].write(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let offer = loop {
        assert!(
            Instant::now() < deadline,
            "no DHCP offer reached the RX queue in 5 s"
        );
        em.run_with_timeout(100).unwrap();
        let found = (0..rxq.used_idx()).find_map(|i| {
            let (head, len) = rxq.used_elem(i);
            let addr = rx_bufs.iter().find(|(h, _)| u32::from(*h) == head)?.1;
            let mut f = vec![0u8; len as usize - 12];
            mem.read_slice(&mut f, GuestAddress(addr + 12)).unwrap();
            summary(&f)
                .is_some_and(|(_, _, proto, _, dport)| proto == 17 && dport == 68)
                .then_some(f)
        });
        if let Some(f) = found {
            break f;
        }
    };
    assert_eq!(txq.used_idx(), 1, "TX chain returned");
    assert_eq!(
        &offer[42 + 16..42 + 20],
        &GUEST.octets(),
        "yiaddr 10.0.2.15"
    );
    let stats = dev.lock().unwrap().stats;
    assert_eq!((stats.tx_frames, stats.tx_dropped), (1, 0));
    assert!(stats.rx_frames >= 1);
}
