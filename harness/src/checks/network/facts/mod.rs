//! What the installed system showed about its network, read from the files the collect
//! script wrote under `vmtest/net/` (see [`super::script`]). These files are written by
//! the guest: every read is capped, every parser returns a typed error naming the file,
//! and nothing here panics or allocates beyond the caps on what the guest wrote.
//!
//! The shapes of what the commands print (`ip -j`, `/proc/net/bonding`, `bridge -j`, the
//! resolver's view) and their text parsers are in `shapes`; this room reads the files,
//! within caps, into them.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

mod shapes;
pub use shapes::*;

/// Where the network facts are, below collect/.
pub const DIR: &str = "vmtest/net";
/// The most any one collected file may hold (a machine with hundreds of links and routes
/// writes well under 1 MiB of JSON).
pub const FILE_CAP: u64 = 4 << 20;
/// The most the rendered configuration files may hold together, and how many there may be.
pub const RENDERED_CAP: u64 = 8 << 20;
pub const RENDERED_MAX_FILES: usize = 512;

/// Why a collected file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("{file}: not collected ({why})")]
    Missing { file: String, why: String },
    #[error("{file}: larger than {cap} bytes; not read")]
    TooBig { file: String, cap: u64 },
    #[error("{file}: not what `{cmd}` writes: {why}")]
    Malformed {
        file: String,
        cmd: &'static str,
        why: String,
    },
}

/// Reads `rel` below `collect` whole, refusing a file over `cap` (read up to the cap, not
/// on the file's say-so).
pub fn read_capped(collect: &Path, rel: &str, cap: u64) -> Result<Vec<u8>, FactsError> {
    let path = collect.join(rel);
    let f = std::fs::File::open(&path).map_err(|e| FactsError::Missing {
        file: rel.to_string(),
        why: e.to_string(),
    })?;
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FactsError::Missing {
            file: rel.to_string(),
            why: e.to_string(),
        })?;
    if buf.len() as u64 > cap {
        return Err(FactsError::TooBig {
            file: rel.to_string(),
            cap,
        });
    }
    Ok(buf)
}

fn json<T: serde::de::DeserializeOwned>(
    collect: &Path,
    rel: &str,
    cmd: &'static str,
) -> Result<T, FactsError> {
    parse_json(rel, cmd, &read_capped(collect, rel, FILE_CAP)?)
}

/// `bytes` (collected file `rel`, the output of `cmd`) as JSON of type `T`. serde_json
/// stops at 128 levels of nesting, and every collection it builds is no bigger than the
/// capped file.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    rel: &str,
    cmd: &'static str,
    bytes: &[u8],
) -> Result<T, FactsError> {
    serde_json::from_slice(bytes).map_err(|e| FactsError::Malformed {
        file: rel.to_string(),
        cmd,
        why: e.to_string(),
    })
}

/// Every fact the network checks read. Each part is the parsed file or why it is not there.
#[derive(Debug, Clone)]
pub struct Facts {
    pub links: Result<Vec<Link>, FactsError>,
    pub addrs: Result<Vec<Addr>, FactsError>,
    pub routes4: Result<Vec<RouteFact>, FactsError>,
    pub routes6: Result<Vec<RouteFact>, FactsError>,
    /// Per bond name; a bond whose file is missing is absent.
    pub bonding: BTreeMap<String, Result<Bonding, FactsError>>,
    pub bridge_ports: Result<Vec<BridgePort>, FactsError>,
    pub resolver: Result<Resolver, FactsError>,
    /// The rendered configuration files, by their path in the installed system.
    pub rendered: Result<Vec<(String, String)>, FactsError>,
}

fn links(collect: &Path, rel: &str, cmd: &'static str) -> Result<Vec<Link>, FactsError> {
    json(collect, rel, cmd)
}

fn addrs(collect: &Path) -> Result<Vec<Addr>, FactsError> {
    parse_addrs(&read_capped(collect, ADDRS, FILE_CAP)?)
}

/// Where `ip -j addr show` was collected.
const ADDRS: &str = "vmtest/net/ip-addr.json";

