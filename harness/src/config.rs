//! Test configs: one YAML file per test (examples/tests/*.yaml) holding the installer's
//! config in curtin's format (storage:, network:, ...) and a `vmtest:` section saying how
//! to run it. Parsing is strict: an unknown key or a wrong type is an error naming the file,
//! the line and the key, because a typo silently ignored makes a test verify nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

/// A config that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub msg: String,
}

/// Default size of a storage-config disk when the test does not say.
pub const DEFAULT_DISK_SIZE: u64 = 10 << 30;
/// The MAC curtin's vmtest gives the first NIC when the network config names none.
pub const DEFAULT_MAC: &str = "52:54:00:12:34:01";

/// One loaded test.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// Test name: the file name without `.yaml`.
    pub name: String,
    pub file: PathBuf,
    pub vmtest: VmtestSection,
    /// The installer's part of the file (everything but `vmtest:`), handed to the
    /// installer unchanged.
    pub installer_config: Value,
    /// Disks from the storage config's `type: disk` entries, in order, then extra disks.
    pub disks: Vec<DiskSpec>,
    /// NICs from the network config's physical MACs (at least one).
    pub macs: Vec<String>,
    /// Typed view of the storage config (for the script installer).
    pub storage: Vec<StorageItem>,
}

/// A disk the harness creates and attaches (install and boot phase).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpec {
    /// Storage-config id (`extra_disk_N` for extra disks).
    pub id: String,
    /// File name under disks/.
    pub file_name: String,
    /// Serial the guest sees (`/dev/disk/by-id/virtio-<serial>`), at most 20 bytes.
    pub serial: String,
    pub wwn: Option<String>,
    pub size: u64,
    pub block_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum VmmHint {
    /// Whatever `--vmm` says.
    #[default]
    Any,
    /// This test needs qemu (firmware, devices the microVM lacks).
    Qemu,
    /// This test is meant for the builtin microVM.
    Builtin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DiskDriver {
    #[default]
    VirtioBlk,
    Nvme,
    Scsi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InstallerKind {
    /// The project's own shell installer (harness/installer/), no curtin needed.
    #[default]
    Script,
    /// curtin, packed from --curtin DIR or CURTIN_SRC.
    Curtin,
}

/// The `vmtest:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmtestSection {
    /// Release of the install image (e.g. bookworm).
    pub release: String,
    #[serde(default = "default_arch")]
    pub arch: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Which installer runs in the install phase: the one the config names, else the
    /// script installer, or curtin when a curtin tree is given (see
    /// [`TestConfig::installer`]).
    #[serde(default)]
    pub installer: InstallerKind,
    /// Whether the config names its installer itself (`installer:` present); then a
    /// curtin tree given on the command line does not change it.
    #[serde(skip)]
    pub installer_pinned: bool,
    /// Size and block size per storage-config disk id.
    #[serde(default)]
    pub disks: BTreeMap<String, DiskOptions>,
    /// Disks attached in both phases that the storage config does not name.
    #[serde(default)]
    pub extra_disks: Vec<ExtraDisk>,
    /// Logical = physical block size of every disk unless a disk says otherwise: 512 or 4096.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Guest memory (MiB); CURTIN_VMTEST_VMRAM when absent.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// vCPUs; CURTIN_VMTEST_NR_CPUS when absent.
    #[serde(default)]
    pub cpus: Option<u32>,
    #[serde(default)]
    pub vmm: VmmHint,
    /// Boot the installed system through UEFI firmware (qemu + OVMF only).
    #[serde(default)]
    pub uefi: bool,
    #[serde(default)]
    pub disk_driver: DiskDriver,
    /// Attach each disk twice (multipath; qemu only).
    #[serde(default)]
    pub multipath: bool,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Kernel arguments added to the install phase's command line.
    #[serde(default)]
    pub extra_kernel_args: String,
    /// Shell scripts run in the booted system; each writes files under /mnt/output
    /// (the working directory). They run after the default collect scripts.
    #[serde(default)]
    pub collect_scripts: Vec<String>,
    /// Checks on the collected files.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub expect: Vec<Expectation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskOptions {
    #[serde(default, deserialize_with = "de_size_opt")]
    pub size: Option<u64>,
    #[serde(default)]
    pub block_size: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDisk {
    #[serde(deserialize_with = "de_size")]
    pub size: u64,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub block_size: Option<u32>,
}

/// Phase limits in seconds; the environment's values when absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default)]
    pub install: Option<u64>,
    #[serde(default)]
    pub boot: Option<u64>,
}

/// A check on the collected files (paths relative to collect/).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// These files exist.
    FileExists(Vec<String>),
    /// These files do not exist.
    FileAbsent(Vec<String>),
    /// A line, stripped of surrounding blanks, is in the file.
    ContainsLine { file: String, line: String },
    /// A regex matches somewhere in the file.
    Matches { file: String, regex: String },
    /// A regex matches nowhere in the file.
    NotMatches { file: String, regex: String },
    /// The target's fstab has these entries (spec is a regex; others exact when given).
    Fstab(Vec<FstabEntry>),
    /// These mount points are mounted (proc_mounts), with the fstype when given.
    Mounts(Vec<MountEntry>),
    /// At least this many swap devices are in use (proc-swaps).
    SwapsInUse(usize),
    /// These names exist under /dev/disk/by-id (ls_al_byid).
    ById(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FstabEntry {
    #[serde(default)]
    pub spec: Option<String>,
    pub mountpoint: String,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub options: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    pub mountpoint: String,
    #[serde(default)]
    pub fstype: Option<String>,
}

fn default_arch() -> String {
    "amd64".into()
}
fn default_block_size() -> u32 {
    512
}

/// Parses sizes the way curtin's configs write them: 10G, 512M, 3GB, 1.5G, 4096, 4096B.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 10G, 512M, 4096)"))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("`{s}` has an unknown size unit (use K, M, G or T)")),
    };
    Ok((num * mult as f64) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    N(u64),
    S(String),
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match SizeRepr::deserialize(d)? {
        SizeRepr::N(n) => Ok(n),
        SizeRepr::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

fn de_size_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    version: u32,
    #[serde(default)]
    config: Vec<StorageItem>,
    #[serde(default)]
    #[allow(dead_code)]
    swap: Option<Value>,
}

/// One entry of curtin's storage config (the fields this project reads or accepts).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StorageItem {
    Disk(DiskItem),
    Partition(PartitionItem),
    Format(FormatItem),
    Mount(MountItem),
    LvmVolgroup(LvmVolgroupItem),
    LvmPartition(LvmPartitionItem),
    // Accepted and passed to curtin; the script installer refuses them.
    Raid(Value),
    Bcache(Value),
    DmCrypt(Value),
    Zpool(Value),
    Zfs(Value),
    Dasd(Value),
    Device(Value),
    Image(Value),
    NvmeController(Value),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskItem {
    pub id: String,
    #[serde(default)]
    pub ptable: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub multipath: Option<String>,
    #[serde(default)]
    pub nvme_controller: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionItem {
    pub id: String,
    pub device: String,
    #[serde(default)]
    pub number: Option<u32>,
    #[serde(deserialize_with = "de_size")]
    pub size: u64,
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub wipe: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_size_opt")]
    pub offset: Option<u64>,
    #[serde(default)]
    pub partition_type: Option<String>,
    #[serde(default)]
    pub grub_device: Option<bool>,
    #[serde(default)]
    pub resize: Option<bool>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub multipath: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatItem {
    pub id: String,
    pub volume: String,
    pub fstype: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub extra_options: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountItem {
    pub id: String,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub options: Option<String>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    pub freq: Option<Value>,
    #[serde(default)]
    pub passno: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmVolgroupItem {
    pub id: String,
    pub name: String,
    pub devices: Vec<String>,
    #[serde(default)]
    pub preserve: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmPartitionItem {
    pub id: String,
    pub name: String,
    pub volgroup: String,
    #[serde(default, deserialize_with = "de_size_opt")]
    pub size: Option<u64>,
    #[serde(default)]
    pub preserve: Option<bool>,
    #[serde(default)]
    pub wipe: Option<String>,
}

impl StorageItem {
    pub fn id(&self) -> Option<&str> {
        match self {
            StorageItem::Disk(d) => Some(&d.id),
            StorageItem::Partition(p) => Some(&p.id),
            StorageItem::Format(f) => Some(&f.id),
            StorageItem::Mount(m) => Some(&m.id),
            StorageItem::LvmVolgroup(v) => Some(&v.id),
            StorageItem::LvmPartition(l) => Some(&l.id),
            StorageItem::Raid(v)
            | StorageItem::Bcache(v)
            | StorageItem::DmCrypt(v)
            | StorageItem::Zpool(v)
            | StorageItem::Zfs(v)
            | StorageItem::Dasd(v)
            | StorageItem::Device(v)
            | StorageItem::Image(v)
            | StorageItem::NvmeController(v) => v.get("id").and_then(Value::as_str),
        }
    }
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

    /// The installer that runs for this test when `curtin_given` says whether a curtin
    /// tree was given (--curtin / CURTIN_SRC): a config that names its installer gets
    /// it; otherwise curtin when a tree was given (a curtin developer tests *their*
    /// curtin with the same configs), else the script installer.
    pub fn installer(&self, curtin_given: bool) -> InstallerKind {
        if self.vmtest.installer_pinned {
            self.vmtest.installer
        } else if curtin_given {
            InstallerKind::Curtin
        } else {
            InstallerKind::Script
        }
    }

    /// What this test needs that only qemu can give, if anything.
    pub fn needs_qemu(&self) -> Option<String> {
        let v = &self.vmtest;
        if v.uefi {
            return Some("it boots through UEFI firmware".into());
        }
        match v.disk_driver {
            DiskDriver::Nvme => return Some("it uses NVMe disks".into()),
            DiskDriver::Scsi => return Some("it uses SCSI disks".into()),
            DiskDriver::VirtioBlk => {}
        }
        if v.multipath {
            return Some("it uses multipath".into());
        }
        if v.vmm == VmmHint::Qemu {
            return Some("its config asks for qemu (vmtest.vmm: qemu)".into());
        }
        None
    }
}

/// MACs of the physical NICs in a network config (version 1 `type: physical` entries or
/// version 2 `ethernets.*.match.macaddress`), or the default MAC when it names none.
fn network_macs(net: Option<&Value>) -> Result<Vec<String>, String> {
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

/// Test config files in a directory (`*.yaml`), sorted by name.
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
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
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
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("3GB").unwrap(), 3 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("ten").is_err());
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
