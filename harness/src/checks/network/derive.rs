//! From the network config alone, what the installed system must show: one [`NetCheck`]
//! per fact, in config order. The names are stable (CI compares results by them) and
//! unique within a test.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::addr::{Prefixed, parse_address, parse_dest};
use super::facts::Family;
use crate::config::{Activation, Interface, InterfaceKind, NetworkConfig, Route};

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

/// Bond settings: (v1 name without `bond-`/`bond_`, v2 name, the kernel's name).
const BOND_KEYS: &[(&str, &str, &str)] = &[
    ("mode", "mode", "mode"),
    ("miimon", "mii-monitor-interval", "miimon"),
    ("updelay", "up-delay", "updelay"),
    ("downdelay", "down-delay", "downdelay"),
    (
        "xmit-hash-policy",
        "transmit-hash-policy",
        "xmit_hash_policy",
    ),
    ("lacp-rate", "lacp-rate", "ad_lacp_rate"),
    ("primary", "primary", "primary"),
    ("min-links", "min-links", "min_links"),
    ("arp-interval", "arp-interval", "arp_interval"),
    ("ad-select", "ad-select", "ad_select"),
    ("fail-over-mac", "fail-over-mac-policy", "fail_over_mac"),
    (
        "primary-reselect",
        "primary-reselect-policy",
        "primary_reselect",
    ),
    ("num-grat-arp", "gratuitous-arp", "num_peer_notif"),
];

/// Bridge settings: (v1 `bridge_` name, v2 name, the kernel's name, timer in seconds).
const BRIDGE_KEYS: &[(&str, &str, &str, bool)] = &[
    ("bridge_ageing", "ageing-time", "ageing_time", true),
    ("bridge_bridgeprio", "priority", "priority", false),
    ("bridge_fd", "forward-delay", "forward_delay", true),
    ("bridge_hello", "hello-time", "hello_time", true),
    ("bridge_maxage", "max-age", "max_age", true),
];

const BOND_MODES: [&str; 7] = [
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A duration in the config (`100`, `"100ms"`, `"2s"`) in `unit_ms` milliseconds per
/// bare number.
fn millis(v: &Value, unit_ms: f64) -> Option<f64> {
    let t = scalar_text(v)?;
    let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t.as_str(), unit_ms)
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * mul)
}

/// A bond setting's value in the kernel's words, or None when it cannot be read.
fn bond_value(kernel_key: &str, v: &Value) -> Option<String> {
    let t = scalar_text(v)?;
    let by_index = |names: &[&str]| -> String {
        t.parse::<usize>()
            .ok()
            .and_then(|i| names.get(i).map(|s| s.to_string()))
            .unwrap_or_else(|| t.clone())
    };
    Some(match kernel_key {
        "mode" => by_index(&BOND_MODES),
        "ad_lacp_rate" => by_index(&["slow", "fast"]),
        "fail_over_mac" => by_index(&["none", "active", "follow"]),
        "ad_select" => by_index(&["stable", "bandwidth", "count"]),
        "primary_reselect" => by_index(&["always", "better", "failure"]),
        "miimon" | "updelay" | "downdelay" | "arp_interval" => {
            format!("{}", millis(v, 1.0)?.round() as u64)
        }
        _ => t,
    })
}

fn stp_on(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "yes" | "true" | "1" => Some(true),
            "off" | "no" | "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// v1 `["eth1 50", ...]` or v2 `{eth1: 50}` per-port values.
fn per_port(v: &Value) -> Vec<(String, Option<u32>)> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| {
                let t = scalar_text(i)?;
                let mut w = t.split_whitespace();
                let port = w.next()?.to_string();
                Some((port, w.next().and_then(|n| n.parse().ok())))
            })
            .collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(v).and_then(|t| t.parse().ok())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds checks, dropping any whose name is already there (a config may say the same
/// thing twice, e.g. one nameserver on two interfaces).
struct Out {
    checks: Vec<NetCheck>,
    names: BTreeSet<String>,
}

impl Out {
    fn push(&mut self, name: String, want: Want) {
        if self.names.insert(name.clone()) {
            self.checks.push(NetCheck { name, want });
        }
    }
}

fn route_checks(out: &mut Out, routes: &[Route], dev: Option<&str>) {
    for r in routes {
        let dst = match parse_dest(&r.to, r.netmask.as_deref()) {
            Ok(d) => d,
            Err(why) => {
                out.push(format!("route {}", r.to), Want::BadConfig { why });
                continue;
            }
        };
        let via = match r.via.as_deref().map(str::parse::<IpAddr>) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                let why = format!(
                    "route {}: gateway `{}` is not an address",
                    r.to,
                    r.via.as_deref().unwrap_or("")
                );
                out.push(format!("route {}", r.to), Want::BadConfig { why });
                continue;
            }
        };
        // `default` with an IPv6 gateway is the IPv6 default route.
        let dst = match via {
            Some(IpAddr::V6(_)) if dst.is_default() => Prefixed {
                addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                prefix: 0,
            },
            _ => dst,
        };
        let name = match via {
            Some(v) => format!("route {} via {v}", dst.route_text()),
            None => format!("route {}", dst.route_text()),
        };
        out.push(
            name,
            Want::Route {
                dst,
                via,
                metric: r.metric,
                dev: dev.map(str::to_string),
            },
        );
    }
}

