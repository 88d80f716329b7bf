//! End to end with curtin itself: `vmtest --vmm qemu run TEST --curtin $CURTIN_SRC` packs
//! the curtin tree named by CURTIN_SRC, runs `curtin install` in the bookworm install
//! image (IMAGE_DIR) under qemu, boots the installed system, collects and verifies.
//!
//! Opt-in (about 36 minutes for the four tests under TCG, and it needs a curtin checkout):
//! `make vmtest-curtin CURTIN_SRC=/path/to/curtin`, or
//! `CURTIN_SRC=... cargo test -p harness --test e2e_curtin -- --ignored --test-threads=1 --nocapture`
//! (one VM at a time).
//! Without CURTIN_SRC the test fails and says so; it never skips.
//!
//! Each run's data stays in `<target>/tmp/vmtest-curtin-e2e-TEST` (logs and collect/ on pass and
//! on failure) so a failing curtin can be read: logs/install-serial.log carries curtin's
//! console output, logs/webhooks-events.json its events.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Hard limit for the whole run (install + boot under TCG on a busy 2-core host
/// measured well below this); on expiry the run's process group is killed.
const LIMIT: Duration = Duration::from_secs(3000);

fn curtin_src() -> PathBuf {
    let Some(src) = std::env::var_os("CURTIN_SRC").filter(|s| !s.is_empty()) else {
        panic!(
            "CURTIN_SRC is not set: this test runs curtin itself and needs a curtin source tree \
             (CURTIN_SRC=/path/to/curtin make vmtest-curtin, or \
             git clone https://git.launchpad.net/curtin)"
        );
    };
    let src = PathBuf::from(src);
    assert!(
        src.join("curtin/__init__.py").is_file() && src.join("bin/curtin").is_file(),
        "CURTIN_SRC={} is not a curtin source tree (no curtin/__init__.py or bin/curtin)",
        src.display()
    );
    src
}

/// Runs vmtest with curtin, and `env` added to its environment; past [`LIMIT`] it is
/// killed with its VMs.
fn run_vmtest(args: &[&str], curtin: &Path, topdir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = common::vmtest();
    cmd.envs(env.iter().copied());
    cmd.args(["--vmm", "qemu", "run"])
        .args(args)
        .arg("--curtin")
        .arg(curtin)
        .env("CURTIN_VMTEST_TOPDIR", topdir)
        .env("CURTIN_VMTEST_KEEP_DATA_PASS", "logs,collect,install")
        .env("CURTIN_VMTEST_KEEP_DATA_FAIL", "all");
    let what = format!("vmtest with curtin (data in {})", topdir.display());
    common::run_with_limit(cmd, LIMIT, &what)
}

/// Runs one test config with curtin and checks that curtin (not the script installer)
/// installed it, reported to the webhook and left its config in the installed system.
/// `tests_dir`: where the config is, when not examples/tests.
fn installs_with_curtin_and_passes(test: &str, tests_dir: Option<&Path>) {
    let curtin = curtin_src();
    let topdir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vmtest-curtin-e2e-{test}"));
    let _ = std::fs::remove_dir_all(&topdir);
    let dir_args: Vec<String> = match tests_dir {
        Some(d) => vec!["--tests-dir".into(), d.display().to_string()],
        None => Vec::new(),
    };
    let mut args: Vec<&str> = dir_args.iter().map(String::as_str).collect();
    args.push(test);
    let (code, out) = run_vmtest(&args, &curtin, &topdir, &[]);
    let w = topdir.join(test);
    assert_eq!(
        code,
        0,
        "{out}\n(data in {}: logs/install-serial.log has curtin's output)",
        w.display()
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{test} "))
            && l.contains("PASS")
            && l.contains("curtin")),
        "{out}"
    );
    // curtin, not the script installer, did the install.
    let serial = std::fs::read_to_string(w.join("logs/install-serial.log")).unwrap_or_default();
    assert!(
        serial.contains("curtin: Installation started.")
            && serial.contains("curtin: Installation finished."),
        "install serial log does not show curtin's own start and finish"
    );
    // Its events reached the harness's webhook: the first is cmd-install's start, the
    // last its successful finish (the check curtin's vmtest makes).
    let events = std::fs::read_to_string(w.join("logs/webhooks-events.json")).unwrap_or_default();
    let events: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let kind = |e: &serde_json::Value| {
        (
            e["event_type"].as_str().unwrap_or("").to_string(),
            e["name"].as_str().unwrap_or("").to_string(),
        )
    };
    let (first, last) = (events.first(), events.last());
    assert_eq!(
        first.map(kind),
        Some(("start".into(), "cmd-install".into())),
        "{} webhook events",
        events.len()
    );
    assert_eq!(
        last.map(kind),
        Some(("finish".into(), "cmd-install".into())),
        "{} webhook events",
        events.len()
    );
    assert_eq!(last.unwrap()["result"].as_str(), Some("SUCCESS"));
    // curtin saved the config it ran with into the installed system's /root.
    let cfg = w.join("collect/root/curtin-install-cfg.yaml");
    let cfg = std::fs::read_to_string(&cfg)
        .unwrap_or_else(|e| panic!("{}: {e} (curtin's saved config)", cfg.display()));
    assert!(cfg.contains("disk-a") && cfg.contains("webhook"), "{cfg}");
}

