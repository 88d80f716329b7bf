//! `--net user[,mac=M][,allow=PORT][,fwd=HOST:GUEST][,out=RULE]`: one NIC, checked before the
//! VM starts.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use crate::outbound::{Outbound, OutboundError};

pub use devices::virtio::net::MacAddr;
pub use devices::virtio::net::device::MacAddrError;

/// A host->guest TCP port forward (bound on the host's 127.0.0.1 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PortForward {
    pub host: u16,
    pub guest: u16,
}

/// One NIC on the user-mode NAT. Plain data (`#[non_exhaustive]`: start from
/// `NetSpec::default()` or a parsed spec and set fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetSpec {
    /// `None`: [`MacAddr::default_for_nic`] of the NIC's index.
    pub mac: Option<MacAddr>,
    /// Host TCP ports the guest may reach at the gateway address (10.0.2.2); every other
    /// host port, on loopback or any host address, is refused.
    pub allow_ports: Vec<u16>,
    pub forwards: Vec<PortForward>,
    /// What the guest may reach beyond the host (nothing by default; see [`Outbound`]).
    pub outbound: Outbound,
}

impl PortForward {
    /// Host 127.0.0.1:`host` to guest port `guest`.
    pub fn new(host: u16, guest: u16) -> Self {
        Self { host, guest }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetSpecError {
    #[error("network spec {spec:?}: backend {backend:?} is not supported; use `user`")]
    UnknownBackend { spec: String, backend: String },
    #[error("network spec {spec:?}: {source}")]
    BadMac { spec: String, source: MacAddrError },
    #[error("network spec {spec:?}: {what} {value:?} is not a port number (1-65535)")]
    BadPort {
        spec: String,
        what: &'static str,
        value: String,
    },
    #[error(
        "network spec {spec:?}: forward {value:?} must be HOST_PORT:GUEST_PORT, e.g. fwd=2222:22"
    )]
    BadForward { spec: String, value: String },
    #[error("network spec {spec:?}: {source}")]
    BadOutbound { spec: String, source: OutboundError },
    #[error(
        "network spec {spec:?}: unknown option {option:?} (expected user[,mac=M][,allow=PORT][,fwd=HOST:GUEST][,out=RULE])"
    )]
    UnknownOption { spec: String, option: String },
    #[error("network spec {spec:?}: option {option:?} given twice")]
    Repeated { spec: String, option: String },
    #[error("MAC address {mac} is used by NIC {first} and NIC {second}; give each NIC its own")]
    DuplicateMac {
        mac: MacAddr,
        first: usize,
        second: usize,
    },
    #[error("host port {port} is forwarded twice (NIC {first} and NIC {second})")]
    DuplicateForward {
        port: u16,
        first: usize,
        second: usize,
    },
}

fn port(spec: &str, what: &'static str, v: &str) -> Result<u16, NetSpecError> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(NetSpecError::BadPort {
            spec: spec.into(),
            what,
            value: v.into(),
        }),
    }
}

