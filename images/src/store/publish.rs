//! Building into the store: the build slot (lock and staging directory) and publishing a
//! finished image as a new version.

use std::fs;
use std::path::{Path, PathBuf};

use super::candidate::{image_id, sanitize};
use super::dates::{now_secs, utc_date};
use super::hash_cache::HashCache;
use super::index::{INDEX_FILE, ImageIndex};
use super::paths::{is_dir, safe_join};
use super::remove::Mounts;
use super::version::next_version;
use super::{ImageStore, PARTIAL_DIR, StoreError, io_err};
use crate::lock::{FileLock, LockKind};

impl ImageStore {
    /// Starts a build of `release`/`arch`: takes the build lock (waiting if another build of
    /// the same release runs) and returns the staging directory to build in.
    pub fn begin_build(&self, release: &str, arch: &str) -> Result<BuildSlot, StoreError> {
        self.ensure_writable()?;
        let partial = self.dir.join(PARTIAL_DIR);
        if !is_dir(&partial) {
            return Err(StoreError::Unsafe {
                path: partial,
                why: "is not a directory (a symbolic link?): builds happen only in a real \
                      directory inside the store; make it one"
                    .into(),
            });
        }
        let name = sanitize(&format!("{release}-{arch}"));
        let lock_path = self.locks_dir().join(format!("build-{name}.lock"));
        let lock = match FileLock::try_acquire(&lock_path, LockKind::Exclusive, true)
            .map_err(io_err(&lock_path))?
        {
            Some(l) => l,
            None => {
                let holder = fs::read_to_string(&lock_path).unwrap_or_default();
                eprintln!(
                    "another build of {release}/{arch} is running ({}, lock {}); waiting for it",
                    holder.trim(),
                    lock_path.display()
                );
                FileLock::acquire(&lock_path, LockKind::Exclusive, true)
                    .map_err(io_err(&lock_path))?
            }
        };
        lock.note_holder(&format!("pid {}\n", std::process::id()));
        let staging = partial.join(&name);
        if fs::symlink_metadata(&staging).is_ok_and(|m| !m.is_dir()) {
            // A stray file or a link where the build's directory goes: it goes (a link as a
            // link), so the build never writes through it.
            self.remove(&staging, Mounts::Refuse)?;
        }
        fs::create_dir(&staging)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(io_err(&staging))?;
        Ok(BuildSlot {
            store: self.clone(),
            release: release.into(),
            arch: arch.into(),
            staging,
            _lock: lock,
        })
    }
}

/// The right to build one release/arch, and the place to do it.
#[derive(Debug)]
pub struct BuildSlot {
    store: ImageStore,
    release: String,
    arch: String,
    /// Scratch directory for this build, kept across interrupted runs of the same build.
    pub staging: PathBuf,
    _lock: FileLock,
}

impl BuildSlot {
    /// Moves the finished image in `out` (which must be inside the staging directory and
    /// hold every item of `index`) into the store as a new version, writing the index last,
    /// then removes the staging directory. Returns the image directory.
    pub fn publish(&self, out: &Path, mut index: ImageIndex) -> Result<PathBuf, StoreError> {
        let _curtin = self.store.curtin_hold()?;
        let _store = self.store.store_lock(LockKind::Exclusive)?;
        let arch_dir = self.store.dir.join(&self.release).join(&self.arch);
        fs::create_dir_all(&arch_dir).map_err(io_err(&arch_dir))?;
        // The new version must sort after every version of the same day, also after pruning
        // removed some (a free but lower name would make the new image look older).
        let today = utc_date(now_secs());
        let existing: Vec<String> = fs::read_dir(&arch_dir)
            .map_err(io_err(&arch_dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let version = next_version(&today, &existing);
        index.version = version.clone();
        index.release = self.release.clone();
        index.arch = self.arch.clone();
        for (name, item) in &index.items {
            let p = safe_join(out, &item.path).ok_or_else(|| StoreError::Unsafe {
                path: out.join(&item.path),
                why: format!("item {name} leaves the image directory"),
            })?;
            let len = fs::metadata(&p).map_err(io_err(&p))?.len();
            if len != item.size {
                return Err(StoreError::BadIndex {
                    path: p,
                    why: format!("has {len} bytes, index says {}", item.size),
                });
            }
        }
        let index_path = out.join(INDEX_FILE);
        let text = serde_json::to_string_pretty(&index).expect("index serializes");
        write_synced(&index_path, text.as_bytes())?;
        let dest = arch_dir.join(&version);
        fs::rename(out, &dest).map_err(io_err(&dest))?;
        if let Ok(d) = fs::File::open(&arch_dir) {
            let _ = d.sync_all();
        }
        // The builder just hashed every item: record that, so the first look-up need not
        // hash hundreds of megabytes again.
        let mut cache = HashCache::default();
        for item in index.items.values() {
            let p = dest.join(&item.path);
            if let Ok(meta) = fs::metadata(&p) {
                cache.record(&p, &meta, &item.sha256);
            }
        }
        let id = image_id("vmtest", &self.release, &self.arch, &version);
        cache.save(&self.store.verified_cache(&id));
        drop(_store);
        // The build is complete: its scratch space (the root tree, logs) goes.
        self.remove_inside(&self.staging)?;
        Ok(dest)
    }

    /// Removes `path` in the staging directory (or the staging directory itself), with
    /// whatever an interrupted mmdebstrap left mounted inside it; links are removed as
    /// links, never followed.
    pub fn remove_inside(&self, path: &Path) -> Result<(), StoreError> {
        if !path.starts_with(&self.staging) {
            return Err(StoreError::Unsafe {
                path: path.to_path_buf(),
                why: format!(
                    "is outside the build's staging directory {}",
                    self.staging.display()
                ),
            });
        }
        self.store.remove(path, Mounts::Detach)
    }

    pub fn release(&self) -> &str {
        &self.release
    }
    pub fn arch(&self) -> &str {
        &self.arch
    }
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}
