//! Test configs: one YAML file per test (examples/tests/*.yaml) holding the installer's
//! config in curtin's format (storage:, network:, ...) and a `vmtest:` section saying how
//! to run it. Parsing is strict: an unknown key or a wrong type is an error naming the file,
//! the line and the key, because a typo silently ignored makes a test verify nothing.

//!
//! - [`types`]: the `vmtest:` section (how to run a test, what to expect);
//! - [`storage`]: curtin's storage config as the harness reads it;
//! - [`network`]: curtin's network config as the harness reads it (the NICs);
//! - [`parse`]: reading a file into a [`TestConfig`] and checking it.

mod network;
mod parse;
mod storage;
mod types;

use std::path::{Path, PathBuf};

use serde_yaml::Value;

pub use network::DEFAULT_MAC;
pub use storage::*;
pub use types::*;

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
