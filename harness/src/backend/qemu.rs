//! The qemu backend: qemu-system-x86_64 `-M pc`, KVM when it is real, TCG otherwise.
//! Disks are virtio-blk (serials, block sizes, read-only), the serial console goes to a
//! file, and QMP tells how the guest ended (`SHUTDOWN` with reason guest-shutdown or
//! guest-reset; `-no-reboot` turns a reset, and so a `panic=-1` panic, into an exit). The
//! VM is killed at its timeout.
//!
//! The guest's network is the harness's, not qemu's: each virtio-net NIC sends its frames
//! over an inherited socket (`-netdev dgram`) to a user-mode network in this process, the
//! same filtered libslirp the builtin VMM uses ([`usernet`]), so the guest reaches the same
//! host ports and nothing else in both backends. (qemu's own `restrict=on` cannot serve
//! the harness: it drops the guest's DNS, refuses a forward to the gateway address the
//! guest uses, 10.0.2.2, and a `guestfwd` carries one connection at a time.)
//!
//! qemu runs under its seccomp sandbox (`-sandbox on` with spawn, set*id, obsolete and
//! resource-control calls denied), gets SIGKILL when the harness dies (see `child`), and
//! talks QMP over an inherited socket pair: no socket file to leave behind, and a qemu that
//! fails to start is noticed the moment it exits.
//!
//! An interactive phase puts the console on stdio through qemu's multiplexer, so qemu's
//! own escape keys work (Ctrl-A x quits, Ctrl-A h helps, Ctrl-A Ctrl-A sends Ctrl-A: the
//! builtin VMM's console copies them) and the serial log is still written. Ctrl-A x shows
//! on QMP as `SHUTDOWN` with reason `host-qmp-quit`, reported as [`Outcome::Stopped`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, BackendError, Boot, Outcome, PhaseResult, PhaseSpec};

pub mod cmdline;
mod serial;
pub use cmdline::PassedFds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// The machine type. Phases run on `pc`; `microvm` (virtio-mmio, no firmware) lets the
/// project's probes play the guest under qemu with a phase the harness built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    #[default]
    Pc,
    Microvm,
}

pub struct QemuBackend {
    pub binary: PathBuf,
    /// UEFI firmware for phases with an NVRAM file ([`PhaseSpec::uefi_nvram`]); `None`
    /// when OVMF is not installed (such phases then fail naming the package).
    pub ovmf: Option<super::Ovmf>,
    pub accel: Accel,
    /// Why this accelerator (printed once).
    pub accel_reason: String,
    pub machine: Machine,
    /// Boot the installed system's kernel directly from the install's handoff
    /// (`VMTEST_QEMU_BOOT=direct`), as the builtin microVM does, instead of through firmware
    /// and the installed grub: the builtin's boot path on a host where only qemu runs.
    pub direct_boot: bool,
}

