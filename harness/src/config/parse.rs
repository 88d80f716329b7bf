//! Reading a test config file into a [`TestConfig`]: the `vmtest:` section (strict), the
//! storage and network configs (what the harness reads of them), the disks the test gets
//! and what keeps it from running. Every error names the file, line, column and key path
//! of what it is about, found in the parsed document (no text search).
//!
//! One job, and so one file past 600 lines: the reading is about 310 of them; the rest
//! are its tests, one or more for each mistake a config can hold, each checking the
//! file, line, key and message it is reported with.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use super::names::check_test_name;
use super::*;
use crate::yaml::{self, DeError, Kind, Mark, from_node};

/// Largest config file read (curtin's biggest example is 12 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// A `ConfigError` about `mark` and `key` in `file`.
pub(super) fn err(
    file: &Path,
    mark: Option<Mark>,
    key: Option<String>,
    msg: impl Into<String>,
) -> ConfigError {
    ConfigError {
        file: file.into(),
        line: mark.map(|m| m.line),
        column: mark.map(|m| m.column),
        key,
        msg: msg.into(),
    }
}

/// A deserialization error under `prefix` (`vmtest`, `storage.config[3]`).
fn de_err(file: &Path, prefix: &str, e: DeError) -> ConfigError {
    let key = e.path_string(prefix);
    err(
        file,
        e.mark,
        (!key.is_empty()).then_some(key),
        e.msg.replacen("unknown field", "unknown key", 1),
    )
}

/// The key path of `storage.config[i]` plus `key`.
pub(super) fn item_key(i: usize, key: &str) -> String {
    format!("storage.config[{i}].{key}")
}

/// Where `key`'s value is in storage entry `i` (else the entry itself).
pub(super) fn value_at(entries: &[&Node], i: usize, key: &str) -> Option<Mark> {
    entries
        .get(i)
        .map(|n| n.get(key).map(|v| v.mark).unwrap_or(n.mark))
}

