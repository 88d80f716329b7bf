//! Test configs: one YAML file per test holding the installer's config in curtin's
//! format (storage:, network:, ... exactly as curtin's own `examples/tests/*.yaml`) and,
//! optionally, a `vmtest:` section saying how to run it. The harness reads what it needs
//! (disks, NICs, its own section) as curtin's YAML reader does and checks exactly that,
//! strictly: an error names the file, the line and column, and the key. Everything else
//! belongs to the installer and is handed to it untouched: the file's own text.
//!
//! - [`types`]: the `vmtest:` section (how to run a test, what to expect);
//! - [`storage`]: curtin's storage config as the harness reads it;
//! - [`network`]: curtin's network config as the harness reads it (NICs, bonds, ...);
//! - [`shapes`]: the value shapes curtin accepts (0/1 booleans, sizes as text, ...);
//! - [`parse`]: reading a file into a [`TestConfig`] and checking it;
//! - [`disks`]: the disks a test gets (by serial, WWN or path, sized, serials checked);
//! - [`runnable`]: whether this host can run a test, and why not;
//! - [`template`]: curtin's config templates (`__ROOTFS_FORMAT__`) and `--conf-replace`;
//! - [`names`]: test names (they become directories) and finding test files.

mod disks;
mod lines;
mod names;
mod network;
mod parse;
mod runnable;
mod shapes;
mod storage;
mod template;
mod types;

use std::fmt;
use std::path::PathBuf;

use crate::yaml::Node;

pub use names::{check_test_name, discover};
pub use network::*;
pub use parse::MAX_CONFIG_BYTES;
pub use runnable::HostFacts;
pub use storage::*;
pub use template::ConfReplace;
pub use types::*;

/// A config that cannot be used: where (file, line, column, key path) and why. It stays
/// typed up to where it is shown (the CLI's message, a CI annotation).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based, when the error is about a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path the error is about (`vmtest.disks.sda.size`,
    /// `storage.config[3].serial`), when it is about one.
    pub key: Option<String>,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.msg)
    }
}

/// Default size of a storage-config disk when neither the test nor its partitions say
/// more (disks are sparse: a large one costs nothing).
pub const DEFAULT_DISK_SIZE: u64 = 10 << 30;

/// One loaded test.
#[derive(Debug, Clone)]
pub struct TestConfig {
    /// Test name: the file name without `.yaml`; a safe single path component.
    pub name: String,
    pub file: PathBuf,
    /// The file's text: what the installer gets, unchanged (curtin ignores `vmtest:`).
    pub text: String,
    /// The `vmtest:` section, or its defaults when the file has none.
    pub vmtest: VmtestSection,
    /// The whole document as curtin's YAML reader reads it.
    pub doc: Node,
    /// Disks the harness creates and attaches: the storage config's disks, in config
    /// order, then extra disks.
    pub disks: Vec<DiskSpec>,
    /// NICs, from the network config's physical MACs (at least one).
    pub macs: Vec<String>,
    /// The storage config's entries (empty without one).
    pub storage: Vec<StorageItem>,
    /// The storage config's version (1 when there is none).
    pub storage_version: u32,
    pub network: Option<NetworkConfig>,
    /// Why this test cannot run on any host this harness serves, if so (an iSCSI
    /// target, s390x DASD, ...); see [`TestConfig::not_runnable`] for the host's part.
    pub unrunnable: Option<String>,
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

impl DiskSpec {
    /// Whether this disk is attached as NVMe whatever the test's `disk_driver`: curtin's
    /// vmtest attaches a storage-config disk whose serial starts with `nvme` (nvme.yaml's
    /// `nvme-a`, `nvme-b`) as an NVMe drive and every other disk on the test's driver, so
    /// one test has NVMe and virtio disks side by side.
    pub fn is_nvme(&self) -> bool {
        !self.is_extra() && self.serial.starts_with("nvme")
    }

    /// Whether this is one of `extra_disks`, which the storage config does not name.
    pub fn is_extra(&self) -> bool {
        self.id.starts_with("extra_disk_")
    }

    /// The bus this disk is attached on in a test with section `v`: extra disks are
    /// virtio; the storage config's take the test's `disk_driver`, except those curtin's
    /// vmtest makes NVMe ([`DiskSpec::is_nvme`]); a multipath test puts them all on SCSI,
    /// where each is seen twice. One answer for what runs and what `vmtest show` says.
    pub fn attached_as(&self, v: &VmtestSection) -> DiskDriver {
        if self.is_extra() {
            DiskDriver::VirtioBlk
        } else if v.multipath {
            DiskDriver::Scsi
        } else if self.is_nvme() {
            DiskDriver::Nvme
        } else {
            v.disk_driver
        }
    }
}

impl TestConfig {
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
        if self.disks.iter().any(DiskSpec::is_nvme) {
            return Some("it has NVMe disks (serials starting with `nvme`)".into());
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
