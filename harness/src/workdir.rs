//! A test's work dir, in curtin's layout: `<TOPDIR>/<test>/{install,boot,disks,logs,collect}`.

use std::path::{Path, PathBuf};

use crate::settings::KeepSet;

#[derive(Debug, Clone)]
pub struct WorkDir {
    pub root: PathBuf,
}

impl WorkDir {
    pub const PARTS: [&'static str; 5] = ["install", "boot", "disks", "logs", "collect"];

    /// Creates the work dir of one test under `topdir`; it must not exist yet. The name
    /// must be one safe path component ([`crate::config::check_test_name`]): a config's
    /// name is checked when it loads, and again here, where it becomes a path.
    pub fn create(topdir: &Path, test: &str) -> std::io::Result<WorkDir> {
        crate::config::check_test_name(test)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let root = topdir.join(test);
        std::fs::create_dir(&root)?;
        for p in Self::PARTS {
            std::fs::create_dir(root.join(p))?;
        }
        Ok(WorkDir { root })
    }

    /// An existing work dir (REUSE_TOPDIR).
    pub fn existing(topdir: &Path, test: &str) -> WorkDir {
        WorkDir {
            root: topdir.join(test),
        }
    }

    pub fn install(&self) -> PathBuf {
        self.root.join("install")
    }
    pub fn boot(&self) -> PathBuf {
        self.root.join("boot")
    }
    pub fn disks(&self) -> PathBuf {
        self.root.join("disks")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn collect(&self) -> PathBuf {
        self.root.join("collect")
    }

    /// Removes what `keep` does not keep; removes the test dir when nothing is kept.
    pub fn apply_keep(&self, keep: KeepSet) -> std::io::Result<()> {
        if keep.is_none() {
            return remove_if_exists(&self.root);
        }
        for (part, kept) in keep.parts() {
            if !kept {
                remove_if_exists(&self.root.join(part))?;
            }
        }
        Ok(())
    }
}

fn remove_if_exists(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Creates a sparse raw disk image of `size` bytes; refuses to overwrite.
pub fn create_sparse_disk(path: &Path, size: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.set_len(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_one_plain_component_makes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("top");
        std::fs::create_dir(&top).unwrap();
        for bad in ["..", ".", "a/b", "/abs", ""] {
            let e = WorkDir::create(&top, bad).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        }
        assert_eq!(std::fs::read_dir(&top).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn layout_and_keep() {
        let d = tempfile::tempdir().unwrap();
        let w = WorkDir::create(d.path(), "basic").unwrap();
        for p in WorkDir::PARTS {
            assert!(d.path().join("basic").join(p).is_dir());
        }
        assert!(
            WorkDir::create(d.path(), "basic").is_err(),
            "never reuses a dir"
        );
        create_sparse_disk(&w.disks().join("a.img"), 10 << 30).unwrap();
        let md = std::fs::metadata(w.disks().join("a.img")).unwrap();
        assert_eq!(md.len(), 10 << 30);
        use std::os::unix::fs::MetadataExt;
        assert!(md.blocks() < 16, "sparse");
        assert!(create_sparse_disk(&w.disks().join("a.img"), 1).is_err());
        w.apply_keep(KeepSet::parse("logs,collect").unwrap())
            .unwrap();
        assert!(w.logs().is_dir() && w.collect().is_dir());
        assert!(!w.disks().exists() && !w.boot().exists() && !w.install().exists());
        w.apply_keep(KeepSet::NONE).unwrap();
        assert!(!w.root.exists());
    }
}