impl TestConfig {
    /// Loads and checks one test config file. The test's name (the file name without
    /// `.yaml`) is checked before anything else.
    pub fn load(path: &Path) -> Result<TestConfig, ConfigError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_test_name(&name).map_err(|m| err(path, None, None, m))?;
        let f = std::fs::File::open(path)
            .map_err(|e| err(path, None, None, format!("cannot read: {e}")))?;
        let mut text = String::new();
        f.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| err(path, None, None, format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(err(
                path,
                None,
                None,
                format!("larger than {MAX_CONFIG_BYTES} bytes: not a test config"),
            ));
        }
        Self::parse(&name, path, &text)
    }

    /// Parses a test config from text (`file` is used in errors).
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<TestConfig, ConfigError> {
        check_test_name(name).map_err(|m| err(file, None, None, m))?;
        let doc = yaml::load(text)
            .map_err(|e| err(file, e.mark, None, e.msg))?
            .ok_or_else(|| {
                err(
                    file,
                    None,
                    None,
                    "the file is empty: a test config is a YAML mapping (curtin's config format)",
                )
            })?;
        if !matches!(doc.kind, Kind::Map(_)) {
            return Err(err(
                file,
                Some(doc.mark),
                None,
                "a test config is a YAML mapping (curtin's config format: storage:, network:, ...)",
            ));
        }
        let empty = Node {
            mark: doc.mark,
            kind: Kind::Map(Vec::new()),
        };
        let vnode = doc.get("vmtest").filter(|n| !n.is_null());
        let vnode_or_empty = vnode.unwrap_or(&empty);
        if let Some(v) = vnode {
            if !matches!(v.kind, Kind::Map(_)) {
                return Err(err(
                    file,
                    Some(v.mark),
                    Some("vmtest".into()),
                    "must be a mapping (release:, disks:, expect:, ...)",
                ));
            }
            // The harness's own section is strict: a key given twice is a mistake.
            if let Some((k, first, again)) = v.first_duplicate_key() {
                return Err(err(
                    file,
                    Some(again),
                    None,
                    format!(
                        "`{k}` is given twice in `vmtest:` (first on line {})",
                        first.line
                    ),
                ));
            }
        }
        let mut v: VmtestSection =
            from_node(vnode_or_empty).map_err(|e| de_err(file, "vmtest", e))?;
        let vkey = |key: &str| vnode_or_empty.entry(key);
        let at = |key: &str| vkey(key).map(|(_, val)| val.mark);
        v.installer_pinned = vkey("installer").is_some();
        if v.block_size != 512 && v.block_size != 4096 {
            return Err(err(
                file,
                at("block_size"),
                Some("vmtest.block_size".into()),
                format!("{} is not supported (512 or 4096)", v.block_size),
            ));
        }
        for (key, zero) in [
            ("memory_mib", v.memory_mib == Some(0)),
            ("cpus", v.cpus == Some(0)),
        ] {
            if zero {
                return Err(err(
                    file,
                    at(key),
                    Some(format!("vmtest.{key}")),
                    "must be at least 1",
                ));
            }
        }
        for (key, t) in [("install", v.timeouts.install), ("boot", v.timeouts.boot)] {
            if t == Some(0) {
                let mark = vkey("timeouts")
                    .and_then(|(_, n)| n.get(key))
                    .map(|n| n.mark);
                return Err(err(
                    file,
                    mark,
                    Some(format!("vmtest.timeouts.{key}")),
                    "must be at least 1 second",
                ));
            }
        }

        // The storage config.
        let mut storage = Vec::new();
        let mut entries: Vec<&Node> = Vec::new();
        let mut storage_version = 1;
        if let Some(s) = doc.get("storage").filter(|n| !n.is_null()) {
            if !matches!(s.kind, Kind::Map(_)) {
                return Err(err(
                    file,
                    Some(s.mark),
                    Some("storage".into()),
                    "must be a mapping (version:, config: [...])",
                ));
            }
            if let Some(ver) = s.get("version") {
                storage_version =
                    from_node::<u32>(ver).map_err(|e| de_err(file, "storage.version", e))?;
                if storage_version != 1 && storage_version != 2 {
                    return Err(err(
                        file,
                        Some(ver.mark),
                        Some("storage.version".into()),
                        format!("{storage_version} is not supported (1 or 2)"),
                    ));
                }
            }
            if let Some(c) = s.get("config").filter(|n| !n.is_null()) {
                let list = c.as_seq().ok_or_else(|| {
                    err(
                        file,
                        Some(c.mark),
                        Some("storage.config".into()),
                        "must be a list of entries",
                    )
                })?;
                for (i, n) in list.iter().enumerate() {
                    let item = StorageItem::from_node(n)
                        .map_err(|e| de_err(file, &format!("storage.config[{i}]"), e))?;
                    storage.push(item);
                    entries.push(n);
                }
            }
        }
        let value_at = |i: usize, key: &str| value_at(&entries, i, key);

        // Ids are unique and references name existing ids.
        let mut ids = BTreeSet::new();
        for (i, item) in storage.iter().enumerate() {
            if !ids.insert(item.id()) {
                return Err(err(
                    file,
                    value_at(i, "id"),
                    Some(item_key(i, "id")),
                    format!("id `{}` is used twice", item.id()),
                ));
            }
        }
        for (i, item) in storage.iter().enumerate() {
            for (key, r) in item.references() {
                if !ids.contains(r) {
                    return Err(err(
                        file,
                        value_at(i, key),
                        Some(item_key(i, key)),
                        format!("names `{r}`, which no entry of the storage config has as id"),
                    ));
                }
            }
        }

        // The network config.
        let network = match doc.get("network").filter(|n| !n.is_null()) {
            Some(n) => Some(NetworkConfig::from_node(n).map_err(|e| de_err(file, "network", e))?),
            None => None,
        };

        // Defaults that follow from the storage config when the `vmtest:` section does
        // not say (curtin's test classes said them in Python).
        let has = |key: &str| vkey(key).is_some();
        if !has("multipath")
            && storage
                .iter()
                .any(|i| matches!(i, StorageItem::Disk(d) if d.multipath.is_some()))
        {
            v.multipath = true;
        }
        if !has("uefi") {
            v.uefi = storage.iter().any(
                |i| matches!(i, StorageItem::Mount(m) if m.path.as_deref() == Some("/boot/efi")),
            );
        }

        // Disks: the storage config's, in config order.
        let (disks, disk_unrunnable) = disks::build(file, &v, vnode_or_empty, &storage, &entries)?;
        let unrunnable = runnable::unrunnable_storage(&storage)
            .or_else(|| runnable::unrunnable_target(&doc))
            .or(disk_unrunnable);
        for e in &v.expect {
            let (Expectation::Matches { regex, .. } | Expectation::NotMatches { regex, .. }) = e
            else {
                continue;
            };
            if let Err(re_err) = regex::Regex::new(regex) {
                let mark = vkey("expect")
                    .and_then(|(_, n)| n.as_seq())
                    .and_then(|s| {
                        s.iter().find(|n| {
                            n.as_map()
                                .and_then(|m| m.first())
                                .and_then(|(_, b)| b.get("regex"))
                                .and_then(Node::as_str)
                                == Some(regex.as_str())
                        })
                    })
                    .and_then(|n| {
                        n.as_map()
                            .and_then(|m| m.first())
                            .and_then(|(_, b)| b.get("regex"))
                    })
                    .map(|n| n.mark);
                return Err(err(
                    file,
                    mark,
                    Some("vmtest.expect".into()),
                    format!("regex does not compile: {re_err}"),
                ));
            }
        }
        let macs = nic_macs(network.as_ref());
        Ok(TestConfig {
            name: name.to_string(),
            file: file.into(),
            text: text.to_string(),
            vmtest: v,
            doc,
            disks,
            macs,
            storage,
            storage_version,
            network,
            unrunnable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::names::check_test_name;
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

    fn line_of(t: &str, needle: &str) -> usize {
        t.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn good_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.disks.len(), 2);
        assert_eq!(c.disks[0].serial, "disk-a");
        assert_eq!(c.disks[0].size, 4 << 30);
        assert_eq!(c.disks[1].file_name, "extra_disk_0.img");
        assert_eq!(c.macs, vec!["52:54:00:12:34:02"]);
        assert_eq!(c.text, GOOD, "the installer gets the file as it is");
        assert!(c.doc.get("storage").is_some());
        assert!(c.needs_qemu().is_none());
        assert!(c.unrunnable.is_none());
    }

    #[test]
    fn top_level_keys_belong_to_the_installer() {
        let c = parse(&format!(
            "{GOOD}late_commands: {{a: [true]}}\n-placeholder_simple_install: x\nnetwrok: 1\n"
        ))
        .unwrap();
        assert!(c.doc.get("netwrok").is_some());
    }

    #[test]
    fn the_vmtest_section_is_optional() {
        let c = parse("storage:\n  version: 1\n  config:\n    - {id: d, type: disk, serial: s}\n    - {id: p, type: partition, device: d, number: 1, size: 20G}\n").unwrap();
        assert_eq!(c.vmtest.release, DEFAULT_RELEASE);
        assert_eq!(c.vmtest.arch, host_arch());
        assert!(!c.vmtest.installer_pinned);
        // 20G of partitions with headroom: more than the 10G default.
        assert!(
            c.disks[0].size > 20 << 30 && c.disks[0].size < 23 << 30,
            "{}",
            c.disks[0].size
        );
        let c = parse("showtrace: true\n").unwrap();
        assert_eq!(c.disks.len(), 1);
        assert_eq!(c.disks[0].size, DEFAULT_DISK_SIZE);
        assert_eq!(c.macs, [DEFAULT_MAC]);
        assert!(parse("vmtest:\nshowtrace: true\n").is_ok());
    }

    #[test]
    fn unknown_vmtest_key_names_its_line_column_and_path() {
        let t = GOOD.replace(
            "  release: bookworm",
            "  release: bookworm\n  memroy_mib: 4",
        );
        let e = parse(&t).unwrap_err();
        assert_eq!((e.line, e.column), (Some(4), Some(3)), "{e}");
        assert_eq!(e.key.as_deref(), Some("vmtest.memroy_mib"));
        assert!(
            e.to_string()
                .starts_with("t.yaml:4:3: vmtest.memroy_mib: unknown key"),
            "{e}"
        );
    }

    #[test]
    fn a_nested_error_reports_its_true_line() {
        // `size:` comes first as text; the bad value is the block size two lines down.
        let t = GOOD.replace(
            "    sda: {size: 4G}",
            "    sda:\n      size: 4G\n      block_size: 1000",
        );
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, Some(line_of(&t, "block_size: 1000")), "{e}");
        assert_eq!(e.key.as_deref(), Some("vmtest.disks.sda.block_size"));
        let t = GOOD.replace("size: 3G}", "size: 3Q}");
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, Some(line_of(&t, "3Q")), "{e}");
        assert_eq!(e.key.as_deref(), Some("storage.config[1].size"));
        assert_eq!(e.column, Some(line_of_col(&t, "3Q")));
    }

    fn line_of_col(t: &str, needle: &str) -> usize {
        t.lines().find_map(|l| l.find(needle)).unwrap() + 1
    }

    #[test]
    fn outbound_rules_are_read_and_checked() {
        let t = GOOD.replace(
            "  release: bookworm",
            "  release: bookworm\n  outbound: [internet, \"192.168.1.5:3142\"]",
        );
        assert_eq!(
            parse(&t).unwrap().vmtest.outbound.to_string(),
            "internet,192.168.1.5:3142"
        );
        assert!(parse(GOOD).unwrap().vmtest.outbound.is_empty());
        let t = GOOD.replace(
            "  release: bookworm",
            "  release: bookworm\n  outbound: [\"127.0.0.1:3142\"]",
        );
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.starts_with("t.yaml:") && e.contains("use host:PORT"),
            "{e}"
        );
    }

    #[test]
    fn malformed_wwn_names_file_line_and_disk() {
        let t = GOOD.replace("serial: disk-a}", "serial: disk-a, wwn: \"0xnothex\"}");
        let e = parse(&t).unwrap_err();
        assert!(e.msg.contains("0xnothex") && e.msg.contains("sda"), "{e}");
        assert_eq!(e.key.as_deref(), Some("storage.config[0].wwn"));
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
        let e = parse(&t).unwrap_err();
        assert_eq!(e.line, Some(line_of(&t, "many")));
        assert_eq!(e.key.as_deref(), Some("vmtest.expect[1].swaps_in_use"));
        assert!(e.msg.contains("invalid type"), "{e}");
    }

    #[test]
    fn storage_keys_curtin_owns_pass_and_unknown_types_are_kept() {
        let c = parse(&GOOD.replace("ptable: msdos", "ptable: msdos, new_curtin_key: 1")).unwrap();
        assert!(
            matches!(&c.storage[0], StorageItem::Disk(d) if d.ptable.as_deref() == Some("msdos"))
        );
        let c = parse(&GOOD.replace("type: format", "type: formt")).unwrap();
        assert_eq!(c.storage[2].kind(), "formt");
    }

    #[test]
    fn dangling_reference_and_missing_serial() {
        let t = GOOD.replace("volume: sda1,", "volume: sda9,");
        let e = parse(&t).unwrap_err();
        assert!(e.msg.contains("sda9"), "{e}");
        assert_eq!(e.key.as_deref(), Some("storage.config[2].volume"));
        assert_eq!(e.line, Some(line_of(&t, "sda9")));
        let e = parse(&GOOD.replace(", serial: disk-a", "")).unwrap_err();
        assert!(e.msg.contains("serial"), "{e}");
    }

    #[test]
    fn curtin_shapes_are_accepted() {
        let t = r#"
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: gpt, serial: disk-a, grub_device: 1}
    - {id: sdb, type: disk, path: /dev/vdb}
    - {id: sdc, type: disk, wwn: '0x5000c500a0b1c2d3'}
    - {id: bc, type: disk, path: /dev/bcache1}
    - {id: sda1, type: partition, device: sda, number: 1, size: 1G}
    - {id: f, type: format, volume: sda1, fstype: ext4, name: root}
    - {id: vg, type: lvm_volgroup, name: vg0, devices: [sdb], uuid: 11111111-2222-3333-4444-555555555555}
    - {id: m, type: mount, device: f, path: /}
