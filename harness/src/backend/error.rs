//! Why a backend could not run a phase, or make a test's UEFI variables: typed where it
//! arises, so the runner picks the test's status by variant (the harness being told to
//! end is not the host failing) and shows the text as it is.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use super::DiskBus;

/// What a backend could not do. Every variant is the host's, the harness's or the phase
/// request's fault, never the guest's: how the guest ended is an [`Outcome`](super::Outcome).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The harness was told to end (SIGTERM, SIGINT, SIGHUP) before the VM started.
    #[error(transparent)]
    Interrupted(#[from] crate::shutdown::Interrupted),
    /// No usable UEFI firmware on this host.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// The builtin VMM was asked for UEFI (`what`: the tests or phases that need it).
    #[error("the builtin VMM has no UEFI firmware (use --vmm qemu for UEFI {what})")]
    BuiltinNoUefi { what: &'static str },
    #[error(
        "the builtin VMM has no firmware: it boots kernels directly (use --vmm qemu for firmware boots)"
    )]
    BuiltinNoFirmware,
    #[error(
        "disk {} is {bus:?} with {paths} path(s): the builtin microVM serves only single-path virtio-blk disks; run this test with --vmm qemu (or auto)",
        path.display()
    )]
    BuiltinDisk {
        path: PathBuf,
        bus: DiskBus,
        paths: u8,
    },
    #[error("qemu -M microvm boots kernels directly: no firmware boots")]
    MicrovmNoFirmware,
    #[error("qemu -M microvm has no UEFI firmware")]
    MicrovmNoUefi,
    #[error(
        "disk {}: qemu -M microvm has no PCI, so only single-path virtio-blk disks",
        .0.display()
    )]
    MicrovmDisk(PathBuf),
    /// A file the phase names is not there (`what`: `disk`, `UEFI variables file`).
    #[error("{what} {} does not exist", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    /// A file that could not be opened or made, named with the system's reason.
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("copying {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    /// A host call failed (a socket pair, a file the backend writes, the terminal).
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{}: qemu is given paths as text, and this one is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("NIC MAC {mac}: {source}")]
    Mac {
        mac: String,
        source: <usernet::MacAddr as std::str::FromStr>::Err,
    },
    /// The guest's user-mode network could not start.
    #[error(transparent)]
    Net(#[from] usernet::UserNetError),
    #[error("cannot attach the console to stdin: {0}")]
    Console(#[source] io::Error),
    #[error("builtin VMM: {0}")]
    Vmm(#[source] vmm::Error),
    #[error(
        "{} not found or not runnable: install the Debian package qemu-system-x86 (make vmtest-deps)",
        .0.display()
    )]
    QemuMissing(PathBuf),
    #[error(
        "VMTEST_QEMU_BOOT={0:?}: give `firmware` (the installed boot loader, the default) or `direct` (the install's handoff, as the builtin VMM boots)"
    )]
    QemuBoot(String),
    #[error("cannot start {}: {source}", binary.display())]
    Spawn { binary: PathBuf, source: io::Error },
    /// qemu exited before its main loop: the VM could not run at all.
    #[error("{} could not start the VM ({status}): {stderr_tail}", binary.display())]
    QemuDidNotStart {
        binary: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// The phase's NICs and the sockets made for them disagree.
    #[error("{nics} NICs but {sockets} network sockets (a harness bug)")]
    NicSockets { nics: usize, sockets: usize },
}

/// Why no UEFI firmware (OVMF) can be used, and what to install or set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    #[error("VMTEST_OVMF_CODE / VMTEST_OVMF_VARS: {} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// None of the known firmware pairs is installed (`looked`: the first tried).
    #[error(
        "no UEFI firmware: {looked} not found; install the Debian package ovmf (make vmtest-deps) or set VMTEST_OVMF_CODE and VMTEST_OVMF_VARS"
    )]
    NotInstalled { looked: &'static str },
    /// The backend was made without firmware.
    #[error(
        "no UEFI firmware: install the Debian package ovmf (make vmtest-deps) or set VMTEST_OVMF_CODE and VMTEST_OVMF_VARS"
    )]
    NotFound,
    #[error(
        "set both VMTEST_OVMF_CODE and VMTEST_OVMF_VARS (the firmware's code and its variable-store template), or neither"
    )]
    Unpaired,
}
