//! Backends run one phase of a test in a VM: boot (a kernel directly, or through
//! firmware from the first disk), attach disks and NICs, log the serial console, and tell
//! how the guest ended. The runner knows nothing of how; `qemu` drives
//! qemu-system-x86_64, `builtin` will drive this project's `vmm` crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod child;
mod error;
pub mod qemu;

pub use error::{BackendError, FirmwareError};

/// How the guest starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Boot {
    /// Load a kernel (and initrd) with this command line: no firmware.
    Direct {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// Boot the first disk through firmware (SeaBIOS, or OVMF when `uefi`), so the
    /// installed boot loader itself runs.
    Firmware { uefi: bool },
}

/// How a disk is attached. The builtin microVM serves only virtio-blk; the others are
/// what `--vmm auto` sends to qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskBus {
    #[default]
    VirtioBlk,
    Nvme,
    /// A `scsi-hd` on one virtio-scsi controller (serial and WWN visible to the guest).
    Scsi,
}

/// A disk attached to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    /// What the guest reads as the serial (`/dev/disk/by-id/virtio-<serial>` on virtio-blk).
    pub serial: String,
    /// Logical = physical block size.
    pub block_size: u32,
    pub read_only: bool,
    pub bus: DiskBus,
    /// World-wide name (`0x` + 16 hex digits), SCSI only.
    pub wwn: Option<String>,
    /// How many times the same file is attached: 1, or 2-4 for multipath (SCSI only).
    pub paths: u8,
}

impl Disk {
    /// A plain virtio-blk disk.
    pub fn virtio(
        path: PathBuf,
        serial: impl Into<String>,
        block_size: u32,
        read_only: bool,
    ) -> Self {
        Disk {
            path,
            serial: serial.into(),
            block_size,
            read_only,
            bus: DiskBus::VirtioBlk,
            wwn: None,
            paths: 1,
        }
    }
}

/// A NIC on user-mode networking; the guest reaches the host's loopback as 10.0.2.2, on
/// the phase's `host_ports` only.
#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    pub mac: String,
}

impl Nic {
    /// The NICs a test's VM gets, in both phases and from every backend: one per physical
    /// interface of its network config that names a MAC, in config order, with that MAC
    /// (the first is the install environment's boot NIC, `BOOTIF`); one with
    /// [`crate::config::DEFAULT_MAC`] when there is none, as in curtin's vmtest.
    pub fn for_test(test: &crate::config::TestConfig) -> Vec<Nic> {
        test.macs.iter().map(|m| Nic { mac: m.clone() }).collect()
    }
}

/// The two VM phases of a test. Also what `--console` attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Phase {
    /// The install environment writes the empty disks.
    Install,
    /// The installed system boots and collects.
    Boot,
}

impl Phase {
    /// `install` or `boot`, as in log file names (`logs/install-serial.log`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Install => "install",
            Phase::Boot => "boot",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One phase of a test.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    /// Which phase (in logs and file names).
    pub phase: Phase,
    pub boot: Boot,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// The serial console is written here.
    pub serial_log: PathBuf,
    /// Most bytes the serial log holds: past it, both backends keep its first half, a
    /// marker line and the newest output ([`vmm::CappedLog`]).
    pub serial_log_cap: u64,
    /// Directory for the backend's own logs (e.g. qemu's stderr).
    pub log_dir: PathBuf,
    /// The VM is killed after this long.
    pub timeout: Duration,
    /// Host ports (on the host's loopback, 10.0.2.2 in the guest) the guest may connect
    /// to: the test's HTTP server. Every backend allows only these (see [`Self::net_spec`]).
    pub host_ports: Vec<u16>,
    /// What the guest may reach beyond the host (nothing by default): the test's and the
    /// run's outbound rules, in both phases.
    pub outbound: usernet::Outbound,
    /// Also show the serial console on this terminal and take keyboard input (debugging).
    pub interactive: bool,
    /// Run on UEFI firmware (OVMF) with this writable NVRAM variables file, whatever the
    /// boot: a [`Boot::Direct`] kernel is then loaded through the firmware (so the guest
    /// has `/sys/firmware/efi` and efivars), and what the guest writes to the variables
    /// (boot entries, BootOrder) stays in the file for the next phase. One file per test,
    /// made from the firmware's template by [`Ovmf::new_nvram`].
    pub uefi_nvram: Option<PathBuf>,
}

/// The UEFI firmware for qemu: OVMF's code (read-only) and the template of its variable
/// store, as Debian's `ovmf` package installs them. `VMTEST_OVMF_CODE` and
/// `VMTEST_OVMF_VARS` name other files (both or neither).
#[derive(Debug, Clone, PartialEq)]
pub struct Ovmf {
    pub code: PathBuf,
    pub vars_template: PathBuf,
}

