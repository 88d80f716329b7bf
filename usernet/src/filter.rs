//! What the guest may reach, through the host and beyond it.
//!
//! libslirp maps every address of the virtual network except the DNS one (10.0.2.2, but also
//! 10.0.2.77, 10.0.2.255, ...) to the host's 127.0.0.1, and would happily connect to the
//! host's own addresses or to 127.0.0.1 itself if a guest crafted such packets. The guest is
//! untrusted, so every frame it sends passes this filter before libslirp sees it:
//!
//! * the gateway (10.0.2.2) is reachable only on the TCP ports the caller allowed;
//! * the DNS proxy (10.0.2.3) only on port 53, DHCP only on UDP port 67 at the gateway or
//!   the all-ones broadcast (the only two libslirp answers itself: to any other address of
//!   the virtual network, port 67 would be the host's loopback port 67);
//! * anything else aimed at the virtual network, at 127.0.0.0/8, 0.0.0.0/8, broadcast,
//!   multicast or at any address of the host's own interfaces is refused: TCP gets a RST
//!   (so the guest fails fast with "connection refused"), everything else is dropped;
//! * fragments aimed at those addresses are dropped (their ports cannot be checked);
//! * ARP passes (libslirp answers for the virtual addresses); IPv6 is disabled.
//!
//! Beyond the host, the guest reaches only what its [`Outbound`] rules allow (nothing by
//! default); even `internet` leaves out cloud metadata (169.254.169.254), link-local and
//! private ranges and the networks of the host's interfaces (its LAN). Refusals are the
//! same as above: a RST for TCP, a drop otherwise.

use std::net::Ipv4Addr;

use crate::outbound::Outbound;

pub const VNETWORK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);
pub const VNETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    /// Drop and answer with a TCP RST ([`tcp_reset_for`]).
    Reject,
}

#[derive(Debug, Clone)]
pub struct HostFilter {
    allow_ports: Vec<u16>,
    /// The host's interface addresses with their prefix lengths (loopback included).
    host: Vec<(Ipv4Addr, u8)>,
    outbound: Outbound,
}

/// IPv4 addresses of the host's interfaces (loopback included), each with the prefix
/// length of its network.
pub fn host_ipv4_nets() -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            tracing::warn!(
                "getifaddrs failed: {}; only loopback and the virtual network are protected",
                std::io::Error::last_os_error()
            );
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            let m = (*p).ifa_netmask;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                let sin = &*(a as *const libc::sockaddr_in);
                // A missing netmask counts as the address alone.
                let prefix = if m.is_null() {
                    32
                } else {
                    let mask = &*(m as *const libc::sockaddr_in);
                    u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
                };
                out.push((Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), prefix));
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

fn in_vnet(a: Ipv4Addr) -> bool {
    u32::from(a) & u32::from(VNETMASK) == u32::from(VNETWORK)
}

impl HostFilter {
    /// `allow_ports`: host loopback ports open at the gateway (the `host:PORT` rules of
    /// `outbound` are added); `host`: the host's interface addresses and prefix lengths
    /// ([`host_ipv4_nets`], injected so tests need not read the host).
    pub fn new(allow_ports: &[u16], host: Vec<(Ipv4Addr, u8)>, outbound: Outbound) -> Self {
        let mut ports = allow_ports.to_vec();
        ports.extend(outbound.host_ports());
        Self {
            allow_ports: ports,
            host,
            outbound,
        }
    }

    /// Addresses that lead to the host (or nowhere sensible) and so need a port check.
    fn protected(&self, dst: Ipv4Addr) -> bool {
        in_vnet(dst)
            || dst.is_loopback()
            || dst.octets()[0] == 0
            || dst.is_broadcast()
            || dst.is_multicast()
            || self.host.iter().any(|&(a, _)| a == dst)
    }

