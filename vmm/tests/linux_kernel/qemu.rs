//! The reference: the same kernel and disks under `qemu -M microvm` with TCG, finding its
//! devices through ACPI (LNRO0005) as on the builtin VMM, and ending on a guest panic
//! through pvpanic (`-action panic=exit-failure`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::disks::Disks;
use crate::{Boot, End, MAC, Run};

const QEMU: &str = "qemu-system-x86_64";

/// The host's TSC frequency, so the guest need not calibrate it against a PIT under TCG
/// (which hangs now and then on microvm).
fn host_khz() -> u64 {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mhz| (mhz * 1000.0) as u64)
        .expect("cannot read 'cpu MHz' from /proc/cpuinfo")
}

pub fn run(kernel: &Path, disks: &Disks, boot: &Boot, dir: &Path, limit: Duration) -> Run {
    let log = dir.join("serial-qemu.log");
    let cmdline = format!(
        "{} tsc_early_khz={} tsc=reliable",
        boot.cmdline(),
        host_khz()
    );
    let mut cmd = Command::new("timeout");
    // The hard limit: qemu is killed (then SIGKILLed 10 s later) if it outlives it.
    cmd.arg("--kill-after=10")
        .arg(limit.as_secs().to_string())
        .arg(QEMU)
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        // auto-kernel-cmdline=off: no virtio_mmio.device= hints, so the kernel finds its
        // devices only through ACPI, as on the builtin VMM. pit=on: this kernel calibrates
        // its TSC against the PIT under TCG.
        .args([
            "-machine",
            "microvm,accel=tcg,acpi=on,rtc=on,pit=on,auto-kernel-cmdline=off",
        ])
        .args(["-m", "256"])
        .args(["-smp", &boot.vcpus.to_string()])
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", &cmdline])
        .args(["-device", "pvpanic", "-action", "panic=exit-failure"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()));
    for (i, d) in disks.all().iter().enumerate() {
        cmd.arg("-drive").arg(format!(
            "file={},if=none,id=d{i},format=raw{}",
            d.path.display(),
            if d.read_only { ",readonly=on" } else { "" }
        ));
        cmd.args([
            "-device",
            &format!(
                "virtio-blk-device,drive=d{i},serial=disk-{i},logical_block_size={bs},physical_block_size={bs}",
                bs = d.block_size
            ),
        ]);
    }
    if boot.nic {
        cmd.args(["-netdev", "user,id=n0"])
            .args(["-device", &format!("virtio-net-device,netdev=n0,mac={MAC}")]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{QEMU}: {e} (Debian package qemu-system-x86)"));
    let wall = start.elapsed();
    let serial = std::fs::read_to_string(&log).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let end = match out.status.code() {
        // exit-failure: qemu saw the guest's pvpanic write.
        Some(1) if stderr.trim().is_empty() => {
            End::Panic("pvpanic (qemu -action panic=exit-failure)".into())
        }
        Some(124) | Some(137) => End::Timeout,
        Some(0) => End::Other("powered off".into()),
        _ => End::Other(format!("qemu exited with {}: {stderr}", out.status)),
    };
    Run {
        backend: "qemu microvm (TCG)",
        serial,
        end,
        wall,
        log,
    }
}

/// Whether qemu is there at all (checked before anything is built).
pub fn check() {
    let ok = Command::new(QEMU)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{QEMU} not found: install the Debian package qemu-system-x86"
    );
}
