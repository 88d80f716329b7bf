//! What the built root holds, read before it becomes an image: its one kernel, the checks
//! that refuse a root unsafe or useless as an install environment, and the package
//! manifests published beside the squashfs.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::OFFLINE_DEBS;

/// What rootfs/customize.sh adds so /dev/bcache/by-uuid links survive coldplug.
pub const BCACHE_LINKS_RULE: &str = "usr/lib/udev/rules.d/70-vmtest-bcache-links.rules";
/// The rule's helper, which reads the backing device's uuid and label.
pub const BCACHE_LINKS_HELPER: &str = "usr/lib/udev/vmtest-bcache-export";

/// The kernel release installed in the root: exactly one /lib/modules/<krel> with a
/// matching /boot/vmlinuz-<krel>.
pub fn kernel_release(rootfs: &Path) -> Result<String> {
    let moddir = rootfs.join("lib/modules");
    let mut krels: Vec<String> = fs::read_dir(&moddir)
        .with_context(|| format!("{}: no kernel installed in the root", moddir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|k| rootfs.join("boot").join(format!("vmlinuz-{k}")).exists())
        .collect();
    krels.sort();
    match krels.as_slice() {
        [k] => Ok(k.clone()),
        [] => bail!(
            "no kernel (/boot/vmlinuz-* with /lib/modules) in {}",
            rootfs.display()
        ),
        many => bail!(
            "several kernels in the root ({}): expected one",
            many.join(", ")
        ),
    }
}

/// Refuses roots that would be unsafe or useless as install environments.
pub fn check_root(rootfs: &Path) -> Result<()> {
    let status =
        fs::read_to_string(rootfs.join("var/lib/dpkg/status")).context("reading dpkg status")?;
    let installed = |pkg: &str| {
        status.split("\n\n").any(|stanza| {
            stanza.lines().any(|l| l == format!("Package: {pkg}"))
                && stanza.contains("Status: install ok installed")
        })
    };
    if installed("snapd") {
        bail!("snapd is installed in the root; the image must not contain it");
    }
    for pkg in [
        "cloud-init",
        "systemd",
        "python3",
        "linux-image-cloud-amd64",
        "busybox-static",
    ] {
        if !installed(pkg) {
            bail!("{pkg} is not installed in the root");
        }
    }
    let repo = rootfs.join("var/lib/vmtest/debs");
    let packages = fs::read_to_string(repo.join("Packages")).unwrap_or_default();
    for pkg in OFFLINE_DEBS {
        if !packages.lines().any(|l| l == format!("Package: {pkg}")) {
            bail!(
                "{pkg} is missing from the local repository {} (rootfs/offline-repo.sh)",
                repo.display()
            );
        }
    }
    let leftover_debs = fs::read_dir(rootfs.join("var/cache/apt/archives"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".deb"))
        .count();
    if leftover_debs > 0 {
        bail!(
            "{leftover_debs} downloaded .deb files remain in /var/cache/apt/archives: \
             rootfs/customize.sh must remove them (every install would copy them)"
        );
    }
    for (path, what) in [
        (BCACHE_LINKS_RULE, "the udev rule"),
        (BCACHE_LINKS_HELPER, "its helper"),
    ] {
        if !rootfs.join(path).is_file() {
            bail!(
                "/{path} ({what} keeping /dev/bcache/by-uuid links through coldplug) is missing: \
                 rootfs/customize.sh writes it, and an installed system whose fstab names \
                 such a link needs it to boot"
            );
        }
    }
    let shadow = fs::read_to_string(rootfs.join("etc/shadow")).context("reading /etc/shadow")?;
    for line in shadow.lines() {
        let mut f = line.split(':');
        let (user, pw) = (f.next().unwrap_or(""), f.next().unwrap_or("x"));
        if pw.is_empty() {
            bail!("account {user} has an empty password: password-less logins must be disabled");
        }
    }
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let mut f = line.split(':');
        let (user, pw) = (f.next().unwrap_or(""), f.next().unwrap_or("x"));
        if pw.is_empty() {
            bail!("account {user} has an empty password field in /etc/passwd");
        }
    }
    Ok(())
}

/// "package<TAB>version" of the local repository's .debs, sorted, from its Packages index.
pub(super) fn local_debs_manifest(rootfs: &Path) -> Result<String> {
    let index = rootfs.join("var/lib/vmtest/debs/Packages");
    let text =
        fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let mut lines: Vec<String> = text
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |k: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::trim)
            };
            Some(format!("{}\t{}", field("Package:")?, field("Version:")?))
        })
        .collect();
    lines.sort();
    Ok(lines.join("\n") + "\n")
}

/// "package<TAB>version" lines, sorted (like MAAS's squashfs.manifest).
pub(super) fn dpkg_manifest(rootfs: &Path) -> Result<String> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            rootfs.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${binary:Package}\t${Version}\n"])
        .output()
        .context("running dpkg-query")?;
    if !out.status.success() {
        bail!(
            "dpkg-query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout)?.lines().collect();
    lines.sort();
    Ok(lines.join("\n") + "\n")
}
