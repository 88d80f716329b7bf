//! What the guest's network commands print, as typed shapes (`ip -d -j link`, `ip -j
//! addr`/`route`, `bridge -d -j link`) and small text parsers (`/proc/net/bonding/*`,
//! `resolvectl`, `/etc/resolv.conf`). Reading the files, within caps, is the parent's job.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One link (`ip -d -j link show`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Link {
    pub ifname: String,
    /// Its current MAC (a bond member's may be the bond's).
    #[serde(default)]
    pub address: Option<String>,
    /// The NIC's own MAC when the current one differs (iproute2 prints it then).
    #[serde(default)]
    pub permaddr: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `UP`, `LOWER_UP`, `SLAVE`, ...: `UP` is the administrative state.
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub operstate: Option<String>,
    /// The bond or bridge it is enslaved to.
    #[serde(default)]
    pub master: Option<String>,
    /// A VLAN's parent.
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
    #[serde(default)]
    pub info_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub info_slave_kind: Option<String>,
    #[serde(default)]
    pub info_slave_data: Option<Map<String, Value>>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
    pub fn kind(&self) -> Option<&str> {
        self.linkinfo.as_ref()?.info_kind.as_deref()
    }
    /// The kind's own settings (`mode`, `miimon` of a bond, `id` of a VLAN, ...).
    pub fn data(&self, key: &str) -> Option<&Value> {
        self.linkinfo.as_ref()?.info_data.as_ref()?.get(key)
    }
    /// Its settings as a port of its master (`cost`, `priority` on a bridge).
    pub fn port_data(&self, key: &str) -> Option<&Value> {
        self.linkinfo.as_ref()?.info_slave_data.as_ref()?.get(key)
    }
    /// One line for evidence.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} mac {} mtu {} {}",
            self.ifname,
            self.address.as_deref().unwrap_or("-"),
            self.mtu
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            if self.is_up() { "up" } else { "down" }
        );
        if let Some(k) = self.kind() {
            s.push_str(&format!(" kind {k}"));
        }
        if let Some(m) = &self.master {
            s.push_str(&format!(" master {m}"));
        }
        if let Some(l) = &self.link {
            s.push_str(&format!(" link {l}"));
        }
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(a: &IpAddr) -> Family {
        if a.is_ipv4() { Family::V4 } else { Family::V6 }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// One address on a link (`ip -j addr show`).
#[derive(Debug, Clone, PartialEq)]
pub struct Addr {
    pub ifname: String,
    pub local: IpAddr,
    pub prefix: u8,
    /// Leased (DHCP) or autoconfigured (SLAAC): it expires.
    pub dynamic: bool,
    /// `global`, `link`, `host`, `site`.
    pub scope: String,
    pub label: Option<String>,
}

impl Addr {
    pub fn summary(&self) -> String {
        format!(
            "{}/{} scope {}{}",
            self.local,
            self.prefix,
            self.scope,
            if self.dynamic { " dynamic" } else { "" }
        )
    }
}

#[derive(Deserialize)]
pub(super) struct IpAddrLink {
    pub(super) ifname: String,
    #[serde(default)]
    pub(super) addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
pub(super) struct IpAddrInfo {
    #[serde(default)]
    pub(super) local: Option<String>,
    #[serde(default)]
    pub(super) prefixlen: Option<u8>,
    #[serde(default)]
    pub(super) dynamic: bool,
    #[serde(default)]
    pub(super) scope: Option<String>,
    #[serde(default)]
    pub(super) label: Option<String>,
}

/// One route (`ip -4|-6 -j route show`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RouteFact {
    /// `default`, a network (`10.0.0.0/12`) or a host address (no prefix).
    pub dst: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dev: Option<String>,
    #[serde(default)]
    pub metric: Option<u32>,
    #[serde(default)]
    pub protocol: Option<String>,
}

impl RouteFact {
    pub fn summary(&self) -> String {
        let mut s = self.dst.clone();
        if let Some(g) = &self.gateway {
            s.push_str(&format!(" via {g}"));
        }
        if let Some(d) = &self.dev {
            s.push_str(&format!(" dev {d}"));
        }
        if let Some(p) = &self.protocol {
            s.push_str(&format!(" proto {p}"));
        }
        if let Some(m) = self.metric {
            s.push_str(&format!(" metric {m}"));
        }
        s
    }
}

/// One bridge port (`bridge -d -j link show`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BridgePort {
    pub ifname: String,
    #[serde(default)]
    pub master: Option<String>,
    /// `forwarding`, `blocking`, `disabled`, ...
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub cost: Option<u32>,
}

impl BridgePort {
    pub fn summary(&self) -> String {
        format!(
            "{} master {} state {} priority {} cost {}",
            self.ifname,
            self.master.as_deref().unwrap_or("-"),
            self.state.as_deref().unwrap_or("-"),
            self.priority
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            self.cost
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
        )
    }
}

/// One bond as the kernel describes it (`/proc/net/bonding/NAME`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bonding {
    /// `fault-tolerance (active-backup)`, `IEEE 802.3ad Dynamic link aggregation`, ...
    pub mode: String,
    pub mii_polling_ms: Option<u32>,
    /// Members in the kernel's order, each with its permanent MAC when given.
    pub members: Vec<(String, Option<String>)>,
}

/// Parses `/proc/net/bonding/NAME` (the kernel's `key: value` text).
pub fn parse_bonding(text: &str) -> Bonding {
    let mut b = Bonding::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "Bonding Mode" => b.mode = v.to_string(),
            "MII Polling Interval (ms)" => b.mii_polling_ms = v.parse().ok(),
            "Slave Interface" => b.members.push((v.to_string(), None)),
            "Permanent HW addr" => {
                if let Some(last) = b.members.last_mut() {
                    last.1 = Some(v.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    b
}

/// The resolver's view: the nameservers and search domains it uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    /// Where these came from (`resolvectl`, `/etc/resolv.conf`), for evidence.
    pub source: String,
}

/// `resolvectl dns` or `resolvectl domain` output: `Global: a b` and
/// `Link 2 (eth0): a b` lines; every value.
pub fn parse_resolvectl_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let rest = if let Some(r) = line.strip_prefix("Global:") {
            r
        } else if line.starts_with("Link ") {
            match line.split_once("):") {
                Some((_, r)) => r,
                None => continue,
            }
        } else {
            continue;
        };
        out.extend(rest.split_whitespace().map(str::to_string));
    }
    out
}

/// `nameserver` and `search` lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut ns, mut search) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => ns.extend(w.next().map(str::to_string)),
            Some("search") | Some("domain") => search.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    (ns, search)
}
