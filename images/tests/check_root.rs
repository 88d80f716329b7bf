//! The build's last look at the root filesystem before it becomes a squashfs: what an
//! installed system would inherit from it is refused with the reason.

use std::fs;
use std::path::Path;

use images::build::{OFFLINE_DEBS, check_root};

/// A root that passes: the required packages installed, the offline repository listing
/// its packages, every account locked.
fn good_root(root: &Path) {
    let status: String = [
        "cloud-init",
        "systemd",
        "python3",
        "linux-image-cloud-amd64",
        "busybox-static",
    ]
    .iter()
    .map(|p| format!("Package: {p}\nStatus: install ok installed\n\n"))
    .collect();
    fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
    let repo = root.join("var/lib/vmtest/debs");
    fs::create_dir_all(&repo).unwrap();
    let packages: String = OFFLINE_DEBS
        .iter()
        .map(|p| format!("Package: {p}\n\n"))
        .collect();
    fs::write(repo.join("Packages"), packages).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/shadow"), "root:!:19000:0:99999:7:::\n").unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::create_dir_all(root.join("var/cache/apt/archives/partial")).unwrap();
}

#[test]
fn a_clean_root_passes() {
    let dir = tempfile::tempdir().unwrap();
    good_root(dir.path());
    check_root(dir.path()).unwrap();
}

#[test]
fn downloaded_debs_left_in_the_apt_cache_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    good_root(dir.path());
    let cache = dir.path().join("var/cache/apt/archives");
    fs::write(cache.join("lvm2_2.03.16-2_amd64.deb"), b"!<arch>\n").unwrap();
    fs::write(cache.join("lock"), b"").unwrap();
    let err = check_root(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("1 downloaded .deb files remain in /var/cache/apt/archives"),
        "{err}"
    );
}

#[test]
fn a_password_less_account_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    good_root(dir.path());
    fs::write(dir.path().join("etc/shadow"), "root::19000:0:99999:7:::\n").unwrap();
    let err = check_root(dir.path()).unwrap_err().to_string();
    assert!(err.contains("account root has an empty password"), "{err}");
}
