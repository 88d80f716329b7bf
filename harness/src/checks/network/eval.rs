//! Each [`Want`] against the collected [`Facts`]: held, or why not with what was found
//! (the first line says what is wrong; JUnit and annotations show it as the message).

use std::net::IpAddr;

use serde_json::Value;

use super::addr::{Prefixed, parse_kernel_dst};
use super::facts::{Addr, Facts, FactsError, Family, Link, RouteFact};
use super::want::Want;

/// At most this many collected lines are quoted as evidence.
const EVIDENCE_LINES: usize = 20;

fn found(what: &str, lines: impl IntoIterator<Item = String>) -> String {
    let lines: Vec<String> = lines.into_iter().collect();
    if lines.is_empty() {
        return format!("{what}: nothing");
    }
    let mut s = format!("{what}:");
    for l in lines.iter().take(EVIDENCE_LINES) {
        s.push_str("\n  ");
        s.push_str(l);
    }
    if lines.len() > EVIDENCE_LINES {
        s.push_str(&format!("\n  ... {} more", lines.len() - EVIDENCE_LINES));
    }
    s
}

fn facts<T>(r: &Result<T, FactsError>) -> Result<&T, String> {
    r.as_ref().map_err(|e| e.to_string())
}

fn link<'a>(f: &'a Facts, iface: &str) -> Result<&'a Link, String> {
    let links = facts(&f.links)?;
    links.iter().find(|l| l.ifname == iface).ok_or_else(|| {
        format!(
            "no link named {iface}\n{}",
            found("links", links.iter().map(Link::summary))
        )
    })
}

fn addrs_of<'a>(f: &'a Facts, iface: &str) -> Result<Vec<&'a Addr>, String> {
    Ok(facts(&f.addrs)?
        .iter()
        .filter(|a| a.ifname == iface)
        .collect())
}

fn addr_lines(addrs: &[&Addr]) -> Vec<String> {
    addrs.iter().map(|a| a.summary()).collect()
}

/// A scope that is not the link's own or the host's: what a configured address has.
fn routable(a: &Addr) -> bool {
    a.scope != "link" && a.scope != "host"
}

fn mac_eq(a: Option<&str>, want: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(want))
}

fn check_mac(f: &Facts, iface: &str, mac: &str) -> Result<(), String> {
    let l = link(f, iface)?;
    if mac_eq(l.address.as_deref(), mac) || mac_eq(l.permaddr.as_deref(), mac) {
        return Ok(());
    }
    // A bond member carries the bond's MAC; the kernel keeps its own as "permanent".
    if let Some(bond) = &l.master
        && let Some(Ok(b)) = f.bonding.get(bond)
        && b.members
            .iter()
            .any(|(m, p)| m == iface && mac_eq(p.as_deref(), mac))
    {
        return Ok(());
    }
    Err(format!(
        "{iface} has MAC {} (permanent {}), not {mac}\n{}",
        l.address.as_deref().unwrap_or("none"),
        l.permaddr.as_deref().unwrap_or("not shown"),
        found("link", [l.summary()])
    ))
}

fn routes(f: &Facts, v6: bool) -> Result<&Vec<RouteFact>, String> {
    facts(if v6 { &f.routes6 } else { &f.routes4 })
}

fn check_route(
    f: &Facts,
    dst: &Prefixed,
    via: Option<IpAddr>,
    metric: Option<u32>,
    dev: Option<&str>,
) -> Result<(), String> {
    let v6 = match (via, dst.addr) {
        (Some(v), _) => v.is_ipv6(),
        (None, a) => a.is_ipv6(),
    };
    let all = routes(f, v6)?;
    let same_dst: Vec<&RouteFact> = all
        .iter()
        .filter(|r| parse_kernel_dst(&r.dst, v6).is_some_and(|d| d == dst.network()))
        .collect();
    let hit = same_dst.iter().any(|r| {
        via.is_none_or(|v| r.gateway.as_deref().and_then(|g| g.parse::<IpAddr>().ok()) == Some(v))
            && metric.is_none_or(|m| r.metric.unwrap_or(0) == m)
            && dev.is_none_or(|d| r.dev.as_deref() == Some(d))
    });
    if hit {
        return Ok(());
    }
    let mut what = format!("no route to {}", dst.route_text());
    if let Some(v) = via {
        what.push_str(&format!(" via {v}"));
    }
    if let Some(d) = dev {
        what.push_str(&format!(" dev {d}"));
    }
    if let Some(m) = metric {
        what.push_str(&format!(" metric {m}"));
    }
    let (label, shown): (&str, Vec<&RouteFact>) = if same_dst.is_empty() {
        ("routes", all.iter().collect())
    } else {
        ("routes there", same_dst)
    };
    Err(format!(
        "{what}\n{}",
        found(label, shown.iter().map(|r| r.summary()))
    ))
}

