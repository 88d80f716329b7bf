//! TOPDIR, where a run keeps all its tests' data: its default name, and the rule that a
//! run never mixes with or overwrites another's.

use std::path::{Path, PathBuf};

use super::Settings;

/// `YYYYmmdd-HHMMSS` (UTC) for the default TOPDIR.
pub fn timestamp() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// Six random letters and digits for the default TOPDIR's name.
fn unique_suffix() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(6)
        .collect()
}

/// This run's TOPDIR under `tmp` when none is given: the time for people, a random
/// suffix so two runs started in the same second get two TOPDIRs ([`Settings::prepare_topdir`]
/// creates it, refusing one that exists).
pub(super) fn default_topdir(tmp: &Path) -> PathBuf {
    tmp.join(format!("vmtest-{}-{}", timestamp(), unique_suffix()))
}

impl Settings {
    /// TOPDIR must be absent or empty (unless re-verifying kept data), so a run never
    /// mixes with or overwrites an earlier one. Creates it.
    pub fn prepare_topdir(&self) -> Result<(), String> {
        let t = &self.topdir;
        if self.reuse_topdir {
            if !t.is_dir() {
                return Err(format!(
                    "CURTIN_VMTEST_REUSE_TOPDIR is set but {} does not exist",
                    t.display()
                ));
            }
            return Ok(());
        }
        if !self.topdir_given {
            // The default TOPDIR is this run's own: made here, atomically, and never one
            // that exists already (another run's, started in the same second).
            if let Some(parent) = t.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            return std::fs::create_dir(t).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!(
                    "TOPDIR {} exists already (another run's?): nothing there is touched; run again or set CURTIN_VMTEST_TOPDIR",
                    t.display()
                ),
                _ => format!("cannot create {}: {e}", t.display()),
            });
        }
        match std::fs::read_dir(t) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(format!(
                        "CURTIN_VMTEST_TOPDIR {} is not empty: give an absent or empty directory (nothing there is touched)",
                        t.display()
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", t.display())),
        }
        std::fs::create_dir_all(t).map_err(|e| format!("cannot create {}: {e}", t.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::with;
    use super::*;

    #[test]
    fn topdir_must_be_absent_or_empty() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("top");
        let s = with(&[("CURTIN_VMTEST_TOPDIR", t.to_str().unwrap())]).unwrap();
        s.prepare_topdir().unwrap(); // absent: created
        s.prepare_topdir().unwrap(); // empty: fine
        std::fs::write(t.join("precious"), "x").unwrap();
        let e = s.prepare_topdir().unwrap_err();
        assert!(e.contains("not empty"), "{e}");
        assert_eq!(std::fs::read(t.join("precious")).unwrap(), b"x");
    }

    /// Two runs started in the same second get TOPDIRs of their own, and a default TOPDIR
    /// that exists (even empty) belongs to someone else: refused, untouched.
    #[test]
    fn default_topdir_is_this_runs_own() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().to_str().unwrap();
        let a = with(&[("TMPDIR", tmp)]).unwrap();
        let b = with(&[("TMPDIR", tmp)]).unwrap();
        assert_ne!(a.topdir, b.topdir, "same second, two runs");
        assert_ne!(a.log, b.log);
        a.prepare_topdir().unwrap();
        b.prepare_topdir().unwrap();
        assert!(a.topdir.is_dir() && b.topdir.is_dir());
        let e = a.prepare_topdir().unwrap_err();
        assert!(e.contains("exists already"), "{e}");
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("20"));
    }
}