    pub fn check(&self, frame: &[u8]) -> Verdict {
        let Some(eth) = frame.get(..ETH_HLEN) else {
            return Verdict::Drop;
        };
        match u16::from_be_bytes([eth[12], eth[13]]) {
            ETHERTYPE_ARP => return Verdict::Pass,
            ETHERTYPE_IPV4 => {}
            _ => return Verdict::Drop,
        }
        let Some(ip) = Ipv4View::parse(&frame[ETH_HLEN..]) else {
            return Verdict::Drop;
        };
        let dport = match ip.proto {
            PROTO_TCP | PROTO_UDP if !ip.fragmented => {
                ip.l4.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]))
            }
            _ => None,
        };
        let allowed = if !self.protected(ip.dst) {
            self.outbound.allows(ip.dst, dport, &self.host)
        } else if ip.fragmented {
            false
        } else {
            self.host_side_allowed(&ip, dport)
        };
        if allowed {
            Verdict::Pass
        } else if ip.proto == PROTO_TCP
            && !ip.fragmented
            && ip.l4.len() >= 20
            && ip.l4[13] & TCP_RST == 0
        {
            Verdict::Reject
        } else {
            Verdict::Drop
        }
    }

    /// What the host itself (through libslirp's aliases) answers the guest on.
    fn host_side_allowed(&self, ip: &Ipv4View, dport: Option<u16>) -> bool {
        match (ip.proto, dport) {
            // libslirp serves DHCP itself only at these two; elsewhere port 67 is the host's.
            (PROTO_UDP, Some(67)) => ip.dst == GATEWAY || ip.dst.is_broadcast(),
            (PROTO_UDP | PROTO_TCP, Some(53)) => ip.dst == DNS,
            (PROTO_TCP, Some(p)) => ip.dst == GATEWAY && self.allow_ports.contains(&p),
            (PROTO_ICMP, _) => ip.dst == GATEWAY || ip.dst == DNS,
            _ => false,
        }
    }
}

