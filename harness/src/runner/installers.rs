//! Checks before any VM starts that every test's installer can be packed.

use std::path::Path;

use crate::config::{InstallerKind, TestConfig};
use crate::installer::{self, NotACurtinTree};

/// Why the selected tests' installers cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallersError {
    #[error(
        "{} set{} `vmtest.installer: curtin` but no curtin source tree was given: pass --curtin DIR or set CURTIN_SRC (a curtin checkout), or leave out these tests",
        tests.join(", "),
        if tests.len() == 1 { "s" } else { "" }
    )]
    NoCurtinTree { tests: Vec<String> },
    /// The tree given is not one (the reason names the missing file).
    #[error("--curtin / CURTIN_SRC: {0}")]
    NotACurtinTree(NotACurtinTree),
}

/// Checks, before any VM starts, that every test's installer can be packed: a test
/// that needs curtin (`installer: curtin`, or any unpinned test when a curtin tree is
/// given) needs a valid curtin source tree. One error naming the tests and the fix.
pub fn check_installers(
    tests: &[TestConfig],
    curtin_src: Option<&Path>,
) -> Result<(), InstallersError> {
    let need: Vec<String> = tests
        .iter()
        .filter(|t| t.installer(curtin_src.is_some()) == InstallerKind::Curtin)
        .map(|t| t.name.clone())
        .collect();
    if need.is_empty() {
        return Ok(());
    }
    match curtin_src {
        None => Err(InstallersError::NoCurtinTree { tests: need }),
        Some(src) => installer::check_curtin_tree(src).map_err(InstallersError::NotACurtinTree),
    }
}
