//! Version 2 of curtin's network config (netplan's shape: `ethernets:`, `bonds:`,
//! `bridges:`, `vlans:`), read into the one model.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    Activation, Address, Interface, InterfaceKind, Nameservers, NetworkConfig, Route, check_mac,
    err_at, key, under,
};
use crate::yaml::{DeError, Node, from_node};

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

impl NetworkConfig {
    pub(super) fn read_v2(&mut self, net: &Node) -> Result<(), DeError> {
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
}
