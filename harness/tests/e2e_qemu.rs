//! End to end through the qemu backend with the script installer and the real image
//! (IMAGE_DIR, built by `vmtest images build`): install, boot through SeaBIOS (OVMF for
//! UEFI tests) and grub, collect, verify. Slow under TCG (about 4-6 minutes per test), so
//! ignored by a plain `cargo test`. CI runs the default set through the CLI itself
//! (`make vmtest-e2e`, part of `make test`) and, from this file, the kernel-panic case;
//! the per-test cases here are for running one by hand:
//! `cargo test -p harness --test e2e_qemu basic_lvm -- --ignored`.

mod common;

use std::time::Duration;

fn run_vmtest(tests: &[&str], limit: Duration) -> (i32, String) {
    let top = tempfile::tempdir().unwrap();
    let mut cmd = common::vmtest();
    cmd.args(["--vmm", "qemu", "run"])
        .args(tests)
        .env("CURTIN_VMTEST_TOPDIR", top.path().join("top"))
        .env("CURTIN_VMTEST_KEEP_DATA_FAIL", "logs,collect")
        // These are the script installer's runs; a curtin tree would switch installers.
        .env_remove("CURTIN_SRC");
    common::run_with_limit(cmd, limit, "vmtest")
}

#[test]
#[ignore = "boots full Debian guests under qemu (minutes under TCG): make vmtest-e2e"]
fn basic_passes_through_qemu() {
    let (code, out) = run_vmtest(&["basic"], Duration::from_secs(2700));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("basic ") && l.contains("PASS")),
        "{out}"
    );
}

#[test]
#[ignore = "boots full Debian guests under qemu (minutes under TCG): make vmtest-e2e"]
fn basic_lvm_passes_through_qemu() {
    let (code, out) = run_vmtest(&["basic_lvm"], Duration::from_secs(2700));
    assert_eq!(code, 0, "{out}");
}

/// UEFI: the installer puts grub x86_64-efi on the ESP's removable path and OVMF boots it;
/// the test's own expectations check `/sys/firmware/efi` in the booted system.
#[test]
#[ignore = "boots full Debian guests under qemu with OVMF (minutes under TCG): make vmtest-e2e"]
fn basic_uefi_passes_through_qemu_and_ovmf() {
    let (code, out) = run_vmtest(&["basic_uefi"], Duration::from_secs(2700));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("basic_uefi ") && l.contains("PASS")),
        "{out}"
    );
}

/// A real kernel that cannot find its root panics; with `panic=-1` and `-no-reboot` the
/// VM ends at once and the phase is a crash carrying the panic line, long before the
/// timeout.
#[test]
#[ignore = "needs the real image (IMAGE_DIR): make vmtest-e2e"]
fn real_kernel_panic_ends_the_phase_at_once() {
    use harness::backend::qemu::QemuBackend;
    use harness::backend::{Backend, Boot, Outcome, PhaseSpec};
    let dir = std::env::var_os("IMAGE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/srv/images".into());
    let store = images::ImageStore::open(&dir).expect("image store");
    let img = store
        .find_newest("bookworm", "amd64")
        .expect("an image: vmtest images build");
    let d = tempfile::tempdir().unwrap();
    let spec = PhaseSpec {
        phase: harness::backend::Phase::Boot,
        boot: Boot::Direct {
            kernel: img.kernel.clone(),
            initrd: None,
            cmdline: "console=ttyS0 root=/dev/nonexistent panic=-1".into(),
        },
        disks: vec![],
        nics: vec![],
        memory_mib: 512,
        vcpus: 1,
        serial_log: d.path().join("serial.log"),
        serial_log_cap: vmm::DEFAULT_LOG_CAP,
        log_dir: d.path().to_path_buf(),
        timeout: Duration::from_secs(300),
        host_ports: vec![],
        outbound: Default::default(),
        interactive: false,
        uefi_nvram: None,
    };
    let q = QemuBackend::detect().unwrap();
    let r = q.run_phase(&spec).unwrap();
    match &r.outcome {
        Outcome::Crash(why) => assert!(why.contains("Kernel panic"), "{why}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    println!("panic detected after {:.1}s", r.wall.as_secs_f64());
    assert!(r.wall < Duration::from_secs(290));
}

/// The builtin VMM's boot path, through qemu (where the builtin cannot run Linux user
/// space, as on emulated KVM): `VMTEST_QEMU_BOOT=direct` makes the boot phase boot the
/// kernel, initrd and command line the install handed off (`-kernel/-initrd/-append`),
/// not SeaBIOS and grub. Passes when the installed system booted that way and its
/// checks pass; the serial logs show the install wrote the handoff and the boot phase
/// ran the handoff's kernel with its command line, without firmware or grub.
fn passes_booting_the_handoff(tests_dir: Option<&str>, test: &str, root: &str) {
    let top = tempfile::tempdir().unwrap();
    let topdir = top.path().join("top");
    let mut cmd = common::vmtest();
    cmd.args(["--vmm", "qemu", "run"]);
    if let Some(d) = tests_dir {
        cmd.args(["--tests-dir", d]);
    }
    cmd.arg(test)
        .env("CURTIN_VMTEST_TOPDIR", &topdir)
        .env("CURTIN_VMTEST_KEEP_DATA_PASS", "logs")
        .env("CURTIN_VMTEST_KEEP_DATA_FAIL", "logs,collect")
        .env("VMTEST_QEMU_BOOT", "direct")
        .env_remove("CURTIN_SRC");
    // install ~150-250 s + boot ~60-100 s under TCG, with room for a loaded machine.
    let (code, out) = common::run_with_limit(cmd, Duration::from_secs(2700), "vmtest");
    assert_eq!(code, 0, "{out}");
    let cmdline = common::assert_booted_from_the_handoff(
        &topdir.join(test).join("logs"),
        &["BOOT_IMAGE=/", root],
    );
    // What the harness hands qemu -append: grub's BOOT_IMAGE and the entry's arguments,
    // then its own panic=-1 (grub would not add it).
    assert!(cmdline.ends_with(" panic=-1"), "{cmdline}");
}

#[test]
#[ignore = "boots full Debian guests under qemu (minutes under TCG): cargo test -p harness --test e2e_qemu handoff -- --ignored"]
fn basic_lvm_boots_the_handoff_directly_through_qemu() {
    passes_booting_the_handoff(None, "basic_lvm", "root=/dev/mapper/vg0-root");
}

/// /boot inside an LVM root: nothing the host could read, booted from the handoff.
#[test]
#[ignore = "boots full Debian guests under qemu (minutes under TCG): cargo test -p harness --test e2e_qemu handoff -- --ignored"]
fn lvm_root_boot_boots_the_handoff_directly_through_qemu() {
    passes_booting_the_handoff(
        Some("harness/tests/data/handoff"),
        "lvm_root_boot",
        "root=/dev/mapper/vg0-root",
    );
}
