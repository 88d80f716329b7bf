//! curtin's network config as the harness reads it: the physical NICs and their MACs.

use serde_yaml::Value;

/// The MAC curtin's vmtest gives the first NIC when the network config names none.
pub const DEFAULT_MAC: &str = "52:54:00:12:34:01";

/// MACs of the physical NICs in a network config (version 1 `type: physical` entries or
/// version 2 `ethernets.*.match.macaddress`), or the default MAC when it names none.
pub(super) fn network_macs(net: Option<&Value>) -> Result<Vec<String>, String> {
    let mut macs = Vec::new();
    if let Some(net) = net {
        // Accept both `network: {version, config}` and `network: {network: {...}}`.
        let net = net.get("network").unwrap_or(net);
        if let Some(cfg) = net.get("config").and_then(Value::as_sequence) {
            for item in cfg {
                if item.get("type").and_then(Value::as_str) == Some("physical") {
                    match item.get("mac_address").and_then(Value::as_str) {
                        Some(m) => macs.push(check_mac(m)?),
                        None => {
                            return Err(
                                "network: a `type: physical` entry has no `mac_address`".into()
                            );
                        }
                    }
                }
            }
        } else if let Some(eth) = net.get("ethernets").and_then(Value::as_mapping) {
            for (_, e) in eth {
                if let Some(m) = e
                    .get("match")
                    .and_then(|m| m.get("macaddress"))
                    .and_then(Value::as_str)
                {
                    macs.push(check_mac(m)?);
                }
            }
        }
    }
    if macs.is_empty() {
        macs.push(DEFAULT_MAC.into());
    }
    Ok(macs)
}

fn check_mac(m: &str) -> Result<String, String> {
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
    {
        Ok(m.to_ascii_lowercase())
    } else {
        Err(format!(
            "network: `{m}` is not a MAC address (xx:xx:xx:xx:xx:xx)"
        ))
    }
}