impl Ovmf {
    /// Code/template pairs tried in order: Debian's 4 MiB build (bookworm's default),
    /// then the 2 MiB one.
    const PAIRS: &'static [(&'static str, &'static str)] = &[
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
    ];

    /// Finds the firmware; the error names the package or the variables to set.
    pub fn find() -> Result<Ovmf, FirmwareError> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        match (env("VMTEST_OVMF_CODE"), env("VMTEST_OVMF_VARS")) {
            (Some(code), Some(vars_template)) => {
                for p in [&code, &vars_template] {
                    if !p.is_file() {
                        return Err(FirmwareError::NotAFile(p.clone()));
                    }
                }
                Ok(Ovmf {
                    code,
                    vars_template,
                })
            }
            (None, None) => Self::PAIRS
                .iter()
                .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
                .find(|(c, v)| c.is_file() && v.is_file())
                .map(|(code, vars_template)| Ovmf {
                    code,
                    vars_template,
                })
                .ok_or(FirmwareError::NotInstalled {
                    looked: Self::PAIRS[0].0,
                }),
            _ => Err(FirmwareError::Unpaired),
        }
    }

    /// A fresh NVRAM file for one test at `path` (curtin's vmtest keeps it as
    /// `disks/ovmf_vars.fd`): a copy of the template, never an existing file overwritten.
    pub fn new_nvram(&self, path: &std::path::Path) -> Result<(), BackendError> {
        let mut src =
            std::fs::File::open(&self.vars_template).map_err(|source| BackendError::File {
                path: self.vars_template.clone(),
                source,
            })?;
        let mut dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| BackendError::File {
                path: path.into(),
                source,
            })?;
        std::io::copy(&mut src, &mut dst).map_err(|source| BackendError::Copy {
            from: self.vars_template.clone(),
            to: path.into(),
            source,
        })?;
        Ok(())
    }
}

impl PhaseSpec {
    /// The user-mode network of the NIC with this MAC: every backend builds its guest's
    /// network from this, so the guest reaches the same things under each of them.
    pub fn net_spec(&self, mac: &str) -> Result<usernet::NetSpec, BackendError> {
        let mut nic = usernet::NetSpec::default();
        nic.mac = Some(mac.parse().map_err(|source| BackendError::Mac {
            mac: mac.into(),
            source,
        })?);
        nic.allow_ports = self.host_ports.clone();
        nic.outbound = self.outbound.clone();
        Ok(nic)
    }
}

/// How a phase ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    PowerOff,
    Reboot,
    /// The guest panicked or the VMM failed; the text says which.
    Crash(String),
    /// The phase timed out and the VM was killed.
    Timeout,
    /// The user left the interactive console (Ctrl-A x) and the VM was stopped.
    Stopped,
    /// The harness was asked to end (this signal) and stopped the VM.
    Interrupted(i32),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::PowerOff => write!(f, "powered off"),
            Outcome::Reboot => write!(f, "rebooted"),
            Outcome::Crash(why) => write!(f, "crashed: {why}"),
            Outcome::Timeout => write!(f, "timed out"),
            Outcome::Stopped => write!(f, "console: stopped by the user"),
            Outcome::Interrupted(sig) => write!(
                f,
                "interrupted: the harness got {}",
                crate::shutdown::signal_name(*sig)
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub outcome: Outcome,
    /// Wall time from VM start to exit.
    pub wall: Duration,
}

pub trait Backend: Send + Sync {
    /// Short name shown in progress and the summary (`qemu-tcg`, `builtin`, ...).
    fn name(&self) -> String;
    /// Runs one phase to its end. An `Err` means the VM could not run at all
    /// (missing program, bad disk), not that the guest failed.
    fn run_phase(&self, spec: &PhaseSpec) -> Result<PhaseResult, BackendError>;
    /// Whether the boot phase goes through firmware and the installed boot loader. When
    /// not, the install phase hands off the kernel, initrd and command line grub would boot
    /// ([`crate::handoff`]) and the boot phase boots them directly.
    fn boots_firmware(&self) -> bool {
        true
    }
    /// Creates a fresh UEFI variable store for one test at `path` (never overwriting a
    /// file), for [`PhaseSpec::uefi_nvram`]; an error when this backend has no UEFI.
    fn new_uefi_nvram(&self, path: &std::path::Path) -> Result<(), BackendError> {
        Ovmf::find()?.new_nvram(path)
    }
}

/// The builtin microVM (this project's `vmm` crate): direct kernel boot, virtio-blk disks,
/// virtio-net on user-mode NAT where the guest may reach only the host ports the phase
/// names, 16550 serial console, clean exit reasons. No firmware: the runner boots the
/// installed system's grub entry directly, from the install's handoff.
pub struct BuiltinBackend;

impl Backend for BuiltinBackend {
    fn name(&self) -> String {
        "builtin".into()
    }

    fn boots_firmware(&self) -> bool {
        false
    }

    fn new_uefi_nvram(&self, _path: &std::path::Path) -> Result<(), BackendError> {
        Err(BackendError::BuiltinNoUefi { what: "tests" })
    }

