//! The qemu backend against tiny guests (the project's machine probe): how a phase ends is
//! read correctly, a hung guest is killed at its timeout, disks and NICs are accepted, the
//! guest's network is the harness's restricted one, paths with commas work, and a qemu
//! that cannot start says why at once.
//! Needs qemu-system-x86_64 (Debian package qemu-system-x86); fails, not skips, without it.

use std::time::{Duration, Instant};

use harness::backend::qemu::{Machine, PassedFds, QemuBackend};
use harness::backend::{Backend, Boot, Disk, DiskBus, Nic, Outcome, Phase, PhaseSpec};

fn backend() -> QemuBackend {
    QemuBackend::detect().unwrap_or_else(|e| panic!("prerequisite missing: {e}"))
}

fn spec(dir: &std::path::Path, action: probes::Action, timeout: Duration) -> PhaseSpec {
    PhaseSpec {
        phase: Phase::Boot,
        boot: Boot::Direct {
            // qemu boots PVH ELF kernels directly; the probe bzImage has no real-mode setup code.
            kernel: probes::pvh_elf().to_path_buf(),
            initrd: None,
            cmdline: probes::cmdline(action, None, &[]),
        },
        disks: vec![],
        nics: vec![],
        memory_mib: 128,
        vcpus: 1,
        serial_log: dir.join(format!("{}.log", action.as_arg())),
        serial_log_cap: vmm::DEFAULT_LOG_CAP,
        log_dir: dir.to_path_buf(),
        timeout,
        host_ports: vec![],
        outbound: Default::default(),
        interactive: false,
        uefi_nvram: None,
    }
}

#[test]
fn poweroff_is_poweroff() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(60));
    // Disks with serials and block sizes, a read-only one, and a NIC: all accepted.
    for (i, ro) in [(0, false), (1, true)] {
        let p = d.path().join(format!("d{i}.img"));
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        s.disks.push(Disk::virtio(
            p,
            format!("disk-{i}"),
            if ro { 512 } else { 4096 },
            ro,
        ));
    }
    s.nics.push(Nic {
        mac: "52:54:00:12:34:01".into(),
    });
    let r = backend().run_phase(&s).unwrap();
    let serial = std::fs::read_to_string(&s.serial_log).unwrap_or_default();
    assert_eq!(
        r.outcome,
        Outcome::PowerOff,
        "serial: {serial}\nqemu: {}",
        std::fs::read_to_string(d.path().join("boot-qemu.log")).unwrap_or_default()
    );
    assert!(
        probes::Report::parse(&serial).is_some(),
        "probe report on the serial log: {serial}"
    );
}

/// The serial log of a qemu phase is the harness's, with its cap: the probe prints its
/// (long) command line in its report, more than the cap holds, and the log keeps the
/// first half, a marker line and the last bytes (its result line), never more than the cap.
#[test]
fn qemu_serial_log_is_capped_by_the_harness() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(60));
    let filler = "x".repeat(1500);
    if let Boot::Direct { cmdline, .. } = &mut s.boot {
        cmdline.push_str(&format!(" filler={filler}"));
    }
    s.serial_log_cap = 1024;
    let r = backend().run_phase(&s).unwrap();
    let log = std::fs::read(&s.serial_log).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert_eq!(r.outcome, Outcome::PowerOff, "{text}");
    assert!(log.len() <= 1024, "{} bytes: {text}", log.len());
    assert!(text.starts_with("PROBE entry="), "{text}");
    assert!(
        text.contains("[vmtest: log cap of 1024 bytes reached:"),
        "{text}"
    );
    // The newest output is there: the probe's last line.
    assert!(text.ends_with("PROBE RESULT PASS\n"), "{text}");
}

#[test]
fn reset_is_reboot() {
    let d = tempfile::tempdir().unwrap();
    let s = spec(
        d.path(),
        probes::Action::RebootI8042,
        Duration::from_secs(60),
    );
    let r = backend().run_phase(&s).unwrap();
    assert_eq!(r.outcome, Outcome::Reboot);
}

#[test]
fn hang_is_killed_at_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let s = spec(d.path(), probes::Action::Hang, Duration::from_secs(3));
    let t = Instant::now();
    let r = backend().run_phase(&s).unwrap();
    assert_eq!(r.outcome, Outcome::Timeout);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "killed promptly: {:?}",
        t.elapsed()
    );
}

