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
    (open, close): (char, char),
    items: impl ExactSizeIterator<Item = (Option<&'a str>, &'a Value)>,
    level: usize,
) {
    out.push(open);
    let n = items.len();
    if n > 0 {
        out.push('\n');
    }
    for (i, (key, item)) in items.enumerate() {
        indent(out, level + 1);
        if let Some(k) = key {
            quote(out, k);
            out.push_str(": ");
        }
        write_value(out, item, level + 1);
        if i + 1 < n {
            out.push(',');
        }
        out.push('\n');
    }
    if n > 0 {
        indent(out, level);
    }
    out.push(close);
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
    use super::super::{Scalar, load};
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