/// msdos root + /home + swap, GPT data disk. Needs its swap format named by a mount entry
/// for curtin to put it in fstab (see harness/README.md, "Running curtin itself").
#[test]
#[ignore = "runs curtin in full Debian guests under qemu (about 11 min under TCG): make vmtest-curtin CURTIN_SRC=..."]
fn basic_installs_with_curtin_and_passes() {
    installs_with_curtin_and_passes("basic", None);
}

/// GPT with bios_grub, /boot, root and /home on LVM.
#[test]
#[ignore = "runs curtin in full Debian guests under qemu (about 7 min under TCG): make vmtest-curtin CURTIN_SRC=..."]
fn basic_lvm_installs_with_curtin_and_passes() {
    installs_with_curtin_and_passes("basic_lvm", None);
}

/// Root on an mdadm RAID1 over two GPT disks, grub on both: storage only curtin
/// installs, so the config lives here rather than in examples/tests (whose default set
/// runs with the script installer).
const RAID1: &str = r#"
vmtest:
  release: bookworm
  installer: curtin
  description: RAID1 root over two GPT disks, grub on both (curtin only)
  disks:
    sda: {size: 6G}
    sdb: {size: 6G}
  timeouts: {install: 1800, boot: 600}
  collect_scripts:
    - cat /proc/mdstat > proc_mdstat
  expect:
    - fstab: [{mountpoint: /, fstype: ext4, spec: "^/dev/disk/by-id/md-uuid-"}]
    - mounts: [{mountpoint: /, fstype: ext4}]
    - matches: {file: proc_mounts, regex: "^/dev/md[0-9]+ / ext4"}
    - matches: {file: proc_mdstat, regex: "active raid1 vd[ab]2\\[[01]\\] vd[ab]2\\[[01]\\]"}
    - by_id: [virtio-disk-a-part2, virtio-disk-b-part2]
storage:
  version: 1
  config:
    - {id: sda, type: disk, ptable: gpt, serial: disk-a, name: disk_a, grub_device: true, wipe: superblock}
    - {id: sdb, type: disk, ptable: gpt, serial: disk-b, name: disk_b, grub_device: true, wipe: superblock}
    - {id: sda1, type: partition, device: sda, number: 1, size: 1M, flag: bios_grub}
    - {id: sdb1, type: partition, device: sdb, number: 1, size: 1M, flag: bios_grub}
    - {id: sda2, type: partition, device: sda, number: 2, size: 5G, flag: raid}
    - {id: sdb2, type: partition, device: sdb, number: 2, size: 5G, flag: raid}
    - {id: md0, type: raid, name: md0, raidlevel: 1, devices: [sda2, sdb2]}
    - {id: md0_root, type: format, volume: md0, fstype: ext4}
    - {id: md0_mount, type: mount, device: md0_root, path: /}
"#;

#[test]
#[ignore = "runs curtin in full Debian guests under qemu (about 9 min under TCG): make vmtest-curtin CURTIN_SRC=..."]
fn raid1_root_installs_with_curtin_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("raid1_curtin.yaml"), RAID1).unwrap();
    installs_with_curtin_and_passes("raid1_curtin", Some(dir.path()));
}

/// Curtin's own raid5boot.yaml, unchanged (root on a RAID5, no separate /boot), booted
/// from the handoff curtin wrote: curtin runs the handoff writer as its last late command,
/// and with `VMTEST_QEMU_BOOT=direct` the boot phase boots the handed-off kernel, initrd
/// and command line without firmware or grub, as the builtin VMM does. Passes when the
/// install wrote the handoff, the installed system came up from it and every derived
/// check passes.
#[test]
#[ignore = "runs curtin in full Debian guests under qemu (about 9 min under TCG): make vmtest-curtin CURTIN_SRC=..."]
fn raid5boot_boots_the_handoff_curtin_wrote() {
    let curtin = curtin_src();
    let test = "raid5boot";
    let topdir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmtest-curtin-e2e-handoff");
    let _ = std::fs::remove_dir_all(&topdir);
    let config = curtin.join("examples/tests/raid5boot.yaml");
    let config = config.to_str().expect("a UTF-8 path");
    let (code, out) = run_vmtest(
        &[config],
        &curtin,
        &topdir,
        &[("VMTEST_QEMU_BOOT", "direct")],
    );
    let logs = topdir.join(test).join("logs");
    assert_eq!(code, 0, "{out}\n(data in {})", logs.display());
    let install = std::fs::read_to_string(logs.join("install-serial.log")).unwrap_or_default();
    assert!(
        install.contains("curtin: Installation finished."),
        "curtin finished"
    );
    common::assert_booted_from_the_handoff(&logs, &["BOOT_IMAGE=/boot/vmlinuz-", "root=UUID="]);
}
