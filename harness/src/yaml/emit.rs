//! The one way the harness writes YAML for the guest (cloud-init's user-data parts and
//! meta-data, curtin's config parts): JSON's flow style, which PyYAML parses, written so
//! that PyYAML's YAML 1.1 rules read back exactly the value meant.
//!
//! - every string is double-quoted, so no string can be read as a number, boolean, null
//!   or base-60 integer (`"52:54:00:12:34:01"`, `"no"`, `"0755"`);
//! - a float always has a dot and a signed exponent (`1.0e+3`): PyYAML reads `1e3` as a
//!   string;
//! - the output is ASCII: everything else is a `\u`/`\U` escape, so neither the reader's
//!   locale nor YAML's line-break characters (NEL, LS, PS) or PyYAML's refusal of
//!   non-printable characters can change or reject it.

use std::fmt::Write;

use serde_json::Value;

use super::{Kind, Node, Scalar};

/// `v` as a YAML document PyYAML reads back as `v` (with a final newline).
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out.push('\n');
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&float(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => quote(out, s),
        Value::Array(a) => collection(out, ('[', ']'), a.iter().map(|v| (None, v)), level),
        Value::Object(m) => collection(
            out,
            ('{', '}'),
            m.iter().map(|(k, v)| (Some(k.as_str()), v)),
            level,
        ),
    }
}

/// A flow list or mapping, one item per line (`key: value` when there are keys).
fn collection<'a>(
    out: &mut String,
    brackets: (char, char),
    items: impl ExactSizeIterator<Item = (Option<&'a str>, &'a Value)>,
    level: usize,
) {
    let _ = collection_with(out, brackets, items, level, |out, (key, item), level| {
        if let Some(k) = key {
            quote(out, k);
            out.push_str(": ");
        }
        write_value(out, item, level);
        Ok(())
    });
}

/// A flow collection whose items `write` writes (a key and `: ` first in a mapping).
fn collection_with<I>(
    out: &mut String,
    (open, close): (char, char),
    items: impl ExactSizeIterator<Item = I>,
    level: usize,
    mut write: impl FnMut(&mut String, I, usize) -> Result<(), String>,
) -> Result<(), String> {
    out.push(open);
    let n = items.len();
    if n > 0 {
        out.push('\n');
    }
    for (i, item) in items.enumerate() {
        indent(out, level + 1);
        write(out, item, level + 1)?;
        if i + 1 < n {
            out.push(',');
        }
        out.push('\n');
    }
    if n > 0 {
        indent(out, level);
    }
    out.push(close);
    Ok(())
}

/// `{key: <node>}` as a document PyYAML reads back as `key` mapped to the value PyYAML
/// made of `node` where it was read: for handing part of a test's file on. Floats keep
/// `.inf` and `.nan` (which JSON values cannot hold); of a mapping's repeated keys the
/// last is kept, as PyYAML keeps it. A scalar PyYAML constructs as something other than
/// null, a boolean, a number or a string (a timestamp, binary) is refused, naming its
/// line: its meaning could not be written back the same.
pub fn node_under_key(key: &str, node: &Node) -> Result<String, String> {
    let mut out = String::from("{\n");
    indent(&mut out, 1);
    quote(&mut out, key);
    out.push_str(": ");
    write_node(&mut out, node, 1)?;
    out.push_str("\n}\n");
    Ok(out)
}

fn write_scalar(out: &mut String, n: &Node, v: &Scalar) -> Result<(), String> {
    match v {
        Scalar::Null => out.push_str("null"),
        Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Scalar::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Scalar::Float(f) => out.push_str(&float(*f)),
        Scalar::Str(s) => quote(out, s),
        Scalar::Other { tag } => {
            return Err(format!(
                "line {}: a {tag} cannot be handed on with its meaning",
                n.mark.line
            ));
        }
    }
    Ok(())
}

