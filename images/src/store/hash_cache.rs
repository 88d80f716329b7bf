//! Checking an image's files against its index: sizes always, sha256 unless the file is
//! unchanged (size, mtime, inode) since it last hashed correctly.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::candidate::{Candidate, Problem};
use super::{ImageStore, Verify};

impl ImageStore {
    /// Checks one candidate's files against its index.
    pub(super) fn check(&self, c: &Candidate, verify: Verify) -> Result<(), Problem> {
        if let Some(p) = &c.broken {
            return Err(p.clone());
        }
        let cache_path = self.verified_cache(&c.id());
        let mut cache = match verify {
            Verify::Cached => HashCache::load(&cache_path),
            Verify::Full => HashCache::default(),
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
            if cache.is_fresh(&item.path, &meta, expected) {
                continue;
            }
            let actual = sha256_file(&item.path).map_err(|_| Problem::Missing {
                item: name.clone(),
                path: item.path.clone(),
            })?;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(Problem::Corrupt {
                    path: item.path.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
            cache.record(&item.path, &meta, expected);
            changed = true;
        }
        if changed {
            cache.save(&cache_path);
        }
        Ok(())
    }
}

/// What each file of an image looked like when it last hashed correctly, keyed by path
/// (`.locks/<image>.verified`). A file whose size, mtime and inode are unchanged is not
/// hashed again.
#[derive(Debug, Default)]
pub(super) struct HashCache {
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    sha256: String,
}

impl CacheEntry {
    fn stamp(meta: &fs::Metadata, sha256: &str) -> CacheEntry {
        CacheEntry {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ino: meta.ino(),
            sha256: sha256.to_ascii_lowercase(),
        }
    }
}

impl HashCache {
    /// The cache at `path`; empty when missing or unreadable (everything is hashed then).
    pub(super) fn load(path: &Path) -> HashCache {
        let entries = fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        HashCache { entries }
    }

    /// Whether `file` (now `meta`) is unchanged since it hashed to `sha256`.
    pub(super) fn is_fresh(&self, file: &Path, meta: &fs::Metadata, sha256: &str) -> bool {
        self.entries.get(&*file.to_string_lossy()) == Some(&CacheEntry::stamp(meta, sha256))
    }

    /// Notes that `file` (now `meta`) hashes to `sha256`.
    pub(super) fn record(&mut self, file: &Path, meta: &fs::Metadata, sha256: &str) {
        self.entries.insert(
            file.to_string_lossy().into_owned(),
            CacheEntry::stamp(meta, sha256),
        );
    }

    /// Writes the cache (through a temporary file, so readers never see half of it). A
    /// cache that cannot be written only costs a re-hash later.
    pub(super) fn save(&self, path: &Path) {
        let Ok(text) = serde_json::to_string(&self.entries) else {
            return;
        };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if fs::write(&tmp, text).is_err() || fs::rename(&tmp, path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
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
    Ok(hex::encode(h.finalize()))
}
