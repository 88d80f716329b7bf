//! virtio-net over MockSplitQueue with a socket pair standing in for the network.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use virtio_queue::Queue;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::device::*;
use super::*;
use crate::virtio::block::test_utils::{
    CountingVirtioInterrupt, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use crate::virtio::{GuestMemoryMmap, VirtioDevice, feature};
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;

const MEM_SIZE: usize = 0x10_0000;
const RXQ: u64 = 0x0;
const TXQ: u64 = 0x4000;
const BUF: u64 = 0x2_0000;
const W: u16 = VRING_DESC_F_WRITE;

struct Fixture {
    net: Net,
    peer: OwnedFd,
    mem: GuestMemoryMmap,
    irq: Arc<CountingVirtioInterrupt>,
}

fn fixture() -> Fixture {
    let (backend, peer) = SocketBackend::pair().unwrap();
    let net = Net::new("52:54:00:aa:bb:cc".parse().unwrap(), Box::new(backend)).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    Fixture {
        net,
        peer,
        mem,
        irq: Arc::new(CountingVirtioInterrupt::default()),
    }
}

/// (guest address, length, flags)
type Desc = (u64, u32, u16);

/// Links `descs` (addr, len, flags) into one chain starting at table slot `offset`.
fn linked(descs: &[Desc], offset: u16) -> Vec<RawDescriptor> {
    descs
        .iter()
        .enumerate()
        .map(|(i, &(addr, len, flags))| {
            let last = i + 1 == descs.len();
            let flags = if last {
                flags
            } else {
                flags | VRING_DESC_F_NEXT
            };
            RawDescriptor::from(SplitDescriptor::new(
                addr,
                len,
                flags,
                offset + i as u16 + 1,
            ))
        })
        .collect()
}

fn activate<'a>(
    f: &mut Fixture,
    mem: &'a GuestMemoryMmap,
) -> (
    MockSplitQueue<'a, GuestMemoryMmap>,
    MockSplitQueue<'a, GuestMemoryMmap>,
) {
    let rx = MockSplitQueue::create(mem, GuestAddress(RXQ), 16);
    let tx = MockSplitQueue::create(mem, GuestAddress(TXQ), 16);
    let queues: Vec<Queue> = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    f.net
        .activate(f.mem.clone(), f.irq.clone(), queues)
        .unwrap();
    (rx, tx)
}

fn peer_recv(f: &Fixture) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    recv_frame(f.peer.as_raw_fd(), &mut buf)
        .unwrap()
        .map(|n| buf[..n].to_vec())
}

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7) as u8).collect()
}

#[test]
fn mac_addresses_parse_and_reject_garbage() {
    let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
    assert_eq!(m.to_string(), "52:54:00:12:34:56");
    assert_eq!("52-54-00-12-34-56".parse::<MacAddr>().unwrap(), m);
    for bad in [
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "zz:54:00:12:34:56",
        "525400123456",
        "5:54:00:12:34:56",
        "",
    ] {
        let e = bad.parse::<MacAddr>().unwrap_err();
        assert!(matches!(e, MacAddrError::Malformed(_)), "{bad}: {e}");
        assert!(e.to_string().contains("52:54:00:12:34:56"));
    }
    assert!(matches!(
        "01:00:5e:00:00:01".parse::<MacAddr>(),
        Err(MacAddrError::Multicast(_))
    ));
    assert!(matches!(
        "00:00:00:00:00:00".parse::<MacAddr>(),
        Err(MacAddrError::Zero(_))
    ));
    assert_ne!(MacAddr::default_for_nic(0), MacAddr::default_for_nic(1));
}