"#;
        let c = parse(t).unwrap();
        let serials: Vec<&str> = c.disks.iter().map(|d| d.serial.as_str()).collect();
        // /dev/bcache1 is a device the config builds, not a disk to attach.
        assert_eq!(serials, ["disk-a", "sdb", "0x5000c500a0b1c2d3"]);
        let e = parse(&t.replace("/dev/vdb", "/dev/vdc")).unwrap_err();
        assert!(
            e.msg.contains("/dev/vdc") && e.msg.contains("config order"),
            "{e}"
        );
        assert_eq!(e.key.as_deref(), Some("storage.config[1].path"));
        let e = parse(&t.replace("/dev/vdb", "/dev/sdb")).unwrap_err();
        assert!(e.msg.contains("disk_driver"), "{e}");
    }

    #[test]
    fn serials_of_the_harness_disks_are_refused() {
        for s in ["output_disk.img", "seed", "install_disk"] {
            let e = parse(&GOOD.replace("serial: disk-a", &format!("serial: {s}"))).unwrap_err();
            assert!(e.msg.contains("harness's own disks"), "{e}");
            assert_eq!(e.key.as_deref(), Some("storage.config[0].serial"));
        }
        let e = parse(&GOOD.replace("- {size: 1G}", "- {size: 1G, serial: disk-a}")).unwrap_err();
        assert!(e.msg.contains("two disks"), "{e}");
        assert_eq!(e.key.as_deref(), Some("vmtest.extra_disks[0].serial"));
    }

    #[test]
    fn an_oversized_disk_is_a_clear_error() {
        let e = parse(&GOOD.replace("size: 4G", "size: 99999999T")).unwrap_err();
        assert!(e.msg.contains("too large"), "{e}");
        assert_eq!(e.key.as_deref(), Some("vmtest.disks.sda.size"));
    }

    #[test]
    fn zero_sizes_and_counts_are_refused() {
        for (from, to, key) in [
            (
                "  release: bookworm",
                "  release: bookworm\n  cpus: 0",
                "vmtest.cpus",
            ),
            (
                "  release: bookworm",
                "  release: bookworm\n  memory_mib: 0",
                "vmtest.memory_mib",
            ),
            (
                "  release: bookworm",
                "  release: bookworm\n  timeouts: {boot: 0}",
                "vmtest.timeouts.boot",
            ),
        ] {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn bad_values() {
        let e = parse(&GOOD.replace("release: bookworm", "release: bookworm\n  block_size: 1000"))
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("vmtest.block_size"), "{e}");
        let e = parse(&GOOD.replace("52:54:00:12:34:02", "52:54:00:12:34")).unwrap_err();
        assert!(e.msg.contains("MAC"), "{e}");
        let e = parse("vmtest: [\n").unwrap_err();
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
        assert!(parse("").unwrap_err().msg.contains("empty"));
        assert!(parse("- a\n").unwrap_err().msg.contains("mapping"));
        let e = parse("vmtest:\n  release: a\n  release: b\n").unwrap_err();
        assert!(e.msg.contains("twice") && e.line == Some(3), "{e}");
    }

    #[test]
    fn an_unquoted_mac_says_what_curtin_would_read() {
        let e = parse(&GOOD.replace("\"52:54:00:12:34:02\"", "52:54:00:12:34:02")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("network.config[0].mac_address"));
        assert!(
            e.msg.contains("41135085242") && e.msg.contains("quote"),
            "{e}"
        );
    }

    #[test]
    fn test_names_must_be_one_safe_path_component() {
        for bad in ["..", ".", "", "a/b", ".hidden", "-x", "a b", "é"] {
            let e = TestConfig::parse(bad, Path::new("x.yaml"), GOOD).unwrap_err();
            assert!(e.msg.contains("not a usable test name"), "{bad}: {e}");
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("...yaml");
        std::fs::write(&p, GOOD).unwrap();
        let e = TestConfig::load(&p).unwrap_err();
        assert!(e.msg.contains("`..`"), "{e}");
        assert!(check_test_name("basic-dasd_2.v1+x").is_ok());
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
        .unwrap_err();
        assert!(e.msg.contains("curtn"), "{e}");
    }

    #[test]
    fn what_cannot_run_here_says_why() {
        let host = HostFacts {
            arch: "amd64".into(),
            image_packages: vec!["lvm2".into()],
        };
        let why = |t: &str| parse(t).unwrap().not_runnable(&host);
        assert!(why(GOOD).is_none());
        assert!(why("vmtest: {arch: s390x}\n").unwrap().contains("s390x"));
        assert!(
            why("storage:\n  config:\n    - {id: d, type: disk, path: 'iscsi:__RFC4173__'}\n")
                .unwrap()
                .contains("iSCSI")
        );
        assert!(
            why("storage:\n  config:\n    - {id: d, type: dasd, device_id: 0.0.1520}\n")
                .unwrap()
                .contains("DASD")
        );
        let zfs = "storage:\n  config:\n    - {id: d, type: disk, serial: s}\n    - {id: p, type: zpool, pool: rpool, vdevs: [d]}\n";
        assert!(why(zfs).unwrap().contains("ZFS"));
        let with_zfs = HostFacts {
            image_packages: vec!["zfsutils-linux".into()],
            ..host.clone()
        };
        assert!(parse(zfs).unwrap().not_runnable(&with_zfs).is_none());
        assert!(
            why("apt: {sources: {x: {source: 'ppa:curtin-dev/test-archive'}}}\n")
                .unwrap()
                .contains("PPA")
        );
        assert!(
            why("hook_commands: {builtin: null}\n")
                .unwrap()
                .contains("builtin hooks")
        );
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