fn bond_option(f: &Facts, iface: &str, key: &str, value: &str) -> Result<(), String> {
    let l = link(f, iface)?;
    if l.kind() != Some("bond") {
        return Err(format!(
            "{iface} is not a bond\n{}",
            found("link", [l.summary()])
        ));
    }
    let got = l.data(key).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if got.as_deref() == Some(value) {
        return Ok(());
    }
    let mut ev = vec![format!("{key}: {}", got.as_deref().unwrap_or("not shown"))];
    if let Some(Ok(b)) = f.bonding.get(iface) {
        ev.push(format!("/proc/net/bonding/{iface}: mode {}", b.mode));
        if let Some(ms) = b.mii_polling_ms {
            ev.push(format!(
                "/proc/net/bonding/{iface}: MII polling interval {ms} ms"
            ));
        }
    }
    Err(format!(
        "bond {iface} {key} is {}, not {value}\n{}",
        got.as_deref().unwrap_or("not shown"),
        found("found", ev)
    ))
}

fn same_set(mut a: Vec<String>, mut b: Vec<String>) -> bool {
    a.sort();
    b.sort();
    a == b
}

fn members_of(f: &Facts, master: &str) -> Result<Vec<String>, String> {
    Ok(facts(&f.links)?
        .iter()
        .filter(|l| l.master.as_deref() == Some(master))
        .map(|l| l.ifname.clone())
        .collect())
}

fn check_bond_members(f: &Facts, iface: &str, want: &[String]) -> Result<(), String> {
    link(f, iface)?;
    // The kernel's own list first; the links' `master` otherwise.
    let (got, source) = match f.bonding.get(iface) {
        Some(Ok(b)) => (
            b.members.iter().map(|(m, _)| m.clone()).collect(),
            format!("/proc/net/bonding/{iface}"),
        ),
        _ => (members_of(f, iface)?, "links with this master".to_string()),
    };
    if same_set(got.clone(), want.to_vec()) {
        return Ok(());
    }
    Err(format!(
        "bond {iface} members are [{}], not [{}]\n{}",
        got.join(", "),
        want.join(", "),
        found(&source, got.iter().cloned())
    ))
}

fn check_bridge_members(f: &Facts, iface: &str, want: &[String]) -> Result<(), String> {
    link(f, iface)?;
    let got = members_of(f, iface)?;
    if same_set(got.clone(), want.to_vec()) {
        return Ok(());
    }
    let ports = f
        .bridge_ports
        .as_ref()
        .map(|p| p.iter().map(|p| p.summary()).collect::<Vec<_>>())
        .unwrap_or_default();
    Err(format!(
        "bridge {iface} members are [{}], not [{}]\n{}",
        got.join(", "),
        want.join(", "),
        found("bridge ports", ports)
    ))
}

fn check_bridge_port(
    f: &Facts,
    iface: &str,
    port: &str,
    key: &str,
    value: u32,
) -> Result<(), String> {
    let ports = facts(&f.bridge_ports)?;
    let Some(p) = ports
        .iter()
        .find(|p| p.ifname == port && p.master.as_deref() == Some(iface))
    else {
        return Err(format!(
            "{port} is not a port of {iface}\n{}",
            found("bridge ports", ports.iter().map(|p| p.summary()))
        ));
    };
    let got = if key == "cost" { p.cost } else { p.priority };
    if got == Some(value) {
        return Ok(());
    }
    Err(format!(
        "{iface} port {port} {key} is {}, not {value}\n{}",
        got.map(|g| g.to_string())
            .unwrap_or_else(|| "not shown".into()),
        found("bridge port", [p.summary()])
    ))
}

fn data_u64(l: &Link, key: &str) -> Option<u64> {
    match l.data(key)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|x| x.round() as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Tokens of `text` that read as IP addresses (`10.0.2.15/24` gives `10.0.2.15`).
fn addresses_in(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':' || c == '/'))
        .filter_map(|t| {
            t.split('/')
                .next()?
                .trim_matches(':')
                .parse::<IpAddr>()
                .ok()
        })
}

/// The renderer's output among the rendered files (the cloud-init config handed in is
/// not rendered output).
fn rendered_output(f: &Facts) -> Result<Vec<&(String, String)>, String> {
    Ok(facts(&f.rendered)?
        .iter()
        .filter(|(p, _)| !p.starts_with("/etc/cloud/"))
        .collect())
}

