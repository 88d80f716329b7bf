//! Opt-in (`make test-linux`): boots Debian's cloud kernel with a busybox initramfs
//! (built by scripts/linux-guest.sh into LINUX_GUEST_DIR) on the builtin VMM and expects
//! the initramfs's marker line and an ACPI power-off.
//!
//! On a hardware KVM host this takes about a second. Where KVM is emulated (PVM hosts)
//! the guest runs in KVM's instruction emulator, roughly a thousand times slower, and the
//! test prints how far the kernel got. The limit is LINUX_GUEST_TIMEOUT seconds (default
//! 1800); the test is #[ignore]d so the default suite never waits for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vmm::{BootPath, CpuFeature, ExitReason, SerialConfig, VmConfig};

/// Kernel feature bits (word * 32 + bit, as `clearcpuid=` takes them) whose instructions
/// KVM's instruction emulator cannot execute, found by booting Debian's 6.1 cloud kernel
/// on a PVM host and reading where it stopped.
const EMULATOR_LACKS: &[(&str, u32)] = &[
    ("popcnt", 4 * 32 + 23),
    ("movbe", 4 * 32 + 22),
    ("aes", 4 * 32 + 25),
    ("avx", 4 * 32 + 28),
    ("f16c", 4 * 32 + 29),
    ("rdrand", 4 * 32 + 30),
    ("fma", 4 * 32 + 12),
    ("pcid", 4 * 32 + 17),
    ("sse4_1", 4 * 32 + 19),
    ("sse4_2", 4 * 32 + 20),
    ("fsgsbase", 9 * 32),
    ("bmi1", 9 * 32 + 3),
    ("avx2", 9 * 32 + 5),
    ("bmi2", 9 * 32 + 8),
    ("invpcid", 9 * 32 + 10),
    ("rdseed", 9 * 32 + 18),
    ("adx", 9 * 32 + 19),
    ("sha_ni", 9 * 32 + 29),
    ("rdpid", 16 * 32 + 22),
    // SIMD paths the kernel picks at boot (BLAKE2s/ChaCha for the RNG, CRCs) start with
    // kernel_fpu_begin's ldmxcsr, which the emulator lacks too.
    ("ssse3", 4 * 32 + 9),
    ("sse3", 4 * 32),
    ("pclmulqdq", 4 * 32 + 1),
];

fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("LINUX_GUEST_DIR").map(PathBuf::from).expect(
        "LINUX_GUEST_DIR is not set: run `make test-linux`, which builds the guest with scripts/linux-guest.sh",
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
    let mut config = VmConfig::new(dir.join("vmlinuz"))
        .initrd(dir.join("initrd.img"))
        .memory_mib(512)
        .vcpus(vcpus)
        .timeout(limit)
        .boot_path(path)
        .cmdline("console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 loglevel=8");
    if report.is_emulated() {
        // Only on emulated hosts (see the README): KVM's emulator lacks CMPXCHG16B, the
        // XSAVE family, POPCNT and other newer instructions, and cannot deliver int3. The
        // PVM host honours the CX16 CPUID mask but ignores most others, so the kernel is
        // told itself (noxsave, clearcpuid=) and the VMM completes int3/fwait/clac/stac.
        // The emulated CPU is slow enough to trip the soft-lockup watchdog: turn it off.
        config = config.mask_cpu_feature("cx16".parse::<CpuFeature>().unwrap());
        config.cmdline.push_str(&format!(
            " noxsave clearcpuid={} nosoftlockup",
            EMULATOR_LACKS
                .iter()
                .map(|(_, bit)| bit.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
        config.emulated_kvm_assist = true;
    }
    let log = std::env::temp_dir().join(format!("linux-guest-{path:?}-{vcpus}.log"));
    config.serial = SerialConfig {
        log_file: Some(log.clone()),
        overwrite_log: true,
        ..SerialConfig::default()
    };
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
#[ignore = "slow where KVM is emulated: run with `make test-linux`"]
fn debian_kernel_boots_to_userspace_through_pvh() {
    boot(BootPath::Pvh, 1);
}

#[test]
#[ignore = "slow where KVM is emulated: run with `make test-linux`"]
fn debian_kernel_boots_to_userspace_through_the_bzimage_entry() {
    boot(BootPath::Linux64, 1);
}
