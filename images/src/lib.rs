//! Ephemeral install images: building them from Debian packages and keeping them in a
//! MAAS-style store.
//!
//! - [`store`]: the image directory (`IMAGE_DIR`), its index format, look-up for the
//!   harness ([`store::ImageStore::find_newest`]), listing, pruning, verification, locking.
//! - [`build`]: `vmtest images build`: mmdebstrap root → squashfs, Debian's cloud kernel,
//!   and our own initramfs ([`initramfs`]).
//! - [`cli`]: the `vmtest images ...` subcommands.

pub mod build;
mod build_step;
pub mod cli;
pub mod initramfs;
pub mod lock;
pub mod store;

pub use store::{Image, ImageStore, StoreError};

/// Reads a boolean environment variable the way curtin's vmtest does: true unless the value
/// is, case-insensitively, `false`, empty or `0`; `default` when unset.
pub fn env_bool(name: &str, default: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => parse_bool(&v),
        Err(_) => default,
    }
}

/// See [`env_bool`].
pub fn parse_bool(v: &str) -> bool {
    let v = v.trim();
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn booleans_follow_curtin() {
        for t in ["true", "1", "yes", "TRUE", "anything", "no"] {
            assert!(super::parse_bool(t), "{t}");
        }
        for f in ["false", "FALSE", "False", "", "0", " 0 "] {
            assert!(!super::parse_bool(f), "{f:?}");
        }
    }
}
