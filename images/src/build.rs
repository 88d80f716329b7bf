//! `vmtest images build`: an ephemeral install image from Debian packages.
//!
//! Steps (each shown as it runs):
//! 1. root filesystem: `mmdebstrap --mode=root --variant=apt` with [`PACKAGES`], then
//!    `rootfs/customize.sh` (networking, cloud-init NoCloud only, locked root password);
//! 2. checks on the root (kernel present, no snapd, no password-less account);
//! 3. boot-kernel: the cloud kernel's bzImage from the root's /boot;
//! 4. boot-initrd: our busybox initramfs ([`crate::initramfs`]) from the root's own files;
//! 5. squashfs (zstd) of the root, and its package manifest;
//! 6. sha256 of every item, the index, and an atomic move into the store.
//!
//! Everything happens in `IMAGE_DIR/.partial/<release>-<arch>/`, which `list` never shows.
//! A build that stops half-way leaves only that directory; running the same build again
//! resumes after the last finished step (root filesystem, squashfs), and `prune` removes it.
//!
//! Reproducibility: the build sets `SOURCE_DATE_EPOCH` (default: midnight UTC of the day
//! the build started, recorded in the index) for mmdebstrap and mksquashfs, strips
//! host-specific files, and writes the initramfs deterministically. The same packages at
//! the same versions with the same epoch give the same files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::build_step::run_logged;

mod root;
use crate::store::{INDEX_FORMAT, ImageIndex, ImageStore, IndexItem};
pub use root::{BCACHE_LINKS_HELPER, BCACHE_LINKS_RULE, check_root, kernel_release};
use root::{dpkg_manifest, local_debs_manifest};

/// Packages in the root filesystem besides mmdebstrap's `apt` variant (Essential + apt).
/// Why each is there: see images/README.md.
pub const PACKAGES: &[&str] = &[
    // boot and services
    "linux-image-cloud-amd64",
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "kmod",
    "initramfs-tools",
    "busybox-static",
    "iproute2",
    "netbase",
    "ca-certificates",
    "procps",
    "sudo",
    "cloud-init",
    // cloud-init's renderer for the installed system's network config (bonds, VLANs,
    // bridges, routes with metrics, per-link DNS through networkd and resolved): with it
    // and without ifupdown, cloud-init 22.4 picks netplan, and curtin installs no
    // ifenslave/vlan/bridge-utils from the network. See images/README.md.
    "netplan.io",
    // curtin's Python dependencies
    "python3",
    "python3-yaml",
    "python3-pyudev",
    "python3-attr",
    "python3-oauthlib",
    "python3-packaging",
    "python3-jsonschema",
    "python3-apt",
    "python3-debian",
    "python3-systemd",
    // what curtin runs to partition, format and install
    "file",
    "util-linux",
    "fdisk",
    "parted",
    "gdisk",
    "e2fsprogs",
    "dosfstools",
    "btrfs-progs",
    "xfsprogs",
    "f2fs-tools",
    "lvm2",
    "mdadm",
    "bcache-tools",
    "open-iscsi",
    // dm_crypt (curtin maps it to cryptsetup); -initramfs so a target's
    // update-initramfs can carry crypttab volumes
    "cryptsetup",
    "cryptsetup-initramfs",
    // multipath disks (curtin's multipath configs, `vmtest: {multipath: true}`)
    "multipath-tools",
    // NVMe disks (curtin's nvme configs; nvme_of_controller maps to it)
    "nvme-cli",
    // FUSE NTFS, the one filesystem of curtin's battery outside the cloud kernel that
    // a user-space tool can still format and mount (jfs and reiserfs need modules the
    // cloud kernel lacks)
    "ntfs-3g",
    "rsync",
    "efibootmgr",
    "grub-pc-bin",
    // curtin's curthooks configure the grub-pc package in a BIOS target
    // (`dpkg-reconfigure grub-pc`); without it in the image curtin fetches it from the
    // network in the middle of every install.
    "grub-pc",
    // UEFI targets: grub-install --target=x86_64-efi (vmtest: {uefi: true})
    "grub-efi-amd64-bin",
    "grub2-common",
    "lsb-release",
    "gpg",
];

