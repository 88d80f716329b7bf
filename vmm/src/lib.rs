//! A small KVM microVMM for x86-64: boots a kernel directly (bzImage through the Linux boot
//! protocol, or an ELF through PVH) with an initrd and a command line, describes the machine
//! with ACPI, runs 1..N vCPUs on their own threads and reports how the guest ended.
//!
//! ```no_run
//! let config = vmm::VmConfig::new("/boot/vmlinuz").memory_mib(512).cmdline("console=ttyS0");
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

mod acpi;
mod config;
mod cpu;
mod emulated_kvm;
pub use emulated_kvm::LINUX_FEATURES_EMULATOR_LACKS;
mod error;
mod exit;
pub mod host;
mod kick;
mod layout;
mod loader;
mod memory;
mod vcpu;
mod virtio_devices;
mod vm;
mod vmlinux;

pub use acpi::build_tables_for_inspection;
pub use config::{BootPath, CpuFeature, SerialConfig, SerialInput, StopHandle, VmConfig};
pub use devices::ResetSource;
pub use devices::serial::INPUT_BACKLOG_LIMIT;
pub use devices::virtio::block::BlockConfig;
pub use error::Error;
pub use exit::{CrashReport, ExitReason};
pub use usernet::{MacAddr, NetSpec};
pub use vm::run;
