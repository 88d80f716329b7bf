//! Reading a test config file into a [`TestConfig`]: the `vmtest:` section (strict), the
//! storage and network configs (what the harness reads of them), the disks the test gets
//! and what keeps it from running. Every error names the file, line, column and key path
//! of what it is about, found in the parsed document (no text search).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::*;
use crate::userdata::{OUTPUT_DISK_SERIAL, SEED_DISK_SERIAL};
use crate::yaml::{self, DeError, Kind, Mark, from_node};

/// Largest config file read (curtin's biggest example is 12 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Longest test name (it becomes a directory name).
const MAX_NAME: usize = 100;

/// Serials the harness gives its own disks; a storage disk may not take them.
const HARNESS_SERIALS: [&str; 3] = [OUTPUT_DISK_SERIAL, SEED_DISK_SERIAL, "install_disk"];

/// Most bytes of a virtio-blk or NVMe serial (what the guest can read back).
const MAX_SERIAL: usize = 20;

/// A test name becomes a directory under TOPDIR: one plain path component, no `..`,
/// nothing hidden, nothing a shell or a path would read otherwise.
pub fn check_test_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable test name: it becomes a directory under TOPDIR, so it must be 1-{MAX_NAME} letters, digits, `.`, `_`, `+` or `-`, not starting with `.` or `-`; rename the file"
        ))
    }
}

/// Test config files in a directory (`*.yaml`, `*.yml`), sorted by name. Two files that
/// give the same test name (`basic.yaml` and `basic.yml`) are an error naming both:
/// they would share one work dir.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read test directory {}: {e}", dir.display()))?
    {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            v.push(p);
        }
    }
    v.sort();
    let mut by_name: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for p in &v {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(first) = by_name.insert(stem.clone(), p) {
            anyhow::bail!(
                "{} and {} both define the test `{stem}`: keep one (their results would overwrite each other)",
                first.display(),
                p.display()
            );
        }
    }
    Ok(v)
}

/// A `ConfigError` about `mark` and `key` in `file`.
fn err(
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
fn item_key(i: usize, key: &str) -> String {
    format!("storage.config[{i}].{key}")
}

/// Where a disk of the storage config is, for the harness.
enum Attach {
    /// Attached with this serial (and WWN for SCSI).
    Serial { serial: String, wwn: Option<String> },
    /// Attached at the position its `/dev/` name says.
    Path { position: usize, dev: String },
    /// Not a disk the harness makes (a device the config builds, `/dev/bcache1`).
    Not,
    /// A disk no host here can give (the reason).
    Unrunnable(String),
}

/// Position of a Linux disk name suffix: `a` → 0, `z` → 25, `aa` → 26.
fn letters_index(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut n = 0usize;
    for b in s.bytes() {
        n = n * 26 + usize::from(b - b'a') + 1;
    }
    Some(n - 1)
}

fn attach_of(d: &DiskItem, driver: DiskDriver) -> Result<Attach, String> {
    if let Some(s) = &d.serial {
        return Ok(Attach::Serial {
            serial: s.clone(),
            wwn: d.wwn.clone(),
        });
    }
    if let Some(w) = &d.wwn {
        // curtin finds a disk by WWN with a by-id glob, which a virtio serial equal to
        // the WWN also satisfies.
        return Ok(Attach::Serial {
            serial: w.clone(),
            wwn: Some(w.clone()),
        });
    }
    if let Some(p) = &d.path {
        if p.starts_with("iscsi:") {
            return Ok(Attach::Unrunnable(format!(
                "disk `{}` is an iSCSI target ({p}), and no iSCSI server runs here",
                d.id
            )));
        }
        if let Some(serial) = p.strip_prefix("/dev/disk/by-id/virtio-") {
            return Ok(Attach::Serial {
                serial: serial.to_string(),
                wwn: None,
            });
        }
        let (prefix, want) = match driver {
            DiskDriver::VirtioBlk => ("/dev/vd", "virtio-blk"),
            DiskDriver::Scsi => ("/dev/sd", "scsi"),
            DiskDriver::Nvme => ("/dev/nvme", "nvme"),
        };
        let position = if driver == DiskDriver::Nvme {
            p.strip_prefix("/dev/nvme")
                .and_then(|r| r.strip_suffix("n1"))
                .and_then(|n| n.parse::<usize>().ok())
        } else {
            p.strip_prefix(prefix).and_then(letters_index)
        };
        if let Some(position) = position {
            return Ok(Attach::Path {
                position,
                dev: p.clone(),
            });
        }
        let other_bus = ["/dev/vd", "/dev/sd", "/dev/nvme", "/dev/hd", "/dev/xvd"]
            .iter()
            .any(|b| p.starts_with(b));
        if other_bus {
            return Err(format!(
                "disk `{}` is given as {p}, but this test attaches its disks as {want} ({prefix}...): use that name, or set `vmtest.disk_driver`",
                d.id
            ));
        }
        return Ok(Attach::Not);
    }
    if d.device_id.is_some() {
        return Ok(Attach::Unrunnable(format!(
            "disk `{}` is an s390x DASD (device_id), which no host here has",
            d.id
        )));
    }
    Err(format!(
        "disk `{}` needs a `serial`, `wwn` or `path` so the harness can attach it and curtin find it",
        d.id
    ))
}

/// A serial both backends can give and the guest read back.
fn check_serial(serial: &str, driver: DiskDriver) -> Result<(), String> {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(format!(
            "serial `{serial}`: use printable ASCII without spaces or commas"
        ));
    }
    if serial.len() > MAX_SERIAL && driver != DiskDriver::Scsi {
        return Err(format!(
            "serial `{serial}` is longer than the {MAX_SERIAL} bytes a virtio-blk or NVMe disk can report"
        ));
    }
    Ok(())
}