struct Ipv4View<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    fragmented: bool,
    /// Transport header and payload (bounded by the IP total length).
    l4: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    fn parse(p: &'a [u8]) -> Option<Self> {
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(p[0] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        if ihl < 20 || total < ihl || total > p.len() {
            return None;
        }
        let frag = u16::from_be_bytes([p[6], p[7]]);
        Some(Self {
            src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
            dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
            proto: p[9],
            fragmented: frag & 0x2000 != 0 || frag & 0x1fff != 0,
            l4: &p[ihl..total],
        })
    }
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for c in chunks {
        let mut it = c.chunks_exact(2);
        for w in &mut it {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = it.remainder() {
            sum += u32::from(*b) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The RST a closed port would send in answer to this TCP segment (RFC 793 reset rules), as
/// an Ethernet frame addressed back to the sender.
pub fn tcp_reset_for(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = frame.get(..ETH_HLEN)?;
    let ip = Ipv4View::parse(&frame[ETH_HLEN..])?;
    if ip.proto != PROTO_TCP || ip.l4.len() < 20 {
        return None;
    }
    let t = ip.l4;
    let flags = t[13];
    if flags & TCP_RST != 0 {
        return None;
    }
    let doff = usize::from(t[12] >> 4) * 4;
    let payload = ip.l4.len().saturating_sub(doff) as u32;
    let seq_in = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let ack_in = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let (seq, ack, out_flags) = if flags & TCP_ACK != 0 {
        (ack_in, 0, TCP_RST)
    } else {
        let len = payload + u32::from(flags & TCP_SYN != 0) + u32::from(flags & TCP_FIN != 0);
        (0, seq_in.wrapping_add(len), TCP_RST | TCP_ACK)
    };

    let mut out = Vec::with_capacity(ETH_HLEN + 40);
    out.extend_from_slice(&eth[6..12]); // to the sender
    out.extend_from_slice(&eth[0..6]); // from whom it addressed
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let mut iph = [0u8; 20];
    iph[0] = 0x45;
    iph[2..4].copy_from_slice(&40u16.to_be_bytes());
    iph[6] = 0x40; // DF
    iph[8] = 64;
    iph[9] = PROTO_TCP;
    iph[12..16].copy_from_slice(&ip.dst.octets());
    iph[16..20].copy_from_slice(&ip.src.octets());
    let c = checksum(&[&iph]);
    iph[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&t[2..4]);
    tcp[2..4].copy_from_slice(&t[0..2]);
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = out_flags;
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&ip.dst.octets());
    pseudo[4..8].copy_from_slice(&ip.src.octets());
    pseudo[9] = PROTO_TCP;
    pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
    let c = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&iph);
    out.extend_from_slice(&tcp);
    Some(out)
}

/// Builders for test frames (also used by the integration tests and the fuzz target).
pub mod frames {
    use super::*;

    pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    /// What libslirp answers ARP for the gateway with.
    pub const GATEWAY_MAC: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];

    fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&GATEWAY_MAC);
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut iph = [0u8; 20];
        iph[0] = 0x45;
        iph[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        iph[8] = 64;
        iph[9] = proto;
        iph[12..16].copy_from_slice(&src.octets());
        iph[16..20].copy_from_slice(&dst.octets());
        let c = checksum(&[&iph]);
        iph[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&iph);
        f.extend_from_slice(l4);
        f
    }

    /// A TCP SYN from the guest.
    pub fn tcp_syn(dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> Vec<u8> {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = TCP_SYN;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&GUEST.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = PROTO_TCP;
        pseudo[10..12].copy_from_slice(&20u16.to_be_bytes());
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        ipv4(GUEST, dst, PROTO_TCP, &tcp)
    }

    /// A UDP datagram from the guest (checksum 0: "none", allowed for IPv4).
    pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::with_capacity(8 + payload.len());
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        ipv4(src, dst, PROTO_UDP, &u)
    }

    /// ARP request "who has `target`" from the guest.
    pub fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&GUEST_MAC);
        f.extend_from_slice(&GUEST.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f
    }

    /// A DHCPDISCOVER from the guest (broadcast, client MAC [`GUEST_MAC`]).
    pub fn dhcp_discover(xid: u32) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1; // BOOTREQUEST
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[10] = 0x80; // broadcast flag
        b[28..34].copy_from_slice(&GUEST_MAC);
        b[236..240].copy_from_slice(&[99, 130, 83, 99]); // magic cookie
        b.extend_from_slice(&[53, 1, 1]); // DHCPDISCOVER
        b.push(255);
        let mut f = udp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &b);
        f[0..6].copy_from_slice(&[0xff; 6]);
        f
    }

    /// (source, destination, protocol, TCP flags if TCP, destination port) of an IPv4 frame.
    pub fn summary(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, Option<u8>, u16)> {
        let ip = Ipv4View::parse(frame.get(ETH_HLEN..)?)?;
        let dport = u16::from_be_bytes([*ip.l4.get(2)?, *ip.l4.get(3)?]);
        let flags = (ip.proto == PROTO_TCP)
            .then(|| ip.l4.get(13).copied())
            .flatten();
        Some((ip.src, ip.dst, ip.proto, flags, dport))
    }
}

#[cfg(test)]
mod tests {
    use super::frames::*;
    use super::*;

    const LAN: (Ipv4Addr, u8) = (Ipv4Addr::new(192, 168, 1, 20), 24);

    fn filter_with(outbound: &str) -> HostFilter {
        HostFilter::new(
            &[8080],
            vec![(Ipv4Addr::LOCALHOST, 8), LAN],
            outbound.parse().unwrap(),
        )
    }

    fn filter() -> HostFilter {
        filter_with("")
    }