#[test]
fn config_space_has_mac_and_link_up() {
    let f = fixture();
    let mut b = [0u8; 8];
    f.net.read_config(0, &mut b);
    assert_eq!(&b[..6], &[0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    assert_eq!(u16::from_le_bytes([b[6], b[7]]), 1);
    assert_ne!(f.net.avail_features() & feature(VIRTIO_NET_F_MAC), 0);
}

#[test]
fn tx_sends_the_frame_without_the_header() {
    let mut f = fixture();
    let mem = f.mem.clone();
    let (_rx, tx) = activate(&mut f, &mem);
    let fr = frame(60);
    mem.write_slice(&[0u8; NET_HDR_LEN], GuestAddress(BUF))
        .unwrap();
    mem.write_slice(&fr[..20], GuestAddress(BUF + 0x100))
        .unwrap();
    mem.write_slice(&fr[20..], GuestAddress(BUF + 0x200))
        .unwrap();
    tx.add_desc_chains(
        &linked(
            &[(BUF, 12, 0), (BUF + 0x100, 20, 0), (BUF + 0x200, 40, 0)],
            0,
        ),
        0,
    )
    .unwrap();
    assert_eq!(f.net.process_tx(), TxState::Done(1));
    assert_eq!(peer_recv(&f).unwrap(), fr);
    assert_eq!(tx.used().idx().load(), 1);
    assert_eq!(f.irq.count(), 1);
    assert_eq!(f.net.stats.tx_frames, 1);
}

#[test]
fn hostile_tx_chains_are_dropped() {
    let cases: Vec<(&str, Vec<Desc>)> = vec![
        (
            "writable descriptor",
            vec![(BUF, 12, 0), (BUF + 0x100, 60, W)],
        ),
        (
            "outside memory",
            vec![(BUF, 12, 0), (MEM_SIZE as u64 - 10, 60, 0)],
        ),
        ("address wraps", vec![(BUF, 12, 0), (u64::MAX - 4, 60, 0)]),
        ("header only", vec![(BUF, 12, 0)]),
        ("too long", vec![(BUF, 12, 0), (BUF + 0x100, 2000, 0)]),
        (
            "overflowing length",
            vec![(BUF, 12, 0), (BUF, u32::MAX, 0), (BUF, u32::MAX, 0)],
        ),
    ];
    for (what, descs) in cases {
        let mut f = fixture();
        let mem = f.mem.clone();
        let (_rx, tx) = activate(&mut f, &mem);
        tx.add_desc_chains(&linked(&descs, 0), 0).unwrap();
        assert_eq!(f.net.process_tx(), TxState::Done(1), "{what}");
        assert!(peer_recv(&f).is_none(), "{what}: something was sent");
        assert_eq!(f.net.stats.tx_dropped, 1, "{what}");
        assert_eq!(tx.used().idx().load(), 1, "{what}: chain not returned");
    }
    // A descriptor loop ends after the queue size (virtio-queue's chain walk is bounded);
    // whatever bounded frame it amounted to may go out, but nothing hangs or overflows.
    let mut f = fixture();
    let mem = f.mem.clone();
    let (_rx, tx) = activate(&mut f, &mem);
    let looped = [
        RawDescriptor::from(SplitDescriptor::new(BUF, 12, VRING_DESC_F_NEXT, 1)),
        RawDescriptor::from(SplitDescriptor::new(BUF, 100, VRING_DESC_F_NEXT, 0)),
    ];
    tx.add_desc_chains(&looped, 0).unwrap();
    assert_eq!(f.net.process_tx(), TxState::Done(1));
    assert!(peer_recv(&f).is_none_or(|fr| fr.len() <= MAX_FRAME_LEN));
    assert_eq!(tx.used().idx().load(), 1);
}

#[test]
fn rx_delivers_header_and_frame_and_waits_for_buffers() {
    let mut f = fixture();
    let mem = f.mem.clone();
    let (rx, _tx) = activate(&mut f, &mem);
    let fr = frame(100);
    send_frame(f.peer.as_raw_fd(), &fr).unwrap();
    // No buffers yet.
    assert_eq!(f.net.process_rx(), RxState::NeedBuffers);
    // Buffer split in two descriptors.
    rx.add_desc_chains(&linked(&[(BUF, 50, W), (BUF + 0x1000, 1526, W)], 0), 0)
        .unwrap();
    assert_eq!(f.net.process_rx(), RxState::Idle);
    let used = rx.used().ring().ref_at(0).unwrap().load();
    assert_eq!(used.len() as usize, NET_HDR_LEN + 100);
    let mut got = vec![0u8; 50];
    mem.read_slice(&mut got, GuestAddress(BUF)).unwrap();
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1); // num_buffers
    assert_eq!(&got[12..], &fr[..38]);
    let mut rest = vec![0u8; 62];
    mem.read_slice(&mut rest, GuestAddress(BUF + 0x1000))
        .unwrap();
    assert_eq!(rest, &fr[38..]);
    assert_eq!(f.irq.count(), 1);
}

#[test]
fn rx_into_bad_buffers_drops_the_frame_and_leaves_memory_alone() {
    let cases: Vec<(&str, Vec<Desc>)> = vec![
        ("too small", vec![(BUF, 40, W)]),
        ("read-only", vec![(BUF, 2000, 0)]),
        ("outside memory", vec![(MEM_SIZE as u64 - 100, 2000, W)]),
        ("wraps", vec![(u64::MAX - 10, 2000, W)]),
    ];
    for (what, descs) in cases {
        let mut f = fixture();
        let mem = f.mem.clone();
        let (rx, _tx) = activate(&mut f, &mem);
        mem.write_slice(&[0xeeu8; 64], GuestAddress(BUF)).unwrap();
        send_frame(f.peer.as_raw_fd(), &frame(100)).unwrap();
        rx.add_desc_chains(&linked(&descs, 0), 0).unwrap();
        assert_eq!(f.net.process_rx(), RxState::Idle, "{what}");
        assert_eq!(
            rx.used().ring().ref_at(0).unwrap().load().len(),
            0,
            "{what}"
        );
        assert_eq!(f.net.stats.rx_dropped, 1, "{what}");
        let mut b = [0u8; 64];
        mem.read_slice(&mut b, GuestAddress(BUF)).unwrap();
        assert_eq!(b, [0xee; 64], "{what}: memory changed");
    }
}

#[test]
fn frames_before_activation_are_dropped_and_oversized_frames_never_reach_the_guest() {
    let mut f = fixture();
    send_frame(f.peer.as_raw_fd(), &frame(60)).unwrap();
    assert_eq!(f.net.process_rx(), RxState::Idle);
    assert_eq!(f.net.stats.rx_dropped, 1);
    let mem = f.mem.clone();
    let (rx, _tx) = activate(&mut f, &mem);
    send_frame(f.peer.as_raw_fd(), &frame(3000)).unwrap();
    rx.add_desc_chains(&linked(&[(BUF, 4000, W)], 0), 0)
        .unwrap();
    assert_eq!(f.net.process_rx(), RxState::Idle);
    assert_eq!(rx.used().idx().load(), 0);
    assert_eq!(f.net.stats.rx_dropped, 2);
}

#[test]
fn backend_gone_is_reported_not_spun_on() {
    let mut f = fixture();
    let mem = f.mem.clone();
    let (_rx, _tx) = activate(&mut f, &mem);
    drop(std::mem::replace(
        &mut f.peer,
        SocketBackend::pair().unwrap().1,
    ));
    assert_eq!(f.net.process_rx(), RxState::BackendGone);
}

#[test]
fn event_manager_moves_frames_both_ways() {
    let f = fixture();
    let peer = f.peer;
    let mem = f.mem.clone();
    let net = Arc::new(Mutex::new(f.net));
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    em.add_subscriber(net.clone());

    let rx = MockSplitQueue::create(&mem, GuestAddress(RXQ), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(TXQ), 16);
    rx.add_desc_chains(&linked(&[(BUF, 2048, W)], 0), 0)
        .unwrap();
    let fr = frame(64);
    mem.write_slice(&fr, GuestAddress(BUF + 0x1000 + 12))
        .unwrap();
    tx.add_desc_chains(&linked(&[(BUF + 0x1000, 12 + 64, 0)], 0), 0)
        .unwrap();
    let queues: Vec<Queue> = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    let irq = f.irq.clone();
    {
        let net = net.clone();
        let mem = mem.clone();
        std::thread::spawn(move || net.lock().unwrap().activate(mem, irq, queues).unwrap())
            .join()
            .unwrap();
    }
    em.run_with_timeout(1000).unwrap();
    assert_eq!(peer_recv_fd(&peer).unwrap(), fr);

    send_frame(peer.as_raw_fd(), &frame(80)).unwrap();
    em.run_with_timeout(1000).unwrap();
    assert_eq!(rx.used().idx().load(), 1);
    assert_eq!(rx.used().ring().ref_at(0).unwrap().load().len(), 12 + 80);

    // No buffers left: the next frame waits (and the loop does not spin) until the guest
    // posts one and kicks the RX queue.
    send_frame(peer.as_raw_fd(), &frame(90)).unwrap();
    em.run_with_timeout(100).unwrap();
    assert_eq!(
        em.run_with_timeout(100).unwrap(),
        0,
        "backend fd still watched"
    );
    rx.add_desc_chains(&linked(&[(BUF + 0x8000, 2048, W)], 1), 1)
        .unwrap();
    net.lock().unwrap().queue_events()[RX_QUEUE]
        .write(1)
        .unwrap();
    em.run_with_timeout(1000).unwrap();
    assert_eq!(rx.used().idx().load(), 2);
    assert_eq!(rx.used().ring().ref_at(1).unwrap().load().len(), 12 + 90);
}

fn peer_recv_fd(fd: &OwnedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    recv_frame(fd.as_raw_fd(), &mut buf)
        .unwrap()
        .map(|n| buf[..n].to_vec())
}

/// A backend whose socket is already full, and the peer to drain it.
fn full_backend() -> (SocketBackend, OwnedFd, usize) {
    let (mut backend, peer) = SocketBackend::pair().unwrap();
    let mut n = 0;
    while backend.send(&[0u8; 1000]).unwrap() {
        n += 1;
    }
    (backend, peer, n)
}

fn drain(peer: &OwnedFd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(f) = peer_recv_fd(peer) {
        out.push(f);
    }
    out
}

#[test]
fn tx_waits_for_a_full_backend_instead_of_dropping() {
    let (backend, peer, filler) = full_backend();
    let mut f = fixture();
    f.net = Net::new("52:54:00:aa:bb:cc".parse().unwrap(), Box::new(backend)).unwrap();
    let mem = f.mem.clone();
    let (_rx, tx) = activate(&mut f, &mem);
    let fr = frame(60);
    mem.write_slice(&fr, GuestAddress(BUF + 12)).unwrap();
    tx.add_desc_chains(&linked(&[(BUF, 72, 0)], 0), 0).unwrap();
    assert_eq!(f.net.process_tx(), TxState::BackendFull(0));
    assert_eq!(tx.used().idx().load(), 0, "chain must stay with the device");
    assert_eq!(f.net.stats.tx_dropped, 0);
    let drained = drain(&peer);
    assert_eq!(drained.len(), filler);
    assert_eq!(f.net.process_tx(), TxState::Done(1));
    assert_eq!(tx.used().idx().load(), 1);
    assert_eq!(drain(&peer), vec![fr]);
}

#[test]
fn event_manager_resumes_tx_when_the_backend_drains() {
    let (backend, peer, filler) = full_backend();
    let net = Net::new("52:54:00:aa:bb:cc".parse().unwrap(), Box::new(backend)).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let net = Arc::new(Mutex::new(net));
    let mut em: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
        EventManager::new().unwrap();
    em.add_subscriber(net.clone());
    let rx = MockSplitQueue::create(&mem, GuestAddress(RXQ), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(TXQ), 16);
    let fr = frame(64);
    mem.write_slice(&fr, GuestAddress(BUF + 12)).unwrap();
    tx.add_desc_chains(&linked(&[(BUF, 12 + 64, 0)], 0), 0)
        .unwrap();
    let queues: Vec<Queue> = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    net.lock()
        .unwrap()
        .activate(
            mem.clone(),
            Arc::new(CountingVirtioInterrupt::default()),
            queues,
        )
        .unwrap();
    em.run_with_timeout(100).unwrap();
    assert_eq!(tx.used().idx().load(), 0);
    // Still full: the loop must idle, not spin on the writable check.
    assert_eq!(em.run_with_timeout(50).unwrap(), 0);
    assert_eq!(drain(&peer).len(), filler);
    em.run_with_timeout(1000).unwrap();
    assert_eq!(tx.used().idx().load(), 1);
    assert_eq!(drain(&peer), vec![fr]);
    // Back to idle: nothing fires with an empty, writable backend.
    assert_eq!(em.run_with_timeout(50).unwrap(), 0);
}
