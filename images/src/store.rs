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
//!     vmtest-image.json                       the image index (below); written last
//!     squashfs                                root filesystem (squashfs, zstd)
//!     squashfs.manifest                       "package<TAB>version" of every package
//!     <kernel_release>/<flavor>/boot-kernel   the kernel (bzImage)
//!     <kernel_release>/<flavor>/boot-initrd   the initramfs (gzip'd cpio, see `initramfs`)
//!   streams/v1/index.json, streams/v1/*.json  simplestreams trees written by other tools
//!                                             (read only; their items are paths in IMAGE_DIR)
//!   .lock                                     store lock (see Concurrency)
//!   .locks/                                   per-image and per-build locks, hash caches
//!   .partial/<release>-<arch>/                a build in progress (never listed as an image)
//! ```
//!
//! `<version>` is a MAAS-style serial: the UTC build date `YYYYMMDD`, with `.1`, `.2`, ...
//! appended when that day already has an image. Versions compare by their numeric parts.
//!
//! # Index format (`vmtest-image.json`, format `vmtest-image/1`)
//!
//! ```json
//! {
//!   "format": "vmtest-image/1",
//!   "os": "debian",
//!   "release": "bookworm",
//!   "arch": "amd64",
//!   "version": "20261124",
//!   "flavor": "cloud",
//!   "kernel_package": "linux-image-cloud-amd64",
//!   "kernel_release": "6.1.0-56-cloud-amd64",
//!   "created": "2026-11-24T23:41:07Z",
//!   "source_date_epoch": 1764028800,
//!   "mirrors": [],
//!   "builder": "vmtest images build 0.1.0",
//!   "items": {
//!     "boot-kernel": {"path": "6.1.0-56-cloud-amd64/cloud/boot-kernel", "size": 7456, "sha256": "<64 hex>"},
//!     "boot-initrd": {"path": "6.1.0-56-cloud-amd64/cloud/boot-initrd", "size": 1234, "sha256": "..."},
//!     "squashfs":    {"path": "squashfs", "size": 190000000, "sha256": "..."},
//!     "manifest":    {"path": "squashfs.manifest", "size": 5000, "sha256": "..."}
//!   }
//! }
//! ```
//!
//! Item paths are relative to the version directory and may not leave it. `items` must hold
//! `boot-kernel`, `boot-initrd` and `squashfs` (the ftype names MAAS uses); other items are
//! checked the same way. `mirrors` is empty when mmdebstrap's default (deb.debian.org with
//! updates and security) was used. `source_date_epoch` is the `SOURCE_DATE_EPOCH` the build
//! used: building again with it and the same package versions gives the same files.
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

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::lock::{FileLock, LockKind};

/// Name of the per-image index file.
pub const INDEX_FILE: &str = "vmtest-image.json";
/// Value of the index's `format` field.
pub const INDEX_FORMAT: &str = "vmtest-image/1";
/// Default store location (`IMAGE_DIR`).
pub const DEFAULT_IMAGE_DIR: &str = "/srv/images";
/// The items every image needs.
pub const BOOT_ITEMS: [&str; 3] = ["boot-kernel", "boot-initrd", "squashfs"];

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

/// One file of an image, as recorded in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexItem {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The contents of `vmtest-image.json` (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageIndex {
    pub format: String,
    pub os: String,
    pub release: String,
    pub arch: String,
    pub version: String,
    pub flavor: String,
    pub kernel_package: String,
    pub kernel_release: String,
    pub created: String,
    pub source_date_epoch: u64,
    #[serde(default)]
    pub mirrors: Vec<String>,
    pub builder: String,
    pub items: BTreeMap<String, IndexItem>,
}

/// Where an image came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOrigin {
    /// Built by `vmtest images build`; the directory holds `vmtest-image.json`.
    Vmtest { dir: PathBuf },
    /// Listed in a simplestreams products file placed in IMAGE_DIR by another tool.
    Simplestreams { products: PathBuf, product: String },
}

impl ImageOrigin {
    fn tag(&self) -> &'static str {
        match self {
            ImageOrigin::Vmtest { .. } => "vmtest",
            ImageOrigin::Simplestreams { .. } => "streams",
        }
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
}

impl Image {
    /// Whether this handle holds the image's shared lock (false only in a read-only store).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }
}

