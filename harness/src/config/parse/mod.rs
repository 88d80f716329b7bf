//! Reading a test config file into a [`TestConfig`]: the `vmtest:` section (strict), the
//! storage and network configs (what the harness reads of them), the disks the test gets
//! and what keeps it from running. Every error names the file, line, column and key path
//! of what it is about, found in the parsed document (no text search).

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
        Self::load_with(path, &[])
    }

    /// [`TestConfig::load`], with `replace` applied to the file's text first, as curtin's
    /// vmtest applies a test class's `conf_replace` (see [`super::template`]); the installer
    /// gets the replaced text.
    pub fn load_with(path: &Path, replace: &[ConfReplace]) -> Result<TestConfig, ConfigError> {
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
        Self::parse(&name, path, &super::template::apply(&text, replace))
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
            .or_else(|| super::template::unfilled(&doc))
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
mod tests;
