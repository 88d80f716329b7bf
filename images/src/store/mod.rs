//! The image store: a MAAS-style directory tree (`IMAGE_DIR`, default `/srv/images`).
//!
//! # Layout
//!
//! Our images use the layout curtin's vmtest uses for mirrored MAAS images, so real MAAS
//! images (and the tools that mirror them) can share the directory:
//!
//! ```text
//! IMAGE_DIR/
//!   <release>/<arch>/<version>/
//!     vmtest-image.json                       the image index (see `index`); written last
//!     squashfs                                root filesystem (squashfs, zstd)
//!     squashfs.manifest                       "package<TAB>version" of every package
//!     <kernel_release>/<flavor>/boot-kernel   the kernel (bzImage)
//!     <kernel_release>/<flavor>/boot-initrd   the initramfs (gzip'd cpio, see `initramfs`)
//!   streams/v1/index.json, streams/v1/*.json  simplestreams trees written by other tools
//!                                             (read only; their items are paths in IMAGE_DIR)
//!   .lock                                     store lock (see Concurrency)
//!   vmtest-images.lock                        curtin's image tools' lock (see Concurrency)
//!   .locks/                                   per-image and per-build locks, hash caches
//!   .partial/<release>-<arch>/                a build in progress (never listed as an image)
//! ```
//!
//! `<version>` is a MAAS-style serial: the UTC build date `YYYYMMDD`, with `.1`, `.2`, ...
//! appended when that day already has an image. Versions compare by their numeric parts.
//!
//! # Index format
//!
//! Each of our images carries `vmtest-image.json`, described in `index`.
//!
//! An image is *valid* when its index parses, names all three boot items, and every item
//! exists with the recorded size and sha256. A version directory without an index is an
//! interrupted build's leftover and never valid. Hashes are cached per file (size, mtime,
//! inode) in `.locks/<image>.verified`, so repeated look-ups hash a file only after it
//! changed; `vmtest images verify` always re-hashes.
//!
//! # Concurrency
//!
//! All locks are `flock(2)`: they vanish with the process that held them.
//! - `.lock`: shared while looking images up, exclusive (briefly) while publishing a new
//!   image or removing one.
//! - `.locks/<origin>-<release>-<arch>-<version>.lock`: shared for as long as an [`Image`]
//!   lives; prune only removes an image whose lock it can take exclusively.
//! - `.locks/build-<release>-<arch>.lock`: exclusive for a whole build, so two builders of
//!   the same release wait for each other instead of racing.
//! - IMAGE_DIR itself and `vmtest-images.lock`: curtin's own image tools' locks, taken as
//!   curtin's test runner takes them (shared) around every look-up, publish and prune and
//!   for as long as an [`Image`] lives, so curtin's image sync and this store can share one
//!   directory (`curtin_lock`). Always before `.lock`, so no two processes wait on each
//!   other in opposite order.
//!
//! # Rooms
//!
//! - this file: the store API (look-up, listing, pruning, verification);
//! - `index`: the `vmtest-image.json` format and reading our own version directories;
//! - `candidate`: what a scan finds (origin, files, problems), valid or not;
//! - `simplestreams`: images other tools mirrored into `streams/v1`;
//! - `hash_cache`: checking files against the index, with cached hashes;
//! - `version`: ordering MAAS-style serials;
//! - `publish`: build slots and moving a finished image in;
//! - `locking`: the store's `flock` locks;
//! - `curtin_lock`: sharing IMAGE_DIR with curtin's image tools (`vmtest-images.lock`);
//! - `paths`: path helpers (confined joins, listings of real directories);
//! - `remove`: removing a tree without following links or reaching past mount points.

mod candidate;
mod curtin_lock;
mod dates;
mod hash_cache;
mod index;
mod locking;
mod paths;
mod publish;
mod remove;
mod simplestreams;
mod version;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::lock::{FileLock, LockKind};
use candidate::{Candidate, sanitize};
use curtin_lock::CurtinHold;
pub use curtin_lock::{CURTIN_LOCK, parse_lock_timeout};

