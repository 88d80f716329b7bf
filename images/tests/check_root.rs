//! The build's last look at the root filesystem before it becomes a squashfs: what an
//! installed system would inherit from it is refused with the reason.

use std::fs;
use std::path::Path;

use images::build::{BCACHE_LINKS_HELPER, BCACHE_LINKS_RULE, OFFLINE_DEBS, check_root};

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
    for f in [BCACHE_LINKS_RULE, BCACHE_LINKS_HELPER] {
        fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        fs::write(root.join(f), b"").unwrap();
    }
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

#[test]
fn a_root_without_the_bcache_link_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    good_root(dir.path());
    fs::remove_file(dir.path().join(BCACHE_LINKS_RULE)).unwrap();
    let err = check_root(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("70-vmtest-bcache-links.rules (the udev rule keeping /dev/bcache/by-uuid"),
        "{err}"
    );
}

/// The rule's helper, as customize.sh writes it, finds the backing device's uuid and label
/// (as the kernel's CACHED_UUID and CACHED_LABEL) among a bcache device's slaves (a cache device beside it is passed over). Run on the host with a
/// stand-in for bcache-super-show and for /sys/block.
#[test]
fn the_bcache_link_helper_reads_the_backing_devices_uuid() {
    let script = include_str!("../rootfs/customize.sh");
    let helper: String = script
        .split("cat >\"$R/usr/lib/udev/vmtest-bcache-export\" <<'BCACHE'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nBCACHE\n").next())
        .expect("customize.sh writes the helper")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    fs::create_dir_all(sys.join("bcache0/slaves/vdb")).unwrap();
    fs::create_dir_all(sys.join("bcache0/slaves/vdc1")).unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    // vdb is the cache device, vdc1 the backing device.
    let fake = "#!/bin/sh\ncase \"$2\" in\n\
        */vdb) printf 'sb.version\\t\\t3 [cache device]\\ndev.uuid\\t\\t11111111-1111-1111-1111-111111111111\\n' ;;\n\
        */vdc1) printf 'sb.magic\\t\\tok\\nsb.version\\t\\t1 [backing device]\\n\\ndev.label\\t\\tcached_array\\ndev.uuid\\t\\t46d9d15c-6783-4b8b-9b40-239061b38da1\\n' ;;\n\
        *) exit 1 ;;\nesac\n";
    fs::write(bin.join("bcache-super-show"), fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        bin.join("bcache-super-show"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let helper = helper.replace("/sys/block/", &format!("{}/", sys.display()));
    // Bounded: udev would kill a hung helper, and a hung one must not hang the test.
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "60", "sh", "-c", &helper])
        .args(["vmtest-bcache-export", "/dev/bcache0"])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "CACHED_UUID=46d9d15c-6783-4b8b-9b40-239061b38da1\nCACHED_LABEL=cached_array\n"
    );
}