fn check_cloud_init_config(f: &Facts, network: &Value) -> Result<(), String> {
    const FILE: &str = "/etc/cloud/cloud.cfg.d/50-curtin-networking.cfg";
    let files = facts(&f.rendered)?;
    let Some((_, text)) = files.iter().find(|(p, _)| p == FILE) else {
        return Err(format!(
            "{FILE} is not in the installed system\n{}",
            found("collected", files.iter().map(|(p, _)| p.clone()))
        ));
    };
    let doc = crate::yaml::load(text)
        .map_err(|e| format!("{FILE}: PyYAML would not read it: {e}"))?
        .ok_or_else(|| format!("{FILE} is empty"))?;
    let got = doc
        .get("network")
        .ok_or_else(|| format!("{FILE} has no `network:` key"))
        .and_then(|n| crate::yaml::from_node::<Value>(n).map_err(|e| format!("{FILE}: {e}")))?;
    if &got == network {
        return Ok(());
    }
    Err(format!(
        "{FILE} does not mean what the test's `network:` means (as PyYAML reads both)\n{}\n{}",
        found("the test's", [clip(&network.to_string())]),
        found("the installed system's", [clip(&got.to_string())])
    ))
}

fn clip(s: &str) -> String {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &s[..end])
}

/// Evaluates one check.
pub fn evaluate(want: &Want, f: &Facts) -> Result<(), String> {
    match want {
        Want::BadConfig { why } => Err(format!("the network config cannot be checked: {why}")),
        Want::Exists { iface } => link(f, iface).map(|_| ()),
        Want::Mac { iface, mac } => check_mac(f, iface, mac),
        Want::Mtu { iface, mtu } => {
            let l = link(f, iface)?;
            if l.mtu == Some(*mtu) {
                return Ok(());
            }
            Err(format!(
                "{iface} has MTU {}, not {mtu}\n{}",
                l.mtu
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "not shown".into()),
                found("link", [l.summary()])
            ))
        }
        Want::State { iface, up } => {
            let l = link(f, iface)?;
            if l.is_up() == *up {
                return Ok(());
            }
            Err(format!(
                "{iface} is {}, not {}\n{}",
                if l.is_up() { "up" } else { "down" },
                if *up { "up" } else { "down" },
                found(
                    "link",
                    [format!("{} flags {}", l.summary(), l.flags.join(","))]
                )
            ))
        }
        Want::Address { iface, addr } => {
            link(f, iface)?;
            let on = addrs_of(f, iface)?;
            if on
                .iter()
                .any(|a| a.local == addr.addr && a.prefix == addr.prefix)
            {
                return Ok(());
            }
            let what = match on.iter().find(|a| a.local == addr.addr) {
                Some(a) => format!(
                    "{iface} has {} with prefix {}, not {}",
                    a.local, a.prefix, addr.prefix
                ),
                None => format!("{iface} does not have {addr}"),
            };
            Err(format!(
                "{what}\n{}",
                found(&format!("{iface} addresses"), addr_lines(&on))
            ))
        }
        Want::OnlyIpv4 {
            iface,
            statics,
            dhcp,
        } => {
            link(f, iface)?;
            let on = addrs_of(f, iface)?;
            let v4: Vec<&Addr> = on
                .iter()
                .copied()
                .filter(|a| a.local.is_ipv4() && routable(a))
                .collect();
            let leases = v4.iter().filter(|a| a.dynamic).count();
            let extra: Vec<&Addr> = v4
                .iter()
                .copied()
                .filter(|a| !a.dynamic && !statics.iter().any(|s| s.addr == a.local))
                .collect();
            let too_many_leases = leases > usize::from(*dhcp);
            if extra.is_empty() && !too_many_leases {
                return Ok(());
            }
            let mut what = Vec::new();
            if !extra.is_empty() {
                let e: Vec<String> = extra.iter().map(|a| a.summary()).collect();
                what.push(format!("unconfigured IPv4 address {}", e.join(", ")));
            }
            if too_many_leases {
                what.push(if *dhcp {
                    format!("{leases} DHCP leases")
                } else {
                    "a DHCP lease the config does not ask for".to_string()
                });
            }
            Err(format!(
                "{iface} has {}\n{}",
                what.join(" and "),
                found(&format!("{iface} addresses"), addr_lines(&on))
            ))
        }
        Want::Lease { iface, family } => {
            link(f, iface)?;
            let on = addrs_of(f, iface)?;
            if on
                .iter()
                .any(|a| a.dynamic && Family::of(&a.local) == *family && routable(a))
            {
                return Ok(());
            }
            Err(format!(
                "{iface} has no leased {} address\n{}",
                family.as_str(),
                found(&format!("{iface} addresses"), addr_lines(&on))
            ))
        }
        Want::Route {
            dst,
            via,
            metric,
            dev,
        } => check_route(f, dst, *via, *metric, dev.as_deref()),
        Want::Nameserver(ns) => {
            let r = facts(&f.resolver)?;
            let want: Option<IpAddr> = ns.parse().ok();
            if r.nameservers
                .iter()
                .any(|n| n == ns || (want.is_some() && n.parse::<IpAddr>().ok() == want))
            {
                return Ok(());
            }
            Err(format!(
                "the resolver does not use nameserver {ns}\n{}",
                found(
                    &format!("nameservers ({})", r.source),
                    r.nameservers.iter().cloned()
                )
            ))
        }
        Want::Search(d) => {
            let r = facts(&f.resolver)?;
            let bare = d.trim_end_matches('.');
            if r.search
                .iter()
                .any(|s| s.trim_end_matches('.').eq_ignore_ascii_case(bare))
            {
                return Ok(());
            }
            Err(format!(
                "the resolver does not search {d}\n{}",
                found(
                    &format!("search domains ({})", r.source),
                    r.search.iter().cloned()
                )
            ))
        }
        Want::BondOption { iface, key, value } => bond_option(f, iface, key, value),
        Want::BondMembers { iface, members } => check_bond_members(f, iface, members),
        Want::VlanId { iface, id } => {
            let l = link(f, iface)?;
            let got = if l.kind() == Some("vlan") {
                data_u64(l, "id")
            } else {
                None
            };
            if got == Some(u64::from(*id)) {
                return Ok(());
            }
            Err(format!(
                "{iface} is not VLAN {id} (kind {}, id {})\n{}",
                l.kind().unwrap_or("none"),
                got.map(|g| g.to_string()).unwrap_or_else(|| "none".into()),
                found("link", [l.summary()])
            ))
        }
        Want::VlanParent {
            iface,
            link: parent,
        } => {
            let l = link(f, iface)?;
            if l.kind() == Some("vlan") && l.link.as_deref() == Some(parent.as_str()) {
                return Ok(());
            }
            Err(format!(
                "{iface} is not a VLAN on {parent} (its link: {})\n{}",
                l.link.as_deref().unwrap_or("none"),
                found("link", [l.summary()])
            ))
        }
        Want::BridgeMembers { iface, members } => check_bridge_members(f, iface, members),
        Want::BridgeStp { iface, on } => {
            let l = link(f, iface)?;
            let got = data_u64(l, "stp_state");
            if l.kind() == Some("bridge") && got.is_some_and(|s| (s != 0) == *on) {
                return Ok(());
            }
            Err(format!(
                "bridge {iface} STP is {}, not {}\n{}",
                match got {
                    Some(0) => "off".to_string(),
                    Some(n) => format!("on (stp_state {n})"),
                    None => "not shown".to_string(),
                },
                if *on { "on" } else { "off" },
                found("link", [l.summary()])
            ))
        }
        Want::BridgeOption {
            iface,
            key,
            value,
            shown,
        } => {
            let l = link(f, iface)?;
            let got = data_u64(l, key);
            if l.kind() == Some("bridge") && got == Some(*value) {
                return Ok(());
            }
            Err(format!(
                "bridge {iface} {key} is {}, not {value} (the config's {shown})\n{}",
                got.map(|g| g.to_string())
                    .unwrap_or_else(|| "not shown".into()),
                found("link", [l.summary()])
            ))
        }
        Want::BridgePort {
            iface,
            port,
            key,
            value,
        } => check_bridge_port(f, iface, port, key, *value),
        Want::RenderedMac { mac } => {
            let files = rendered_output(f)?;
            if files
                .iter()
                .any(|(_, t)| t.to_ascii_lowercase().contains(&mac.to_ascii_lowercase()))
            {
                return Ok(());
            }
            Err(format!(
                "no rendered network configuration names {mac}\n{}",
                found("rendered files", files.iter().map(|(p, _)| p.clone()))
            ))
        }
        Want::RenderedAddress { addr } => {
            let files = rendered_output(f)?;
            if files
                .iter()
                .any(|(_, t)| addresses_in(t).any(|a| a == *addr))
            {
                return Ok(());
            }
            Err(format!(
                "no rendered network configuration has {addr}\n{}",
                found("rendered files", files.iter().map(|(p, _)| p.clone()))
            ))
        }
        Want::CloudInitConfig { network } => check_cloud_init_config(f, network),
    }
}