/// Why an image is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Incomplete {
        path: PathBuf,
        why: String,
    },
    Missing {
        item: String,
        path: PathBuf,
    },
    WrongSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    Corrupt {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Incomplete { path, why } => write!(f, "{}: {why}", path.display()),
            Problem::Missing { item, path } => write!(f, "{item} missing: {}", path.display()),
            Problem::WrongSize {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{} has {actual} bytes, index says {expected} (truncated or replaced)",
                path.display()
            ),
            Problem::Corrupt {
                path,
                expected,
                actual,
            } => write!(
                f,
                "{} is corrupt: sha256 {actual}, index says {expected}",
                path.display()
            ),
        }
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
}

/// How hard to check files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Sizes always; sha256 unless the file is unchanged since it last hashed correctly.
    Cached,
    /// Re-hash everything.
    Full,
}

#[derive(Debug, Clone)]
struct ItemRef {
    path: PathBuf,
    size: u64,
    sha256: Option<String>,
}

#[derive(Debug, Clone)]
struct Candidate {
    release: String,
    arch: String,
    version: String,
    kernel_release: String,
    origin: ImageOrigin,
    items: BTreeMap<String, ItemRef>,
    /// Set when the index itself is unusable.
    broken: Option<Problem>,
}

impl Candidate {
    fn id(&self) -> String {
        sanitize(&format!(
            "{}-{}-{}-{}",
            self.origin.tag(),
            self.release,
            self.arch,
            self.version
        ))
    }
    fn label(&self) -> String {
        format!("{}/{}/{}", self.release, self.arch, self.version)
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Handle on an image directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
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

    /// Which of `wanted` the newest valid image built here lacks, read from its
    /// `squashfs.manifest` ("package<TAB>version" per line). An image built by an older
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
        let manifest = dir.join("squashfs.manifest");
        let text = match fs::read_to_string(&manifest) {
            Ok(t) => t,
            // No record of what is inside: assume nothing, so sync builds a fresh one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(&manifest)(e)),
        };
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
                    remove_tree(dir)?;
                    let _ = fs::remove_file(self.verified_cache(&c));
                    let _ = fs::remove_file(lock.path());
                    report.removed.push((c.label(), reason));
                }
                Some(None) => report.in_use.push(c.label()),
                None => {
                    remove_tree(dir)?;
                    report.removed.push((c.label(), reason));
                }
            }
        }
        // Leftovers of builds that are not running any more.
        let partial = self.dir.join(PARTIAL_DIR);
        if let Ok(rd) = fs::read_dir(&partial) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let lock = self.locks_dir().join(format!("build-{name}.lock"));
                if let Ok(Some(_held)) = FileLock::try_acquire(&lock, LockKind::Exclusive, true) {
                    remove_tree(&e.path())?;
                    report.removed.push((
                        format!(".partial/{name}"),
                        "leftover of an unfinished build".into(),
                    ));
                }
            }
        }
        Ok(report)
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

    /// Starts a build of `release`/`arch`: takes the build lock (waiting if another build of
    /// the same release runs) and returns the staging directory to build in.
    pub fn begin_build(&self, release: &str, arch: &str) -> Result<BuildSlot, StoreError> {
        self.ensure_writable()?;
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
        let staging = self.dir.join(PARTIAL_DIR).join(&name);
        fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        Ok(BuildSlot {
            store: self.clone(),
            release: release.into(),
            arch: arch.into(),
            staging,
            _lock: lock,
        })
    }

    /// Try-lock of a build: `None` if a build of `release`/`arch` is running right now.
    pub fn build_running(&self, release: &str, arch: &str) -> bool {
        let name = sanitize(&format!("{release}-{arch}"));
        let lock_path = self.locks_dir().join(format!("build-{name}.lock"));
        matches!(
            FileLock::try_acquire(&lock_path, LockKind::Exclusive, false),
            Ok(None)
        )
    }

    fn locks_dir(&self) -> PathBuf {
        self.dir.join(LOCKS_DIR)
    }

    fn verified_cache(&self, c: &Candidate) -> PathBuf {
        self.locks_dir().join(format!("{}.verified", c.id()))
    }

    /// The store lock, or `None` where the store cannot hold one (missing or read-only
    /// store: nobody can change it then either).
    fn store_lock(&self, kind: LockKind) -> Result<Option<FileLock>, StoreError> {
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
    fn image_lock(
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

    /// Everything that looks like an image, valid or not.
    fn candidates(&self) -> Result<Vec<Candidate>, StoreError> {
        let mut out = Vec::new();
        let Ok(releases) = fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for rel in releases.flatten() {
            let rel_name = rel.file_name().to_string_lossy().into_owned();
            if rel_name.starts_with('.') || rel_name == "streams" || !is_dir(&rel.path()) {
                continue;
            }
            for arch in read_dirs(&rel.path()) {
                let arch_name = file_name(&arch);
                for ver in read_dirs(&arch) {
                    let index = ver.join(INDEX_FILE);
                    // A directory without our index is either a simplestreams image (found
                    // through streams/v1) or not an image; a build only ever moves in a
                    // directory whose index is already written.
                    if index.exists() {
                        out.push(load_vmtest(
                            &index,
                            &ver,
                            &rel_name,
                            &arch_name,
                            &file_name(&ver),
                        ));
                    }
                }
            }
        }
        out.extend(self.simplestreams()?);
        Ok(out)
    }

    /// Images described by simplestreams products files under `streams/v1`.
    fn simplestreams(&self) -> Result<Vec<Candidate>, StoreError> {
        let streams = self.dir.join("streams/v1");
        let mut files = Vec::new();
        let index = streams.join("index.json");
        if let Ok(text) = fs::read_to_string(&index) {
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) => {
                    if let Some(idx) = v.get("index").and_then(|i| i.as_object()) {
                        for entry in idx.values() {
                            if let Some(p) = entry.get("path").and_then(|p| p.as_str())
                                && let Some(p) = safe_join(&self.dir, p)
                            {
                                files.push(p);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("{}: not valid JSON ({e}); ignored", index.display()),
            }
        } else if let Ok(rd) = fs::read_dir(&streams) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        files.dedup();
        let mut out = Vec::new();
        for f in files {
            let Ok(text) = fs::read_to_string(&f) else {
                continue;
            };
            let v: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("{}: not valid JSON ({e}); ignored", f.display());
                    continue;
                }
            };
            out.extend(parse_products(&self.dir, &f, &v));
        }
        Ok(out)
    }

    /// Checks one candidate's files against its index.
    fn check(&self, c: &Candidate, verify: Verify) -> Result<(), Problem> {
        if let Some(p) = &c.broken {
            return Err(p.clone());
        }
        let cache_path = self.verified_cache(c);
        let mut cache: BTreeMap<String, CacheEntry> = match verify {
            Verify::Cached => fs::read_to_string(&cache_path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            Verify::Full => BTreeMap::new(),
        };
        let mut changed = false;
        for (name, item) in &c.items {
            let meta = match fs::metadata(&item.path) {
                Ok(m) if m.is_file() => m,
                _ => {
                    return Err(Problem::Missing {
                        item: name.clone(),
                        path: item.path.clone(),
                    });
                }
            };
            if meta.len() != item.size {
                return Err(Problem::WrongSize {
                    path: item.path.clone(),
                    expected: item.size,
                    actual: meta.len(),
                });
            }
            let Some(expected) = &item.sha256 else {
                continue;
            };
            let stamp = CacheEntry {
                size: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                ino: meta.ino(),
                sha256: expected.to_ascii_lowercase(),
            };
            let key = item.path.to_string_lossy().into_owned();
            if cache.get(&key) == Some(&stamp) {
                continue;
            }
            let actual = sha256_file(&item.path).map_err(|_| Problem::Missing {
                item: name.clone(),
                path: item.path.clone(),
            })?;
            if actual != stamp.sha256 {
                return Err(Problem::Corrupt {
                    path: item.path.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
            cache.insert(key, stamp);
            changed = true;
        }
        if changed && let Ok(text) = serde_json::to_string(&cache) {
            let tmp = cache_path.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, &cache_path).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    sha256: String,
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
        let _store = self.store.store_lock(LockKind::Exclusive)?;
        let arch_dir = self.store.dir.join(&self.release).join(&self.arch);
        fs::create_dir_all(&arch_dir).map_err(io_err(&arch_dir))?;
        // The new version must sort after every version of the same day, also after pruning
        // removed some (a free but lower name would make the new image look older).
        let today = utc_date(now_secs());
        let same_day: Vec<String> = fs::read_dir(&arch_dir)
            .map_err(io_err(&arch_dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|v| v.starts_with(&today))
            .collect();
        let mut version = today.clone();
        let mut n = 0;
        while same_day
            .iter()
            .any(|v| compare_versions(v, &version) != Ordering::Less)
        {
            n += 1;
            version = format!("{today}.{n}");
        }
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
        let mut cache = BTreeMap::new();
        for item in index.items.values() {
            let p = dest.join(&item.path);
            if let Ok(meta) = fs::metadata(&p) {
                cache.insert(
                    p.to_string_lossy().into_owned(),
                    CacheEntry {
                        size: meta.len(),
                        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                        ino: meta.ino(),
                        sha256: item.sha256.to_ascii_lowercase(),
                    },
                );
            }
        }
        let id = sanitize(&format!("vmtest-{}-{}-{version}", self.release, self.arch));
        if let Ok(text) = serde_json::to_string(&cache) {
            let _ = fs::write(self.store.locks_dir().join(format!("{id}.verified")), text);
        }
        drop(_store);
        // The build is complete: its scratch space (the root tree, logs) goes.
        remove_tree(&self.staging)?;
        Ok(dest)
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

fn load_vmtest(index: &Path, dir: &Path, release: &str, arch: &str, version: &str) -> Candidate {
    let mut c = Candidate {
        release: release.into(),
        arch: arch.into(),
        version: version.into(),
        kernel_release: String::new(),
        origin: ImageOrigin::Vmtest {
            dir: dir.to_path_buf(),
        },
        items: BTreeMap::new(),
        broken: None,
    };
    let bad = |why: String| {
        Some(Problem::Incomplete {
            path: index.to_path_buf(),
            why,
        })
    };
    let parsed: ImageIndex = match fs::read_to_string(index)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(i) => i,
        Err(e) => {
            c.broken = bad(format!("unreadable index: {e}"));
            return c;
        }
    };
    if parsed.format != INDEX_FORMAT {
        c.broken = bad(format!(
            "unknown format {:?} (want {INDEX_FORMAT})",
            parsed.format
        ));
        return c;
    }
    if (
        parsed.release.as_str(),
        parsed.arch.as_str(),
        parsed.version.as_str(),
    ) != (release, arch, version)
    {
        c.broken = bad(format!(
            "index is for {}/{}/{} but sits in {release}/{arch}/{version}",
            parsed.release, parsed.arch, parsed.version
        ));
        return c;
    }
    c.kernel_release = parsed.kernel_release.clone();
    for (name, item) in &parsed.items {
        let Some(path) = safe_join(dir, &item.path) else {
            c.broken = bad(format!(
                "item {name} path {:?} leaves the image directory",
                item.path
            ));
            return c;
        };
        if !is_hex_sha256(&item.sha256) {
            c.broken = bad(format!("item {name} has no valid sha256"));
            return c;
        }
        c.items.insert(
            name.clone(),
            ItemRef {
                path,
                size: item.size,
                sha256: Some(item.sha256.clone()),
            },
        );
    }
    if let Some(m) = BOOT_ITEMS.iter().find(|k| !c.items.contains_key(**k)) {
        c.broken = bad(format!("index lists no {m}"));
    }
    c
}

/// Reads a simplestreams `products:1.0` document. Fields set at product or version level
/// apply to the items below them (simplestreams' inheritance); the item `ftype` says which
/// boot file it is.
fn parse_products(root: &Path, file: &Path, v: &serde_json::Value) -> Vec<Candidate> {
    let mut out = Vec::new();
    let Some(products) = v.get("products").and_then(|p| p.as_object()) else {
        return out;
    };
    let s = |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(String::from);
    for (pname, product) in products {
        let Some(versions) = product.get("versions").and_then(|x| x.as_object()) else {
            continue;
        };
        for (vname, ver) in versions {
            let get = |k: &str| s(ver, k).or_else(|| s(product, k)).or_else(|| s(v, k));
            let (Some(release), Some(arch)) = (get("release"), get("arch")) else {
                continue;
            };
            let kernel_release = get("kernel_release")
                .or_else(|| get("subarch"))
                .or_else(|| get("kflavor"))
                .unwrap_or_default();
            let mut c = Candidate {
                release,
                arch,
                version: vname.clone(),
                kernel_release,
                origin: ImageOrigin::Simplestreams {
                    products: file.to_path_buf(),
                    product: pname.clone(),
                },
                items: BTreeMap::new(),
                broken: None,
            };
            let Some(items) = ver.get("items").and_then(|x| x.as_object()) else {
                continue;
            };
            for (iname, item) in items {
                let ftype = s(item, "ftype").unwrap_or_else(|| iname.clone());
                if !BOOT_ITEMS.contains(&ftype.as_str()) || c.items.contains_key(&ftype) {
                    continue;
                }
                let Some(p) = s(item, "path") else { continue };
                let Some(path) = safe_join(root, &p) else {
                    c.broken = Some(Problem::Incomplete {
                        path: file.to_path_buf(),
                        why: format!("{pname} {vname} {iname}: path {p:?} leaves IMAGE_DIR"),
                    });
                    continue;
                };
                let size = item.get("size").and_then(|x| x.as_u64());
                let sha256 = s(item, "sha256").filter(|h| is_hex_sha256(h));
                let size = match size {
                    Some(n) => n,
                    None => fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX),
                };
                c.items.insert(ftype, ItemRef { path, size, sha256 });
            }
            if c.broken.is_none()
                && let Some(m) = BOOT_ITEMS.iter().find(|k| !c.items.contains_key(**k))
            {
                // Products without all boot files (e.g. root-tgz only) are not boot images.
                let _ = m;
                continue;
            }
            out.push(c);
        }
    }
    out
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `base/rel` if `rel` is relative and stays below `base`.
fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Some(base.join(p))
    } else {
        None
    }
}

fn is_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

fn read_dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| is_dir(p) && !file_name(p).starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sort_newest_first(cands: &mut [Candidate]) {
    cands.sort_by(|a, b| {
        (a.release.as_str(), a.arch.as_str())
            .cmp(&(b.release.as_str(), b.arch.as_str()))
            .then_with(|| compare_versions(&b.version, &a.version))
            // Prefer our own image when a simplestreams one has the same serial.
            .then_with(|| a.origin.tag().cmp(b.origin.tag()).reverse())
    });
}

/// Orders MAAS-style serials (`20240101`, `20240101.1`, `20240101.10`): runs of digits
/// compare as numbers, everything else as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<Result<u128, &str>> {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let digit = bytes[i].is_ascii_digit();
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() == digit {
                i += 1;
            }
            let t = &s[start..i];
            out.push(if digit {
                t.parse::<u128>().map_err(|_| t)
            } else {
                Err(t)
            });
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            (Ok(x), Ok(y)) => x.cmp(y),
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            (Err(x), Err(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// sha256 of a file as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes a directory tree, first detaching anything mounted below it (an interrupted
/// mmdebstrap can leave /proc, /sys or /dev mounted in its root); refuses to remove a tree
/// with mounts it could not detach.
pub fn remove_tree(path: &Path) -> Result<(), StoreError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let canon = fs::canonicalize(path).map_err(io_err(path))?;
    let mut mounts = mounts_below(&canon);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in &mounts {
        let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).map_err(|_| {
            StoreError::Unsafe {
                path: m.clone(),
                why: "mount point with NUL byte".into(),
            }
        })?;
        // SAFETY: umount2 with a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(StoreError::Unsafe {
                path: m.clone(),
                why: format!(
                    "still mounted inside {} and cannot be unmounted ({e}); unmount it by hand before removing",
                    path.display()
                ),
            });
        }
    }
    if !mounts_below(&canon).is_empty() {
        return Err(StoreError::Unsafe {
            path: canon,
            why: "has mounts below it; not removing".into(),
        });
    }
    fs::remove_dir_all(&canon).map_err(io_err(&canon))
}

fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn unescape_mount(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYYMMDD` (UTC) of a Unix time.
pub fn utc_date(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}{m:02}{d:02}")
}

/// RFC 3339 UTC time stamp of a Unix time.
pub fn utc_timestamp(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let mut v = vec![
            "20240101.10",
            "20240101",
            "20231231",
            "20240101.2",
            "20240102",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "20231231",
                "20240101",
                "20240101.2",
                "20240101.10",
                "20240102"
            ]
        );
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "19700101");
        assert_eq!(utc_date(1_709_164_800), "20240229");
        assert_eq!(utc_timestamp(1_709_164_800 + 3_723), "2024-02-29T01:02:03Z");
    }

    #[test]
    fn safe_join_rejects_escapes() {
        let b = Path::new("/srv/images");
        assert!(safe_join(b, "a/b").is_some());
        assert!(safe_join(b, "../x").is_none());
        assert!(safe_join(b, "/etc/passwd").is_none());
        assert!(safe_join(b, "a/../../x").is_none());
    }

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), PathBuf::from("/a b"));
    }
}
