//! What a scan of the store finds: each image-like thing with its origin, its files and,
//! when it cannot be used, why. Valid or not, everything the store lists is a [`Candidate`].

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::index::{INDEX_FILE, load_vmtest};
use super::paths::{file_name, is_dir, read_dirs};
use super::{ImageStore, StoreError};

/// Where an image came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOrigin {
    /// Built by `vmtest images build`; the directory holds `vmtest-image.json`.
    Vmtest { dir: PathBuf },
    /// Listed in a simplestreams products file placed in IMAGE_DIR by another tool.
    Simplestreams { products: PathBuf, product: String },
}

impl ImageOrigin {
    pub(super) fn tag(&self) -> &'static str {
        match self {
            ImageOrigin::Vmtest { .. } => "vmtest",
            ImageOrigin::Simplestreams { .. } => "streams",
        }
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

#[derive(Debug, Clone)]
pub(super) struct ItemRef {
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) release: String,
    pub(super) arch: String,
    pub(super) version: String,
    pub(super) kernel_release: String,
    pub(super) origin: ImageOrigin,
    pub(super) items: BTreeMap<String, ItemRef>,
    /// Set when the index itself is unusable.
    pub(super) broken: Option<Problem>,
}

impl Candidate {
    pub(super) fn id(&self) -> String {
        image_id(self.origin.tag(), &self.release, &self.arch, &self.version)
    }
    pub(super) fn label(&self) -> String {
        format!("{}/{}/{}", self.release, self.arch, self.version)
    }
}

/// The name of an image's lock and hash cache in `.locks/`.
pub(super) fn image_id(origin: &str, release: &str, arch: &str, version: &str) -> String {
    sanitize(&format!("{origin}-{release}-{arch}-{version}"))
}

pub(super) fn sanitize(s: &str) -> String {
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

impl ImageStore {
    /// Everything that looks like an image, valid or not.
    pub(super) fn candidates(&self) -> Result<Vec<Candidate>, StoreError> {
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
}
