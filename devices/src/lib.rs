//! Emulated devices for the vmtest microVM.
//!
//! Every device here is reached through a [`bus::Bus`] (port I/O or MMIO), raises interrupts
//! through an [`interrupt::InterruptLine`], reports power events through a
//! [`power::PowerEventSink`], and describes itself to the guest with ACPI AML (it implements
//! [`acpi_tables::Aml`]), so the VMM's DSDT is just the concatenation of its devices.
//! None of them knows about KVM: the VMM wires them to the hypervisor.

pub mod acpi_pm;
pub mod bus;
pub mod i8042;
pub mod interrupt;
pub mod pci_conf1;
pub mod power;
pub mod pvpanic;
pub mod serial;
pub mod virtio;

pub use bus::{Bus, BusDevice, BusError};
pub use interrupt::InterruptLine;
pub use power::{PowerEvent, PowerEventSink, ResetSource};
