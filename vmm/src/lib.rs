//! A small KVM microVMM for x86-64: boots a kernel directly (bzImage through the Linux boot
//! protocol, or an ELF through PVH) with an initrd and a command line, describes the machine
//! with ACPI, runs 1..N vCPUs on their own threads and reports how the guest ended.
//!
//! ```no_run
//! let mut config = vmm::VmConfig::new("/boot/vmlinuz");
//! config.memory_mib = 512;
//! config.cmdline = "console=ttyS0".into();
//! match vmm::run(&config)? {
//!     vmm::ExitReason::PowerOff => println!("guest powered off"),
//!     other => println!("guest ended: {other}"),
//! }
//! # Ok::<(), vmm::Error>(())
//! ```
//!
//! The crate knows nothing of installers or tests: the harness builds a [`VmConfig`] and
//! reads the [`ExitReason`]. For an interactive console, [`SerialConfig::input`] gives a
//! [`SerialInput`] whose bytes the guest reads on COM1, and a [`StopHandle`] given to the
//! config ends the run on purpose with [`ExitReason::Stopped`].
//!
//! Configuration types are plain data with public fields (see [`VmConfig`]); what a caller
//! does with an [`ExitReason`] (e.g. a process exit code) is the caller's business.
//!
//! Features: `usernet` (default) gives NICs a user-mode NAT through libslirp. Without it the
//! crate builds without libslirp and [`run`] refuses a VM with NICs
//! ([`Error::UserNetUnavailable`]).

mod acpi;
pub mod capped_log;
mod config;
mod cpu;
mod emulated_kvm;
mod error;
mod exit;
pub mod host;
mod kick;
mod layout;
mod loader;
mod memory;
mod panic_line;
mod seccomp;
mod stdout_pump;
mod vcpu;
mod virtio_devices;
mod vm;
mod vmlinux;

pub use capped_log::{CappedLog, DEFAULT_LOG_CAP};
pub use config::{
    BootPath, CpuFeature, CpuidBit, CpuidReg, SerialConfig, SerialInput, StopHandle, VmConfig,
};
pub use devices::ResetSource;
pub use devices::virtio::block::BlockConfig;
pub use error::Error;
pub use exit::{CrashReport, ExitReason};
pub use seccomp::SeccompError;
pub use usernet::{MacAddr, NetSpec, PortForward};
pub use vm::run;

/// Views into the VMM for tests and tools, without booting a VM. Not a stable API: these
/// follow the VMM's internals.
pub mod testing {
    pub use crate::acpi::build_tables_for_inspection as acpi_tables;
    pub use crate::emulated_kvm::LINUX_FEATURES_EMULATOR_LACKS;
    pub use crate::seccomp::take_denied as seccomp_take_denied;
    pub use devices::serial::INPUT_BACKLOG_LIMIT;
}
