//! libslirp behind the filter, exercised frame by frame without any VM. Every wait is
//! bounded (a few seconds), so a broken network fails instead of hanging.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use devices::virtio::net::{NetBackend, SocketBackend};
use usernet::filter::frames::*;
use usernet::filter::{GATEWAY, GUEST};
use usernet::{PortForward, UserNet, UserNetConfig, UserNetError};

const WAIT: Duration = Duration::from_secs(5);

/// Waits (bounded) for a frame from the network matching `pred`; other frames are skipped.
fn expect(backend: &mut SocketBackend, what: &str, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 2048];
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: backend.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        while let Some(n) = backend.recv(&mut buf).expect("network alive") {
            if pred(&buf[..n]) {
                return buf[..n].to_vec();
            }
        }
    }
    panic!("no {what} from the user-mode network within {WAIT:?}");
}

fn is_arp_reply_from(f: &[u8], ip: Ipv4Addr) -> bool {
    f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2] && f[28..32] == ip.octets()
}

fn start(cfg: &UserNetConfig) -> (UserNet, SocketBackend) {
    UserNet::start(cfg).expect("libslirp starts (needs libslirp-dev at build time)")
}

/// Lets libslirp learn the guest's MAC, as a real guest's first ARP would.
fn introduce_guest(b: &mut SocketBackend) {
    b.send(&arp_request(GATEWAY)).unwrap();
    expect(b, "ARP reply for the gateway", |f| {
        is_arp_reply_from(f, GATEWAY)
    });
}

#[test]
fn arp_for_the_gateway_is_answered() {
    let (_net, mut b) = start(&UserNetConfig::default());
    b.send(&arp_request(GATEWAY)).unwrap();
    let reply = expect(&mut b, "ARP reply", |f| is_arp_reply_from(f, GATEWAY));
    assert_eq!(&reply[0..6], &GUEST_MAC);
}

#[test]
fn dhcp_offers_10_0_2_15() {
    let (_net, mut b) = start(&UserNetConfig::default());
    b.send(&dhcp_discover(0x1234_5678)).unwrap();
    let offer = expect(&mut b, "DHCP offer", |f| {
        summary(f).is_some_and(|(_, _, proto, _, dport)| proto == 17 && dport == 68)
    });
    let bootp = &offer[42..];
    assert_eq!(bootp[0], 2, "BOOTREPLY");
    assert_eq!(&bootp[4..8], &0x1234_5678u32.to_be_bytes());
    assert_eq!(&bootp[16..20], &GUEST.octets(), "yiaddr");
}

fn accepts_within(l: &TcpListener, d: Duration) -> bool {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if l.accept().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn host_is_reachable_only_on_allowed_ports() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let ap = allowed.local_addr().unwrap().port();
    let op = other.local_addr().unwrap().port();
    let (_net, mut b) = start(&UserNetConfig {
        allow_ports: vec![ap],
        ..Default::default()
    });
    introduce_guest(&mut b);

    // Allowed port: libslirp connects to the host's loopback and answers SYN-ACK.
    b.send(&tcp_syn(GATEWAY, 40001, ap, 100)).unwrap();
    expect(&mut b, "SYN-ACK from the allowed port", |f| {
        summary(f).is_some_and(|(src, _, _, flags, dport)| {
            src == GATEWAY && dport == 40001 && flags == Some(0x12)
        })
    });
    assert!(
        accepts_within(&allowed, WAIT),
        "host server saw no connection"
    );

    // A host port that is listening but not allowed: refused with a RST, never connected.
    b.send(&tcp_syn(GATEWAY, 40002, op, 200)).unwrap();
    expect(&mut b, "RST from a refused port", |f| {
        summary(f).is_some_and(|(_, _, _, flags, dport)| {
            dport == 40002 && flags.is_some_and(|fl| fl & 0x04 != 0)
        })
    });
    // The same port through another virtual address, or 127.0.0.1 itself.
    b.send(&tcp_syn(Ipv4Addr::new(10, 0, 2, 77), 40003, op, 300))
        .unwrap();
    b.send(&tcp_syn(Ipv4Addr::LOCALHOST, 40004, op, 400))
        .unwrap();
    for port in [40003, 40004] {
        expect(&mut b, "RST", |f| {
            summary(f).is_some_and(|(_, _, _, flags, dport)| {
                dport == port && flags.is_some_and(|fl| fl & 0x04 != 0)
            })
        });
    }
    assert!(
        !accepts_within(&other, Duration::from_millis(500)),
        "refused port was reached"
    );
}

#[test]
fn host_port_forward_reaches_the_guest() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_net, mut b) = start(&UserNetConfig {
        forwards: vec![PortForward::new(port, 22)],
        ..Default::default()
    });
    introduce_guest(&mut b);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("forward is listening");
    expect(&mut b, "SYN to guest port 22", |f| {
        summary(f).is_some_and(|(_, dst, _, flags, dport)| {
            dst == GUEST && dport == 22 && flags == Some(0x02)
        })
    });
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let _ = s.read(&mut [0u8; 1]);
}

#[test]
fn busy_forward_port_fails_before_the_vm_starts() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let e = UserNet::start(&UserNetConfig {
        forwards: vec![PortForward::new(port, 22)],
        ..Default::default()
    })
    .err()
    .expect("forward onto a busy port must fail");
    assert!(matches!(e, UserNetError::Forward { host, .. } if host == port));
    assert!(e.to_string().contains(&port.to_string()));
}

#[test]
fn dropping_the_network_closes_the_backend() {
    let (net, mut b) = start(&UserNetConfig::default());
    drop(net);
    let mut buf = [0u8; 64];
    assert!(b.recv(&mut buf).is_err());
}

fn expect_rst(b: &mut SocketBackend, sport: u16) {
    expect(b, "RST", |f| {
        summary(f).is_some_and(|(_, dst, _, flags, dport)| {
            dst == GUEST && dport == sport && flags.is_some_and(|fl| fl & 0x04 != 0)
        })
    });
}

#[test]
fn nothing_beyond_the_host_without_outbound_rules() {
    let (_net, mut b) = start(&UserNetConfig::default());
    introduce_guest(&mut b);
    b.send(&tcp_syn(Ipv4Addr::new(151, 101, 2, 132), 40010, 443, 1))
        .unwrap();
    expect_rst(&mut b, 40010);
}

#[test]
fn cloud_metadata_and_private_ranges_are_refused_even_with_internet() {
    let (_net, mut b) = start(&UserNetConfig {
        outbound: "internet".parse().unwrap(),
        ..Default::default()
    });
    introduce_guest(&mut b);
    for (i, dst) in [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(192, 168, 0, 1),
        Ipv4Addr::new(10, 1, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let sport = 40020 + i as u16;
        b.send(&tcp_syn(dst, sport, 80, 1)).unwrap();
        expect_rst(&mut b, sport);
    }
}