    fn run_phase(&self, spec: &PhaseSpec) -> Result<PhaseResult, BackendError> {
        if spec.uefi_nvram.is_some() {
            return Err(BackendError::BuiltinNoUefi { what: "phases" });
        }
        let Boot::Direct {
            kernel,
            initrd,
            cmdline,
        } = &spec.boot
        else {
            return Err(BackendError::BuiltinNoFirmware);
        };
        let mut cfg = vmm::VmConfig::new(kernel.clone());
        cfg.initrd = initrd.clone();
        cfg.cmdline = cmdline.clone();
        cfg.memory_mib = spec.memory_mib;
        cfg.vcpus = spec.vcpus;
        cfg.timeout = Some(spec.timeout);
        if vmm::host::kvm_module_is_pvm() {
            // KVM here runs guests in its instruction emulator: hide what it cannot run
            // and let the VMM complete the rest (vmm owns the recipe).
            cfg.adapt_linux_guest_to_emulated_kvm();
        }
        cfg.serial.log_file = Some(spec.serial_log.clone());
        cfg.serial.log_cap = spec.serial_log_cap;
        cfg.serial.stdout = spec.interactive;
        for d in &spec.disks {
            if d.bus != DiskBus::VirtioBlk || d.paths != 1 {
                return Err(BackendError::BuiltinDisk {
                    path: d.path.clone(),
                    bus: d.bus,
                    paths: d.paths,
                });
            }
            let mut disk = vmm::BlockConfig::new(&d.path);
            disk.serial = Some(d.serial.clone());
            disk.read_only = d.read_only;
            disk.block_size = d.block_size;
            cfg.disks.push(disk);
        }
        for n in &spec.nics {
            cfg.nets.push(spec.net_spec(&n.mac)?);
        }
        // One stop handle for the console's Ctrl-A x and for the harness being told to end.
        let stop = vmm::StopHandle::new();
        cfg.stop = Some(stop.clone());
        let _registered = {
            let stop = stop.clone();
            crate::shutdown::on_shutdown(move || stop.stop())?
        };
        let console = if spec.interactive {
            let input = cfg.serial.input();
            Some(
                crate::console::Console::attach_stdin(input, move || stop.stop())
                    .map_err(BackendError::Console)?,
            )
        } else {
            None
        };
        let start = std::time::Instant::now();
        let reason = vmm::run(&cfg);
        let wall = start.elapsed();
        drop(console); // the terminal is restored before anything else is printed
        let reason = reason.map_err(BackendError::Vmm)?;
        let outcome = match reason {
            vmm::ExitReason::PowerOff => Outcome::PowerOff,
            vmm::ExitReason::Reboot(_) => match crate::serial_log::panic_line(&spec.serial_log) {
                Some(p) => Outcome::Crash(p),
                None => Outcome::Reboot,
            },
            vmm::ExitReason::Crash(c) => Outcome::Crash(c.reason),
            vmm::ExitReason::Timeout => Outcome::Timeout,
            // Stopped on purpose: the harness was told to end, or the user left the console.
            vmm::ExitReason::Stopped => match crate::shutdown::requested() {
                Some(sig) => Outcome::Interrupted(sig),
                None => Outcome::Stopped,
            },
        };
        Ok(PhaseResult { outcome, wall })
    }
}

/// A backend whose phases are a closure: for tests of the runner (failure paths without
/// VMs). The closure plays the guest: it writes the serial log, the output disk, ...
#[derive(Clone)]
pub struct FakeBackend {
    #[allow(clippy::type_complexity)]
    pub phase: Arc<dyn Fn(&PhaseSpec) -> Result<PhaseResult, BackendError> + Send + Sync>,
    /// Play a firmware-less VMM (boot phase booted directly).
    pub direct_boot: bool,
}

impl FakeBackend {
    pub fn new(
        f: impl Fn(&PhaseSpec) -> Result<PhaseResult, BackendError> + Send + Sync + 'static,
    ) -> Self {
        FakeBackend {
            phase: Arc::new(f),
            direct_boot: false,
        }
    }
}

impl Backend for FakeBackend {
    fn name(&self) -> String {
        "fake".into()
    }
    fn run_phase(&self, spec: &PhaseSpec) -> Result<PhaseResult, BackendError> {
        (self.phase)(spec)
    }
    fn boots_firmware(&self) -> bool {
        !self.direct_boot
    }
    /// A stand-in variable store: the fake plays the firmware, so the host's OVMF is not
    /// needed.
    fn new_uefi_nvram(&self, path: &std::path::Path) -> Result<(), BackendError> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"fake UEFI variables\n"))
            .map_err(|source| BackendError::File {
                path: path.into(),
                source,
            })
    }
}

/// Whether /dev/kvm is real hardware virtualisation (Ok), or why not: emulated (PVM's
/// `kvm_pvm`, or guests far below hardware speed) or unusable. Probes the host.
pub fn kvm_status() -> Result<(), String> {
    match crate::vmm_choice::HostKvm::detect() {
        crate::vmm_choice::HostKvm::Real => Ok(()),
        crate::vmm_choice::HostKvm::Emulated { why, .. }
        | crate::vmm_choice::HostKvm::Absent { why } => Err(why),
    }
}
