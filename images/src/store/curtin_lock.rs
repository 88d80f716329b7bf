//! Sharing IMAGE_DIR with curtin's own image tools.
//!
//! Curtin's `tools/vmtest-sync-images` (its MAAS image sync) and `tools/jenkins-runner`
//! (which runs its vmtests) agree through `flock(2)` on two things in IMAGE_DIR:
//! - the directory itself: the sync holds it exclusively for its whole run; a runner holds
//!   it shared only while it takes the lock below. Once a sync waits, no new runner starts,
//!   so runners cannot starve it;
//! - the file `IMAGE_DIR/vmtest-images.lock`: the sync holds it exclusively while it changes
//!   images (and while `--clean` deletes every `vmtest*` file under IMAGE_DIR); every runner
//!   holds it shared for its whole test run.
//!
//! This store takes part as a runner does, the same way: the directory shared (briefly),
//! then `vmtest-images.lock` shared, around every index read, index write and removal, and
//! for as long as an [`Image`](super::Image) lives. Our writes take the shared side too: they
//! only add or remove our own version directories, which curtin's runners never read, and
//! our own readers and writers already keep out of each other's way through `.lock` and the
//! per-image locks. So a curtin sync waits for our look-ups, publishing, pruning and running
//! tests, and they wait for it; curtin's runners and ours run side by side.
//!
//! A process holds the lock once per store, shared by all its look-ups and images: a second
//! look-up must not queue behind a sync that is itself waiting for this process.
//!
//! A wait is announced on stderr. [`ImageStore::with_lock_timeout`] bounds it (the CLI reads
//! `CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT`, as jenkins-runner does; negative or unset: for ever),
//! after which the operation fails with [`StoreError::CurtinBusy`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{ImageStore, StoreError};
use crate::lock::{FileLock, LockKind};

/// Curtin's lock file in IMAGE_DIR.
pub const CURTIN_LOCK: &str = "vmtest-images.lock";

/// This process's shared hold on curtin's lock of one store.
#[derive(Debug)]
pub(super) struct CurtinHold {
    _file: FileLock,
}

/// Where this process keeps its hold of one store: only threads wanting that store wait
/// on its gate.
type Gate = Arc<Mutex<Weak<CurtinHold>>>;

/// The gates of this process, by store directory (one entry per store ever used).
static GATES: Mutex<Vec<(PathBuf, Gate)>> = Mutex::new(Vec::new());

impl ImageStore {
    /// Waits at most `timeout` (for ever when `None`, the default) for curtin's image sync to
    /// release IMAGE_DIR; see [`StoreError::CurtinBusy`].
    pub fn with_lock_timeout(mut self, timeout: Option<Duration>) -> ImageStore {
        self.lock_timeout = timeout;
        self
    }

    /// A shared hold on curtin's lock, taken as curtin's runners take it; `None` where the
    /// store has no directory yet, or no lock file and no way to make one (a read-only
    /// store: curtin's sync, which creates it, cannot be changing it either).
    pub(super) fn curtin_hold(&self) -> Result<Option<Arc<CurtinHold>>, StoreError> {
        let key = fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let gate = {
            let mut gates = GATES.lock().unwrap_or_else(|e| e.into_inner());
            match gates.iter().find(|(k, _)| *k == key) {
                Some((_, g)) => g.clone(),
                None => {
                    let g = Gate::default();
                    gates.push((key, g.clone()));
                    g
                }
            }
        };
        // Held while waiting: other threads wanting this store would wait for the same sync
        // anyway, and then share what the first one got.
        let mut current = gate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = current.upgrade() {
            return Ok(Some(h));
        }
        // The directory first, shared, and only until the file lock is ours.
        // A directory we cannot open we cannot lock: read what we can, as without a store lock.
        let _dir = match self.wait_shared(&self.dir, false) {
            Ok(Some(l)) => l,
            Ok(None) | Err(StoreError::Io { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = self.dir.join(CURTIN_LOCK);
        let held = match self.wait_shared(&file, true) {
            Ok(Some(l)) => Some(l),
            Ok(None) | Err(StoreError::Io { .. }) => self.wait_shared(&file, false)?,
            Err(e) => return Err(e),
        };
        let Some(held) = held else {
            tracing::debug!(
                "{}: cannot open it; not taking curtin's lock",
                file.display()
            );
            return Ok(None);
        };
        let hold = Arc::new(CurtinHold { _file: held });
        *current = Arc::downgrade(&hold);
        Ok(Some(hold))
    }

    /// Takes `path`'s lock shared, waiting (announced) up to the store's timeout. `Ok(None)`
    /// when `path` does not exist (or, with `create`, cannot be created: `Io`).
    fn wait_shared(&self, path: &Path, create: bool) -> Result<Option<FileLock>, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        match FileLock::try_acquire(path, LockKind::Shared, create) {
            Ok(Some(l)) => return Ok(Some(l)),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(io_err(e)),
        }
        eprintln!(
            "{} is locked by curtin's image sync; waiting for it to finish{}",
            path.display(),
            match self.lock_timeout {
                Some(t) => format!(" (at most {}s)", t.as_secs_f64()),
                None => " (CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT=N gives up after N seconds)".into(),
            }
        );
        match FileLock::acquire_within(path, LockKind::Shared, create, self.lock_timeout) {
            Ok(Some(l)) => Ok(Some(l)),
            Ok(None) => Err(StoreError::CurtinBusy {
                lock: path.to_path_buf(),
                waited: self.lock_timeout.unwrap_or_default(),
            }),
            Err(e) => Err(io_err(e)),
        }
    }
}

/// Reads a lock timeout as curtin's jenkins-runner does (`CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT`):
/// whole seconds; negative means wait for ever (`None`).
pub fn parse_lock_timeout(v: &str) -> Result<Option<Duration>, String> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number of seconds (negative: wait for ever)"))?;
    Ok(u64::try_from(n).ok().map(Duration::from_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts_read_like_jenkins_runner() {
        assert_eq!(parse_lock_timeout("-1"), Ok(None));
        assert_eq!(parse_lock_timeout("0"), Ok(Some(Duration::ZERO)));
        assert_eq!(
            parse_lock_timeout(" 30 "),
            Ok(Some(Duration::from_secs(30)))
        );
        assert!(parse_lock_timeout("soon").is_err());
        assert!(parse_lock_timeout("1.5").is_err());
    }
}
