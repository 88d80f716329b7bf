//! The qemu backend: qemu-system-x86_64 `-M pc`, KVM when it is real, TCG otherwise.
//! Disks are virtio-blk (serials, block sizes, read-only), NICs virtio-net on user-mode
//! networking, the serial console goes to a file, and QMP tells how the guest ended
//! (`SHUTDOWN` with reason guest-shutdown or guest-reset; `-no-reboot` turns a reset,
//! and so a `panic=-1` panic, into an exit). The VM is killed at its timeout.
//!
//! An interactive phase puts the console on stdio through qemu's multiplexer, so qemu's
//! own escape keys work (Ctrl-A x quits, Ctrl-A h helps, Ctrl-A Ctrl-A sends Ctrl-A: the
//! builtin VMM's console copies them) and the serial log is still written. Ctrl-A x shows
//! on QMP as `SHUTDOWN` with reason `host-qmp-quit`, reported as [`Outcome::Stopped`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, Boot, DiskBus, Outcome, PhaseResult, PhaseSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

pub struct QemuBackend {
    pub binary: PathBuf,
    pub accel: Accel,
    /// Why this accelerator (printed once).
    pub accel_reason: String,
}

impl QemuBackend {
    /// KVM when it is real, TCG otherwise; `VMTEST_QEMU_ACCEL=kvm|tcg` overrides.
    pub fn detect() -> anyhow::Result<QemuBackend> {
        let binary = std::env::var_os("VMTEST_QEMU")
            .map(PathBuf::from)
            .unwrap_or_else(|| "qemu-system-x86_64".into());
        let ok = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            anyhow::bail!(
                "{} not found or not runnable: install the Debian package qemu-system-x86 (make vmtest-deps)",
                binary.display()
            );
        }
        let (accel, accel_reason) = match std::env::var("VMTEST_QEMU_ACCEL").ok().as_deref() {
            Some("kvm") => (Accel::Kvm, "VMTEST_QEMU_ACCEL=kvm".to_string()),
            Some("tcg") => (Accel::Tcg, "VMTEST_QEMU_ACCEL=tcg".to_string()),
            _ => match super::kvm_status() {
                Ok(()) => (Accel::Kvm, "/dev/kvm is hardware KVM".to_string()),
                Err(why) => (Accel::Tcg, why),
            },
        };
        Ok(QemuBackend {
            binary,
            accel,
            accel_reason,
        })
    }

    /// The qemu arguments for a phase (without QMP and serial, which depend on files).
    pub fn args(&self, spec: &PhaseSpec) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &str| a.push(s.to_string());
        push("-nodefaults");
        push("-no-user-config");
        push("-display");
        push("none");
        push("-machine");
        push(match self.accel {
            Accel::Kvm => "pc,accel=kvm",
            Accel::Tcg => "pc,accel=tcg",
        });
        if self.accel == Accel::Kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&spec.memory_mib.to_string());
        push("-smp");
        push(&spec.vcpus.to_string());
        push("-no-reboot");
        push("-rtc");
        push("base=utc");
        match &spec.boot {
            Boot::Direct {
                kernel,
                initrd,
                cmdline,
            } => {
                push("-kernel");
                push(&kernel.display().to_string());
                if let Some(i) = initrd {
                    push("-initrd");
                    push(&i.display().to_string());
                }
                push("-append");
                push(cmdline);
            }
            Boot::Firmware { uefi } => {
                if *uefi {
                    push("-bios");
                    push("/usr/share/qemu/OVMF.fd");
                }
            }
        }
        if spec.disks.iter().any(|d| d.bus == DiskBus::Scsi) {
            push("-device");
            push("virtio-scsi-pci,id=scsi0");
        }
        for (i, d) in spec.disks.iter().enumerate() {
            for path in 0..d.paths.max(1) {
                let id = if d.paths > 1 {
                    format!("disk{i}p{path}")
                } else {
                    format!("disk{i}")
                };
                push("-drive");
                push(&format!(
                    "file={},if=none,id={id},format=raw,cache=unsafe,discard=unmap{}{}",
                    d.path.display().to_string().replace(',', ",,"),
                    if d.read_only { ",readonly=on" } else { "" },
                    // Several paths to one file: qemu must not lock it against itself.
                    if d.paths > 1 { ",file.locking=off" } else { "" }
                ));
                push("-device");
                let boot = if i == 0 && path == 0 && matches!(spec.boot, Boot::Firmware { .. }) {
                    ",bootindex=0"
                } else {
                    ""
                };
                let serial = d.serial.replace(',', ",,");
                let bs = d.block_size;
                let sizes = format!("logical_block_size={bs},physical_block_size={bs}");
                push(&match d.bus {
                    DiskBus::VirtioBlk => {
                        format!("virtio-blk-pci,drive={id},serial={serial},{sizes}{boot}")
                    }
                    DiskBus::Nvme => format!("nvme,drive={id},serial={serial},{sizes}{boot}"),
                    DiskBus::Scsi => format!(
                        "scsi-hd,drive={id},bus=scsi0.0,serial={serial}{},{sizes}{boot}",
                        d.wwn
                            .as_deref()
                            .map(|w| format!(",wwn={w}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        for (i, n) in spec.nics.iter().enumerate() {
            push("-netdev");
            push(&format!("user,id=net{i}"));
            push("-device");
            push(&format!(
                "virtio-net-pci,netdev=net{i},mac={},romfile=",
                n.mac
            ));
        }
        push("-device");
        push("virtio-rng-pci");
        a
    }
}

/// A child that is killed if the runner unwinds or returns early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

static SOCK_SEQ: AtomicU64 = AtomicU64::new(0);

/// Reads QMP events until the socket closes; keeps the SHUTDOWN reason.
fn qmp_watch(path: &Path, reason: Arc<Mutex<Option<String>>>, deadline: Instant) {
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return,
        }
    };
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let _ = w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            match v.get("event").and_then(|e| e.as_str()) {
                Some("SHUTDOWN") => {
                    let r = v["data"]["reason"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_string();
                    *reason.lock().unwrap() = Some(r);
                }
                Some("GUEST_PANICKED") => {
                    *reason.lock().unwrap() = Some("guest-panic".into());
                }
                _ => {}
            }
        }
    }
}

/// Whether qemu's console multiplexer said it quit on Ctrl-A x (its last line).
fn left_at_console(serial_log: &Path) -> bool {
    crate::serial_log::last_line(serial_log).ends_with("QEMU: Terminated")
}

impl Backend for QemuBackend {
    fn name(&self) -> String {
        match self.accel {
            Accel::Kvm => "qemu-kvm".into(),
            Accel::Tcg => "qemu-tcg".into(),
        }
    }

    fn run_phase(&self, spec: &PhaseSpec) -> anyhow::Result<PhaseResult> {
        for d in &spec.disks {
            if !d.path.is_file() {
                anyhow::bail!("disk {} does not exist", d.path.display());
            }
        }
        if let Boot::Direct { kernel, initrd, .. } = &spec.boot {
            for p in std::iter::once(kernel).chain(initrd.iter()) {
                std::fs::File::open(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            }
        }
        let sock = std::env::temp_dir().join(format!(
            "vmtest-qmp-{}-{}.sock",
            std::process::id(),
            SOCK_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&sock);
        let mut args = self.args(spec);
        args.push("-qmp".into());
        args.push(format!("unix:{},server=on,wait=off", sock.display()));
        args.push("-chardev".into());
        if spec.interactive {
            args.push(format!(
                "stdio,id=console,mux=on,signal=off,logfile={}",
                spec.serial_log.display()
            ));
        } else {
            args.push(format!(
                "file,id=console,path={}",
                spec.serial_log.display()
            ));
        }
        args.push("-serial".into());
        args.push("chardev:console".into());
        let stderr_log = spec.log_dir.join(format!("{}-qemu.log", spec.phase));
        let mut cmdfile = std::fs::File::create(&stderr_log)?;
        writeln!(
            cmdfile,
            "# {} {}",
            self.binary.display(),
            args.iter()
                .map(|a| crate::pack::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        let start = Instant::now();
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(cmdfile));
        // qemu makes the terminal raw and restores it when it exits, but not when it is
        // killed at the timeout: keep the settings to put back ourselves.
        let _terminal = if spec.interactive {
            cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
            let saved = crate::console::TerminalGuard::save(libc::STDIN_FILENO)?;
            eprintln!("{}", crate::console::ATTACH_LINE);
            saved
        } else {
            cmd.stdin(Stdio::null());
            None
        };
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", self.binary.display()))?;
        let mut child = KillOnDrop(child);
        let reason = Arc::new(Mutex::new(None));
        let watcher = {
            let (sock, reason) = (sock.clone(), reason.clone());
            std::thread::spawn(move || {
                qmp_watch(&sock, reason, Instant::now() + Duration::from_secs(10))
            })
        };
        let deadline = start + spec.timeout;
        let status = loop {
            if let Some(s) = child.0.try_wait()? {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = child.0.kill();
                let _ = child.0.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let wall = start.elapsed();
        let _ = watcher.join();
        let _ = std::fs::remove_file(&sock);
        let Some(status) = status else {
            return Ok(PhaseResult {
                outcome: Outcome::Timeout,
                wall,
            });
        };
        if let Some(p) = crate::serial_log::panic_line(&spec.serial_log) {
            return Ok(PhaseResult {
                outcome: Outcome::Crash(p),
                wall,
            });
        }
        let reason = reason.lock().unwrap().clone();
        let outcome = match reason.as_deref() {
            // Nothing but the console's Ctrl-A x asks qemu to quit (the harness's QMP
            // client sends no commands); qemu prints "QEMU: Terminated" on the console.
            Some("host-qmp-quit") if spec.interactive => Outcome::Stopped,
            None if spec.interactive && status.success() && left_at_console(&spec.serial_log) => {
                Outcome::Stopped
            }
            Some("guest-shutdown") => Outcome::PowerOff,
            Some("guest-reset") => Outcome::Reboot,
            Some("guest-panic") => Outcome::Crash("guest panic (pvpanic)".into()),
            Some(other) => Outcome::Crash(format!("qemu stopped ({other})")),
            None if status.success() => {
                Outcome::Crash("qemu exited without a shutdown event".into())
            }
            None => Outcome::Crash(format!(
                "qemu failed ({status}): {}",
                crate::serial_log::tail(&stderr_log, 5)
            )),
        };
        Ok(PhaseResult { outcome, wall })
    }
}
