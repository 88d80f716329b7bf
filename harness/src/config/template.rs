//! Curtin's config templates. A few of curtin's `examples/tests/*.yaml` (lvmroot,
//! uefi_lvmroot) hold placeholders such as `fstype: __ROOTFS_FORMAT__`, which curtin's
//! vmtest replaces per test class (`conf_replace`, one class for ext4, one for xfs) in the
//! file's text before anything reads it. Here the same replacement comes from the command
//! line (`--conf-replace __ROOTFS_FORMAT__=ext4`), and a placeholder left in a config
//! makes the test not runnable, naming the placeholder, its line and how to give it,
//! instead of an install that fails minutes later on a filesystem named `__ROOTFS_FORMAT__`.

use std::str::FromStr;

use crate::yaml::{Kind, Mark, Node};

/// One `__KEY__=VALUE` replacement, applied to a config's text as curtin's vmtest applies
/// its class's `conf_replace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfReplace {
    pub key: String,
    pub value: String,
}

impl FromStr for ConfReplace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected __KEY__=VALUE"))?;
        if !is_placeholder(key) {
            return Err(format!(
                "`{key}` is not a placeholder: keys look like __ROOTFS_FORMAT__ (two underscores, capitals, digits or underscores, two underscores), so nothing else in a config is replaced"
            ));
        }
        if value.is_empty() || value.contains(['\n', '\r']) {
            return Err(format!("`{key}`: the value must be one non-empty line"));
        }
        Ok(ConfReplace {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// `text` with every replacement applied, in order (curtin's `str.replace`).
pub fn apply(text: &str, replace: &[ConfReplace]) -> String {
    replace
        .iter()
        .fold(text.to_string(), |t, r| t.replace(&r.key, &r.value))
}

/// Whether `s` is a whole placeholder: `__`, a capital, capitals, digits or `_`, `__`.
pub fn is_placeholder(s: &str) -> bool {
    s.len() > 4
        && s.starts_with("__")
        && s.ends_with("__")
        && s[2..].starts_with(|c: char| c.is_ascii_uppercase())
        && s[2..s.len() - 2]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every scalar value in `doc` that is a whole placeholder, with where it is, in
/// document order.
pub fn placeholders(doc: &Node) -> Vec<(String, Mark)> {
    fn walk(n: &Node, out: &mut Vec<(String, Mark)>) {
        match &n.kind {
            Kind::Scalar { text, .. } if is_placeholder(text) => out.push((text.clone(), n.mark)),
            Kind::Scalar { .. } => {}
            Kind::Seq(items) => items.iter().for_each(|i| walk(i, out)),
            Kind::Map(entries) => entries.iter().for_each(|(_, v)| walk(v, out)),
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

/// Why a config cannot run as it is, if it still holds a placeholder.
pub fn unfilled(doc: &Node) -> Option<String> {
    let found = placeholders(doc);
    let (first, at) = found.first()?;
    let mut keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let flags: Vec<String> = keys
        .iter()
        .map(|k| format!("--conf-replace {k}=VALUE"))
        .collect();
    Some(format!(
        "it is a template: `{first}` (line {}) is a placeholder curtin's vmtest fills per test class (conf_replace); run it with {}",
        at.line,
        flags.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_parse_and_refuse_what_is_not_a_placeholder() {
        let r: ConfReplace = "__ROOTFS_FORMAT__=xfs".parse().unwrap();
        assert_eq!(
            (r.key.as_str(), r.value.as_str()),
            ("__ROOTFS_FORMAT__", "xfs")
        );
        for bad in [
            "ext4=xfs",
            "__ROOTFS_FORMAT__",
            "__x__=1",
            "____=1",
            "__A__=",
        ] {
            assert!(bad.parse::<ConfReplace>().is_err(), "{bad}");
        }
        assert!(is_placeholder("__BOOTFS_FORMAT__") && is_placeholder("__A1_B__"));
        assert!(!is_placeholder("iscsi:__RFC4173__") && !is_placeholder("__rfc__"));
    }

    #[test]
    fn a_template_names_its_first_placeholder_and_every_flag_it_needs() {
        let text = "storage:\n  config:\n    - {id: b, type: format, fstype: __BOOTFS_FORMAT__}\n    - {id: r, type: format, fstype: __ROOTFS_FORMAT__}\n    - {id: x, type: format, fstype: __ROOTFS_FORMAT__}\n";
        let doc = crate::yaml::load(text).unwrap().unwrap();
        let why = unfilled(&doc).unwrap();
        assert_eq!(
            why,
            "it is a template: `__BOOTFS_FORMAT__` (line 3) is a placeholder curtin's vmtest fills per test class (conf_replace); run it with --conf-replace __BOOTFS_FORMAT__=VALUE --conf-replace __ROOTFS_FORMAT__=VALUE"
        );
        let r = [
            "__BOOTFS_FORMAT__=ext4".parse().unwrap(),
            "__ROOTFS_FORMAT__=xfs".parse().unwrap(),
        ];
        let filled = apply(text, &r);
        assert!(filled.contains("fstype: ext4}") && filled.matches("fstype: xfs}").count() == 2);
        let doc = crate::yaml::load(&filled).unwrap().unwrap();
        assert_eq!(unfilled(&doc), None);
    }
}
