//! curtin's network config (`network:`, version 1 or 2) as the harness reads it: one
//! model for both versions, with the physical NICs (names and MACs in config order, the
//! ones the harness attaches), bonds, VLANs and bridges, their addresses, routes and
//! nameservers. Keys this model does not read pass through to the installer untouched.
//!
//! As in curtin's vmtest, the VM gets one NIC per physical interface that names a MAC,
//! in config order, and one NIC with [`DEFAULT_MAC`] when there is none.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::yaml::{DeError, Node, PathSeg, from_node};

/// The MAC curtin's vmtest gives the first NIC when the network config names none.
pub const DEFAULT_MAC: &str = "52:54:00:12:34:01";

/// The `network:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkConfig {
    /// 1 or 2.
    pub version: u32,
    /// `config: disabled`: curtin writes no network configuration.
    pub disabled: bool,
    /// Every interface, in config order (v2: ethernets, then bonds, bridges, VLANs).
    pub interfaces: Vec<Interface>,
    /// Global nameservers (v1 `type: nameserver` entries).
    pub nameservers: Nameservers,
    /// Global routes (v1 `type: route` entries).
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    /// The name the installed system gives it (v1 `name`, v2 `set-name` or the key).
    pub name: String,
    pub kind: InterfaceKind,
    /// v1 `mac_address` / v2 `match.macaddress` (or `macaddress`), lower case.
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub dhcp4: bool,
    pub dhcp6: bool,
    /// Static addresses as written (`10.0.2.15/24`, or with the netmask apart).
    pub addresses: Vec<Address>,
    pub gateways: Vec<String>,
    pub routes: Vec<Route>,
    pub nameservers: Nameservers,
    /// Whether the installed system brings it up by itself.
    pub activation: Activation,
}

/// Whether the installed system brings an interface up by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// Up at boot (the default).
    #[default]
    Auto,
    /// Left to the administrator (v1: every subnet says `control: manual`; v2
    /// `activation-mode: manual`): neither up nor down follows from the config.
    Manual,
    /// Kept down (v2 `activation-mode: off`).
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InterfaceKind {
    Physical,
    Bond {
        members: Vec<String>,
        /// Bond parameters (`bond-mode`, `mode`, ...) as written.
        params: BTreeMap<String, serde_json::Value>,
    },
    Vlan {
        link: String,
        id: u32,
    },
    Bridge {
        members: Vec<String>,
        params: BTreeMap<String, serde_json::Value>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    /// `10.0.2.15/24`, `10.0.2.15` or an IPv6 address.
    pub address: String,
    /// v1's separate netmask (`255.255.255.0`, `ffff:ffff:ffff:ffff::`).
    pub netmask: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Destination (`10.0.0.0/12`, `default`, or a network with `netmask` apart).
    pub to: String,
    pub netmask: Option<String>,
    pub via: Option<String>,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Nameservers {
    pub addresses: Vec<String>,
    pub search: Vec<String>,
}

/// A string or a list of strings (v1 `nameserver.address`, `dns_search`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct V1Entry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mac_address: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    subnets: Vec<V1Subnet>,
    #[serde(default)]
    bond_interfaces: Vec<String>,
    #[serde(default)]
    bridge_interfaces: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    vlan_link: Option<String>,
    #[serde(default)]
    vlan_id: Option<u32>,
    // type: nameserver
    #[serde(default)]
    address: OneOrMany,
    #[serde(default)]
    search: OneOrMany,
    // type: route
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
}

#[derive(Deserialize)]
struct V1Subnet {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    dns_nameservers: OneOrMany,
    #[serde(default)]
    dns_search: OneOrMany,
    #[serde(default)]
    routes: Vec<V1Route>,
    #[serde(default)]
    control: Option<String>,
}

#[derive(Deserialize)]
struct V1Route {
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
}

#[derive(Deserialize, Default)]
struct V2Common {
    #[serde(default, rename = "match")]
    matches: Option<V2Match>,
    #[serde(default, rename = "set-name")]
    set_name: Option<String>,
    #[serde(default)]
    macaddress: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    dhcp4: Option<bool>,
    #[serde(default)]
    dhcp6: Option<bool>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    gateway4: Option<String>,
    #[serde(default)]
    gateway6: Option<String>,
    #[serde(default)]
    nameservers: Option<V2Nameservers>,
    #[serde(default)]
    routes: Vec<V2Route>,
    // bonds, bridges
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    parameters: BTreeMap<String, serde_json::Value>,
    // vlans
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default, rename = "activation-mode")]
    activation_mode: Option<String>,
}

#[derive(Deserialize)]
struct V2Match {
    #[serde(default)]
    macaddress: Option<String>,
}

#[derive(Deserialize)]
struct V2Nameservers {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    search: Vec<String>,
}

