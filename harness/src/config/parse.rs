//! Reading a test config file into a [`TestConfig`] and checking what the harness reads.

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

use super::network::network_macs;
use super::storage::RawStorage;
use super::*;

/// The whole file. Every key curtin knows at top level is accepted and passed through;
/// anything else is rejected (with its line) so typos surface.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be accepted by name; their values are passed through
struct RawTestFile {
    vmtest: VmtestSection,
    #[serde(default)]
    storage: Option<RawStorage>,
    #[serde(default)]
    network: Option<Value>,
    #[serde(default)]
    apt: Option<Value>,
    #[serde(default)]
    apt_mirrors: Option<Value>,
    #[serde(default)]
    apt_proxy: Option<Value>,
    #[serde(default, rename = "block-meta")]
    block_meta: Option<Value>,
    #[serde(default)]
    debconf_selections: Option<Value>,
    #[serde(default)]
    disable_overlayroot: Option<Value>,
    #[serde(default)]
    early_commands: Option<Value>,
    #[serde(default)]
    late_commands: Option<Value>,
    #[serde(default)]
    partitioning_commands: Option<Value>,
    #[serde(default)]
    network_commands: Option<Value>,
    #[serde(default)]
    grub: Option<Value>,
    #[serde(default)]
    http_proxy: Option<Value>,
    #[serde(default)]
    install: Option<Value>,
    #[serde(default)]
    kernel: Option<Value>,
    #[serde(default)]
    kexec: Option<Value>,
    #[serde(default)]
    multipath: Option<Value>,
    #[serde(default)]
    pollinate: Option<Value>,
    #[serde(default)]
    power_state: Option<Value>,
    #[serde(default)]
    proxy: Option<Value>,
    #[serde(default)]
    reporting: Option<Value>,
    #[serde(default)]
    restore_dist_interfaces: Option<Value>,
    #[serde(default)]
    sources: Option<Value>,
    #[serde(default)]
    stages: Option<Value>,
    #[serde(default)]
    swap: Option<Value>,
    #[serde(default)]
    system_upgrade: Option<Value>,
    #[serde(default)]
    write_files: Option<Value>,
    #[serde(default)]
    showtrace: Option<Value>,
    #[serde(default)]
    verbosity: Option<Value>,
    #[serde(default)]
    bucket: Option<Value>,
    #[serde(default)]
    debconf: Option<Value>,
    #[serde(default)]
    snap: Option<Value>,
    #[serde(default)]
    updates: Option<Value>,
}

/// Line (1-based) of the first line of `text` that contains `needle`, for errors found
/// after parsing.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

