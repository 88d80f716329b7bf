//! Where the tests find curtin's source tree: CURTIN_SRC, else `<repo>/../shared/curtin`
//! (where CI has it). Without either, the test using it fails, naming both: a missing
//! tree is a missing prerequisite, not a skip.

use std::path::PathBuf;

pub fn curtin_tree() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates: Vec<PathBuf> = std::env::var_os("CURTIN_SRC")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo.join("../shared/curtin")])
        .collect();
    candidates
        .iter()
        .find(|p| p.join("examples/tests").is_dir())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no curtin tree: set CURTIN_SRC to a curtin checkout, or put one at {} (tried {})",
                repo.join("../shared/curtin").display(),
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}
