//! From the network config alone, what the installed system must show: one [`NetCheck`]
//! per fact, in config order. The names are stable (CI compares results by them) and
//! unique within a test.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::addr::{Prefixed, parse_address, parse_dest};
use super::facts::Family;
use super::want::{NetCheck, Want};
use crate::config::{Activation, Interface, InterfaceKind, NetworkConfig, Route};

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
