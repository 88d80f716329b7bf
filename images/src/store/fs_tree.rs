//! Path and tree helpers: joins that stay inside a directory, directory listings, and
//! removing a tree with whatever is mounted inside it.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{StoreError, io_err};

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

    #[test]
    fn mount_paths_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), PathBuf::from("/a b"));
    }
}
