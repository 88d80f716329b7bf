//! Boots the guest probes on the builtin VMM and checks, from the probes' own reports,
//! the machine it built: both entry paths, 1 and 4 vCPUs, every exit reason.
//!
//! Every boot has a hard timeout. On these hosts KVM is emulated, so a probe takes a
//! fraction of a second; the timeouts are generous and only there so nothing can hang.

use std::path::Path;
use std::time::{Duration, Instant};

use probes::{Action, Report};
use vmm::{ExitReason, ResetSource, VmConfig};

const LIMIT: Duration = Duration::from_secs(60);

fn boot(kernel: &Path, action: Action, cpus: u32, initrd: Option<&Path>) -> (ExitReason, String) {
    let mut config = VmConfig::new(kernel);
    config.vcpus = cpus;
    config.memory_mib = 128;
    config.timeout = Some(LIMIT);
    config.cmdline = probes::cmdline(action, Some(cpus), &["PNP0501", "QEMU0001"]);
    config.initrd = initrd.map(Path::to_path_buf);
    let out = config.serial.capture();
    let reason = vmm::run(&config).expect("VM runs");
    let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    (reason, serial)
}

fn report(serial: &str) -> Report {
    let r = Report::parse(serial).unwrap_or_else(|| panic!("no probe report in:\n{serial}"));
    assert!(
        r.passed(),
        "probe reported failure: {:?}\n{serial}",
        r.result
    );
    r
}

#[test]
fn pvh_probe_powers_off_with_one_vcpu() {
    let (reason, serial) = boot(probes::pvh_elf(), Action::PowerOff, 1, None);
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    let r = report(&serial);
    assert_eq!(r.get("entry"), Some("pvh"));
    assert_eq!(r.get("lapics"), Some("1"));
    assert_eq!(r.get("ioapics"), Some("1"));
    assert_eq!(r.get("root"), Some("XSDT"));
    assert_eq!(r.get("hw_reduced"), Some("1"));
    assert_eq!(r.get("s5"), Some("5"));
    assert_eq!(r.get("tables"), Some("FACP,DSDT,APIC"));
    // 128 MiB minus the 385 KiB BIOS hole.
    assert_eq!(
        r.get("ram_kib"),
        Some(((128 << 10) - 385).to_string().as_str())
    );
}

#[test]
fn pvh_probe_sees_four_vcpus() {
    let (reason, serial) = boot(probes::pvh_elf(), Action::PowerOff, 4, None);
    assert_eq!(reason, ExitReason::PowerOff, "{serial}");
    assert_eq!(report(&serial).get("lapics"), Some("4"));
}

#[test]
fn bzimage_probe_powers_off_with_one_and_four_vcpus() {
    for cpus in [1, 4] {
        let (reason, serial) = boot(probes::bzimage(), Action::PowerOff, cpus, None);
        assert_eq!(reason, ExitReason::PowerOff, "{serial}");
        let r = report(&serial);
        assert_eq!(r.get("entry"), Some("linux64"));
        assert_eq!(r.get("lapics"), Some(cpus.to_string().as_str()));
    }
}

#[test]
fn both_entry_paths_find_the_initrd() {
    let dir = std::env::temp_dir().join(format!("vmm-initrd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initrd");
    let content: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&initrd, &content).unwrap();
    let want = format!("{:#x}", probes::fnv1a(&content));
    for kernel in [probes::pvh_elf(), probes::bzimage()] {
        let (reason, serial) = boot(kernel, Action::PowerOff, 1, Some(&initrd));
        assert_eq!(reason, ExitReason::PowerOff, "{serial}");
        let r = report(&serial);
        assert_eq!(r.get("initrd_fnv"), Some(want.as_str()), "{serial}");
        assert!(r.get("initrd").unwrap().ends_with("+3000"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_reset_path_is_reported_as_reboot() {
    for (action, source) in [
        (Action::RebootAcpi, ResetSource::AcpiResetRegister),
        (Action::RebootI8042, ResetSource::I8042),
        (Action::RebootTripleFault, ResetSource::TripleFault),
        // No firmware: the VMM's stub at the reset vector pulls the i8042 reset line.
        (Action::RebootVector, ResetSource::I8042),
    ] {
        let (reason, serial) = boot(probes::pvh_elf(), action, 1, None);
        assert_eq!(reason, ExitReason::Reboot(source), "{action:?}: {serial}");
        report(&serial);
    }
}

#[test]
fn executing_from_unbacked_memory_is_a_crash_with_registers() {
    let (reason, serial) = boot(probes::pvh_elf(), Action::Crash, 1, None);
    report(&serial);
    match reason {
        ExitReason::Crash(c) => {
            let regs = c.registers.expect("register dump");
            assert!(regs.contains("rip="), "{regs}");
        }
        other => panic!("expected a crash, got {other}"),
    }
}

#[test]
fn a_hung_guest_ends_with_timeout_at_the_limit() {
    let limit = Duration::from_secs(2);
    let mut config = VmConfig::new(probes::pvh_elf());
    config.vcpus = 2;
    config.memory_mib = 64;
    config.timeout = Some(limit);
    config.cmdline = probes::cmdline(Action::Hang, Some(2), &[]);
    let start = Instant::now();
    let reason = vmm::run(&config).unwrap();
    let took = start.elapsed();
    assert_eq!(reason, ExitReason::Timeout);
    assert!(took >= limit, "ended early: {took:?}");
    assert!(took < limit + Duration::from_secs(5), "took {took:?}");
}

#[test]
fn cpuid_mask_is_seen_by_the_guest() {
    let cpuid1_ecx = |mask: &[&str]| {
        let mut config = VmConfig::new(probes::pvh_elf());
        config.memory_mib = 64;
        config.timeout = Some(LIMIT);
        config.cmdline = probes::cmdline(Action::PowerOff, Some(1), &[]);
        config.cpuid_mask = mask.iter().map(|m| m.parse().unwrap()).collect();
        let out = config.serial.capture();
        assert_eq!(vmm::run(&config).unwrap(), ExitReason::PowerOff);
        let serial = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        let v = report(&serial).get("cpuid1_ecx").unwrap().to_string();
        u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
    };
    let plain = cpuid1_ecx(&[]);
    assert_ne!(plain & (1 << 31), 0, "hypervisor bit");
    // CX16 and x2APIC: bits every KVM lets the VMM hide (PVM hosts ignore some others,
    // such as XSAVE; see the README).
    let masked = cpuid1_ecx(&["cx16", "0x1:ecx:21"]);
    assert_eq!(masked & (1 << 13), 0, "cx16 still visible: {masked:#x}");
    assert_eq!(masked & (1 << 21), 0, "x2apic still visible: {masked:#x}");
    assert_eq!(
        masked | (1 << 13) | (1 << 21),
        plain | (1 << 13) | (1 << 21)
    );
}
