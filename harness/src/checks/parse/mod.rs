//! Parsers of what the harness's collect script (and curtin's default collect files)
//! gather: guest input, so each one is total (bad input is a [`DataError`] naming the
//! file, never a panic), bounded (the file is already capped by [`Collected`], and the
//! number of entries taken from it is capped here) and typed.
//!
//! [`Collected`]: super::collected::Collected

pub mod block;
pub mod lvm;
pub mod md;
pub mod mounts;

use super::collected::DataError;

/// Most entries (devices, mounts, lines) taken from one file.
pub const MAX_ITEMS: usize = 10_000;

/// A JSON document from `file`.
pub(crate) fn json(file: &str, text: &str) -> Result<serde_json::Value, DataError> {
    // serde_json stops at 128 levels of nesting, so a deep document cannot exhaust the stack.
    serde_json::from_str(text).map_err(|e| DataError::malformed(file, format!("not JSON: {e}")))
}

/// A field of a JSON object as text: a string as it is, a number or boolean as written,
/// null or absent as None. (lsblk and sfdisk print some fields as numbers or strings
/// depending on their version and options.)
pub(crate) fn field(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field as an unsigned integer (a number, or a string of digits).
pub(crate) fn field_u64(v: &serde_json::Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `KEY=value` lines (blkid's and mdadm's `--export`, the bcache facts), in order; lines
/// without `=` are skipped.
pub(crate) fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take(MAX_ITEMS)
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The kernel name a `/dev` path or a link target (`../../vda1`) names: its last
/// component.
pub(crate) fn kname_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// At most `n` of `items` as evidence lines, with a count of the rest.
pub fn evidence_lines<S: AsRef<str>>(what: &str, items: &[S], n: usize) -> String {
    if items.is_empty() {
        return format!("{what}: nothing");
    }
    let mut s = format!("{what}:");
    for l in items.iter().take(n) {
        s.push_str("\n  ");
        s.push_str(l.as_ref());
    }
    if items.len() > n {
        s.push_str(&format!("\n  ... {} more", items.len() - n));
    }
    s
}
