//! The rules every variable follows: curtin's boolean rule, and which CURTIN_VMTEST_*
//! variables this harness reads (any other set gets a warning).

/// curtin's boolean rule (true unless `false`, empty or `0`), `default` when unset:
/// the one rule, [`images::parse_bool`], for every boolean variable.
pub fn env_bool(v: Option<&str>, default: bool) -> bool {
    v.map_or(default, images::parse_bool)
}

/// The CURTIN_VMTEST_* variables this harness reads. Any other that is set gets a
/// one-line warning (curtin's TAR_DISKS, ADD_REPOS, ... do nothing here).
pub const KNOWN_CURTIN_VARS: &[&str] = &[
    "CURTIN_VMTEST_TOPDIR",
    "CURTIN_VMTEST_LOG",
    "CURTIN_VMTEST_KEEP_DATA_PASS",
    "CURTIN_VMTEST_KEEP_DATA_FAIL",
    "CURTIN_VMTEST_IMAGE_SYNC",
    "CURTIN_VMTEST_IMAGE_LOCK_TIMEOUT",
    "CURTIN_VMTEST_BRIDGE",
    "CURTIN_VMTEST_BOOT_TIMEOUT",
    "CURTIN_VMTEST_INSTALL_TIMEOUT",
    "CURTIN_VMTEST_VMRAM",
    "CURTIN_VMTEST_NR_CPUS",
    "CURTIN_VMTEST_PARALLEL",
    "CURTIN_VMTEST_REUSE_TOPDIR",
    "CURTIN_VMTEST_APT_PROXY",
    "CURTIN_VMTEST_EXTRA_CONFIG",
];

/// One warning line per CURTIN_VMTEST_* variable in `names` that is not understood.
pub fn unknown_curtin_vars<I: IntoIterator<Item = String>>(names: I) -> Vec<String> {
    let mut v: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("CURTIN_VMTEST_") && !KNOWN_CURTIN_VARS.contains(&n.as_str()))
        .map(|n| format!("{n} is set but vmtest does not understand it: ignored"))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_curtin() {
        for (v, want) in [
            ("", false),
            ("0", false),
            ("FALSE", false),
            ("false", false),
            ("1", true),
            ("yes", true),
            ("no", true),
        ] {
            assert_eq!(env_bool(Some(v), false), want, "{v}");
        }
        assert!(env_bool(None, true));
    }

    #[test]
    fn unknown_curtin_variables_get_one_line_each() {
        let w = unknown_curtin_vars(
            [
                "CURTIN_VMTEST_VMRAM",
                "CURTIN_VMTEST_TAR_DISKS",
                "CURTIN_VMTEST_VMRMA",
                "PATH",
            ]
            .map(String::from),
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("CURTIN_VMTEST_TAR_DISKS is set") && !w[0].contains('\n'));
        assert!(w[1].starts_with("CURTIN_VMTEST_VMRMA"));
    }
}
