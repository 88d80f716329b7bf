//! Checks before any VM starts that every test's installer can be packed.

use std::path::Path;

use crate::config::{InstallerKind, TestConfig};
use crate::userdata;

/// Checks, before any VM starts, that every test's installer can be packed: a test
/// that needs curtin (`installer: curtin`, or any unpinned test when a curtin tree is
/// given) needs a valid curtin source tree. One error naming the tests and the fix.
pub fn check_installers(tests: &[TestConfig], curtin_src: Option<&Path>) -> anyhow::Result<()> {
    let need: Vec<&str> = tests
        .iter()
        .filter(|t| t.installer(curtin_src.is_some()) == InstallerKind::Curtin)
        .map(|t| t.name.as_str())
        .collect();
    if need.is_empty() {
        return Ok(());
    }
    match curtin_src {
        None => anyhow::bail!(
            "{} set{} `vmtest.installer: curtin` but no curtin source tree was given: pass --curtin DIR or set CURTIN_SRC (a curtin checkout), or leave out these tests",
            need.join(", "),
            if need.len() == 1 { "s" } else { "" }
        ),
        Some(src) => userdata::check_curtin_tree(src)
            .map_err(|e| anyhow::anyhow!("--curtin / CURTIN_SRC: {e:#}")),
    }
}