/// Revision of what a build puts into the root filesystem. Bump it when an image built
/// before would make tests behave differently or take longer, so `images sync` rebuilds
/// instead of keeping it: 2 dropped the 90 MB of downloaded .debs from
/// /var/cache/apt/archives (every install copied them; about half a minute per test);
/// 3 added the udev rule that keeps /dev/bcache/by-uuid links through coldplug (an
/// installed system whose fstab names them dropped to emergency mode).
pub const IMAGE_RECIPE: u32 = 3;

/// Packages kept as .deb files (with what they need beyond the root) in a local apt
/// repository inside the image (`/var/lib/vmtest/debs`, listed in
/// `/etc/apt/sources.list.d/vmtest-local.list`) instead of being installed. grub-efi-amd64
/// conflicts with grub-pc, so only one of them can be installed; curtin installs the UEFI
/// boot packages into a UEFI target itself (`apt-get install` in the target, a copy of
/// this root: grub-efi-amd64, and the signed grub and shim because the image's apt lists
/// know them), and with the .debs at hand that needs no network.
pub const OFFLINE_DEBS: &[&str] = &["grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"];

/// dpkg path filters: documentation and translations are not needed to install systems.
const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
];

const CUSTOMIZE: &str = include_str!("../rootfs/customize.sh");
/// Downloads [`OFFLINE_DEBS`] into the local repository (runs before [`CUSTOMIZE`], while
/// the root can still resolve the mirror).
const OFFLINE_REPO: &str = include_str!("../rootfs/offline-repo.sh");

/// The kernel flavour; it names the `<flavor>` directory of the store layout.
pub const FLAVOR: &str = "cloud";

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub release: String,
    pub arch: String,
    /// mmdebstrap mirror arguments; empty = deb.debian.org with updates and security.
    pub mirrors: Vec<String>,
    pub source_date_epoch: Option<u64>,
    pub extra_packages: Vec<String>,
    /// zstd level for the squashfs.
    pub zstd_level: u32,
}

impl BuildOptions {
    pub fn new(release: &str, arch: &str) -> Self {
        BuildOptions {
            release: release.into(),
            arch: arch.into(),
            mirrors: Vec::new(),
            source_date_epoch: None,
            extra_packages: Vec::new(),
            zstd_level: 15,
        }
    }

    /// Every package the image must carry, installed or in its local repository:
    /// [`BuildOptions::packages`] and [`OFFLINE_DEBS`] (what `images sync` checks).
    pub fn carried(&self) -> Vec<String> {
        let mut p = self.packages();
        p.extend(OFFLINE_DEBS.iter().map(|s| s.to_string()));
        p
    }

    /// Every package the root filesystem gets: [`PACKAGES`] and the extras.
    pub fn packages(&self) -> Vec<String> {
        let mut p: Vec<String> = PACKAGES.iter().map(|s| s.to_string()).collect();
        p.extend(self.extra_packages.iter().cloned());
        p
    }
}

/// What the build recorded in its staging directory, to know whether a rerun may resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Params {
    release: String,
    arch: String,
    mirrors: Vec<String>,
    packages: Vec<String>,
    source_date_epoch: u64,
    zstd_level: u32,
    customize: String,
}

/// Result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    pub dir: PathBuf,
    pub index: ImageIndex,
    pub seconds: f64,
}

struct Progress {
    start: Instant,
    step: Instant,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            start: Instant::now(),
            step: Instant::now(),
            total,
        }
    }
    fn step(&mut self, n: usize, what: &str) {
        eprintln!(
            "==> [{n}/{}] {what} (at {:.0}s)",
            self.total,
            self.start.elapsed().as_secs_f64()
        );
        self.step = Instant::now();
    }
    fn done(&self, what: &str) {
        eprintln!("    {what} ({:.1}s)", self.step.elapsed().as_secs_f64());
    }
}