#[derive(Deserialize)]
struct V2Route {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
}

fn err_at(n: &Node, path: Vec<PathSeg>, msg: String) -> DeError {
    DeError {
        mark: Some(n.mark),
        path,
        msg,
    }
}

/// Prefixes a nested error's path with where the nested node sits.
fn under(mut e: DeError, prefix: &[PathSeg]) -> DeError {
    let mut p = prefix.to_vec();
    p.append(&mut e.path);
    e.path = p;
    e
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.into())
}

/// A MAC as the harness hands it to the VM: six hex pairs, lower case.
pub fn check_mac(m: &str) -> Result<String, String> {
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
    {
        Ok(m.to_ascii_lowercase())
    } else {
        Err(format!("`{m}` is not a MAC address (xx:xx:xx:xx:xx:xx)"))
    }
}

impl NetworkConfig {
    /// Reads the `network:` section (errors carry their path below it).
    pub fn from_node(net: &Node) -> Result<NetworkConfig, DeError> {
        let version = match net.get("version") {
            None => 1,
            Some(v) => from_node::<u32>(v).map_err(|e| under(e, &[key("version")]))?,
        };
        let mut cfg = NetworkConfig {
            version,
            ..Default::default()
        };
        if let Some(c) = net.get("config")
            && c.as_str() == Some("disabled")
        {
            cfg.disabled = true;
            return Ok(cfg);
        }
        match version {
            1 => cfg.read_v1(net)?,
            2 => cfg.read_v2(net)?,
            v => {
                return Err(err_at(
                    net.get("version").unwrap_or(net),
                    vec![key("version")],
                    format!("network version {v} is not one curtin knows (1 or 2)"),
                ));
            }
        }
        Ok(cfg)
    }

    fn read_v1(&mut self, net: &Node) -> Result<(), DeError> {
        let Some(config) = net.get("config") else {
            return Ok(());
        };
        let Some(entries) = config.as_seq() else {
            return Err(err_at(
                config,
                vec![key("config")],
                "network `config` must be a list of entries, or `disabled`".into(),
            ));
        };
        for (i, node) in entries.iter().enumerate() {
            let at = [key("config"), PathSeg::Index(i)];
            let e: V1Entry = from_node(node).map_err(|e| under(e, &at))?;
            let iface = |kind: InterfaceKind| -> Result<Interface, DeError> {
                let name = e.name.clone().ok_or_else(|| {
                    err_at(
                        node,
                        at.to_vec(),
                        format!("a `type: {}` entry needs a `name`", e.kind),
                    )
                })?;
                let mut i = Interface {
                    name,
                    kind,
                    mac: None,
                    mtu: e.mtu,
                    dhcp4: false,
                    dhcp6: false,
                    addresses: Vec::new(),
                    gateways: Vec::new(),
                    routes: Vec::new(),
                    nameservers: Nameservers::default(),
                    activation: Activation::Auto,
                };
                if !e.subnets.is_empty()
                    && e.subnets
                        .iter()
                        .all(|s| s.control.as_deref() == Some("manual"))
                {
                    i.activation = Activation::Manual;
                }
                for s in &e.subnets {
                    match s.kind.as_str() {
                        "dhcp" | "dhcp4" => i.dhcp4 = true,
                        "dhcp6" | "ipv6_dhcpv6-stateful" | "ipv6_dhcpv6-stateless" => {
                            i.dhcp6 = true
                        }
                        _ => {}
                    }
                    if let Some(a) = &s.address {
                        i.addresses.push(Address {
                            address: a.clone(),
                            netmask: s.netmask.clone(),
                        });
                    }
                    i.gateways.extend(s.gateway.clone());
                    i.nameservers
                        .addresses
                        .extend(s.dns_nameservers.clone().into_vec());
                    i.nameservers.search.extend(s.dns_search.clone().into_vec());
                    for r in &s.routes {
                        i.routes.push(Route {
                            to: r
                                .network
                                .clone()
                                .or_else(|| r.destination.clone())
                                .unwrap_or_else(|| "default".into()),
                            netmask: r.netmask.clone(),
                            via: r.gateway.clone(),
                            metric: r.metric,
                        });
                    }
                }
                Ok(i)
            };
            match e.kind.as_str() {
                "physical" => {
                    let mut i = iface(InterfaceKind::Physical)?;
                    i.mac = match &e.mac_address {
                        Some(m) => Some(check_mac(m).map_err(|msg| {
                            err_at(
                                node.get("mac_address").unwrap_or(node),
                                [&at[..], &[key("mac_address")]].concat(),
                                msg,
                            )
                        })?),
                        None => None,
                    };
                    self.interfaces.push(i);
                }
                "bond" => {
                    let mut i = iface(InterfaceKind::Bond {
                        members: e.bond_interfaces.clone(),
                        params: e.params.clone(),
                    })?;
                    i.mac = e.mac_address.as_ref().map(|m| m.to_ascii_lowercase());
                    self.interfaces.push(i);
                }
                "bridge" => {
                    let i = iface(InterfaceKind::Bridge {
                        members: e.bridge_interfaces.clone(),
                        params: e.params.clone(),
                    })?;
                    self.interfaces.push(i);
                }
                "vlan" => {
                    let (Some(link), Some(id)) = (e.vlan_link.clone(), e.vlan_id) else {
                        return Err(err_at(
                            node,
                            at.to_vec(),
                            "a `type: vlan` entry needs `vlan_link` and `vlan_id`".into(),
                        ));
                    };
                    let i = iface(InterfaceKind::Vlan { link, id })?;
                    self.interfaces.push(i);
                }
                "nameserver" => {
                    self.nameservers
                        .addresses
                        .extend(e.address.clone().into_vec());
                    self.nameservers.search.extend(e.search.clone().into_vec());
                }
                "route" => self.routes.push(Route {
                    to: e.destination.clone().unwrap_or_else(|| "default".into()),
                    netmask: None,
                    via: e.gateway.clone(),
                    metric: e.metric,
                }),
                // Types this model does not read (infiniband, ...) are curtin's.
                _ => {}
            }
        }
        Ok(())
    }

