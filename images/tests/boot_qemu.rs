//! Boots the newest bookworm/amd64 image from the store (IMAGE_DIR, default /srv/images)
//! under qemu TCG with a NoCloud seed whose user-data prints a marker on the serial console
//! and powers off. Checks the marker, that cloud-init used the NoCloud datasource, and that
//! the guest powered itself off; prints the boot-to-poweroff time.
//!
//! These take 40-120 s each under TCG and need a built image, so they are `#[ignore]`d here
//! and run by `make test-images` (which builds the image first if the store has none):
//! `cargo test -p images --test boot_qemu -- --ignored --test-threads=1`.
//! A missing image or qemu makes them fail with the reason, never skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use images::store::ImageStore;

mod common;

/// Hard limit for one boot; a healthy one takes 35-70 s under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const SQUASH_SERIAL: &str = "vmtest-root";
const MAC: &str = "52:54:00:12:34:56";

/// One VM at a time: the machines have two cores.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug)]
enum Machine {
    Pc,
    Microvm,
}

#[derive(Clone, Copy, Debug)]
enum Root {
    Disk,
    Http,
}

#[test]
#[ignore = "boots a VM under TCG (~1 min); run by `make test-images`"]
fn pc_boots_from_squashfs_disk_and_powers_off() {
    boot(Machine::Pc, Root::Disk);
}

#[test]
#[ignore = "boots a VM under TCG (~1 min); run by `make test-images`"]
fn pc_boots_from_http_download_and_powers_off() {
    boot(Machine::Pc, Root::Http);
}

#[test]
#[ignore = "boots a VM under TCG (~1 min); run by `make test-images`"]
fn microvm_finds_virtio_mmio_through_acpi_and_powers_off() {
    boot(Machine::Microvm, Root::Disk);
}

fn boot(machine: Machine, root: Root) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let store = ImageStore::from_env().unwrap();
    let image = store
        .find_newest("bookworm", "amd64")
        .unwrap_or_else(|e| panic!("{e}\n(`make test-images` builds the image first)"));
    let qemu = "qemu-system-x86_64";
    assert!(
        Command::new(qemu).arg("--version").output().is_ok(),
        "{qemu} not found: install the Debian package qemu-system-x86"
    );

    let tmp = tempfile::tempdir().unwrap();
    let (seed, marker) = common::marker_seed(tmp.path());

    let (blk, net) = match machine {
        Machine::Pc => ("virtio-blk-pci", "virtio-net-pci"),
        Machine::Microvm => ("virtio-blk-device", "virtio-net-device"),
    };
    let mut append = vec![
        "console=ttyS0".to_string(),
        "overlayroot=tmpfs".into(),
        "ro".into(),
    ];
    let mut server = None;
    match root {
        Root::Disk => append.push(format!("root=squash:serial={SQUASH_SERIAL}")),
        Root::Http => {
            let (port, handle) = serve_file(&image.squashfs);
            server = Some(handle);
            append.push(format!("root=squash:http://10.0.2.2:{port}/squashfs"));
            append.push("ip=:::::BOOTIF:dhcp".into());
            append.push(format!("BOOTIF=01-{}", MAC.replace(':', "-")));
        }
    }
    append.extend(["panic=-1".to_string(), "rootdelay=120".into()]);
    let machine_arg = match machine {
        Machine::Pc => "pc,accel=tcg".to_string(),
        Machine::Microvm => {
            // Under TCG the microvm clock calibration hangs now and then without this.
            append.push(format!("tsc_early_khz={} tsc=reliable", host_khz()));
            // auto-kernel-cmdline=off: no virtio_mmio.device= hints, so the guest can only
            // find its disks and NIC through the ACPI LNRO0005 devices, as on the builtin VMM.
            "microvm,accel=tcg,acpi=on,rtc=on,auto-kernel-cmdline=off".to_string()
        }
    };
    let log = tmp.path().join("serial.log");
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args(["-machine", &machine_arg, "-m", "2048", "-smp", "1"])
    .arg("-kernel")
    .arg(&image.kernel)
    .arg("-initrd")
    .arg(&image.initrd)
    .args(["-append", &append.join(" ")])
    .arg("-drive")
    .arg(format!(
        "file={},if=none,id=seed,format=raw,readonly=on",
        seed.display()
    ))
    .args(["-device", &format!("{blk},drive=seed,serial=cidata")])
    .args(["-netdev", "user,id=n0"])
    .args(["-device", &format!("{net},netdev=n0,mac={MAC}")])
    .arg("-serial")
    .arg(format!("file:{}", log.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Machine::Pc = machine {
        cmd.args(["-device", "virtio-rng-pci"]);
    }
    if let Root::Disk = root {
        cmd.arg("-drive")
            .arg(format!(
                "file={},if=none,id=root,format=raw,readonly=on",
                image.squashfs.display()
            ))
            .args([
                "-device",
                &format!("{blk},drive=root,serial={SQUASH_SERIAL}"),
            ]);
    }

    let start = Instant::now();
    let mut child = cmd.spawn().expect("starting qemu");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = start.elapsed().as_secs_f64();
    drop(server);
    let mut qemu_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut qemu_err);
    }
    let serial = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    // Keep the console log for inspection (the temp dir goes away).
    let kept =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("boot-{machine:?}-{root:?}.log"));
    let _ = std::fs::write(&kept, &serial);
    eprintln!("serial console log: {}", kept.display());
    let tail: String = serial
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let ctx =
        format!("{machine:?}/{root:?}: qemu stderr: {qemu_err}\n--- last serial lines ---\n{tail}");

    let Some(status) = status else {
        panic!("guest did not power off within {BOOT_TIMEOUT:?}\n{ctx}");
    };
    assert!(!serial.contains("Kernel panic"), "kernel panic\n{ctx}");
    assert!(status.success(), "qemu exited with {status}\n{ctx}");
    assert!(
        serial.contains(&marker),
        "marker {marker} not on the serial console\n{ctx}"
    );
    assert!(
        serial.contains("Datasource DataSourceNoCloud"),
        "cloud-init did not report the NoCloud datasource\n{ctx}"
    );
    assert!(
        serial.contains("reboot: Power down"),
        "guest did not power off (rebooted?)\n{ctx}"
    );
    if let Root::Disk = root {
        assert!(serial.contains(&format!("serial {SQUASH_SERIAL}")), "{ctx}");
    }
    eprintln!(
        "BOOT {machine:?} root={root:?}: qemu start to poweroff {secs:.1} s (image {} {})",
        image.version, image.kernel_release
    );
}

/// Host TSC frequency in kHz, from /proc/cpuinfo ("cpu MHz").
fn host_khz() -> u64 {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mhz| (mhz * 1000.0) as u64)
        .expect("cannot read 'cpu MHz' from /proc/cpuinfo")
}

/// Serves one file over HTTP/1.0 on 127.0.0.1 (the guest reaches it as 10.0.2.2).
/// The server thread stops with the test process.
fn serve_file(path: &Path) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path: PathBuf = path.to_path_buf();
    let h = std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            if !request.starts_with("GET /squashfs ") {
                let _ = conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            let _ = std::io::copy(&mut f, &mut conn);
        }
    });
    (port, h)
}
