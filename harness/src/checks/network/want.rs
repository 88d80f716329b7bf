//! What one derived network check expects ([`Want`], which is also its probe) and how
//! it says so in words, the start of a failure's evidence.

use std::net::IpAddr;

use serde_json::Value;

use super::addr::Prefixed;
use super::facts::Family;

/// What one check expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    /// A link under the configured name.
    Exists {
        iface: String,
    },
    /// The NIC's own MAC (a bond member's permanent one).
    Mac {
        iface: String,
        mac: String,
    },
    Mtu {
        iface: String,
        mtu: u32,
    },
    /// Administratively up (`true`) or down.
    State {
        iface: String,
        up: bool,
    },
    /// This static address with this prefix on the link.
    Address {
        iface: String,
        addr: Prefixed,
    },
    /// IPv4 on the link is exactly the static addresses (and one lease when `dhcp`).
    OnlyIpv4 {
        iface: String,
        statics: Vec<Prefixed>,
        dhcp: bool,
    },
    /// A leased (dynamic) global address of this family.
    Lease {
        iface: String,
        family: Family,
    },
    Route {
        dst: Prefixed,
        via: Option<IpAddr>,
        metric: Option<u32>,
        dev: Option<String>,
    },
    Nameserver(String),
    Search(String),
    /// A bond setting as the kernel names it (`mode`, `miimon`, `xmit_hash_policy`, ...),
    /// with the value normalised to the kernel's words.
    BondOption {
        iface: String,
        key: &'static str,
        value: String,
    },
    BondMembers {
        iface: String,
        members: Vec<String>,
    },
    VlanId {
        iface: String,
        id: u32,
    },
    VlanParent {
        iface: String,
        link: String,
    },
    BridgeMembers {
        iface: String,
        members: Vec<String>,
    },
    BridgeStp {
        iface: String,
        on: bool,
    },
    /// A bridge timer or number in the kernel's units (timers in 1/100 s).
    BridgeOption {
        iface: String,
        key: &'static str,
        value: u64,
        /// As the config wrote it (for messages).
        shown: String,
    },
    /// A bridge port's `cost` or `priority`.
    BridgePort {
        iface: String,
        port: String,
        key: &'static str,
        value: u32,
    },
    /// The installed system's rendered configuration names this MAC.
    RenderedMac {
        mac: String,
    },
    /// ... and this address.
    RenderedAddress {
        addr: IpAddr,
    },
    /// cloud-init was handed the test's `network:` (as PyYAML reads both).
    CloudInitConfig {
        network: Value,
    },
    /// The config itself says something the checks cannot use (the message says what).
    BadConfig {
        why: String,
    },
}

impl Want {
    /// The interface the check is about, where it is about one (a route's device).
    pub fn iface(&self) -> Option<&str> {
        match self {
            Want::Exists { iface }
            | Want::Mac { iface, .. }
            | Want::Mtu { iface, .. }
            | Want::State { iface, .. }
            | Want::Address { iface, .. }
            | Want::OnlyIpv4 { iface, .. }
            | Want::Lease { iface, .. }
            | Want::BondOption { iface, .. }
            | Want::BondMembers { iface, .. }
            | Want::VlanId { iface, .. }
            | Want::VlanParent { iface, .. }
            | Want::BridgeMembers { iface, .. }
            | Want::BridgeStp { iface, .. }
            | Want::BridgeOption { iface, .. }
            | Want::BridgePort { iface, .. } => Some(iface),
            Want::Route { dev, .. } => dev.as_deref(),
            Want::Nameserver(_)
            | Want::Search(_)
            | Want::RenderedMac { .. }
            | Want::RenderedAddress { .. }
            | Want::CloudInitConfig { .. }
            | Want::BadConfig { .. } => None,
        }
    }

    /// What it expects, in words (the start of a failure's evidence).
    pub fn describe(&self) -> String {
        match self {
            Want::Exists { iface } => format!("a link named {iface}"),
            Want::Mac { mac, .. } => format!("MAC {mac}"),
            Want::Mtu { mtu, .. } => format!("MTU {mtu}"),
            Want::State { up, .. } => (if *up { "up" } else { "down" }).to_string(),
            Want::Address { iface, addr } => format!("{addr} on {iface}"),
            Want::OnlyIpv4 { statics, dhcp, .. } => {
                let mut v: Vec<String> = statics.iter().map(|p| p.to_string()).collect();
                if *dhcp {
                    v.push("one DHCP lease".into());
                }
                if v.is_empty() {
                    "no IPv4 address".into()
                } else {
                    format!("IPv4 {} and nothing else", v.join(", "))
                }
            }
            Want::Lease { family, .. } => format!("a leased {} address", family.as_str()),
            Want::Route {
                dst,
                via,
                metric,
                dev,
            } => {
                let mut s = dst.route_text();
                if let Some(v) = via {
                    s.push_str(&format!(" via {v}"));
                }
                if let Some(d) = dev {
                    s.push_str(&format!(" dev {d}"));
                }
                if let Some(m) = metric {
                    s.push_str(&format!(" metric {m}"));
                }
                s
            }
            Want::Nameserver(ns) => format!("nameserver {ns} in use"),
            Want::Search(d) => format!("search domain {d}"),
            Want::BondOption { key, value, .. } => format!("{key} {value}"),
            Want::BondMembers { members, .. } | Want::BridgeMembers { members, .. } => {
                format!("members {}", members.join(", "))
            }
            Want::VlanId { id, .. } => format!("VLAN id {id}"),
            Want::VlanParent { link, .. } => format!("a VLAN on {link}"),
            Want::BridgeStp { on, .. } => format!("STP {}", if *on { "on" } else { "off" }),
            Want::BridgeOption {
                key, value, shown, ..
            } => {
                format!("{key} {value} (the config's {shown})")
            }
            Want::BridgePort {
                port, key, value, ..
            } => format!("{port} {key} {value}"),
            Want::RenderedMac { mac } => format!("{mac} in the rendered network configuration"),
            Want::RenderedAddress { addr } => {
                format!("{addr} in the rendered network configuration")
            }
            Want::CloudInitConfig { .. } => {
                "the test's network: in /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg".into()
            }
            Want::BadConfig { .. } => "a network config the checks can read".into(),
        }
    }
}

/// One derived check: a stable name and what it expects.
#[derive(Debug, Clone, PartialEq)]
pub struct NetCheck {
    pub name: String,
    pub want: Want,
}