fn write_node(out: &mut String, n: &Node, level: usize) -> Result<(), String> {
    match &n.kind {
        Kind::Scalar { value, .. } => write_scalar(out, n, value),
        Kind::Seq(items) => {
            collection_with(out, ('[', ']'), items.iter(), level, |out, item, l| {
                write_node(out, item, l)
            })
        }
        Kind::Map(entries) => {
            // PyYAML keeps the last of repeated keys.
            let last: Vec<&(Node, Node)> = entries
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| {
                    !entries[i + 1..]
                        .iter()
                        .any(|(k2, _)| k2.key_id() == k.key_id())
                })
                .map(|(_, e)| e)
                .collect();
            collection_with(
                out,
                ('{', '}'),
                last.into_iter(),
                level,
                |out, (k, v), l| {
                    match &k.kind {
                        Kind::Scalar { value, .. } => write_scalar(out, k, value)?,
                        _ => {
                            return Err(format!(
                                "line {}: a key that is not a scalar",
                                k.mark.line
                            ));
                        }
                    }
                    out.push_str(": ");
                    write_node(out, v, l)
                },
            )
        }
    }
}

/// A finite float as PyYAML's float pattern wants it: `d.ddde±x`. (JSON values hold
/// no infinities or NaN; should one come, it is written as YAML's `.inf`/`.nan`.)
fn float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    // Rust's `{:e}` gives the shortest digits that read back to the same f64.
    let s = format!("{f:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    let exp = if exp.starts_with('-') {
        exp.to_string()
    } else {
        format!("+{exp}")
    };
    format!("{mantissa}e{exp}")
}

/// A double-quoted YAML scalar holding `s`, in ASCII.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::load;
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_keep_their_type() {
        assert_eq!(float(1000.0), "1.0e+3");
        assert_eq!(float(1.5), "1.5e+0");
        assert_eq!(float(-2.5e-7), "-2.5e-7");
        assert_eq!(float(1e300), "1.0e+300");
        for f in [1000.0, 1.5, -2.5e-7, 1e300, 0.1, 123456.789] {
            let n = load(&float(f)).unwrap().unwrap();
            assert_eq!(n.scalar(), Some(&Scalar::Float(f)), "{f}");
        }
    }

    #[test]
    fn a_node_is_handed_on_with_its_meaning() {
        let doc = load("network:\n  version: 1\n  x: {a: .inf, b: -.inf, c: .nan, d: 0755, e: no, f: 52:54:00:12:34:00, g: ~, a: 2}\n  l: [1e3, '1e3', 1.0e+3]\n").unwrap().unwrap();
        let net = doc.get("network").unwrap();
        let text = node_under_key("network", net).unwrap();
        assert!(text.is_ascii(), "{text}");
        let back = load(&text).unwrap().unwrap();
        let x = back.get("network").unwrap().get("x").unwrap();
        let f = |k: &str| x.get(k).unwrap().scalar().cloned().unwrap();
        assert_eq!(f("a"), Scalar::Int(2), "the last of repeated keys");
        assert_eq!(f("b"), Scalar::Float(f64::NEG_INFINITY));
        assert!(matches!(f("c"), Scalar::Float(n) if n.is_nan()));
        assert_eq!(f("d"), Scalar::Int(493));
        assert_eq!(f("e"), Scalar::Bool(false));
        assert_eq!(f("f"), Scalar::Int(41135085240));
        assert_eq!(f("g"), Scalar::Null);
        assert_eq!(x.as_map().unwrap().len(), 7, "one entry per key: {text}");
        let l = back
            .get("network")
            .unwrap()
            .get("l")
            .unwrap()
            .as_seq()
            .unwrap();
        assert_eq!(l[0].scalar(), Some(&Scalar::Str("1e3".into())));
        assert_eq!(l[2].scalar(), Some(&Scalar::Float(1000.0)));
        let ts = load("n: {when: 2001-12-14}\n").unwrap().unwrap();
        let e = node_under_key("n", ts.get("n").unwrap()).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn strings_stay_strings_in_ascii() {
        let v = json!({"mac": "52:54:00:12:34:01", "b": "no", "o": "0755", "t": "12:30",
            "n": "~", "u": "caf\u{e9} \u{2028} \u{1F600} \u{85} \u{7f}", "q": "a\"b\\c\n"});
        let text = to_string(&v);
        assert!(text.is_ascii(), "{text}");
        let n = load(&text).unwrap().unwrap();
        for (k, want) in v.as_object().unwrap() {
            assert_eq!(n.get(k).unwrap().as_str(), want.as_str(), "{k}");
        }
    }
}