fn interface_checks(out: &mut Out, i: &Interface) {
    let n = &i.name;
    out.push(
        format!("interface {n} exists"),
        Want::Exists { iface: n.clone() },
    );
    if let Some(mac) = &i.mac {
        out.push(
            format!("interface {n} mac"),
            Want::Mac {
                iface: n.clone(),
                mac: mac.clone(),
            },
        );
    }
    if let Some(mtu) = i.mtu {
        out.push(
            format!("interface {n} mtu"),
            Want::Mtu {
                iface: n.clone(),
                mtu,
            },
        );
    }
    match i.activation {
        Activation::Auto => out.push(
            format!("interface {n} up"),
            Want::State {
                iface: n.clone(),
                up: true,
            },
        ),
        Activation::Off => out.push(
            format!("interface {n} down"),
            Want::State {
                iface: n.clone(),
                up: false,
            },
        ),
        Activation::Manual => {}
    }
    let mut statics4 = Vec::new();
    for a in &i.addresses {
        match parse_address(&a.address, a.netmask.as_deref()) {
            Ok(p) => {
                if p.addr.is_ipv4() {
                    statics4.push(p);
                }
                out.push(
                    format!("interface {n} address {p}"),
                    Want::Address {
                        iface: n.clone(),
                        addr: p,
                    },
                );
            }
            Err(why) => out.push(
                format!("interface {n} address {}", a.address),
                Want::BadConfig { why },
            ),
        }
    }
    if i.activation != Activation::Manual {
        out.push(
            format!("interface {n} no other ipv4 address"),
            Want::OnlyIpv4 {
                iface: n.clone(),
                statics: statics4,
                dhcp: i.dhcp4,
            },
        );
    }
    if i.dhcp4 {
        out.push(
            format!("interface {n} dhcp4 lease"),
            Want::Lease {
                iface: n.clone(),
                family: Family::V4,
            },
        );
    }
    if i.dhcp6 {
        out.push(
            format!("interface {n} dhcp6 address"),
            Want::Lease {
                iface: n.clone(),
                family: Family::V6,
            },
        );
    }
    // A gateway is a default route through this interface.
    let gw_routes: Vec<Route> = i
        .gateways
        .iter()
        .map(|g| Route {
            to: if g.contains(':') {
                "::/0".into()
            } else {
                "0.0.0.0/0".into()
            },
            netmask: None,
            via: Some(g.clone()),
            metric: None,
        })
        .collect();
    route_checks(out, &gw_routes, Some(n));
    route_checks(out, &i.routes, Some(n));
    kind_checks(out, i);
}