impl QemuBackend {
    /// KVM when it is real, TCG otherwise; `VMTEST_QEMU_ACCEL=kvm|tcg` overrides.
    pub fn detect() -> Result<QemuBackend, BackendError> {
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
            return Err(BackendError::QemuMissing(binary));
        }
        let (accel, accel_reason) = match std::env::var("VMTEST_QEMU_ACCEL").ok().as_deref() {
            Some("kvm") => (Accel::Kvm, "VMTEST_QEMU_ACCEL=kvm".to_string()),
            Some("tcg") => (Accel::Tcg, "VMTEST_QEMU_ACCEL=tcg".to_string()),
            _ => match super::kvm_status() {
                Ok(()) => (Accel::Kvm, "/dev/kvm is hardware KVM".to_string()),
                Err(why) => (Accel::Tcg, why),
            },
        };
        let direct_boot = match std::env::var("VMTEST_QEMU_BOOT").ok().as_deref() {
            None | Some("") | Some("firmware") => false,
            Some("direct") => true,
            Some(other) => return Err(BackendError::QemuBoot(other.to_string())),
        };
        Ok(QemuBackend {
            binary,
            ovmf: super::Ovmf::find().ok(),
            accel,
            accel_reason,
            machine: Machine::Pc,
            direct_boot,
        })
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

/// What QMP said about a phase.
#[derive(Default)]
struct QmpState {
    /// qemu answered a command: commands are served from its main loop, so the machine
    /// was built and ran. (Its greeting comes earlier, before the kernel is even loaded.)
    running: AtomicBool,
    /// The SHUTDOWN reason (or guest-panic).
    reason: Mutex<Option<String>>,
}

const QMP_MAX_LINE: u64 = 64 << 10;

/// Reads QMP events until qemu closes its end (it exited); keeps the SHUTDOWN reason.
fn qmp_watch(stream: UnixStream, state: &QmpState) {
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let _ = w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n");
    let reason = &state.reason;
    let mut r = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        // Lines are bounded: a QMP event is small, whatever a broken qemu sends.
        buf.clear();
        match (&mut r).take(QMP_MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        if line.starts_with("{\"return\"") {
            state.running.store(true, Ordering::SeqCst);
        }
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

    fn boots_firmware(&self) -> bool {
        !self.direct_boot
    }

    fn new_uefi_nvram(&self, path: &Path) -> Result<(), BackendError> {
        match &self.ovmf {
            Some(ovmf) => ovmf.new_nvram(path),
            None => super::Ovmf::find()?.new_nvram(path),
        }
    }

    fn run_phase(&self, spec: &PhaseSpec) -> Result<PhaseResult, BackendError> {
        for d in &spec.disks {
            if !d.path.is_file() {
                return Err(BackendError::Missing {
                    what: "disk",
                    path: d.path.clone(),
                });
            }
        }
        if let Some(nvram) = &spec.uefi_nvram {
            if self.ovmf.is_none() {
                // The same error as at detection, with its fix.
                super::Ovmf::find()?;
            }
            if !nvram.is_file() {
                return Err(BackendError::Missing {
                    what: "UEFI variables file",
                    path: nvram.clone(),
                });
            }
        }
        if let Boot::Direct { kernel, initrd, .. } = &spec.boot {
            for p in std::iter::once(kernel).chain(initrd.iter()) {
                std::fs::File::open(p).map_err(|source| BackendError::Read {
                    path: p.clone(),
                    source,
                })?;
            }
        }
        // The guest's network: one user-mode network per NIC, built from the phase exactly
        // as the builtin VMM builds its own.
        let mut networks = Vec::new();
        let mut nic_fds: Vec<OwnedFd> = Vec::new();
        for n in &spec.nics {
            let (net, backend) =
                usernet::UserNet::start(&usernet::UserNetConfig::from(&spec.net_spec(&n.mac)?))?;
            networks.push(net);
            nic_fds.push(OwnedFd::from(backend));
        }
        let (qmp_ours, qmp_theirs) = UnixStream::pair()?;
        let (serial_theirs, serial) =
            serial::SerialCopier::start(&spec.serial_log, spec.serial_log_cap).map_err(
                |source| BackendError::Create {
                    path: spec.serial_log.clone(),
                    source,
                },
            )?;
        let fds = PassedFds {
            qmp: qmp_theirs.as_raw_fd(),
            nics: nic_fds.iter().map(AsRawFd::as_raw_fd).collect(),
            serial: serial_theirs.as_raw_fd(),
        };
        let args = self.args(spec, &fds)?;
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
            let saved = crate::console::TerminalGuard::save(std::io::stdin())?;
            eprintln!("{}", crate::console::ATTACH_LINE);
            saved
        } else {
            cmd.stdin(Stdio::null());
            None
        };
        // Told to end, the harness stops the VM here (the wait below kills its own child:
        // a pid is only ever signalled before it is reaped).
        let interrupted = Arc::new(AtomicBool::new(false));
        let _registered = {
            let flag = interrupted.clone();
            crate::shutdown::on_shutdown(move || flag.store(true, Ordering::SeqCst))?
        };
        let child =
            super::child::spawn(&mut cmd, &fds.all()).map_err(|source| BackendError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let mut child = KillOnDrop(child);
        // qemu holds its ends now; ours close so that its exit reads as end of file.
        drop((qmp_theirs, nic_fds, serial_theirs));
        let qmp = Arc::new(QmpState::default());
        let watcher = {
            let qmp = qmp.clone();
            std::thread::spawn(move || qmp_watch(qmp_ours, &qmp))
        };
        // A timeout too long for `Instant` is no deadline.
        let deadline = start.checked_add(spec.timeout);
        let status = loop {
            if let Some(s) = child.0.try_wait()? {
                break Some(s);
            }
            let stop = interrupted.load(Ordering::SeqCst);
            if stop || deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.0.kill();
                let _ = child.0.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let wall = start.elapsed();
        let _ = watcher.join();
        // qemu is gone: the rest of its output is in the pipe, and the log complete after.
        if let Err(e) = serial.finish() {
            tracing::warn!("serial log {}: {e}", spec.serial_log.display());
        }
        drop(networks);
        let Some(status) = status else {
            let outcome = match crate::shutdown::requested() {
                Some(sig) if interrupted.load(Ordering::SeqCst) => Outcome::Interrupted(sig),
                _ => Outcome::Timeout,
            };
            return Ok(PhaseResult { outcome, wall });
        };
        if let Some(p) = crate::serial_log::panic_line(&spec.serial_log) {
            return Ok(PhaseResult {
                outcome: Outcome::Crash(p),
                wall,
            });
        }
        if !status.success() && !qmp.running.load(Ordering::SeqCst) {
            // qemu never reached its main loop: the VM could not run at all.
            return Err(BackendError::QemuDidNotStart {
                binary: self.binary.clone(),
                status,
                stderr_tail: crate::serial_log::tail(&stderr_log, 5),
            });
        }
        let reason = qmp.reason.lock().unwrap().clone();
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
