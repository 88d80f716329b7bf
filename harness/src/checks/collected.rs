//! The collected files as the checks read them: each file of collect/ read once, bounded,
//! and each parsed artifact (the lsblk tree, the RAID arrays, ...) parsed once and shared
//! by every check that needs it. What the guest wrote is untrusted: a file is read only
//! up to [`MAX_FILE`], never through a link, a directory is listed only up to
//! [`MAX_ENTRIES`] names, and a parser's problem is a typed [`DataError`] naming the file,
//! which the checks that needed it show as their evidence.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// Most bytes of one collected file the checks read (lsblk's JSON of a few hundred
/// devices is well under a MiB).
pub const MAX_FILE: u64 = 8 << 20;
/// Most entries of one collected directory the checks look at.
pub const MAX_ENTRIES: usize = 4096;

/// Why a collected file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("{file}: not collected")]
    Missing { file: String },
    #[error("{file}: {size} bytes, more than the {limit} the checks read")]
    TooBig { file: String, size: u64, limit: u64 },
    #[error("{file}: cannot be read ({why})")]
    Unreadable { file: String, why: String },
    #[error("{file}: {why}")]
    Malformed { file: String, why: String },
}

impl DataError {
    pub fn malformed(file: &str, why: impl std::fmt::Display) -> DataError {
        DataError::Malformed {
            file: file.to_string(),
            why: why.to_string(),
        }
    }
}

/// Something parsed from collected files, cached per [`Collected`].
pub trait Artifact: Sized + 'static {
    fn load(c: &Collected) -> Result<Self, DataError>;
}

type Cached = Rc<dyn Any>;

/// The collect/ directory of one test run, read lazily.
pub struct Collected {
    dir: PathBuf,
    texts: RefCell<HashMap<String, Result<Rc<str>, DataError>>>,
    parsed: RefCell<HashMap<TypeId, Cached>>,
}

impl Collected {
    pub fn new(dir: &Path) -> Collected {
        Collected {
            dir: dir.to_path_buf(),
            texts: RefCell::default(),
            parsed: RefCell::default(),
        }
    }

    /// The collect/ directory, for domains that read their own files with their own caps
    /// (the network facts: `checks::network::facts`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `file` (relative to collect/) as text, invalid UTF-8 replaced.
    pub fn text(&self, file: &str) -> Result<Rc<str>, DataError> {
        if let Some(t) = self.texts.borrow().get(file) {
            return t.clone();
        }
        let t = read_bounded(&self.dir, file).map(Rc::from);
        self.texts.borrow_mut().insert(file.to_string(), t.clone());
        t
    }

    /// Whether `file` was collected (a plain file).
    pub fn has(&self, file: &str) -> bool {
        safe(file)
            .and_then(|rel| std::fs::symlink_metadata(self.dir.join(rel)).ok())
            .is_some_and(|m| m.is_file())
    }

    /// The plain files directly in `dir` (relative to collect/), sorted, at most
    /// [`MAX_ENTRIES`]; none when it was not collected.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let Some(rel) = safe(dir) else {
            return Vec::new();
        };
        let Ok(rd) = std::fs::read_dir(self.dir.join(rel)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = rd
            .take(MAX_ENTRIES)
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The artifact `A`, parsed on first use.
    pub fn get<A: Artifact>(&self) -> Result<Rc<A>, DataError> {
        let key = TypeId::of::<A>();
        if let Some(c) = self.parsed.borrow().get(&key) {
            return c
                .downcast_ref::<Result<Rc<A>, DataError>>()
                .expect("cached by type")
                .clone();
        }
        let r: Result<Rc<A>, DataError> = A::load(self).map(Rc::new);
        self.parsed.borrow_mut().insert(key, Rc::new(r.clone()));
        r
    }
}

/// `p` as a path below collect/, or None for anything that could leave it.
fn safe(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| path.to_path_buf())
}

fn read_bounded(dir: &Path, file: &str) -> Result<String, DataError> {
    let rel = safe(file).ok_or_else(|| DataError::Unreadable {
        file: file.to_string(),
        why: "not a plain path below collect/".into(),
    })?;
    let path = dir.join(rel);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::Missing {
                file: file.to_string(),
            });
        }
        Err(e) => {
            return Err(DataError::Unreadable {
                file: file.to_string(),
                why: e.to_string(),
            });
        }
    };
    if !meta.is_file() {
        return Err(DataError::Unreadable {
            file: file.to_string(),
            why: "not a plain file".into(),
        });
    }
    if meta.len() > MAX_FILE {
        return Err(DataError::TooBig {
            file: file.to_string(),
            size: meta.len(),
            limit: MAX_FILE,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_FILE).read_to_end(&mut bytes))
        .map_err(|e| DataError::Unreadable {
            file: file.to_string(),
            why: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines(usize);
    impl Artifact for Lines {
        fn load(c: &Collected) -> Result<Self, DataError> {
            Ok(Lines(c.text("a")?.lines().count()))
        }
    }

    #[test]
    fn reads_bounded_cached_and_never_leaves_collect() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "1\n2\n").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let c = Collected::new(d.path());
        assert_eq!(&*c.text("a").unwrap(), "1\n2\n");
        assert_eq!(c.get::<Lines>().unwrap().0, 2);
        std::fs::write(d.path().join("a"), "changed").unwrap();
        assert_eq!(c.get::<Lines>().unwrap().0, 2, "parsed once");
        assert!(matches!(c.text("nope"), Err(DataError::Missing { .. })));
        assert!(matches!(c.text("link"), Err(DataError::Unreadable { .. })));
        assert!(matches!(c.text("../a"), Err(DataError::Unreadable { .. })));
        assert!(matches!(
            c.text("/etc/passwd"),
            Err(DataError::Unreadable { .. })
        ));
        assert_eq!(c.list("sub"), vec!["x.json"]);
        assert!(c.list("..").is_empty());
        assert!(c.has("a") && !c.has("link") && !c.has("sub"));
        let big = std::fs::File::create(d.path().join("big")).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        assert!(matches!(c.text("big"), Err(DataError::TooBig { .. })));
    }
}
