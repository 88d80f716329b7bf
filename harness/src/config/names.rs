//! Test names and the files that hold them: a name becomes a directory under TOPDIR,
//! so it is checked before anything else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest test name (it becomes a directory name).
const MAX_NAME: usize = 100;

/// A test name becomes a directory under TOPDIR: one plain path component, no `..`,
/// nothing hidden, nothing a shell or a path would read otherwise.
pub fn check_test_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable test name: it becomes a directory under TOPDIR, so it must be 1-{MAX_NAME} letters, digits, `.`, `_`, `+` or `-`, not starting with `.` or `-`; rename the file"
        ))
    }
}

/// Test config files in a directory (`*.yaml`, `*.yml`), sorted by name. Two files that
/// give the same test name (`basic.yaml` and `basic.yml`) are an error naming both:
/// they would share one work dir.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read test directory {}: {e}", dir.display()))?
    {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            v.push(p);
        }
    }
    v.sort();
    let mut by_name: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for p in &v {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(first) = by_name.insert(stem.clone(), p) {
            anyhow::bail!(
                "{} and {} both define the test `{stem}`: keep one (their results would overwrite each other)",
                first.display(),
                p.display()
            );
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_yml_of_one_name_are_refused_naming_both() {
        let d = tempfile::tempdir().unwrap();
        for f in ["basic.yaml", "basic.yml", "other.yaml"] {
            std::fs::write(d.path().join(f), "showtrace: true\n").unwrap();
        }
        let e = discover(d.path()).unwrap_err().to_string();
        assert!(e.contains("basic.yaml") && e.contains("basic.yml"), "{e}");
    }
}