pub use candidate::{ImageOrigin, Problem};
pub(crate) use dates::now_secs;
pub use dates::{utc_date, utc_timestamp};
pub use hash_cache::sha256_file;
pub use index::{BOOT_ITEMS, INDEX_FILE, INDEX_FORMAT, ImageIndex, IndexItem};
pub use publish::BuildSlot;
use remove::{Mounts, remove_below};
pub use version::compare_versions;
use version::sort_newest_first;

/// Default store location (`IMAGE_DIR`).
pub const DEFAULT_IMAGE_DIR: &str = "/srv/images";
/// Beside `squashfs.manifest`: "package<TAB>version" of the .debs the image's local apt
/// repository keeps without installing them (`build::OFFLINE_DEBS` and what they need).
pub const LOCAL_DEBS_MANIFEST: &str = "local-debs.manifest";

const STORE_LOCK: &str = ".lock";
const LOCKS_DIR: &str = ".locks";
const PARTIAL_DIR: &str = ".partial";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no usable image for {release}/{arch} in {}: run `vmtest images build --release {release} --arch {arch}`{}",
        dir.display(),
        fmt_reasons(reasons)
    )]
    NoImage {
        release: String,
        arch: String,
        dir: PathBuf,
        reasons: Vec<String>,
    },
    #[error("{} is corrupt: sha256 {actual}, index says {expected}; run `vmtest images prune` and `vmtest images build`", path.display())]
    Corrupt {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "image store {} is not writable ({source}): set IMAGE_DIR to a writable directory, or fix its permissions",
        dir.display()
    )]
    NotWritable { dir: PathBuf, source: io::Error },
    #[error("image store {} is not a directory: set IMAGE_DIR to a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("{}: {why}", path.display())]
    BadIndex { path: PathBuf, why: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: String },
    #[error(
        "{} is held by curtin's image sync and was not released within {}s: wait for the sync to finish, or raise CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT (negative: wait for ever)",
        lock.display(),
        waited.as_secs_f64()
    )]
    CurtinBusy { lock: PathBuf, waited: Duration },
}

fn fmt_reasons(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" (found but unusable: {})", reasons.join("; "))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A valid image, ready to boot. Holds a shared lock on the image while it lives, so
/// `prune` cannot remove it from under a running test.
#[derive(Debug)]
pub struct Image {
    pub release: String,
    pub arch: String,
    pub version: String,
    pub kernel_release: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub squashfs: PathBuf,
    pub origin: ImageOrigin,
    lock: Option<FileLock>,
    /// The shared hold on curtin's `vmtest-images.lock`, so curtin's sync waits for us.
    _curtin: Option<Arc<CurtinHold>>,
}

impl Image {
    /// Whether this handle holds the image's shared lock (false only in a read-only store).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }
}

/// One entry of [`ImageStore::list`].
#[derive(Debug, Clone)]
pub struct ImageEntry {
    pub release: String,
    pub arch: String,
    pub version: String,
    pub kernel_release: String,
    pub origin: ImageOrigin,
    /// Total size of the items in bytes (as recorded).
    pub size: u64,
    /// `None` when valid.
    pub problem: Option<Problem>,
    /// Another process (or handle) holds the image's lock.
    pub in_use: bool,
}

impl ImageEntry {
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }
}

/// What [`ImageStore::prune`] did.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub removed: Vec<(String, String)>,
    pub in_use: Vec<String>,
    /// Not removed although due, with the reason (something mounted inside, a `.partial`
    /// that is not a real directory, ...).
    pub skipped: Vec<(String, String)>,
}

/// How hard to check files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Sizes always; sha256 unless the file is unchanged since it last hashed correctly.
    Cached,
    /// Re-hash everything.
    Full,
}