/// The size a storage disk needs: its partitions (sizes, offsets, 1 MiB alignment each,
/// partition tables) with 10% headroom, and at least [`DEFAULT_DISK_SIZE`].
fn disk_size_for(id: &str, items: &[StorageItem]) -> u64 {
    let mut sum: u128 = 0;
    let mut end: u128 = 0;
    let mut n: u128 = 0;
    for i in items {
        if let StorageItem::Partition(p) = i
            && p.device == id
        {
            sum += u128::from(p.size) + (1 << 20);
            n += 1;
            if let Some(off) = p.offset {
                end = end.max(u128::from(off) + u128::from(p.size));
            }
        }
    }
    if n == 0 {
        return DEFAULT_DISK_SIZE;
    }
    let need = (sum.max(end) + (16 << 20)) * 11 / 10;
    let need = need.div_ceil(1 << 20) << 20;
    u64::try_from(need)
        .unwrap_or(crate::units::MAX_SIZE)
        .max(DEFAULT_DISK_SIZE)
}

/// Why a storage config names something no host here can give (besides its disks).
fn unrunnable_storage(items: &[StorageItem]) -> Option<String> {
    for i in items {
        match i {
            StorageItem::Dasd(d) => {
                return Some(format!(
                    "`{}` is an s390x DASD, which no host here has",
                    d.id
                ));
            }
            StorageItem::Disk(d) if d.ptable.as_deref() == Some("vtoc") => {
                return Some(format!(
                    "disk `{}` has a VTOC partition table (s390x DASD), which no host here has",
                    d.id
                ));
            }
            StorageItem::NvmeController(c) if c.transport != "pcie" => {
                return Some(format!(
                    "`{}` is an NVMe-over-{} controller, and no such target runs here",
                    c.id, c.transport
                ));
            }
            _ => {}
        }
    }
    None
}