/// Checks that the build can run here: root, the tools, a supported architecture.
pub fn preflight(opts: &BuildOptions) -> Result<()> {
    if opts.arch != "amd64" {
        bail!(
            "--arch {}: only amd64 is supported (the images boot Debian's cloud-amd64 kernel on x86-64 VMs)",
            opts.arch
        );
    }
    if opts.release.is_empty()
        || !opts
            .release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        bail!(
            "--release {:?}: want a Debian suite or codename such as bookworm",
            opts.release
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "building an image needs root: mmdebstrap --mode=root creates device nodes, chroots and \
             installs packages as root; run it as root (e.g. `sudo -E vmtest images build`)"
        );
    }
    for (tool, pkg) in [
        ("mmdebstrap", "mmdebstrap"),
        ("mksquashfs", "squashfs-tools"),
        ("depmod", "kmod"),
        ("modprobe", "kmod"),
    ] {
        if which(tool).is_none() {
            bail!("{tool} not found: install the Debian package {pkg} (apt-get install -y {pkg})");
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Builds one image into `store`. See the module docs.
pub fn build(store: &ImageStore, opts: &BuildOptions) -> Result<Built> {
    preflight(opts)?;
    let mut progress = Progress::new(6);
    let slot = store.begin_build(&opts.release, &opts.arch)?;
    let staging = slot.staging.clone();
    let params_path = staging.join("params.json");
    let old: Option<Params> = fs::read_to_string(&params_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let epoch = opts
        .source_date_epoch
        .or_else(|| old.as_ref().map(|p| p.source_date_epoch))
        .unwrap_or_else(|| crate::store::now_secs() / 86_400 * 86_400);
    let params = Params {
        release: opts.release.clone(),
        arch: opts.arch.clone(),
        mirrors: opts.mirrors.clone(),
        packages: opts.packages(),
        source_date_epoch: epoch,
        zstd_level: opts.zstd_level,
        customize: format!("{OFFLINE_REPO}\n{}\n{CUSTOMIZE}", OFFLINE_DEBS.join(" ")),
    };
    if old.as_ref() != Some(&params) {
        if old.is_some() {
            eprintln!("    earlier unfinished build had other parameters: starting afresh");
        }
        slot.remove_inside(&staging)?;
        fs::create_dir_all(&staging)?;
        fs::write(&params_path, serde_json::to_string_pretty(&params)?)?;
    } else {
        eprintln!("    resuming an unfinished build in {}", staging.display());
    }
    let rootfs = staging.join("rootfs");
    let out = staging.join("out");
    fs::create_dir_all(&out)?;

    // 1. root filesystem
    progress.step(
        1,
        &format!(
            "root filesystem: mmdebstrap {} ({} packages)",
            opts.release,
            params.packages.len()
        ),
    );
    let rootfs_done = staging.join("rootfs.done");
    if rootfs_done.exists() {
        progress.done("already built, reused");
    } else {
        slot.remove_inside(&rootfs)?;
        let hook = staging.join("customize.sh");
        fs::write(&hook, CUSTOMIZE)?;
        let repo_hook = staging.join("offline-repo.sh");
        fs::write(&repo_hook, OFFLINE_REPO)?;
        let mut cmd = Command::new("mmdebstrap");
        cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["--mode=root", "--variant=apt", "--format=directory"])
            .arg(format!("--architectures={}", opts.arch))
            .arg(format!("--include={}", params.packages.join(",")));
        for o in DPKG_EXCLUDES {
            cmd.arg(format!("--dpkgopt={o}"));
        }
        cmd.arg(format!(
            "--customize-hook=sh {} \"$1\" {}",
            repo_hook.display(),
            OFFLINE_DEBS.join(" ")
        ))
        .arg(format!("--customize-hook=sh {} \"$1\"", hook.display()))
        .arg(&opts.release)
        .arg(&rootfs)
        .args(&opts.mirrors);
        run_logged(&mut cmd, &staging.join("mmdebstrap.log"))?;
        fs::write(&rootfs_done, b"")?;
        progress.done(&format!("root filesystem built, {}", human(du(&rootfs))));
    }

    // 2. checks
    progress.step(2, "checking the root filesystem");
    let krel = kernel_release(&rootfs)?;
    check_root(&rootfs)?;
    progress.done(&format!(
        "kernel {krel}; no snapd; no password-less accounts"
    ));

    // 3. kernel
    progress.step(3, "boot-kernel");
    let kdir = out.join(&krel).join(FLAVOR);
    fs::create_dir_all(&kdir)?;
    let vmlinuz = rootfs.join("boot").join(format!("vmlinuz-{krel}"));
    fs::copy(&vmlinuz, kdir.join("boot-kernel"))
        .with_context(|| format!("copying {}", vmlinuz.display()))?;
    progress.done(&human(fs::metadata(kdir.join("boot-kernel"))?.len()));

    // 4. initramfs
    progress.step(4, "boot-initrd (busybox initramfs)");
    let info = crate::initramfs::build(&rootfs, &krel, &staging, &kdir.join("boot-initrd"), epoch)?;
    progress.done(&format!(
        "{}, modules: {}",
        human(info.size),
        info.modules.join(" ")
    ));

    // 5. squashfs + manifest
    progress.step(5, &format!("squashfs (zstd level {})", opts.zstd_level));
    let manifest = dpkg_manifest(&rootfs)?;
    fs::write(out.join("squashfs.manifest"), &manifest)?;
    fs::write(
        out.join(crate::store::LOCAL_DEBS_MANIFEST),
        local_debs_manifest(&rootfs)?,
    )?;
    let squash_done = staging.join("squashfs.done");
    if squash_done.exists() && out.join("squashfs").exists() {
        progress.done("already built, reused");
    } else {
        let tmp = out.join("squashfs.tmp");
        let _ = fs::remove_file(&tmp);
        let mut cmd = Command::new("mksquashfs");
        cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
            .arg(&rootfs)
            .arg(&tmp)
            .args(["-noappend", "-comp", "zstd", "-Xcompression-level"])
            .arg(opts.zstd_level.to_string())
            .args(["-b", "1M", "-no-progress", "-quiet"]);
        run_logged(&mut cmd, &staging.join("mksquashfs.log"))?;
        fs::rename(&tmp, out.join("squashfs"))?;
        fs::write(&squash_done, b"")?;
        progress.done(&human(fs::metadata(out.join("squashfs"))?.len()));
    }

    // 6. index + publish
    progress.step(6, "sha256, index, publishing");
    let mut items = std::collections::BTreeMap::new();
    for (name, rel) in [
        ("boot-kernel", format!("{krel}/{FLAVOR}/boot-kernel")),
        ("boot-initrd", format!("{krel}/{FLAVOR}/boot-initrd")),
        ("squashfs", "squashfs".to_string()),
        ("manifest", "squashfs.manifest".to_string()),
    ] {
        let p = out.join(&rel);
        let size = fs::metadata(&p)?.len();
        let sha256 =
            crate::store::sha256_file(&p).with_context(|| format!("hashing {}", p.display()))?;
        items.insert(
            name.to_string(),
            IndexItem {
                path: rel,
                size,
                sha256,
            },
        );
    }
    let index = ImageIndex {
        format: INDEX_FORMAT.into(),
        os: "debian".into(),
        release: opts.release.clone(),
        arch: opts.arch.clone(),
        version: String::new(),
        flavor: FLAVOR.into(),
        kernel_package: "linux-image-cloud-amd64".into(),
        kernel_release: krel.clone(),
        created: crate::store::utc_timestamp(crate::store::now_secs()),
        source_date_epoch: epoch,
        mirrors: opts.mirrors.clone(),
        builder: format!("vmtest images build {}", env!("CARGO_PKG_VERSION")),
        recipe: IMAGE_RECIPE,
        items,
    };
    let dir = slot.publish(&out, index.clone())?;
    let published: ImageIndex =
        serde_json::from_str(&fs::read_to_string(dir.join(crate::store::INDEX_FILE))?)?;
    progress.done(&format!("{}", dir.display()));
    Ok(Built {
        dir,
        index: published,
        seconds: progress.start.elapsed().as_secs_f64(),
    })
}

fn du(p: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(m) = fs::symlink_metadata(p) else {
            return 0;
        };
        if m.is_dir() {
            fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else {
            m.len()
        }
    }
    walk(p)
}

/// Bytes as MB with one decimal (10^6, like `ls -h --si`).
pub fn human(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else {
        format!("{:.1} kB", n as f64 / 1e3)
    }
}
