//! The same PVH probe under qemu (TCG: KVM is emulated on these hosts), `-M microvm` and
//! `-M pc`, so both backends are held to one standard. qemu must be installed
//! (qemu-system-x86); a missing qemu fails the test with that reason.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use probes::{Action, Report};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs qemu with the PVH probe and `extra` arguments under the hard limit; returns
/// whether it exited successfully and what it printed.
fn run_qemu(machine: &str, cpus: u32, append: &str, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-M",
            machine,
            "-accel",
            "tcg",
            "-m",
            "128",
            "-nographic",
            "-nodefaults",
        ])
        .args([
            "-no-reboot",
            "-serial",
            "stdio",
            "-smp",
            &cpus.to_string(),
            "-kernel",
        ])
        .arg(probes::pvh_elf())
        .args(["-append", append])
        // qemu's virtio-mmio defaults to the legacy (version 1) interface.
        .args(["-global", "virtio-mmio.force-legacy=false"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 is needed for this test: apt-get install qemu-system-x86");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.is_some(),
        "qemu -M {machine} hit the {LIMIT:?} limit:\n{out}\n{err}"
    );
    (status.unwrap().success(), format!("{out}{err}"))
}

fn qemu(machine: &str, cpus: u32) -> (bool, String) {
    let append = probes::cmdline(Action::PowerOff, Some(cpus), &["PNP0501"]);
    run_qemu(machine, cpus, &append, &[])
}

fn check(machine: &str, cpus: u32) {
    let (ok, out) = qemu(machine, cpus);
    assert!(ok, "qemu -M {machine} failed:\n{out}");
    let r = Report::parse(&out).unwrap_or_else(|| panic!("no probe report:\n{out}"));
    assert!(r.passed(), "{:?}\n{out}", r.result);
    assert_eq!(r.get("entry"), Some("pvh"));
    assert_eq!(r.get("lapics"), Some(cpus.to_string().as_str()));
}

#[test]
fn pvh_probe_under_qemu_microvm() {
    check("microvm", 1);
    check("microvm", 4);
}

#[test]
fn pvh_probe_under_qemu_pc() {
    check("pc", 1);
    check("pc", 4);
}

/// The virtio-blk part of the probe against qemu's virtio-mmio devices on microvm, with
/// the same disks the builtin VMM's test uses (serial, read-only, 4096-byte blocks).
#[test]
fn virtio_blk_probe_under_qemu_microvm() {
    let dir = std::env::temp_dir().join(format!("probe-qemu-blk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("target.img");
    std::fs::write(&target, vec![7u8; 512]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let seed = dir.join("seed.img");
    std::fs::write(&seed, vec![0u8; 1 << 20]).unwrap();
    let drive = |id: &str, path: &std::path::Path, ro: bool| {
        format!(
            "if=none,id={id},format=raw,file={}{}",
            path.display(),
            if ro { ",readonly=on" } else { "" }
        )
    };
    let (d0, d1) = (drive("d0", &target, false), drive("d1", &seed, true));
    let (ok, out) = run_qemu(
        "microvm",
        1,
        "action=poweroff virtio=1 hids=LNRO0005",
        &[
            "-drive",
            &d0,
            "-device",
            "virtio-blk-device,drive=d0,serial=target-disk",
            "-drive",
            &d1,
            "-device",
            "virtio-blk-device,drive=d1,serial=cidata-seed,logical_block_size=4096,physical_block_size=4096",
        ],
    );
    assert!(ok, "{out}");
    let written = std::fs::read(&target).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(Report::parse(&out).unwrap().passed(), "{out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("PROBE blk "))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    // qemu enumerates virtio-mmio slots from the top; find each disk by serial.
    let target_line = lines
        .iter()
        .find(|l| l.contains("serial=target-disk"))
        .expect("target disk");
    let seed_line = lines
        .iter()
        .find(|l| l.contains("serial=cidata-seed"))
        .expect("seed disk");
    for want in [
        "sectors=16384",
        "blk_size=512",
        "write1=ok",
        "readback=match",
        "read_past_end=ioerr",
    ] {
        assert!(target_line.contains(want), "{want} missing: {target_line}");
    }
    assert!(seed_line.contains("blk_size=4096"), "{seed_line}");
    assert!(seed_line.contains("write1=ioerr"), "{seed_line}");
    assert!(written[512..].starts_with(b"PROBE-WRITE target-disk"));
}

/// The virtio-net part of the probe against qemu's own user networking on microvm: DHCP
/// and a TCP connection to a host port. (qemu's slirp cannot restrict host ports; the
/// harness gives qemu its own filtered network instead, checked with this probe in
/// harness/tests/qemu_backend.rs.)
#[test]
fn virtio_net_probe_under_qemu_microvm() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ok, out) = run_qemu(
        "microvm",
        1,
        &format!("action=poweroff virtio=1 net-allow={port}"),
        &[
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-device,netdev=n0,mac=52:54:00:12:34:01",
        ],
    );
    assert!(ok, "{out}");
    assert!(Report::parse(&out).unwrap().passed(), "{out}");
    let net = out
        .lines()
        .find(|l| l.starts_with("PROBE net "))
        .unwrap_or_else(|| panic!("{out}"));
    for want in [
        "mac=52:54:00:12:34:01",
        "dhcp=10.0.2.15",
        "tcp_allowed=open",
    ] {
        assert!(net.contains(want), "{want} missing: {net}");
    }
}
