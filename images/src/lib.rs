//! Ephemeral install images: building them from Debian packages and keeping them in a
//! MAAS-style store.

pub mod cli;
