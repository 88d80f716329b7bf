//! The store's `flock(2)` locks (see Concurrency in the store's docs).

use std::fs;
use std::io;

use super::candidate::{Candidate, sanitize};
use super::{ImageStore, STORE_LOCK, StoreError};
use crate::lock::{FileLock, LockKind};

impl ImageStore {
    /// Try-lock of a build: `None` if a build of `release`/`arch` is running right now.
    pub fn build_running(&self, release: &str, arch: &str) -> bool {
        let name = sanitize(&format!("{release}-{arch}"));
        let lock_path = self.locks_dir().join(format!("build-{name}.lock"));
        matches!(
            FileLock::try_acquire(&lock_path, LockKind::Exclusive, false),
            Ok(None)
        )
    }

    /// Waits until no build of `release`/`arch` runs (takes and drops its lock), so a
    /// caller deciding whether to build looks at what that build published, instead of
    /// building the same image again once it ends.
    pub fn wait_for_build(&self, release: &str, arch: &str) -> Result<(), StoreError> {
        let name = sanitize(&format!("{release}-{arch}"));
        let lock_path = self.locks_dir().join(format!("build-{name}.lock"));
        match FileLock::acquire(&lock_path, LockKind::Exclusive, false) {
            Ok(_done) => Ok(()),
            // No lock file: no build has ever run here.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                path: lock_path,
                source: e,
            }),
        }
    }

    /// The store lock, or `None` where the store cannot hold one (missing or read-only
    /// store: nobody can change it then either).
    pub(super) fn store_lock(&self, kind: LockKind) -> Result<Option<FileLock>, StoreError> {
        let path = self.dir.join(STORE_LOCK);
        match FileLock::acquire(&path, kind, true) {
            Ok(l) => Ok(Some(l)),
            Err(e) if kind == LockKind::Shared => {
                tracing::debug!("{}: {e}; reading the store without a lock", path.display());
                match FileLock::acquire(&path, kind, false) {
                    Ok(l) => Ok(Some(l)),
                    Err(_) => Ok(None),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotWritable {
                dir: self.dir.clone(),
                source: e,
            }),
            Err(e) => Err(StoreError::NotWritable {
                dir: self.dir.clone(),
                source: e,
            }),
        }
    }

    /// `Ok(None)`: no lock possible (read-only store); `Ok(Some(None))`: busy.
    pub(super) fn image_lock(
        &self,
        c: &Candidate,
        kind: LockKind,
        wait: bool,
    ) -> Result<Option<Option<FileLock>>, StoreError> {
        let path = self.locks_dir().join(format!("{}.lock", c.id()));
        if fs::create_dir_all(self.locks_dir()).is_err() {
            return Ok(None);
        }
        let r = if wait {
            FileLock::acquire(&path, kind, true).map(Some)
        } else {
            FileLock::try_acquire(&path, kind, true)
        };
        match r {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::debug!("{}: {e}; image not locked", path.display());
                Ok(None)
            }
        }
    }
}
