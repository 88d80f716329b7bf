//! Where a guest may go beyond the host ports its VM's owner opened: nowhere unless said.
//!
//! The harness serves the guest on a few host ports (the seed, the install image, the
//! webhook); those are [`crate::NetSpec::allow_ports`]. Everything else is refused unless an
//! [`Outbound`] rule allows it, written as a comma-separated list:
//!
//! * `internet`: any globally routable address, every port. Private (RFC 1918), shared
//!   (100.64/10), link-local (169.254/16, so cloud metadata at 169.254.169.254), loopback,
//!   documentation, benchmarking, multicast and reserved ranges stay refused, and so does
//!   every network the host has an interface on (its LAN).
//! * `host:PORT`: a service on the host's loopback (an apt proxy on 127.0.0.1:3142), which the
//!   guest reaches at the gateway address 10.0.2.2, like the harness's own ports.
//! * `ADDR[/PREFIX][:PORT]`: one address or network, every port or one. This is the way to
//!   reach something on the host's LAN or link-local (a proxy at `192.168.1.5:3142`): naming
//!   it is the permission. The host's own addresses are reached only through `host:PORT`.
//!
//! DHCP and the DNS proxy (10.0.2.3:53, which asks the host's resolver) are always there:
//! a guest needs them to configure its network, and a name without a route is harmless.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// One permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboundRule {
    /// Globally routable addresses (see [`is_global`]), every port.
    Internet,
    /// A TCP port on the host's loopback, reached at the gateway address.
    HostPort(u16),
    /// Addresses in `addr/prefix`, on `port` only (TCP and UDP) or on every port.
    Net {
        addr: Ipv4Addr,
        prefix: u8,
        port: Option<u16>,
    },
}

/// The guest's permissions beyond the host ports it is served on. Empty: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbound {
    pub rules: Vec<OutboundRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error(
        "outbound rule {0:?}: expected `internet`, `host:PORT` or ADDR[/PREFIX][:PORT] (e.g. 192.168.1.5:3142)"
    )]
    Syntax(String),
    #[error("outbound rule {rule:?}: {value:?} is not a port number (1-65535)")]
    Port { rule: String, value: String },
    #[error("outbound rule {rule:?}: prefix {value:?} is not 0-32")]
    Prefix { rule: String, value: String },
    #[error(
        "outbound rule {rule:?}: {addr} is the host or the guest's own network; use host:PORT for a service on the host's loopback"
    )]
    HostSide { rule: String, addr: Ipv4Addr },
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Whether `addr` is inside `net/prefix`.
pub fn in_net(addr: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    u32::from(addr) & mask(prefix) == u32::from(net) & mask(prefix)
}

/// Ranges that are never "the internet" (IANA special-purpose registry, IPv4).
const NOT_GLOBAL: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// Whether `addr` is globally routable (not private, shared, link-local, loopback,
/// documentation, benchmarking, multicast, reserved or broadcast).
pub fn is_global(addr: Ipv4Addr) -> bool {
    !NOT_GLOBAL.iter().any(|&(n, p)| in_net(addr, n, p))
}

fn port(rule: &str, v: &str) -> Result<u16, OutboundError> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(OutboundError::Port {
            rule: rule.into(),
            value: v.into(),
        }),
    }
}

impl FromStr for OutboundRule {
    type Err = OutboundError;

