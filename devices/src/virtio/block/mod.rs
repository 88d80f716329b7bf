//! virtio-blk over raw image files (sparse files stay sparse).
//!
//! Layout follows one job per file: [`config`] (what the user asked for, validated and
//! opened before the VM starts), [`request`] (parsing hostile descriptor chains and doing
//! the I/O), [`device`] (features, config space, queue loop), [`event_handler`] (running
//! that loop on the VMM's event-manager thread) and [`test_utils`] (an in-memory driver for
//! tests, benchmarks and fuzzing).
//!
//! qcow2 is deliberately not supported yet: curtin's vmtest creates its target disks as raw
//! sparse files and reads them back with raw-image tools, the seed is a raw VFAT/ISO image,
//! and the root image travels over HTTP. A qcow2 layer (e.g. the `imago` crate) would add an
//! async runtime and a second I/O path to validate for no current user; the backend is one
//! `DiskImage`, so it can be swapped for a format driver when a test needs backing files.

pub mod config;
pub mod device;
pub mod event_handler;
pub mod request;
pub mod test_utils;

pub use config::{BlockConfig, BlockConfigError, DiskImage, open_disks, validate_disks};
pub use device::{Block, BlockStats};

#[cfg(test)]
mod tests;
