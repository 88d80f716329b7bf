//! Addresses and networks as network configs write them (`10.0.2.15/24`, an address with
//! its netmask apart, `default`) and as `ip` prints them, brought to one form.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prefixed {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Prefixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(a: &IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// `a` with every bit past `prefix` cleared.
pub fn network_of(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let bits = u32::from(v);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v) => {
            let bits = u128::from(v);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

impl Prefixed {
    /// The network this prefix names (host bits cleared).
    pub fn network(&self) -> Prefixed {
        Prefixed {
            addr: network_of(self.addr, self.prefix),
            prefix: self.prefix,
        }
    }

    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }

    /// As a route's destination reads: `default`, `10.0.0.0/12`, or `::/0`'s `default`.
    pub fn route_text(&self) -> String {
        if self.is_default() {
            match self.addr {
                IpAddr::V4(_) => "default".into(),
                IpAddr::V6(_) => "::/0".into(),
            }
        } else {
            self.network().to_string()
        }
    }
}

/// A netmask (`255.255.255.0`, `ffff:ffff:ffff:ffff::`, or a prefix length) as a prefix.
pub fn mask_to_prefix(mask: &str) -> Result<u8, String> {
    let mask = mask.trim();
    if let Ok(n) = mask.parse::<u8>() {
        return Ok(n);
    }
    let (bits, width): (u128, u32) = match mask.parse::<IpAddr>() {
        Ok(IpAddr::V4(v)) => (u128::from(u32::from(v)) << 96, 32),
        Ok(IpAddr::V6(v)) => (u128::from(v), 128),
        Err(_) => return Err(format!("netmask `{mask}` is not a netmask")),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 || ones > width {
        return Err(format!("netmask `{mask}` is not contiguous"));
    }
    Ok(ones as u8)
}

/// A static address as a network config gives it: `ADDR/PREFIX`, or `ADDR` with a
/// netmask apart, or `ADDR` alone (cloud-init then takes /24 for IPv4 and /64 for IPv6).
pub fn parse_address(address: &str, netmask: Option<&str>) -> Result<Prefixed, String> {
    let (a, p) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (address, None),
    };
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("`{address}` is not an IP address"))?;
    let prefix = match (p, netmask) {
        (Some(p), _) => mask_to_prefix(p)?,
        (None, Some(m)) => mask_to_prefix(m)?,
        (None, None) => {
            if addr.is_ipv4() {
                24
            } else {
                64
            }
        }
    };
    if prefix > max_prefix(&addr) {
        return Err(format!("`{address}`: prefix {prefix} is too long"));
    }
    Ok(Prefixed { addr, prefix })
}

/// A route's destination as a network config gives it: `default`, `NET/PREFIX`, `NET`
/// with a netmask apart, or a host address.
pub fn parse_dest(to: &str, netmask: Option<&str>) -> Result<Prefixed, String> {
    let t = to.trim();
    if t == "default" {
        return Ok(Prefixed {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix: 0,
        });
    }
    let (a, p) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("route destination `{to}` is not a network"))?;
    let prefix = match (p, netmask) {
        (Some(p), _) => mask_to_prefix(p)?,
        (None, Some(m)) => mask_to_prefix(m)?,
        (None, None) => max_prefix(&addr),
    };
    if prefix > max_prefix(&addr) {
        return Err(format!(
            "route destination `{to}`: prefix {prefix} is too long"
        ));
    }
    Ok(Prefixed { addr, prefix }.network())
}

/// A route's `dst` as `ip -j route` prints it: `default`, `NET/PREFIX` or a host address.
pub fn parse_kernel_dst(dst: &str, family_v6: bool) -> Option<Prefixed> {
    if dst == "default" {
        let addr = if family_v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        return Some(Prefixed { addr, prefix: 0 });
    }
    parse_dest(dst, None).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_configs_write_them() {
        assert_eq!(
            parse_address("10.0.2.15/24", None).unwrap().to_string(),
            "10.0.2.15/24"
        );
        assert_eq!(
            parse_address("10.0.2.15", Some("255.255.255.0"))
                .unwrap()
                .prefix,
            24
        );
        assert_eq!(
            parse_address(
                "2001:4800:78ff:1b:be76:4eff:fe06:96b3",
                Some("ffff:ffff:ffff:ffff::")
            )
            .unwrap()
            .prefix,
            64
        );
        assert_eq!(parse_address("192.168.1.2", None).unwrap().prefix, 24);
        assert_eq!(parse_address("2001:db8::1", None).unwrap().prefix, 64);
        assert!(
            parse_address("10.0.2.15", Some("255.0.255.0"))
                .unwrap_err()
                .contains("contiguous")
        );
        assert!(parse_address("10.0.2.15/33", None).is_err());
        assert!(parse_address("eth0", None).is_err());
    }

    #[test]
    fn destinations() {
        assert!(parse_dest("default", None).unwrap().is_default());
        assert!(parse_dest("::", Some("::")).unwrap().is_default());
        assert!(parse_dest("0.0.0.0/0", None).unwrap().is_default());
        assert_eq!(
            parse_dest("10.1.0.0", Some("255.255.0.0"))
                .unwrap()
                .to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            parse_dest("10.0.0.5/12", None).unwrap().to_string(),
            "10.0.0.0/12"
        );
        assert_eq!(parse_kernel_dst("10.2.3.4", false).unwrap().prefix, 32);
        assert_eq!(
            parse_kernel_dst("default", true).unwrap(),
            parse_dest("::/0", None).unwrap()
        );
        assert_ne!(
            parse_kernel_dst("default", false).unwrap(),
            parse_dest("::/0", None).unwrap()
        );
    }
}
