//! The `vmtest:` section: how the harness runs a test and what it expects to find.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::shapes::{de_size, de_size_opt};

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

/// Outbound rules as a list (`[internet, "192.168.1.5:3142"]`) or one comma list.
fn de_outbound<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usernet::Outbound, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rules {
        List(Vec<String>),
        One(String),
    }
    let text = match Rules::deserialize(d)? {
        Rules::List(v) => v.join(","),
        Rules::One(s) => s,
    };
    text.parse().map_err(serde::de::Error::custom)
}

/// The `vmtest:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmtestSection {
    /// Release of the install image (e.g. bookworm).
    #[serde(default = "default_release")]
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
    /// Guest memory (MiB). CURTIN_VMTEST_VMRAM, when set, wins (as in curtin); 2048 when
    /// neither says.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// vCPUs. CURTIN_VMTEST_NR_CPUS, when set, wins (as in curtin); 1 when neither says.
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
    /// curtin's vmtest `dirty_disks`: before the real install, curtin lays the same storage
    /// config out once from early_commands and leaves it behind inactive (LVM and md
    /// stopped), so the install must take over disks that already carry partitions,
    /// arrays and volume groups. Uses the curtin tree's
    /// `examples/tests/dirty_disks_config.yaml` as a further config (curtin only).
    #[serde(default)]
    pub dirty_disks: bool,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Kernel arguments added to the install phase's command line.
    #[serde(default)]
    pub extra_kernel_args: String,
    /// What the guest may reach beyond the harness's own ports, in both phases and both
    /// backends: outbound rules (`internet`, `host:PORT`, `ADDR[/PREFIX][:PORT]`, see
    /// [`usernet::Outbound`]), added to the run's VMTEST_OUTBOUND. Nothing when absent.
    #[serde(default, deserialize_with = "de_outbound")]
    pub outbound: usernet::Outbound,
    /// Shell scripts run in the booted system; each writes files under /mnt/output
    /// (the working directory). They run after the default collect scripts.
    #[serde(default)]
    pub collect_scripts: Vec<String>,
    /// Checks on the collected files, in addition to those derived from the config.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Derive checks from the storage and network configs (`crate::checks`); false
    /// leaves only `expect:`.
    #[serde(default = "default_true")]
    pub derive_checks: bool,
}

fn default_true() -> bool {
    true
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

/// The release a test installs when it does not say.
pub const DEFAULT_RELEASE: &str = "bookworm";

fn default_release() -> String {
    DEFAULT_RELEASE.into()
}

/// This build's architecture in Debian's words (the images' and curtin's names).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64el",
        "x86" => "i386",
        other => other,
    }
}

fn default_arch() -> String {
    host_arch().into()
}
fn default_block_size() -> u32 {
    512
}
