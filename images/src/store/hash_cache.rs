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
pub(super) struct CacheEntry {
    pub(super) size: u64,
    pub(super) mtime_ns: i128,
    pub(super) ino: u64,
    pub(super) sha256: String,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