fn kind_checks(out: &mut Out, i: &Interface) {
    let n = &i.name;
    match &i.kind {
        InterfaceKind::Physical => {}
        InterfaceKind::Bond { members, params } => {
            out.push(
                format!("bond {n} members"),
                Want::BondMembers {
                    iface: n.clone(),
                    members: members.clone(),
                },
            );
            for (k, v) in params {
                let bare = k
                    .strip_prefix("bond-")
                    .or_else(|| k.strip_prefix("bond_"))
                    .unwrap_or(k)
                    .replace('_', "-");
                let Some(&(_, _, kernel)) = BOND_KEYS
                    .iter()
                    .find(|(v1, v2, _)| *v1 == bare || *v2 == bare)
                else {
                    continue; // not a bond setting the kernel shows (or not one we know)
                };
                match bond_value(kernel, v) {
                    Some(value) => out.push(
                        format!("bond {n} {kernel}"),
                        Want::BondOption {
                            iface: n.clone(),
                            key: kernel,
                            value,
                        },
                    ),
                    None => out.push(
                        format!("bond {n} {kernel}"),
                        Want::BadConfig {
                            why: format!("bond {n}: `{k}` has a value the checks cannot read: {v}"),
                        },
                    ),
                }
            }
        }
        InterfaceKind::Vlan { link, id } => {
            out.push(
                format!("vlan {n} id"),
                Want::VlanId {
                    iface: n.clone(),
                    id: *id,
                },
            );
            out.push(
                format!("vlan {n} parent"),
                Want::VlanParent {
                    iface: n.clone(),
                    link: link.clone(),
                },
            );
        }
        InterfaceKind::Bridge { members, params } => {
            out.push(
                format!("bridge {n} members"),
                Want::BridgeMembers {
                    iface: n.clone(),
                    members: members.clone(),
                },
            );
            for (k, v) in params {
                if k == "bridge_stp" || k == "stp" {
                    match stp_on(v) {
                        Some(on) => out.push(
                            format!("bridge {n} stp"),
                            Want::BridgeStp {
                                iface: n.clone(),
                                on,
                            },
                        ),
                        None => out.push(
                            format!("bridge {n} stp"),
                            Want::BadConfig {
                                why: format!("bridge {n}: `{k}: {v}` is neither on nor off"),
                            },
                        ),
                    }
                    continue;
                }
                if let Some(&(_, v2, kernel, timer)) = BRIDGE_KEYS
                    .iter()
                    .find(|(v1, v2, _, _)| *v1 == k || *v2 == k)
                {
                    let value = if timer {
                        millis(v, 1000.0).map(|ms| (ms / 10.0).round() as u64)
                    } else {
                        scalar_text(v).and_then(|t| t.parse().ok())
                    };
                    match value {
                        Some(value) => out.push(
                            format!("bridge {n} {v2}"),
                            Want::BridgeOption {
                                iface: n.clone(),
                                key: kernel,
                                value,
                                shown: scalar_text(v).unwrap_or_default(),
                            },
                        ),
                        None => out.push(
                            format!("bridge {n} {v2}"),
                            Want::BadConfig {
                                why: format!("bridge {n}: `{k}: {v}` is not a number"),
                            },
                        ),
                    }
                    continue;
                }
                let (port_key, what) = match k.as_str() {
                    "bridge_pathcost" | "path-cost" => ("cost", "path-cost"),
                    "bridge_portprio" | "port-priority" => ("priority", "port-priority"),
                    // ifupdown-only settings (bridge_gcint, bridge_maxwait, bridge_waitport)
                    // leave nothing in the kernel to check.
                    _ => continue,
                };
                for (port, value) in per_port(v) {
                    let name = format!("bridge {n} port {port} {what}");
                    match value {
                        Some(value) => out.push(
                            name,
                            Want::BridgePort {
                                iface: n.clone(),
                                port,
                                key: port_key,
                                value,
                            },
                        ),
                        None => out.push(
                            name,
                            Want::BadConfig {
                                why: format!("bridge {n}: `{k}` for {port} is not a number"),
                            },
                        ),
                    }
                }
            }
        }
    }
}

/// Every check the network config implies; `network` is the `network:` section as
/// PyYAML reads it (for the check that cloud-init got it unchanged). Nothing for a
/// disabled config.
pub fn derive(net: &NetworkConfig, network: Option<Value>) -> Vec<NetCheck> {
    let mut out = Out {
        checks: Vec::new(),
        names: BTreeSet::new(),
    };
    if net.disabled {
        return out.checks;
    }
    if let Some(network) = network {
        out.push(
            "cloud-init network config".into(),
            Want::CloudInitConfig { network },
        );
    }
    for i in &net.interfaces {
        interface_checks(&mut out, i);
    }
    route_checks(&mut out, &net.routes, None);
    let mut ns: Vec<&String> = net.nameservers.addresses.iter().collect();
    let mut search: Vec<&String> = net.nameservers.search.iter().collect();
    for i in &net.interfaces {
        ns.extend(&i.nameservers.addresses);
        search.extend(&i.nameservers.search);
    }
    for a in ns {
        out.push(format!("dns nameserver {a}"), Want::Nameserver(a.clone()));
    }
    for d in search {
        out.push(format!("dns search {d}"), Want::Search(d.clone()));
    }
    // What issue 15 broke: the MACs and static addresses must reach the rendered files.
    for i in &net.interfaces {
        if let Some(mac) = &i.mac {
            out.push(
                format!("rendered {} mac {mac}", i.name),
                Want::RenderedMac { mac: mac.clone() },
            );
        }
        for a in &i.addresses {
            if let Ok(p) = parse_address(&a.address, a.netmask.as_deref()) {
                out.push(
                    format!("rendered {} address {}", i.name, p.addr),
                    Want::RenderedAddress { addr: p.addr },
                );
            }
        }
    }
    out.checks
}