/// The addresses in the output of `ip -j addr show`.
pub fn parse_addrs(bytes: &[u8]) -> Result<Vec<Addr>, FactsError> {
    let rel = ADDRS;
    let raw: Vec<IpAddrLink> = parse_json(rel, "ip -j addr show", bytes)?;
    let mut out = Vec::new();
    for l in raw {
        for a in l.addr_info {
            let Some(local) = a.local.as_deref() else {
                continue;
            };
            let local: IpAddr = local.parse().map_err(|_| FactsError::Malformed {
                file: rel.into(),
                cmd: "ip -j addr show",
                why: format!("`{local}` on {} is not an IP address", l.ifname),
            })?;
            let max = if local.is_ipv4() { 32 } else { 128 };
            let prefix = a.prefixlen.unwrap_or(max).min(max);
            out.push(Addr {
                ifname: l.ifname.clone(),
                local,
                prefix,
                dynamic: a.dynamic,
                scope: a.scope.unwrap_or_default(),
                label: a.label,
            });
        }
    }
    Ok(out)
}

fn resolver(collect: &Path) -> Result<Resolver, FactsError> {
    let text = |rel: &str| {
        read_capped(collect, rel, FILE_CAP).map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    // resolved is the resolver when it runs: what it says it uses.
    if let (Ok(dns), Ok(domains)) = (
        text("vmtest/net/resolvectl-dns.txt"),
        text("vmtest/net/resolvectl-domain.txt"),
    ) {
        let nameservers = parse_resolvectl_lines(&dns);
        let search: Vec<String> = parse_resolvectl_lines(&domains)
            .into_iter()
            // `~domain` only routes queries: not a search domain.
            .filter(|d| !d.starts_with('~'))
            .collect();
        if !nameservers.is_empty() || !search.is_empty() {
            return Ok(Resolver {
                nameservers,
                search,
                source: "resolvectl dns / resolvectl domain".into(),
            });
        }
    }
    let rel = "vmtest/net/etc-resolv.conf";
    let (nameservers, search) = parse_resolv_conf(&text(rel)?);
    Ok(Resolver {
        nameservers,
        search,
        source: "/etc/resolv.conf".into(),
    })
}

/// Every regular file below `collect/vmtest/net/rendered`, by its path in the installed
/// system, within [`RENDERED_CAP`] and [`RENDERED_MAX_FILES`]. Symbolic links were
/// removed from the tar by the collect step, so nothing here leads elsewhere.
fn rendered(collect: &Path) -> Result<Vec<(String, String)>, FactsError> {
    let rel = "vmtest/net/rendered";
    let top = collect.join(rel);
    if !top.is_dir() {
        return Err(FactsError::Missing {
            file: rel.into(),
            why: "no such directory".into(),
        });
    }
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = vec![top.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if out.len() >= RENDERED_MAX_FILES {
                    return Err(FactsError::TooBig {
                        file: format!("{rel} ({RENDERED_MAX_FILES} files)"),
                        cap: RENDERED_CAP,
                    });
                }
                let inner = p.strip_prefix(&top).unwrap_or(&p);
                let file_rel = format!("{rel}/{}", inner.display());
                let left = RENDERED_CAP.saturating_sub(total);
                let bytes = read_capped(collect, &file_rel, left).map_err(|e| match e {
                    FactsError::TooBig { .. } => FactsError::TooBig {
                        file: rel.into(),
                        cap: RENDERED_CAP,
                    },
                    other => other,
                })?;
                total += bytes.len() as u64;
                out.push((
                    format!("/{}", inner.display()),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The bond files: one per bond the links name as a kind.
fn bonding(collect: &Path, links: &[Link]) -> BTreeMap<String, Result<Bonding, FactsError>> {
    let mut out = BTreeMap::new();
    for l in links.iter().filter(|l| l.kind() == Some("bond")) {
        // A link name from the guest becomes a file name only when it is one plain
        // component (the kernel allows no `/` in names; the guest's JSON could say anything).
        if l.ifname.is_empty() || l.ifname.contains('/') || l.ifname == "." || l.ifname == ".." {
            continue;
        }
        let rel = format!("vmtest/net/bonding/{}", l.ifname);
        let r = read_capped(collect, &rel, FILE_CAP)
            .map(|b| parse_bonding(&String::from_utf8_lossy(&b)));
        out.insert(l.ifname.clone(), r);
    }
    out
}

impl Facts {
    /// Reads everything the collect script wrote (missing parts are errors in place).
    pub fn read(collect: &Path) -> Facts {
        let links = links(collect, "vmtest/net/ip-link.json", "ip -d -j link show");
        let bonding = links
            .as_ref()
            .map(|l| bonding(collect, l))
            .unwrap_or_default();
        Facts {
            addrs: addrs(collect),
            routes4: json(collect, "vmtest/net/ip-route4.json", "ip -4 -j route show"),
            routes6: json(collect, "vmtest/net/ip-route6.json", "ip -6 -j route show"),
            bonding,
            bridge_ports: json(
                collect,
                "vmtest/net/bridge-link.json",
                "bridge -d -j link show",
            ),
            resolver: resolver(collect),
            rendered: rendered(collect),
            links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn bonding_file() {
        let b = parse_bonding(
            "Ethernet Channel Bonding Driver: v6.1.0\n\nBonding Mode: fault-tolerance (active-backup)\nPrimary Slave: None\nCurrently Active Slave: interface1\nMII Status: up\nMII Polling Interval (ms): 100\n\nSlave Interface: interface1\nMII Status: up\nPermanent HW addr: 52:54:00:12:34:02\n\nSlave Interface: interface2\nPermanent HW addr: 52:54:00:12:34:04\n",
        );
        assert_eq!(b.mode, "fault-tolerance (active-backup)");
        assert_eq!(b.mii_polling_ms, Some(100));
        assert_eq!(
            b.members,
            [
                ("interface1".into(), Some("52:54:00:12:34:02".into())),
                ("interface2".into(), Some("52:54:00:12:34:04".into()))
            ]
        );
    }

    #[test]
    fn resolver_views() {
        assert_eq!(
            parse_resolvectl_lines("Global:\nLink 2 (eth0): 10.0.2.3 fec0::3\nLink 3 (br0.100):\n"),
            ["10.0.2.3", "fec0::3"]
        );
        let (ns, s) =
            parse_resolv_conf("# x\nnameserver 127.0.0.53\noptions edns0\nsearch a.b c\n");
        assert_eq!(
            (ns, s),
            (vec!["127.0.0.53".into()], vec!["a.b".into(), "c".into()])
        );
    }

    #[test]
    fn missing_big_and_malformed_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "vmtest/net/ip-link.json", "[{\"ifname\": 3}]");
        put(
            d.path(),
            "vmtest/net/ip-addr.json",
            "[{\"ifname\":\"e\",\"addr_info\":[{\"local\":\"not-an-ip\"}]}]",
        );
        let big = "x".repeat(FILE_CAP as usize + 1);
        put(d.path(), "vmtest/net/ip-route4.json", &big);
        let f = Facts::read(d.path());
        assert!(
            matches!(&f.links, Err(FactsError::Malformed { file, .. }) if file.ends_with("ip-link.json")),
            "{:?}",
            f.links
        );
        let e = f.addrs.unwrap_err().to_string();
        assert!(e.contains("not-an-ip") && e.contains("ip-addr.json"), "{e}");
        assert!(matches!(f.routes4, Err(FactsError::TooBig { .. })));
        assert!(matches!(f.routes6, Err(FactsError::Missing { .. })));
        assert!(f.rendered.is_err());
    }

    #[test]
    fn deep_json_is_an_error_not_a_crash() {
        let d = tempfile::tempdir().unwrap();
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        put(d.path(), "vmtest/net/ip-link.json", &deep);
        assert!(Facts::read(d.path()).links.is_err());
    }

    #[test]
    fn rendered_files_are_read_within_caps() {
        let d = tempfile::tempdir().unwrap();
        put(
            d.path(),
            "vmtest/net/rendered/etc/netplan/50-cloud-init.yaml",
            "a",
        );
        put(
            d.path(),
            "vmtest/net/rendered/run/systemd/network/10-x.network",
            "b",
        );
        let r = Facts::read(d.path()).rendered.unwrap();
        assert_eq!(
            r,
            [
                ("/etc/netplan/50-cloud-init.yaml".into(), "a".into()),
                ("/run/systemd/network/10-x.network".into(), "b".into())
            ]
        );
        for i in 0..=RENDERED_MAX_FILES {
            put(d.path(), &format!("vmtest/net/rendered/many/{i}"), "");
        }
        assert!(matches!(
            Facts::read(d.path()).rendered,
            Err(FactsError::TooBig { .. })
        ));
    }
}
