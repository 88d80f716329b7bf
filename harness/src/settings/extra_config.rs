//! CURTIN_VMTEST_EXTRA_CONFIG: the file read and checked before any VM runs.

use std::path::{Path, PathBuf};

/// CURTIN_VMTEST_EXTRA_CONFIG: a config file handed to curtin after the test's own (so
/// it wins where both say something), as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraConfig {
    pub path: PathBuf,
    pub text: String,
}

impl ExtraConfig {
    /// Reads and checks the file: a YAML mapping curtin's reader can merge.
    pub fn load(path: &Path) -> Result<ExtraConfig, String> {
        use std::io::Read;
        let name = "CURTIN_VMTEST_EXTRA_CONFIG";
        let limit = crate::config::MAX_CONFIG_BYTES;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
            .map_err(|e| format!("{name}={}: cannot read: {e}", path.display()))?;
        if text.len() as u64 > limit {
            return Err(format!(
                "{name}={}: larger than {limit} bytes",
                path.display()
            ));
        }
        let doc = crate::yaml::load(&text).map_err(|e| {
            let at = e.mark.map(|m| format!(":{m}")).unwrap_or_default();
            format!("{name}={}{at}: {}", path.display(), e.msg)
        })?;
        if doc.is_none_or(|d| d.as_map().is_none()) {
            return Err(format!(
                "{name}={}: not a YAML mapping (curtin merges configs that are mappings)",
                path.display()
            ));
        }
        Ok(ExtraConfig {
            path: path.into(),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::with;

    #[test]
    fn extra_config_is_read_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("extra.yaml");
        std::fs::write(&f, "late_commands: {x: [echo, \"no\"]}\n").unwrap();
        let s = with(&[("CURTIN_VMTEST_EXTRA_CONFIG", f.to_str().unwrap())]).unwrap();
        let x = s.extra_config.unwrap();
        assert_eq!(x.text, "late_commands: {x: [echo, \"no\"]}\n");
        std::fs::write(&f, "- a list\n").unwrap();
        let e = with(&[("CURTIN_VMTEST_EXTRA_CONFIG", f.to_str().unwrap())]).unwrap_err();
        assert!(e.contains("mapping"), "{e}");
        std::fs::write(&f, "a: [\n").unwrap();
        let e = with(&[("CURTIN_VMTEST_EXTRA_CONFIG", f.to_str().unwrap())]).unwrap_err();
        assert!(
            e.contains("CURTIN_VMTEST_EXTRA_CONFIG") && e.contains(":2:"),
            "{e}"
        );
        let e = with(&[("CURTIN_VMTEST_EXTRA_CONFIG", "/nonexistent/x.yaml")]).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}