#[test]
fn kernel_panic_in_the_serial_log_is_a_crash() {
    // A guest that prints a panic line and resets (what panic=-1 with -no-reboot does).
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(
        d.path(),
        probes::Action::RebootI8042,
        Duration::from_secs(60),
    );
    // The probe cannot print a panic; prefill the log as if the kernel had, and use
    // chardev append semantics being absent: check the reading logic on its own instead.
    std::fs::write(
        &s.serial_log,
        "[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n",
    )
    .unwrap();
    assert!(
        harness::serial_log::panic_line(&s.serial_log)
            .unwrap()
            .contains("Attempted to kill init")
    );
    s.serial_log = d.path().join("fresh.log");
    assert_eq!(backend().run_phase(&s).unwrap().outcome, Outcome::Reboot);
}

#[test]
fn missing_disk_is_an_error_before_starting() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(10));
    s.disks
        .push(Disk::virtio(d.path().join("absent.img"), "x", 512, false));
    let e = backend().run_phase(&s).unwrap_err().to_string();
    assert!(e.contains("absent.img"), "{e}");
}

#[test]
fn builtin_refuses_firmware_boots() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(10));
    s.boot = Boot::Firmware { uefi: false };
    let e = harness::backend::BuiltinBackend
        .run_phase(&s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no firmware"), "{e}");
}

/// The same phase description runs on the builtin microVM: the probe with a disk and a
/// NIC powers off. (On hosts whose KVM is emulated the VMM's assist makes this work, slowly.)
#[test]
fn builtin_runs_a_phase() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(120));
    let p = d.path().join("d0.img");
    std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
    s.disks.push(Disk::virtio(p, "disk-0", 512, false));
    s.nics.push(Nic {
        mac: "52:54:00:12:34:01".into(),
    });
    s.host_ports = vec![8080];
    let r = harness::backend::BuiltinBackend.run_phase(&s).unwrap();
    let serial = std::fs::read_to_string(&s.serial_log).unwrap_or_default();
    assert_eq!(r.outcome, Outcome::PowerOff, "serial: {serial}");
    assert!(probes::Report::parse(&serial).is_some(), "{serial}");
}

/// What the microVM cannot serve: an NVMe disk, and a SCSI disk with a WWN attached twice
/// (multipath). qemu must accept the devices (the probe then powers off), and the command
/// line must say what the guest will see.
#[test]
fn nvme_and_multipath_scsi_disks_are_attached() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(60));
    let nvme_img = d.path().join("nvme.img");
    let mp_img = d.path().join("mp.img");
    for p in [&nvme_img, &mp_img] {
        std::fs::File::create(p).unwrap().set_len(1 << 20).unwrap();
    }
    let mut nvme = Disk::virtio(nvme_img, "nvme-disk-0", 512, false);
    nvme.bus = DiskBus::Nvme;
    let mut mp = Disk::virtio(mp_img, "mpath-a", 4096, false);
    mp.bus = DiskBus::Scsi;
    mp.wwn = Some("0x5000c500a0b1c2d3".into());
    mp.paths = 2;
    s.disks = vec![nvme, mp];

    let b = backend();
    let args = b.args(&s, &PassedFds::default()).unwrap().join(" ");
    assert!(args.contains("virtio-scsi-pci,id=scsi0"), "{args}");
    assert!(
        args.contains("nvme,drive=disk0,serial=nvme-disk-0"),
        "{args}"
    );
    for p in 0..2 {
        assert!(args.contains(&format!("scsi-hd,drive=disk1p{p},bus=scsi0.0,serial=mpath-a,wwn=0x5000c500a0b1c2d3,logical_block_size=4096")), "{args}");
    }
    assert_eq!(args.matches("file.locking=off").count(), 2, "{args}");

    let r = b.run_phase(&s).unwrap();
    assert_eq!(
        r.outcome,
        Outcome::PowerOff,
        "qemu: {}",
        std::fs::read_to_string(d.path().join("boot-qemu.log")).unwrap_or_default()
    );
}

/// The probe as a phase's guest on qemu -M microvm (virtio-mmio, which the probe drives).
fn microvm() -> QemuBackend {
    let mut b = backend();
    b.machine = Machine::Microvm;
    b
}