    #[test]
    fn gateway_only_on_allowed_ports() {
        let f = filter();
        assert_eq!(f.check(&tcp_syn(GATEWAY, 40000, 8080, 1)), Verdict::Pass);
        assert_eq!(f.check(&tcp_syn(GATEWAY, 40000, 22, 1)), Verdict::Reject);
        assert_eq!(f.check(&tcp_syn(GATEWAY, 40000, 8081, 1)), Verdict::Reject);
        // Other virtual-network addresses also lead to host loopback in libslirp.
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(10, 0, 2, 77), 1, 8080, 1)),
            Verdict::Reject
        );
        assert_eq!(f.check(&tcp_syn(DNS, 1, 8080, 1)), Verdict::Reject);
        // Loopback and the host's own addresses, whatever the port.
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::LOCALHOST, 1, 8080, 1)),
            Verdict::Reject
        );
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(127, 1, 2, 3), 1, 80, 1)),
            Verdict::Reject
        );
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(192, 168, 1, 20), 1, 8080, 1)),
            Verdict::Reject
        );
    }

    #[test]
    fn nothing_beyond_the_host_by_default() {
        let f = filter();
        for dst in [
            Ipv4Addr::new(151, 101, 2, 132),
            Ipv4Addr::new(169, 254, 169, 254),
            Ipv4Addr::new(192, 168, 1, 1),
        ] {
            assert_eq!(f.check(&tcp_syn(dst, 1, 443, 1)), Verdict::Reject, "{dst}");
            assert_eq!(
                f.check(&udp(GUEST, dst, 1, 123, b"x")),
                Verdict::Drop,
                "{dst}"
            );
        }
    }

    #[test]
    fn internet_leaves_out_metadata_link_local_private_and_the_lan() {
        let f = filter_with("internet");
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(151, 101, 2, 132), 1, 443, 1)),
            Verdict::Pass
        );
        assert_eq!(
            f.check(&udp(GUEST, Ipv4Addr::new(8, 8, 8, 8), 1, 53, b"x")),
            Verdict::Pass
        );
        for dst in [
            Ipv4Addr::new(169, 254, 169, 254),
            Ipv4Addr::new(169, 254, 0, 1),
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(10, 9, 8, 7),
            Ipv4Addr::new(172, 16, 0, 1),
            Ipv4Addr::new(100, 64, 0, 1),
        ] {
            assert_eq!(f.check(&tcp_syn(dst, 1, 80, 1)), Verdict::Reject, "{dst}");
            assert_eq!(
                f.check(&udp(GUEST, dst, 1, 80, b"x")),
                Verdict::Drop,
                "{dst}"
            );
        }
        // A LAN on public addresses is still the host's LAN.
        let f = HostFilter::new(
            &[],
            vec![(Ipv4Addr::new(151, 101, 2, 7), 24)],
            "internet".parse().unwrap(),
        );
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(151, 101, 2, 132), 1, 443, 1)),
            Verdict::Reject
        );
    }

    #[test]
    fn named_destinations_and_host_ports_open_only_themselves() {
        let f = filter_with("192.168.1.5:3142,host:3128,169.254.169.254");
        let proxy = Ipv4Addr::new(192, 168, 1, 5);
        assert_eq!(f.check(&tcp_syn(proxy, 1, 3142, 1)), Verdict::Pass);
        assert_eq!(f.check(&tcp_syn(proxy, 1, 22, 1)), Verdict::Reject);
        assert_eq!(f.check(&tcp_syn(GATEWAY, 1, 3128, 1)), Verdict::Pass);
        assert_eq!(f.check(&tcp_syn(GATEWAY, 1, 8080, 1)), Verdict::Pass);
        assert_eq!(f.check(&tcp_syn(GATEWAY, 1, 22, 1)), Verdict::Reject);
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(169, 254, 169, 254), 1, 80, 1)),
            Verdict::Pass
        );
        // The host's own LAN address stays the host's, whatever the rules.
        assert_eq!(
            f.check(&tcp_syn(Ipv4Addr::new(192, 168, 1, 20), 1, 3142, 1)),
            Verdict::Reject
        );
        // A fragment carries no port: only an every-port rule lets it through.
        let mut frag = tcp_syn(proxy, 1, 3142, 1);
        frag[20] = 0x20;
        assert_eq!(f.check(&frag), Verdict::Drop);
        let mut frag = tcp_syn(Ipv4Addr::new(169, 254, 169, 254), 1, 80, 1);
        frag[20] = 0x20;
        assert_eq!(f.check(&frag), Verdict::Pass);
    }

    #[test]
    fn dns_dhcp_arp_pass_other_udp_does_not() {
        let f = filter();
        assert_eq!(f.check(&udp(GUEST, DNS, 5353, 53, b"q")), Verdict::Pass);
        assert_eq!(f.check(&dhcp_discover(7)), Verdict::Pass);
        assert_eq!(f.check(&udp(GUEST, GATEWAY, 68, 67, b"req")), Verdict::Pass);
        // libslirp answers DHCP only at the gateway and 255.255.255.255; at the virtual
        // network's broadcast (or any other alias) port 67 is the host's loopback port 67.
        for alias in [
            Ipv4Addr::new(10, 0, 2, 255),
            Ipv4Addr::new(10, 0, 2, 77),
            DNS,
        ] {
            assert_eq!(
                f.check(&udp(GUEST, alias, 68, 67, b"req")),
                Verdict::Drop,
                "{alias}"
            );
        }
        assert_eq!(f.check(&arp_request(GATEWAY)), Verdict::Pass);
        assert_eq!(f.check(&udp(GUEST, GATEWAY, 1, 8080, b"x")), Verdict::Drop);
        assert_eq!(
            f.check(&udp(GUEST, Ipv4Addr::LOCALHOST, 1, 53, b"x")),
            Verdict::Drop
        );
        assert_eq!(
            f.check(&udp(GUEST, Ipv4Addr::new(8, 8, 8, 8), 1, 53, b"x")),
            Verdict::Drop,
            "DNS goes through the proxy at 10.0.2.3"
        );
    }

    #[test]
    fn malformed_and_fragmented_frames_are_dropped() {
        let f = filter();
        assert_eq!(f.check(&[]), Verdict::Drop);
        assert_eq!(f.check(&[0u8; 13]), Verdict::Drop);
        let syn = tcp_syn(GATEWAY, 1, 22, 1);
        assert_eq!(f.check(&syn[..30]), Verdict::Drop); // truncated IP header
        let mut bad = syn.clone();
        bad[14] = 0x44; // IHL 4
        assert_eq!(f.check(&bad), Verdict::Drop);
        let mut bad = syn.clone();
        bad[16..18].copy_from_slice(&1000u16.to_be_bytes()); // total length beyond frame
        assert_eq!(f.check(&bad), Verdict::Drop);
        let mut frag = tcp_syn(GATEWAY, 1, 8080, 1);
        frag[20] = 0x20; // more fragments
        assert_eq!(f.check(&frag), Verdict::Drop);
        let mut ipv6 = syn.clone();
        ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(f.check(&ipv6), Verdict::Drop);
    }

    #[test]
    fn reset_answers_the_syn() {
        let syn = tcp_syn(GATEWAY, 40000, 22, 1000);
        let rst = tcp_reset_for(&syn).unwrap();
        let (src, dst, proto, flags, dport) = summary(&rst).unwrap();
        assert_eq!((src, dst, proto, dport), (GATEWAY, GUEST, 6, 40000));
        assert_eq!(flags, Some(TCP_RST | TCP_ACK));
        assert_eq!(&rst[0..6], &GUEST_MAC);
        // ack = seq + 1 for the SYN; checksums verify to zero.
        assert_eq!(u32::from_be_bytes(rst[42..46].try_into().unwrap()), 1001);
        assert_eq!(checksum(&[&rst[14..34]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&GATEWAY.octets());
        pseudo[4..8].copy_from_slice(&GUEST.octets());
        pseudo[9] = 6;
        pseudo[11] = 20;
        assert_eq!(checksum(&[&pseudo, &rst[34..54]]), 0);
        assert!(tcp_reset_for(&rst).is_none(), "never answer a RST");
    }
}