impl FromStr for NetSpec {
    type Err = NetSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(',');
        let backend = parts.next().unwrap_or_default();
        if backend != "user" {
            return Err(NetSpecError::UnknownBackend {
                spec: spec.into(),
                backend: backend.into(),
            });
        }
        let mut out = NetSpec::default();
        for opt in parts {
            let Some((k, v)) = opt.split_once('=') else {
                return Err(NetSpecError::UnknownOption {
                    spec: spec.into(),
                    option: opt.into(),
                });
            };
            match k {
                "mac" => {
                    if out.mac.is_some() {
                        return Err(NetSpecError::Repeated {
                            spec: spec.into(),
                            option: k.into(),
                        });
                    }
                    out.mac = Some(v.parse().map_err(|source| NetSpecError::BadMac {
                        spec: spec.into(),
                        source,
                    })?);
                }
                "allow" => {
                    let p = port(spec, "allowed port", v)?;
                    if !out.allow_ports.contains(&p) {
                        out.allow_ports.push(p);
                    }
                }
                "fwd" => {
                    let Some((h, g)) = v.split_once(':') else {
                        return Err(NetSpecError::BadForward {
                            spec: spec.into(),
                            value: v.into(),
                        });
                    };
                    out.forwards.push(PortForward::new(
                        port(spec, "forwarded host port", h)?,
                        port(spec, "forwarded guest port", g)?,
                    ));
                }
                "out" => {
                    let rule = v.parse().map_err(|source| NetSpecError::BadOutbound {
                        spec: spec.into(),
                        source,
                    })?;
                    if !out.outbound.rules.contains(&rule) {
                        out.outbound.rules.push(rule);
                    }
                }
                _ => {
                    return Err(NetSpecError::UnknownOption {
                        spec: spec.into(),
                        option: opt.into(),
                    });
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for NetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user")?;
        if let Some(m) = self.mac {
            write!(f, ",mac={m}")?;
        }
        for p in &self.allow_ports {
            write!(f, ",allow={p}")?;
        }
        for fw in &self.forwards {
            write!(f, ",fwd={}:{}", fw.host, fw.guest)?;
        }
        for r in &self.outbound.rules {
            write!(f, ",out={r}")?;
        }
        Ok(())
    }
}

/// Checks a VM's NIC list as a whole and returns each NIC's MAC (given or default).
pub fn resolve_nics(nics: &[NetSpec]) -> Result<Vec<MacAddr>, NetSpecError> {
    let macs: Vec<MacAddr> = nics
        .iter()
        .enumerate()
        .map(|(i, n)| n.mac.unwrap_or(MacAddr::default_for_nic(i as u8)))
        .collect();
    for (i, m) in macs.iter().enumerate() {
        if let Some(j) = macs[..i].iter().position(|o| o == m) {
            return Err(NetSpecError::DuplicateMac {
                mac: *m,
                first: j,
                second: i,
            });
        }
    }
    let mut seen: Vec<(u16, usize)> = Vec::new();
    for (i, n) in nics.iter().enumerate() {
        let mut mine = HashSet::new();
        for fw in &n.forwards {
            if let Some(&(_, first)) = seen.iter().find(|(p, _)| *p == fw.host) {
                return Err(NetSpecError::DuplicateForward {
                    port: fw.host,
                    first,
                    second: i,
                });
            }
            if !mine.insert(fw.host) {
                return Err(NetSpecError::DuplicateForward {
                    port: fw.host,
                    first: i,
                    second: i,
                });
            }
        }
        seen.extend(n.forwards.iter().map(|f| (f.host, i)));
    }
    Ok(macs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let n: NetSpec =
            "user,mac=52:54:00:00:00:07,allow=8000,allow=8001,fwd=2222:22,out=internet,out=host:3142"
                .parse()
                .unwrap();
        assert_eq!(n.mac.unwrap().to_string(), "52:54:00:00:00:07");
        assert_eq!(n.allow_ports, [8000, 8001]);
        assert_eq!(
            n.forwards,
            [PortForward {
                host: 2222,
                guest: 22
            }]
        );
        assert_eq!(n.outbound.to_string(), "internet,host:3142");
        assert_eq!(
            n.to_string(),
            "user,mac=52:54:00:00:00:07,allow=8000,allow=8001,fwd=2222:22,out=internet,out=host:3142"
        );
        assert_eq!("user".parse::<NetSpec>().unwrap(), NetSpec::default());
    }

    #[test]
    fn rejects_bad_input_with_clear_messages() {
        let err = |s: &str| s.parse::<NetSpec>().unwrap_err().to_string();
        assert!(err("tap").contains("backend \"tap\" is not supported"));
        assert!(err("user,mac=52:54:00:00:07").contains("malformed"));
        assert!(err("user,mac=01:00:00:00:00:07").contains("multicast"));
        assert!(err("user,allow=http").contains("allowed port \"http\" is not a port number"));
        assert!(err("user,allow=0").contains("not a port number"));
        assert!(err("user,allow=70000").contains("not a port number"));
        assert!(err("user,fwd=2222").contains("HOST_PORT:GUEST_PORT"));
        assert!(err("user,fwd=a:22").contains("forwarded host port \"a\""));
        assert!(err("user,fwd=2222:").contains("forwarded guest port"));
        assert!(err("user,bogus=1").contains("unknown option"));
        assert!(err("user,restrict").contains("unknown option"));
        assert!(err("user,out=everything").contains("expected `internet`"));
        assert!(err("user,out=127.0.0.1:80").contains("use host:PORT"));
        assert!(err("user,mac=52:54:00:00:00:01,mac=52:54:00:00:00:02").contains("twice"));
    }

    #[test]
    fn nic_lists_need_distinct_macs_and_forwards() {
        let nics: Vec<NetSpec> = ["user", "user", "user,mac=52:54:00:00:00:09"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let macs = resolve_nics(&nics).unwrap();
        assert_eq!(macs.len(), 3);
        assert_ne!(macs[0], macs[1]);

        let nics: Vec<NetSpec> = ["user", "user,mac=52:54:00:12:34:56"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = resolve_nics(&nics).unwrap_err().to_string();
        assert!(
            e.contains("52:54:00:12:34:56") && e.contains("NIC 0") && e.contains("NIC 1"),
            "{e}"
        );

        let nics: Vec<NetSpec> = ["user,fwd=2222:22", "user,fwd=2222:22"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(
            resolve_nics(&nics)
                .unwrap_err()
                .to_string()
                .contains("host port 2222")
        );
    }
}