    fn read_v2(&mut self, net: &Node) -> Result<(), DeError> {
        for (section, kind_of) in [("ethernets", 0), ("bonds", 1), ("bridges", 2), ("vlans", 3)] {
            let Some(sec) = net.get(section) else {
                continue;
            };
            let Some(entries) = sec.as_map() else {
                return Err(err_at(
                    sec,
                    vec![key(section)],
                    format!("`{section}` must be a mapping of interface names"),
                ));
            };
            for (k, v) in entries {
                let id = k.as_str().unwrap_or_default().to_string();
                let at = [key(section), key(&id)];
                let c: V2Common = if v.is_null() {
                    V2Common::default()
                } else {
                    from_node(v).map_err(|e| under(e, &at))?
                };
                let kind = match kind_of {
                    0 => InterfaceKind::Physical,
                    1 => InterfaceKind::Bond {
                        members: c.interfaces.clone(),
                        params: c.parameters.clone(),
                    },
                    2 => InterfaceKind::Bridge {
                        members: c.interfaces.clone(),
                        params: c.parameters.clone(),
                    },
                    _ => {
                        let (Some(link), Some(vid)) = (c.link.clone(), c.id) else {
                            return Err(err_at(
                                v,
                                at.to_vec(),
                                "a VLAN needs `id` and `link`".into(),
                            ));
                        };
                        InterfaceKind::Vlan { link, id: vid }
                    }
                };
                // curtin's network state takes a physical NIC's MAC from `match`.
                let mac = match (&kind, c.matches.as_ref().and_then(|m| m.macaddress.clone())) {
                    (InterfaceKind::Physical, Some(m)) => Some(check_mac(&m).map_err(|msg| {
                        let n = v
                            .get("match")
                            .and_then(|m| m.get("macaddress"))
                            .unwrap_or(v);
                        err_at(
                            n,
                            [&at[..], &[key("match"), key("macaddress")]].concat(),
                            msg,
                        )
                    })?),
                    _ => c.macaddress.as_ref().map(|m| m.to_ascii_lowercase()),
                };
                let mut gateways: Vec<String> = c.gateway4.iter().cloned().collect();
                gateways.extend(c.gateway6.clone());
                let activation = match c.activation_mode.as_deref() {
                    Some("off") => Activation::Off,
                    Some("manual") => Activation::Manual,
                    _ => Activation::Auto,
                };
                self.interfaces.push(Interface {
                    activation,
                    name: c.set_name.clone().unwrap_or(id),
                    kind,
                    mac,
                    mtu: c.mtu,
                    dhcp4: c.dhcp4.unwrap_or(false),
                    dhcp6: c.dhcp6.unwrap_or(false),
                    addresses: c
                        .addresses
                        .iter()
                        .map(|a| Address {
                            address: a.clone(),
                            netmask: None,
                        })
                        .collect(),
                    gateways,
                    routes: c
                        .routes
                        .iter()
                        .map(|r| Route {
                            to: r.to.clone().unwrap_or_else(|| "default".into()),
                            netmask: None,
                            via: r.via.clone(),
                            metric: r.metric,
                        })
                        .collect(),
                    nameservers: c
                        .nameservers
                        .map(|n| Nameservers {
                            addresses: n.addresses,
                            search: n.search,
                        })
                        .unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// The physical interfaces that name a MAC, in config order: the NICs the harness
    /// attaches.
    pub fn physical_nics(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces
            .iter()
            .filter(|i| i.kind == InterfaceKind::Physical && i.mac.is_some())
    }
}

/// The MACs of the NICs the VM gets: the physical interfaces' MACs in config order, or
/// [`DEFAULT_MAC`] when there is none.
pub fn nic_macs(net: Option<&NetworkConfig>) -> Vec<String> {
    let mut macs: Vec<String> = net
        .map(|n| n.physical_nics().filter_map(|i| i.mac.clone()).collect())
        .unwrap_or_default();
    if macs.is_empty() {
        macs.push(DEFAULT_MAC.into());
    }
    macs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    fn net(t: &str) -> Result<NetworkConfig, DeError> {
        NetworkConfig::from_node(&load(t).unwrap().unwrap())
    }

    #[test]
    fn v1() {
        let n = net(r#"
version: 1
config:
  - {type: physical, name: eth0, mac_address: "52:54:00:12:34:00", mtu: 9000,
     subnets: [{type: static, address: 10.0.2.15/24, gateway: 10.0.2.2, dns_nameservers: [10.0.2.3],
                routes: [{network: 10.1.0.0, netmask: 255.255.0.0, gateway: 10.0.2.1}]}]}
  - {type: physical, name: eth1}
  - {type: physical, name: eth2, mac_address: "52:54:00:12:34:02", subnets: [{type: dhcp}]}
  - {type: bond, name: bond0, bond_interfaces: [eth1, eth2], params: {bond-mode: active-backup}}
  - {type: vlan, name: eth0.10, vlan_link: eth0, vlan_id: 10}
  - {type: bridge, name: br0, bridge_interfaces: [eth0], params: {bridge_stp: off}}
  - {type: nameserver, address: 8.8.8.8, search: [example.com]}
  - {type: route, destination: 0.0.0.0/0, gateway: 10.0.2.2}
"#)
        .unwrap();
        assert_eq!(
            nic_macs(Some(&n)),
            ["52:54:00:12:34:00", "52:54:00:12:34:02"]
        );
        let eth0 = &n.interfaces[0];
        assert_eq!(eth0.mtu, Some(9000));
        assert_eq!(eth0.addresses[0].address, "10.0.2.15/24");
        assert_eq!(eth0.gateways, ["10.0.2.2"]);
        assert_eq!(eth0.routes[0].via.as_deref(), Some("10.0.2.1"));
        assert!(n.interfaces[2].dhcp4);
        assert!(
            matches!(&n.interfaces[3].kind, InterfaceKind::Bond { members, .. } if members.len() == 2)
        );
        assert_eq!(
            n.interfaces[4].kind,
            InterfaceKind::Vlan {
                link: "eth0".into(),
                id: 10
            }
        );
        let InterfaceKind::Bridge { params, .. } = &n.interfaces[5].kind else {
            panic!()
        };
        // PyYAML reads `off` as false, and so does the model.
        assert_eq!(params["bridge_stp"], serde_json::Value::Bool(false));
        assert_eq!(n.nameservers.addresses, ["8.8.8.8"]);
        assert_eq!(n.routes[0].to, "0.0.0.0/0");
    }

    #[test]
    fn v2_and_disabled() {
        let n = net("version: 2\nethernets:\n  e0:\n    match: {macaddress: '52:54:00:12:34:00'}\n    set-name: eth0\n    addresses: [192.168.1.2/24]\n    nameservers: {addresses: [1.1.1.1]}\n  e1: {dhcp4: true}\nvlans:\n  v5: {id: 5, link: eth0}\n").unwrap();
        assert_eq!(nic_macs(Some(&n)), ["52:54:00:12:34:00"]);
        assert_eq!(n.interfaces[0].name, "eth0");
        assert_eq!(n.interfaces[0].nameservers.addresses, ["1.1.1.1"]);
        assert_eq!(
            n.interfaces[2].kind,
            InterfaceKind::Vlan {
                link: "eth0".into(),
                id: 5
            }
        );
        let d = net("config: disabled\n").unwrap();
        assert!(d.disabled);
        assert_eq!(nic_macs(Some(&d)), [DEFAULT_MAC]);
    }

    #[test]
    fn an_unquoted_mac_is_named_with_its_line() {
        let e = net("version: 1\nconfig:\n  - type: physical\n    name: eth0\n    mac_address: 52:54:00:12:34:00\n").unwrap_err();
        assert_eq!(e.mark.unwrap().line, 5);
        assert_eq!(e.path_string("network"), "network.config[0].mac_address");
        assert!(
            e.msg.contains("41135085240") && e.msg.contains("quote"),
            "{e}"
        );
        let e = net("config:\n  - {type: physical, name: eth0, mac_address: '52:54:00:12:34'}\n")
            .unwrap_err();
        assert!(e.msg.contains("MAC"), "{e}");
    }
}