/// The network the harness gives each phase, checked from inside the guest under qemu: in
/// the install phase the test's HTTP port is open and a listening host port that is not
/// allowed refuses; in the boot phase (no host ports) both refuse; cloud metadata refuses
/// in both. The same PhaseSpec fields the runner fills (`host_ports`, `outbound`), the
/// same guest address (10.0.2.2) the seed and webhook URLs use.
#[test]
fn the_guest_reaches_the_harness_port_and_nothing_else_in_both_phases() {
    let http = harness::http::HttpServer::start().unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let d = tempfile::tempdir().unwrap();
    for (phase, host_ports, want_http) in [
        (Phase::Install, vec![http.port()], "open"),
        (Phase::Boot, vec![], "refused"),
    ] {
        let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(60));
        s.phase = phase;
        s.serial_log = d.path().join(format!("{phase}-serial.log"));
        s.boot = Boot::Direct {
            kernel: probes::pvh_elf().to_path_buf(),
            initrd: None,
            cmdline: format!(
                "action=poweroff virtio=1 net-allow={} net-other={other_port} net-dst=169.254.169.254:80",
                http.port()
            ),
        };
        s.nics.push(Nic {
            mac: "52:54:00:12:34:01".into(),
        });
        s.host_ports = host_ports;
        let r = microvm().run_phase(&s).unwrap();
        let serial = std::fs::read_to_string(&s.serial_log).unwrap_or_default();
        assert_eq!(r.outcome, Outcome::PowerOff, "{phase}: {serial}");
        let net = serial
            .lines()
            .find(|l| l.starts_with("PROBE net "))
            .unwrap_or_else(|| panic!("{phase}: no net report: {serial}"));
        for want in [
            "dhcp=10.0.2.15".to_string(),
            format!("tcp_allowed={want_http}"),
            "tcp_other=refused".into(),
            "tcp_dst=refused".into(),
        ] {
            assert!(net.contains(&want), "{phase}: {want} missing: {net}");
        }
    }
}

/// qemu's option syntax splits values at commas: every path inside an option is escaped
/// (a TOPDIR with a comma in its name must work).
#[test]
fn paths_with_commas_work() {
    let top = tempfile::tempdir().unwrap();
    let d = top.path().join("vmtest,with,commas");
    std::fs::create_dir(&d).unwrap();
    let mut s = spec(&d, probes::Action::PowerOff, Duration::from_secs(60));
    let disk = d.join("disk,0.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    s.disks.push(Disk::virtio(disk, "serial,0", 512, false));
    let r = backend().run_phase(&s).unwrap();
    let serial = std::fs::read_to_string(&s.serial_log).unwrap_or_default();
    assert_eq!(
        r.outcome,
        Outcome::PowerOff,
        "serial: {serial}\nqemu: {}",
        std::fs::read_to_string(d.join("boot-qemu.log")).unwrap_or_default()
    );
    assert!(probes::Report::parse(&serial).is_some(), "{serial}");
}

/// A qemu that exits before running the VM is an error carrying qemu's own words, seen as
/// soon as it exits (not after a wait for its monitor).
#[test]
fn a_qemu_that_cannot_start_says_why_at_once() {
    let d = tempfile::tempdir().unwrap();
    let not_a_kernel = d.path().join("not-a-kernel");
    std::fs::write(&not_a_kernel, b"").unwrap();
    let mut s = spec(d.path(), probes::Action::PowerOff, Duration::from_secs(60));
    s.boot = Boot::Direct {
        kernel: not_a_kernel,
        initrd: None,
        cmdline: String::new(),
    };
    let t = Instant::now();
    let e = backend().run_phase(&s).unwrap_err().to_string();
    assert!(e.contains("could not start"), "{e}");
    assert!(e.contains("kernel"), "qemu's reason: {e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

/// qemu runs under its seccomp sandbox: the running child's status says so (mode 2,
/// filter), and the command line denies spawning, set*id, obsolete and resource calls.
#[test]
fn qemu_runs_sandboxed() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spec(d.path(), probes::Action::Hang, Duration::from_secs(6));
    let mine = d.path().to_str().unwrap().to_string();
    // The kernel command line names the test's directory (the probe ignores it), so this
    // test's qemu can be told from the others.
    if let Boot::Direct { cmdline, .. } = &mut s.boot {
        cmdline.push_str(&format!(" test-dir={mine}"));
    }
    let args = backend().args(&s, &PassedFds::default()).unwrap().join(" ");
    assert!(
        args.contains(
            "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        ),
        "{args}"
    );
    let phase = std::thread::spawn(move || backend().run_phase(&s).unwrap());
    // This test's qemu (its command line names the test's directory): qemu sets up its
    // filter early in its start-up, not at exec, so wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seccomp = None;
    while Instant::now() < deadline && seccomp.as_deref() != Some("2") {
        seccomp = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            if !String::from_utf8_lossy(&cmd).contains(&mine) {
                return None;
            }
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    let seccomp = seccomp.expect("this test's qemu was seen");
    assert_eq!(seccomp, "2", "qemu's Seccomp mode");
    assert_eq!(phase.join().unwrap().outcome, Outcome::Timeout);
}