impl TestConfig {
    /// Loads and checks one test config file.
    pub fn load(path: &Path) -> Result<TestConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("test")
            .to_string();
        Self::parse(&name, path, &text)
    }

    /// Parses a test config from text (`file` is used in errors).
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<TestConfig, ConfigError> {
        let err = |line: Option<usize>, msg: String| ConfigError {
            file: file.into(),
            line,
            msg,
        };
        let raw: RawTestFile = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let mut msg = e.to_string();
            // serde_yaml appends " at line N column M"; the line is in our prefix already.
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            if msg.contains("unknown field") && line.is_some_and(|l| l > 0) {
                msg = msg.replacen("unknown field", "unknown key", 1);
            }
            err(line, msg)
        })?;
        let mut value: Value = serde_yaml::from_str(text).map_err(|e| err(None, e.to_string()))?;
        let installer_pinned = value
            .get("vmtest")
            .and_then(|v| v.get("installer"))
            .is_some();
        if let Value::Mapping(m) = &mut value {
            m.remove("vmtest");
        }
        let mut v = raw.vmtest;
        v.installer_pinned = installer_pinned;
        let vline = |key: &str| line_of(text, &format!("{key}:"));
        if v.block_size != 512 && v.block_size != 4096 {
            return Err(err(
                vline("block_size"),
                format!(
                    "vmtest.block_size: {} is not supported (512 or 4096)",
                    v.block_size
                ),
            ));
        }
        if v.memory_mib == Some(0) || v.cpus == Some(0) {
            return Err(err(
                vline(if v.cpus == Some(0) {
                    "cpus"
                } else {
                    "memory_mib"
                }),
                "vmtest: memory_mib and cpus must be at least 1".into(),
            ));
        }
        let storage = match raw.storage {
            Some(s) => {
                if s.version != 1 && s.version != 2 {
                    return Err(err(
                        line_of(text, "version:"),
                        format!("storage.version: {} is not supported (1 or 2)", s.version),
                    ));
                }
                s.config
            }
            None => Vec::new(),
        };
        // Ids are unique and references point at existing ids.
        let mut ids = std::collections::BTreeSet::new();
        for item in &storage {
            let Some(id) = item.id() else {
                return Err(err(None, "storage.config: an entry has no `id`".into()));
            };
            if !ids.insert(id.to_string()) {
                return Err(err(
                    line_of(text, &format!("id: {id}")),
                    format!("storage.config: id `{id}` is used twice"),
                ));
            }
        }
        for item in &storage {
            let refs: Vec<(&str, &str)> = match item {
                StorageItem::Partition(p) => vec![("device", &p.device)],
                StorageItem::Format(f) => vec![("volume", &f.volume)],
                StorageItem::Mount(m) => m.device.iter().map(|d| ("device", d.as_str())).collect(),
                StorageItem::LvmVolgroup(g) => {
                    g.devices.iter().map(|d| ("devices", d.as_str())).collect()
                }
                StorageItem::LvmPartition(l) => vec![("volgroup", &l.volgroup)],
                _ => vec![],
            };
            for (key, r) in refs {
                if !ids.contains(r) {
                    let id = item.id().unwrap_or("?");
                    return Err(err(
                        line_of(text, &format!("id: {id}")),
                        format!(
                            "storage.config: `{id}`.{key} names `{r}`, which no entry has as id"
                        ),
                    ));
                }
            }
        }
        let mut disks = Vec::new();
        for item in &storage {
            if let StorageItem::Disk(d) = item {
                let serial = match (&d.serial, &d.wwn) {
                    (Some(s), _) => s.clone(),
                    (None, Some(w)) => w.clone(),
                    (None, None) => {
                        return Err(err(
                            line_of(text, &format!("id: {}", d.id)),
                            format!(
                                "storage.config: disk `{}` needs a `serial` (or `wwn`) so the harness can attach it",
                                d.id
                            ),
                        ));
                    }
                };
                if serial.len() > 20 && v.disk_driver == DiskDriver::VirtioBlk {
                    return Err(err(
                        line_of(text, &serial),
                        format!(
                            "storage.config: serial `{serial}` of disk `{}` is longer than the 20 bytes virtio-blk can report",
                            d.id
                        ),
                    ));
                }
                if let Some(w) = &d.wwn {
                    let hex = w.strip_prefix("0x").unwrap_or(w);
                    if hex.is_empty() || hex.len() > 16 || u64::from_str_radix(hex, 16).is_err() {
                        return Err(err(
                            line_of(text, w),
                            format!(
                                "storage.config: wwn `{w}` of disk `{}` is not a 64-bit hex world-wide name (e.g. 0x5000c500a0b1c2d3)",
                                d.id
                            ),
                        ));
                    }
                }
                let opts = v.disks.get(&d.id);
                let i = disks.len();
                disks.push(DiskSpec {
                    id: d.id.clone(),
                    file_name: if i == 0 {
                        "install_disk.img".into()
                    } else {
                        format!("install_disk_{i}.img")
                    },
                    serial,
                    wwn: d.wwn.clone(),
                    size: opts.and_then(|o| o.size).unwrap_or(DEFAULT_DISK_SIZE),
                    block_size: opts.and_then(|o| o.block_size).unwrap_or(v.block_size),
                });
            }
        }
        for key in v.disks.keys() {
            if !disks.iter().any(|d| &d.id == key) {
                return Err(err(
                    line_of(text, &format!("{key}:")),
                    format!("vmtest.disks: `{key}` is not a `type: disk` id of the storage config"),
                ));
            }
        }
        if disks.is_empty() {
            // curtin's vmtest always gives the installer one disk.
            disks.push(DiskSpec {
                id: "install_disk".into(),
                file_name: "install_disk.img".into(),
                serial: "install_disk".into(),
                wwn: None,
                size: DEFAULT_DISK_SIZE,
                block_size: v.block_size,
            });
        }
        for (i, e) in v.extra_disks.iter().enumerate() {
            disks.push(DiskSpec {
                id: format!("extra_disk_{i}"),
                file_name: format!("extra_disk_{i}.img"),
                serial: e
                    .serial
                    .clone()
                    .unwrap_or_else(|| format!("extra_disk_{i}")),
                wwn: None,
                size: e.size,
                block_size: e.block_size.unwrap_or(v.block_size),
            });
        }
        for d in &disks {
            if d.block_size != 512 && d.block_size != 4096 {
                return Err(err(
                    line_of(text, "block_size:"),
                    format!(
                        "disk `{}`: block_size {} is not supported (512 or 4096)",
                        d.id, d.block_size
                    ),
                ));
            }
            if d.size < 1 << 20 {
                return Err(err(
                    line_of(text, "size:"),
                    format!(
                        "disk `{}`: size {} bytes is too small (at least 1M)",
                        d.id, d.size
                    ),
                ));
            }
        }
        for e in &v.expect {
            let (file, re) = match e {
                Expectation::Matches { file, regex } | Expectation::NotMatches { file, regex } => {
                    (file, regex)
                }
                _ => continue,
            };
            if let Err(e) = regex::Regex::new(re) {
                return Err(err(
                    line_of(text, re),
                    format!("vmtest.expect: regex for `{file}` does not compile: {e}"),
                ));
            }
        }
        let macs =
            network_macs(raw.network.as_ref()).map_err(|m| err(line_of(text, "network:"), m))?;
        Ok(TestConfig {
            name: name.to_string(),
            file: file.into(),
            vmtest: v,
            installer_config: value,
            disks,
            macs,
            storage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
vmtest:
  release: bookworm
  disks:
    sda: {size: 4G}
  extra_disks:
    - {size: 1G}
  expect:
    - file_exists: [fstab]
    - swaps_in_use: 1
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: msdos, serial: disk-a}
    - {id: sda1, type: partition, device: sda, number: 1, size: 3G}
    - {id: sda1_root, type: format, volume: sda1, fstype: ext4}
    - {id: sda1_mount, type: mount, device: sda1_root, path: /}
network:
  version: 1
  config:
    - {type: physical, name: eth0, mac_address: "52:54:00:12:34:02"}
"#;

    fn parse(t: &str) -> Result<TestConfig, ConfigError> {
        TestConfig::parse("t", Path::new("t.yaml"), t)
    }

    #[test]
    fn good_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.disks.len(), 2);
        assert_eq!(c.disks[0].serial, "disk-a");
        assert_eq!(c.disks[0].size, 4 << 30);
        assert_eq!(c.disks[1].file_name, "extra_disk_0.img");
        assert_eq!(c.macs, vec!["52:54:00:12:34:02"]);
        assert!(c.installer_config.get("vmtest").is_none());
        assert!(c.installer_config.get("storage").is_some());
        assert!(c.needs_qemu().is_none());
    }

    #[test]
    fn unknown_top_level_key_names_file_line_key() {
        let t = GOOD.replace("network:\n", "netwrok:\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:"), "{e}");
        assert!(e.contains("netwrok"), "{e}");
        let line = GOOD.lines().position(|l| l == "network:").unwrap() + 1;
        assert!(e.starts_with(&format!("t.yaml:{line}:")), "{e}");
    }

    #[test]
    fn unknown_vmtest_key() {
        let t = GOOD.replace(
            "  release: bookworm",
            "  release: bookworm\n  memroy_mib: 4",
        );
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.contains("memroy_mib") && e.starts_with("t.yaml:4:"),
            "{e}"
        );
    }

    #[test]
    fn malformed_wwn_names_file_line_and_disk() {
        let t = GOOD.replace("serial: disk-a}", "serial: disk-a, wwn: \"0xnothex\"}");
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.starts_with("t.yaml:") && e.contains("0xnothex") && e.contains("sda"),
            "{e}"
        );
        let ok = GOOD.replace(
            "serial: disk-a}",
            "serial: disk-a, wwn: \"0x5000c500a0b1c2d3\"}",
        );
        assert_eq!(
            parse(&ok).unwrap().disks[0].wwn.as_deref(),
            Some("0x5000c500a0b1c2d3")
        );
    }

    #[test]
    fn wrong_type() {
        let t = GOOD.replace("swaps_in_use: 1", "swaps_in_use: many");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("t.yaml:") && e.contains("invalid type"), "{e}");
    }

    #[test]
    fn unknown_storage_key_and_type() {
        let t = GOOD.replace("ptable: msdos", "ptabel: msdos");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("ptabel"), "{e}");
        let t = GOOD.replace("type: format", "type: formt");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("formt"), "{e}");
    }

    #[test]
    fn dangling_reference_and_missing_serial() {
        let t = GOOD.replace("volume: sda1,", "volume: sda9,");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("sda9") && e.contains("t.yaml:"), "{e}");
        let t = GOOD.replace(", serial: disk-a", "");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("serial"), "{e}");
    }

    #[test]
    fn bad_values() {
        let e = parse(&GOOD.replace("size: 4G", "size: 4Q"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("4Q"), "{e}");
        let e = parse(&GOOD.replace("release: bookworm", "release: bookworm\n  block_size: 1000"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("block_size"), "{e}");
        let e = parse(&GOOD.replace("52:54:00:12:34:02", "52:54:00:12:34"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("MAC"), "{e}");
        let e = parse("vmtest: {}\n").unwrap_err().to_string();
        assert!(e.contains("release"), "{e}");
        let e = parse("vmtest: [\n").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml"), "{e}");
    }

    #[test]
    fn installer_follows_the_curtin_tree_unless_pinned() {
        let c = parse(GOOD).unwrap();
        assert!(!c.vmtest.installer_pinned);
        assert_eq!(c.installer(false), InstallerKind::Script);
        assert_eq!(c.installer(true), InstallerKind::Curtin);
        let pin = |kind: &str| {
            parse(&GOOD.replace(
                "  release: bookworm",
                &format!("  release: bookworm\n  installer: {kind}"),
            ))
            .unwrap()
        };
        let script = pin("script");
        assert!(script.vmtest.installer_pinned);
        assert_eq!(script.installer(true), InstallerKind::Script);
        assert_eq!(script.installer(false), InstallerKind::Script);
        let curtin = pin("curtin");
        assert_eq!(curtin.installer(false), InstallerKind::Curtin);
        assert_eq!(curtin.installer(true), InstallerKind::Curtin);
        let e = parse(&GOOD.replace(
            "  release: bookworm",
            "  release: bookworm\n  installer: curtn",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("curtn"), "{e}");
    }

    #[test]
    fn examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tests");
        let files = discover(&dir).unwrap();
        assert!(!files.is_empty());
        for f in files {
            TestConfig::load(&f).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
