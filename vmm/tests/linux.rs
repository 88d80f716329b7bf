//! Opt-in (`make test-linux-distro`): boots Debian's cloud kernel with a busybox initramfs
//! (built by scripts/linux-guest.sh into LINUX_GUEST_DIR) on the builtin VMM and expects
//! the initramfs's marker line and an ACPI power-off.
//!
//! On a hardware KVM host this takes about a second. Where KVM is emulated (PVM hosts)
//! the guest runs in KVM's instruction emulator, roughly a thousand times slower, and the
//! test prints how far the kernel got. The limit is LINUX_GUEST_TIMEOUT seconds (default
//! 1800); the test is #[ignore]d so the default suite never waits for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vmm::{BootPath, ExitReason, VmConfig};

fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("LINUX_GUEST_DIR").map(PathBuf::from).expect(
        "LINUX_GUEST_DIR is not set: run `make test-linux-distro`, which builds the guest with scripts/linux-guest.sh",
    );
    assert!(
        dir.join("vmlinuz").exists() && dir.join("initrd.img").exists(),
        "{} lacks vmlinuz/initrd.img: run scripts/linux-guest.sh {}",
        dir.display(),
        dir.display()
    );
    dir
}

fn boot(path: BootPath, vcpus: u32) {
    let dir = guest_dir();
    let limit = Duration::from_secs(
        std::env::var("LINUX_GUEST_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800),
    );
    let report = vmm::host::probe_kvm().expect("/dev/kvm is usable");
    let mut config = VmConfig::new(dir.join("vmlinuz"));
    config.initrd = Some(dir.join("initrd.img"));
    config.memory_mib = 512;
    config.vcpus = vcpus;
    config.timeout = Some(limit);
    config.boot_path = path;
    config.cmdline = "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 loglevel=8".into();
    if report.is_emulated() {
        // See the README: only on hosts whose KVM emulates guests.
        config.adapt_linux_guest_to_emulated_kvm();
    }
    let log = std::env::temp_dir().join(format!("linux-guest-{path:?}-{vcpus}.log"));
    config.serial.log_file = Some(log.clone());
    config.serial.overwrite_log = true;
    let capture = config.serial.capture();
    let start = Instant::now();
    let reason = vmm::run(&config).expect("VM runs");
    let took = start.elapsed();
    let serial = String::from_utf8_lossy(&capture.lock().unwrap()).into_owned();
    let tail: Vec<&str> = serial.lines().rev().take(15).collect();
    println!(
        "linux guest ({path:?}, {vcpus} vCPU): {reason} after {:.1} s; serial log {}; last lines:",
        took.as_secs_f64(),
        log.display()
    );
    for l in tail.iter().rev() {
        println!("  | {l}");
    }
    assert!(
        serial.contains("LINUX-GUEST userspace reached"),
        "the guest did not reach userspace ({reason})"
    );
    assert_eq!(reason, ExitReason::PowerOff);
}

#[test]
#[ignore = "slow where KVM is emulated: run with `make test-linux-distro`"]
fn debian_kernel_boots_to_userspace_through_pvh() {
    boot(BootPath::Pvh, 1);
}

#[test]
#[ignore = "slow where KVM is emulated: run with `make test-linux-distro`"]
fn debian_kernel_boots_to_userspace_through_the_bzimage_entry() {
    boot(BootPath::Linux64, 1);
}
