//! Whether a test can run on this host, and why not: what no host here can give (an
//! iSCSI target, an s390x DASD, an Ubuntu archive, ...) and what this host lacks (its
//! architecture, ZFS in the image).

use super::*;

/// What the host offers, for deciding whether a test can run here (injected, so the
/// decision is tested without reading the host).
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Debian architecture name (amd64).
    pub arch: String,
    /// Packages the install image carries.
    pub image_packages: Vec<String>,
}

impl HostFacts {
    /// This build's architecture and the image builder's package list.
    pub fn this_host() -> HostFacts {
        HostFacts {
            arch: host_arch().to_string(),
            image_packages: images::build::PACKAGES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl TestConfig {
    /// Why this test cannot run on `host`, if so: what no host here can give
    /// ([`TestConfig::unrunnable`]), another architecture, or a filesystem the image
    /// lacks.
    pub fn not_runnable(&self, host: &HostFacts) -> Option<String> {
        if let Some(why) = &self.unrunnable {
            return Some(why.clone());
        }
        if self.vmtest.arch != host.arch {
            return Some(format!(
                "it is for {} and this host runs {} guests",
                self.vmtest.arch, host.arch
            ));
        }
        let zfs = self.storage.iter().any(|i| {
            matches!(i, StorageItem::Zpool(_) | StorageItem::Zfs(_))
                || matches!(i, StorageItem::Format(f) if f.fstype == "zfsroot")
        });
        if zfs && !host.image_packages.iter().any(|p| p == "zfsutils-linux") {
            return Some(
                "it installs onto ZFS, and the install image has no ZFS: Debian ships it only as zfs-dkms (contrib), a module compiled for the image's kernel at image build time, which is too costly for every image build here (images/README.md)".into(),
            );
        }
        None
    }
}

/// Why a storage config names something no host here can give (besides its disks).
pub(super) fn unrunnable_storage(items: &[StorageItem]) -> Option<String> {
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
pub(super) fn unrunnable_target(doc: &Node) -> Option<String> {
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
