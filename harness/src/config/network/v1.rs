//! Version 1 of curtin's network config (`config:`, a list of typed entries), read into
//! the one model.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    Activation, Address, Interface, InterfaceKind, Nameservers, NetworkConfig, Route, check_mac,
    err_at, key, under,
};
use crate::yaml::{DeError, Node, PathSeg, from_node};

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

impl NetworkConfig {
    pub(super) fn read_v1(&mut self, net: &Node) -> Result<(), DeError> {
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
}