/// Handle on an image directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    /// How long to wait for curtin's image sync (`None`: for ever).
    lock_timeout: Option<Duration>,
}

impl ImageStore {
    /// Opens the store at `dir`. The directory need not exist yet (a build creates it);
    /// an existing non-directory is an error.
    pub fn open(dir: &Path) -> Result<ImageStore, StoreError> {
        match fs::metadata(dir) {
            Ok(m) if !m.is_dir() => return Err(StoreError::NotADirectory { dir: dir.into() }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dir)(e)),
        }
        Ok(ImageStore {
            dir: dir.to_path_buf(),
            lock_timeout: None,
        })
    }

    /// Opens `IMAGE_DIR` (default `/srv/images`).
    pub fn from_env() -> Result<ImageStore, StoreError> {
        let dir = std::env::var_os("IMAGE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_DIR));
        ImageStore::open(&dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest valid image for `release`/`arch`, locked (shared) for the handle's life.
    /// Newer images that fail their checks are skipped with a warning; if none is valid the
    /// error lists what was wrong with each.
    pub fn find_newest(&self, release: &str, arch: &str) -> Result<Image, StoreError> {
        let curtin = self.curtin_hold()?;
        let _store = self.store_lock(LockKind::Shared)?;
        let mut cands: Vec<Candidate> = self
            .candidates()?
            .into_iter()
            .filter(|c| c.release == release && c.arch == arch)
            .collect();
        sort_newest_first(&mut cands);
        let mut reasons = Vec::new();
        for c in cands {
            match self.check(&c, Verify::Cached) {
                Ok(()) => {
                    let lock = self.image_lock(&c, LockKind::Shared, true)?.flatten();
                    let item = |k: &str| c.items[k].path.clone();
                    return Ok(Image {
                        kernel: item("boot-kernel"),
                        initrd: item("boot-initrd"),
                        squashfs: item("squashfs"),
                        release: c.release,
                        arch: c.arch,
                        version: c.version,
                        kernel_release: c.kernel_release,
                        origin: c.origin,
                        lock,
                        _curtin: curtin,
                    });
                }
                Err(p) => {
                    tracing::warn!("skipping image {}: {p}", c.label());
                    reasons.push(format!("{}: {p}", c.label()));
                }
            }
        }
        Err(StoreError::NoImage {
            release: release.into(),
            arch: arch.into(),
            dir: self.dir.clone(),
            reasons,
        })
    }

    /// The recipe revision of the newest valid image built here when it is older than
    /// `current` (see [`crate::build::IMAGE_RECIPE`]); None when it is not, or when the
    /// image comes from a simplestreams tree, which is not ours to judge.
    pub fn outdated_recipe(
        &self,
        release: &str,
        arch: &str,
        current: u32,
    ) -> Result<Option<u32>, StoreError> {
        let img = self.find_newest(release, arch)?;
        let ImageOrigin::Vmtest { dir } = &img.origin else {
            return Ok(None);
        };
        let path = dir.join(INDEX_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        // find_newest has read this index already; a file that changed since reads as
        // the oldest recipe, so sync builds afresh.
        let recipe = serde_json::from_str::<ImageIndex>(&text).map_or(1, |i| i.recipe);
        Ok((recipe < current).then_some(recipe))
    }

    /// Which of `wanted` the newest valid image built here lacks, read from its
    /// `squashfs.manifest` and [`LOCAL_DEBS_MANIFEST`] ("package<TAB>version" per line). An image built by an older
    /// builder can miss a package the installer now relies on (grub-efi-amd64-bin for UEFI
    /// tests, say); `images sync` rebuilds then instead of letting a test fail deep inside
    /// an install. Images from a simplestreams tree are not ours to judge: empty.
    pub fn missing_packages(
        &self,
        release: &str,
        arch: &str,
        wanted: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let img = self.find_newest(release, arch)?;
        let ImageOrigin::Vmtest { dir } = &img.origin else {
            return Ok(Vec::new());
        };
        // What the root has installed, and the .debs its local repository keeps.
        let mut text = String::new();
        for name in ["squashfs.manifest", LOCAL_DEBS_MANIFEST] {
            let manifest = dir.join(name);
            match fs::read_to_string(&manifest) {
                Ok(t) => text.push_str(&t),
                // No record of what is inside: assume nothing, so sync builds a fresh one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&manifest)(e)),
            }
        }
        let have: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.split('\t').next())
            .map(|name| name.split(':').next().unwrap_or(name))
            .collect();
        Ok(wanted
            .iter()
            .filter(|p| !have.contains(p.as_str()))
            .cloned()
            .collect())
    }

    /// Whether a valid image for `release`/`arch` exists (sizes and cached hashes checked).
    pub fn has_valid(&self, release: &str, arch: &str) -> Result<bool, StoreError> {
        Ok(self
            .list(Verify::Cached)?
            .iter()
            .any(|e| e.release == release && e.arch == arch && e.is_valid()))
    }

    /// Every image in the store (ours and simplestreams ones), newest first per release,
    /// with the result of checking it.
    pub fn list(&self, verify: Verify) -> Result<Vec<ImageEntry>, StoreError> {
        let _curtin = self.curtin_hold()?;
        let _store = self.store_lock(LockKind::Shared)?;
        let mut cands = self.candidates()?;
        sort_newest_first(&mut cands);
        let mut out = Vec::new();
        for c in cands {
            let problem = self.check(&c, verify).err();
            let in_use = match self.image_lock(&c, LockKind::Exclusive, false) {
                Ok(Some(Some(_))) => false,
                Ok(Some(None)) => true,
                _ => false,
            };
            out.push(ImageEntry {
                size: c.items.values().map(|i| i.size).sum(),
                release: c.release,
                arch: c.arch,
                version: c.version,
                kernel_release: c.kernel_release,
                origin: c.origin,
                problem,
                in_use,
            });
        }
        Ok(out)
    }

    /// Keeps the newest `keep` valid images of each release/arch that `vmtest images build`
    /// made; removes older ones, broken ones (corrupt, incomplete) and leftovers of failed
    /// builds. Images in use are left alone. Simplestreams images belong to the tool that
    /// mirrored them and are never touched.
    pub fn prune(&self, keep: usize) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        if !self.dir.exists() {
            return Ok(report);
        }
        let _curtin = self.curtin_hold()?;
        let _store = self.store_lock(LockKind::Exclusive)?;
        let mut cands: Vec<Candidate> = self
            .candidates()?
            .into_iter()
            .filter(|c| matches!(c.origin, ImageOrigin::Vmtest { .. }))
            .collect();
        sort_newest_first(&mut cands);
        let mut kept_per: BTreeMap<(String, String), usize> = BTreeMap::new();
        for c in cands {
            let problem = self.check(&c, Verify::Cached).err();
            let n = kept_per
                .entry((c.release.clone(), c.arch.clone()))
                .or_default();
            let reason = match &problem {
                None if *n < keep => {
                    *n += 1;
                    report.kept.push(c.label());
                    continue;
                }
                None => format!("older than the newest {keep}"),
                Some(p) => p.to_string(),
            };
            let ImageOrigin::Vmtest { dir } = &c.origin else {
                continue;
            };
            match self.image_lock(&c, LockKind::Exclusive, false)? {
                Some(Some(lock)) => {
                    if self.prune_one(dir, Mounts::Refuse, c.label(), reason, &mut report)? {
                        let _ = fs::remove_file(self.verified_cache(&c.id()));
                        let _ = fs::remove_file(lock.path());
                    }
                }
                Some(None) => report.in_use.push(c.label()),
                None => {
                    self.prune_one(dir, Mounts::Refuse, c.label(), reason, &mut report)?;
                }
            }
        }
        self.prune_partial(&mut report)?;
        Ok(report)
    }

    /// Removes what dead builds left in `.partial/`: their directories (with whatever their
    /// mmdebstrap left mounted inside) and anything else that is not a build directory
    /// (stray files; links go as links, their targets stay).
    fn prune_partial(&self, report: &mut PruneReport) -> Result<(), StoreError> {
        let partial = self.dir.join(PARTIAL_DIR);
        match fs::symlink_metadata(&partial) {
            Err(_) => return Ok(()),
            Ok(m) if !m.is_dir() => {
                let why = "not a directory (a symbolic link?): the store does not follow it; \
                           make it a real directory"
                    .to_string();
                tracing::warn!("{}: {why}", partial.display());
                report.skipped.push((PARTIAL_DIR.into(), why));
                return Ok(());
            }
            Ok(_) => {}
        }
        let entries = fs::read_dir(&partial).map_err(io_err(&partial))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let label = format!("{PARTIAL_DIR}/{name}");
            // A build's own directory is the only thing a build makes here; the build lock
            // keeps a running build's (or one about to replace a stray file) away from us.
            let lock = self
                .locks_dir()
                .join(format!("build-{}.lock", sanitize(&name)));
            let Ok(Some(_held)) = FileLock::try_acquire(&lock, LockKind::Exclusive, true) else {
                continue;
            };
            let why = match e.file_type() {
                Ok(t) if t.is_dir() => "leftover of an unfinished build",
                Ok(t) if t.is_symlink() => "a symbolic link (removed the link, not its target)",
                _ => "not a build directory",
            };
            self.prune_one(&e.path(), Mounts::Detach, label, why.into(), report)?;
        }
        Ok(())
    }

    /// Removes `path` for prune and notes it in `report`: as removed (because `why`), or as
    /// skipped when removing it would be unsafe (something mounted inside, a link on the way).
    /// Whether it was removed.
    fn prune_one(
        &self,
        path: &Path,
        mounts: Mounts,
        label: String,
        why: String,
        report: &mut PruneReport,
    ) -> Result<bool, StoreError> {
        match self.remove(path, mounts) {
            Ok(()) => {
                report.removed.push((label, why));
                Ok(true)
            }
            Err(StoreError::Unsafe { path, why }) => {
                tracing::warn!("not removing {label}: {}: {why}", path.display());
                report
                    .skipped
                    .push((label, format!("{}: {why}", path.display())));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes `path`, which must lie inside the store, following no link below the store
    /// directory (see `remove`).
    fn remove(&self, path: &Path, mounts: Mounts) -> Result<(), StoreError> {
        let rel = path
            .strip_prefix(&self.dir)
            .map_err(|_| StoreError::Unsafe {
                path: path.to_path_buf(),
                why: format!(
                    "is outside the image store {}; not removing",
                    self.dir.display()
                ),
            })?;
        remove_below(&self.dir, rel, mounts)
    }

    /// Re-hashes every image; returns the entries (problems named in each).
    pub fn verify(&self) -> Result<Vec<ImageEntry>, StoreError> {
        self.list(Verify::Full)
    }

    /// Creates the store directories and proves the store is writable.
    pub fn ensure_writable(&self) -> Result<(), StoreError> {
        let not_writable = |source| StoreError::NotWritable {
            dir: self.dir.clone(),
            source,
        };
        fs::create_dir_all(self.locks_dir()).map_err(not_writable)?;
        fs::create_dir_all(self.dir.join(PARTIAL_DIR)).map_err(not_writable)?;
        let probe = self.dir.join(format!(".write-test-{}", std::process::id()));
        fs::write(&probe, b"").map_err(not_writable)?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    fn locks_dir(&self) -> PathBuf {
        self.dir.join(LOCKS_DIR)
    }

    fn verified_cache(&self, image_id: &str) -> PathBuf {
        self.locks_dir().join(format!("{image_id}.verified"))
    }
}