/// Why a config's other keys need a target this host's images are not (an Ubuntu
/// archive or PPA, curtin's builtin hooks turned off as for CentOS images).
fn unrunnable_target(doc: &Node) -> Option<String> {
    // A PPA anywhere (an `apt:` source, or a command that adds one in early_commands).
    static PPA: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?:^|[\s"'])(ppa:[\w.-]+/[\w.-]+)"#).expect("PPA pattern")
    });
    if let Some(ppa) = doc
        .strings()
        .into_iter()
        .find_map(|s| PPA.captures(s).map(|c| c[1].to_string()))
    {
        return Some(format!(
            "it adds the Ubuntu PPA {ppa}, and the images here are Debian {DEFAULT_RELEASE}"
        ));
    }
    for key in ["apt", "apt_mirrors"] {
        if let Some(n) = doc.get(key)
            && let Some(s) = n
                .strings()
                .into_iter()
                .find(|s| s.contains("ubuntu.com/") || s.contains("launchpad.net/"))
        {
            return Some(format!(
                "its `{key}:` uses Ubuntu's archive ({s}), and the images here are Debian {DEFAULT_RELEASE}"
            ));
        }
    }
    if let Some(h) = doc.get("hook_commands")
        && h.get("builtin").is_some_and(Node::is_null)
    {
        return Some(
            "it turns off curtin's builtin hooks (hook_commands.builtin: null), as curtin's CentOS tests do for images that bring their own boot loader; the Debian images here do not".into(),
        );
    }
    None
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
        let value_at = |i: usize, key: &str| {
            entries[i]
                .get(key)
                .map(|n| n.mark)
                .or(Some(entries[i].mark))
        };

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
        let mut unrunnable = unrunnable_storage(&storage).or_else(|| unrunnable_target(&doc));
        let mut disks: Vec<DiskSpec> = Vec::new();
        for (i, item) in storage.iter().enumerate() {
            let StorageItem::Disk(d) = item else { continue };
            let attach = attach_of(d, v.disk_driver).map_err(|m| {
                err(
                    file,
                    Some(entries[i].mark),
                    Some(format!("storage.config[{i}]")),
                    m,
                )
            })?;
            let (serial, wwn) = match attach {
                Attach::Not => continue,
                Attach::Unrunnable(why) => {
                    unrunnable.get_or_insert(why);
                    continue;
                }
                Attach::Serial { serial, wwn } => (serial, wwn),
                Attach::Path { position, dev } => {
                    if position != disks.len() {
                        return Err(err(
                            file,
                            value_at(i, "path"),
                            Some(item_key(i, "path")),
                            format!(
                                "disk `{}` is {dev}, but it is the disk number {} the harness attaches (disks are attached in config order): order the storage config's disks as their names go",
                                d.id,
                                disks.len() + 1
                            ),
                        ));
                    }
                    // A disk the config knows by its path gets its id as serial (so
                    // /dev/disk/by-id names it after the config), or a numbered one.
                    let serial = if check_serial(&d.id, v.disk_driver).is_ok() {
                        d.id.clone()
                    } else {
                        format!("vmtest-disk-{}", disks.len())
                    };
                    (serial, None)
                }
            };
            let key = if d.serial.is_some() { "serial" } else { "wwn" };
            check_serial(&serial, v.disk_driver).map_err(|m| {
                err(
                    file,
                    value_at(i, key),
                    Some(item_key(i, key)),
                    format!("disk `{}`: {m}", d.id),
                )
            })?;
            if let Some(w) = &wwn
                && w.starts_with("0x")
            {
                let hex = &w[2..];
                if hex.is_empty() || hex.len() > 16 || u64::from_str_radix(hex, 16).is_err() {
                    return Err(err(
                        file,
                        value_at(i, "wwn"),
                        Some(item_key(i, "wwn")),
                        format!(
                            "`{w}` of disk `{}` is not a 64-bit hex world-wide name (e.g. 0x5000c500a0b1c2d3)",
                            d.id
                        ),
                    ));
                }
            }
            // Only 0x WWNs are SCSI device properties; NVMe's eui./nvme. forms are not.
            let wwn = wwn.filter(|w| w.starts_with("0x"));
            let n = disks.len();
            disks.push(DiskSpec {
                id: d.id.clone(),
                file_name: if n == 0 {
                    "install_disk.img".into()
                } else {
                    format!("install_disk_{n}.img")
                },
                serial,
                wwn,
                size: disk_size_for(&d.id, &storage),
                block_size: v.block_size,
            });
        }
        for (key, opts) in &v.disks {
            let Some(d) = disks.iter_mut().find(|d| &d.id == key) else {
                let mark = vkey("disks")
                    .and_then(|(_, n)| n.entry(key))
                    .map(|(k, _)| k.mark);
                return Err(err(
                    file,
                    mark,
                    Some(format!("vmtest.disks.{key}")),
                    "is not a `type: disk` id of the storage config that the harness attaches",
                ));
            };
            if let Some(s) = opts.size {
                d.size = s;
            }
            if let Some(b) = opts.block_size {
                d.block_size = b;
            }
        }
        let defaulted = disks.is_empty();
        if defaulted {
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
        let n_storage = disks.len() - v.extra_disks.len();
        let disk_key = |idx: usize, field: &str| -> (Option<Mark>, String) {
            if idx >= n_storage {
                let j = idx - n_storage;
                let mark = vkey("extra_disks")
                    .and_then(|(_, n)| n.as_seq())
                    .and_then(|s| s.get(j))
                    .map(|n| n.get(field).map(|f| f.mark).unwrap_or(n.mark));
                (mark, format!("vmtest.extra_disks[{j}].{field}"))
            } else {
                let id = &disks[idx].id;
                match vkey("disks").and_then(|(_, n)| n.get(id)) {
                    Some(n) => (
                        Some(n.get(field).map(|f| f.mark).unwrap_or(n.mark)),
                        format!("vmtest.disks.{id}.{field}"),
                    ),
                    None => (at(field), format!("vmtest.{field}")),
                }
            }
        };
        let mut serials: BTreeMap<&str, usize> = BTreeMap::new();
        for (idx, d) in disks.iter().enumerate() {
            if d.block_size != 512 && d.block_size != 4096 {
                let (mark, key) = disk_key(idx, "block_size");
                return Err(err(
                    file,
                    mark,
                    Some(key),
                    format!(
                        "disk `{}`: block size {} is not supported (512 or 4096)",
                        d.id, d.block_size
                    ),
                ));
            }
            if d.size < 1 << 20 {
                let (mark, key) = disk_key(idx, "size");
                return Err(err(
                    file,
                    mark,
                    Some(key),
                    format!(
                        "disk `{}`: {} bytes is too small (at least 1M)",
                        d.id, d.size
                    ),
                ));
            }
            let own = HARNESS_SERIALS.contains(&d.serial.as_str()) && !(defaulted && idx == 0);
            if own || serials.insert(&d.serial, idx).is_some() {
                let (mark, key) = if idx < n_storage {
                    let i = storage.iter().position(|s| s.id() == d.id).unwrap_or(0);
                    let k = if entries.get(i).is_some_and(|n| n.get("serial").is_none()) {
                        "wwn"
                    } else {
                        "serial"
                    };
                    (value_at(i, k), item_key(i, k))
                } else {
                    disk_key(idx, "serial")
                };
                let why = if own {
                    "is the serial of one of the harness's own disks (output disk, seed, default install disk)".to_string()
                } else {
                    "is used by two disks; curtin and /dev/disk/by-id could not tell them apart"
                        .to_string()
                };
                return Err(err(
                    file,
                    mark,
                    Some(key),
                    format!("serial `{}` {why}", d.serial),
                ));
            }
        }
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
    fn yaml_and_yml_of_one_name_are_refused_naming_both() {
        let d = tempfile::tempdir().unwrap();
        for f in ["basic.yaml", "basic.yml", "other.yaml"] {
            std::fs::write(d.path().join(f), "showtrace: true\n").unwrap();
        }
        let e = discover(d.path()).unwrap_err().to_string();
        assert!(e.contains("basic.yaml") && e.contains("basic.yml"), "{e}");
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
