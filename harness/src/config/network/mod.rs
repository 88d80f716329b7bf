//! curtin's network config (`network:`, version 1 or 2) as the harness reads it: one
//! model for both versions, with the physical NICs (names and MACs in config order, the
//! ones the harness attaches), bonds, VLANs and bridges, their addresses, routes and
//! nameservers. Keys this model does not read pass through to the installer untouched.
//!
//! As in curtin's vmtest, the VM gets one NIC per physical interface that names a MAC,
//! in config order, and one NIC with [`DEFAULT_MAC`] when there is none.
//!
//! Here: the model, which version a section is, and the NICs. `v1` and `v2` read the
//! two versions' shapes into it.

mod v1;
mod v2;

use std::collections::BTreeMap;

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
