//! Path helpers: joins that stay inside a directory, and listings of real (not linked)
//! directories.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// `base/rel` if `rel` is relative and stays below `base`.
pub(super) fn safe_join(base: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Some(base.join(p))
    } else {
        None
    }
}

/// A directory itself, not a link to one.
pub(super) fn is_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

pub(super) fn read_dirs(p: &Path) -> Vec<PathBuf> {
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

pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_rejects_escapes() {
        let b = Path::new("/srv/images");
        assert!(safe_join(b, "a/b").is_some());
        assert!(safe_join(b, "../x").is_none());
        assert!(safe_join(b, "/etc/passwd").is_none());
        assert!(safe_join(b, "a/../../x").is_none());
    }
}