    fn from_str(rule: &str) -> Result<Self, OutboundError> {
        let r = rule.trim();
        if r == "internet" {
            return Ok(OutboundRule::Internet);
        }
        if let Some(p) = r.strip_prefix("host:") {
            return Ok(OutboundRule::HostPort(port(rule, p)?));
        }
        let (net, p) = match r.rsplit_once(':') {
            Some((n, p)) => (n, Some(port(rule, p)?)),
            None => (r, None),
        };
        let (a, prefix) = match net.split_once('/') {
            Some((a, len)) => match len.parse::<u8>() {
                Ok(l) if l <= 32 => (a, l),
                _ => {
                    return Err(OutboundError::Prefix {
                        rule: rule.into(),
                        value: len.into(),
                    });
                }
            },
            None => (net, 32),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| OutboundError::Syntax(rule.into()))?;
        let addr = Ipv4Addr::from(u32::from(addr) & mask(prefix));
        // The guest's own network and the host's loopback are libslirp's aliases for the
        // host: they are reached through the gateway's ports, never by a network rule.
        let host_side = |a: Ipv4Addr| {
            in_net(a, crate::filter::VNETWORK, 24)
                || a.is_loopback()
                || a.octets()[0] == 0
                || a.is_multicast()
                || a.is_broadcast()
        };
        let last = Ipv4Addr::from(u32::from(addr) | !mask(prefix));
        if host_side(addr) || host_side(last) || in_net(crate::filter::VNETWORK, addr, prefix) {
            return Err(OutboundError::HostSide {
                rule: rule.into(),
                addr,
            });
        }
        Ok(OutboundRule::Net {
            addr,
            prefix,
            port: p,
        })
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundRule::Internet => write!(f, "internet"),
            OutboundRule::HostPort(p) => write!(f, "host:{p}"),
            OutboundRule::Net { addr, prefix, port } => {
                write!(f, "{addr}")?;
                if *prefix != 32 {
                    write!(f, "/{prefix}")?;
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl Outbound {
    /// No access beyond the host ports the VM is served on.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds `other`'s rules (duplicates once).
    pub fn extend(&mut self, other: &Outbound) {
        for r in &other.rules {
            if !self.rules.contains(r) {
                self.rules.push(*r);
            }
        }
    }

    /// Host loopback ports the rules open (`host:PORT`).
    pub fn host_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.rules.iter().filter_map(|r| match r {
            OutboundRule::HostPort(p) => Some(*p),
            _ => None,
        })
    }

    /// Whether a packet to `dst` (beyond the host) may pass. `dport` is the TCP/UDP
    /// destination port, `None` for other protocols and for fragments, which only
    /// every-port rules let through. `host_nets` are the host's interface networks.
    pub fn allows(&self, dst: Ipv4Addr, dport: Option<u16>, host_nets: &[(Ipv4Addr, u8)]) -> bool {
        self.rules.iter().any(|r| match *r {
            OutboundRule::Internet => {
                is_global(dst) && !host_nets.iter().any(|&(n, p)| in_net(dst, n, p))
            }
            OutboundRule::HostPort(_) => false,
            OutboundRule::Net { addr, prefix, port } => {
                in_net(dst, addr, prefix) && (port.is_none() || port == dport)
            }
        })
    }
}

impl FromStr for Outbound {
    type Err = OutboundError;

    /// A comma-separated list of rules; empty (or only spaces) is no access.
    fn from_str(s: &str) -> Result<Self, OutboundError> {
        let mut out = Outbound::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let rule: OutboundRule = part.parse()?;
            if !out.rules.contains(&rule) {
                out.rules.push(rule);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return write!(f, "none");
        }
        let parts: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_form() {
        let o: Outbound = "internet, host:3142,192.168.1.5:3142,10.20.0.0/16,169.254.169.254"
            .parse()
            .unwrap();
        assert_eq!(
            o.rules,
            [
                OutboundRule::Internet,
                OutboundRule::HostPort(3142),
                OutboundRule::Net {
                    addr: Ipv4Addr::new(192, 168, 1, 5),
                    prefix: 32,
                    port: Some(3142)
                },
                OutboundRule::Net {
                    addr: Ipv4Addr::new(10, 20, 0, 0),
                    prefix: 16,
                    port: None
                },
                OutboundRule::Net {
                    addr: Ipv4Addr::new(169, 254, 169, 254),
                    prefix: 32,
                    port: None
                },
            ]
        );
        assert_eq!(
            o.to_string(),
            "internet,host:3142,192.168.1.5:3142,10.20.0.0/16,169.254.169.254"
        );
        assert_eq!("".parse::<Outbound>().unwrap(), Outbound::none());
        assert_eq!(Outbound::none().to_string(), "none");
        assert_eq!(o.host_ports().collect::<Vec<_>>(), [3142]);
        // A network is kept by its first address.
        assert_eq!(
            "10.20.3.4/16".parse::<OutboundRule>().unwrap().to_string(),
            "10.20.0.0/16"
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Outbound>().unwrap_err().to_string();
        assert!(err("everything").contains("expected `internet`"));
        assert!(err("host:http").contains("not a port number"));
        assert!(err("host:0").contains("not a port number"));
        assert!(err("1.2.3.4:70000").contains("not a port number"));
        assert!(err("1.2.3.0/33").contains("prefix \"33\""));
        assert!(err("127.0.0.1:3142").contains("use host:PORT"));
        assert!(err("10.0.2.2:80").contains("use host:PORT"));
        assert!(
            err("10.0.0.0/8").contains("use host:PORT"),
            "covers 10.0.2.0/24"
        );
        assert!(err("0.0.0.0/0").contains("use host:PORT"));
        assert!(err("224.0.0.1").contains("use host:PORT"));
    }

    #[test]
    fn internet_is_global_addresses_off_the_hosts_networks() {
        let o: Outbound = "internet".parse().unwrap();
        let lan = [(Ipv4Addr::new(151, 101, 0, 0), 16)];
        for public in [[151, 101, 2, 132], [1, 1, 1, 1], [8, 8, 8, 8]] {
            assert!(
                o.allows(Ipv4Addr::from(public), Some(443), &[]),
                "{public:?}"
            );
        }
        assert!(!o.allows(Ipv4Addr::new(151, 101, 2, 132), Some(443), &lan));
        for refused in [
            [169, 254, 169, 254],
            [169, 254, 1, 1],
            [10, 1, 2, 3],
            [172, 20, 0, 1],
            [192, 168, 1, 1],
            [100, 100, 100, 100],
            [192, 0, 2, 7],
            [240, 0, 0, 1],
        ] {
            assert!(
                !o.allows(Ipv4Addr::from(refused), Some(80), &[]),
                "{refused:?}"
            );
        }
        assert!(!Outbound::none().allows(Ipv4Addr::new(1, 1, 1, 1), Some(80), &[]));
    }

    #[test]
    fn named_addresses_open_what_they_name() {
        let o: Outbound = "192.168.1.5:3142,169.254.169.254".parse().unwrap();
        let lan = [(Ipv4Addr::new(192, 168, 1, 0), 24)];
        assert!(o.allows(Ipv4Addr::new(192, 168, 1, 5), Some(3142), &lan));
        assert!(!o.allows(Ipv4Addr::new(192, 168, 1, 5), Some(22), &lan));
        assert!(
            !o.allows(Ipv4Addr::new(192, 168, 1, 5), None, &lan),
            "fragment"
        );
        assert!(!o.allows(Ipv4Addr::new(192, 168, 1, 6), Some(3142), &lan));
        assert!(o.allows(Ipv4Addr::new(169, 254, 169, 254), Some(80), &[]));
        assert!(o.allows(Ipv4Addr::new(169, 254, 169, 254), None, &[]));
    }
}
