//! What a plain scalar means to PyYAML's `safe_load`, the reader curtin and cloud-init
//! use: YAML 1.1's implicit types, with PyYAML's choices where YAML 1.1 leaves room (no
//! `y`/`n` booleans; base-60 integers and floats; `0`-prefixed octals; `_` in numbers;
//! a float needs a dot, and its exponent a sign).
//!
//! YAML 1.2 readers (every Rust YAML crate) read many of these as strings, which is how
//! a MAC such as `52:54:00:12:34:01` silently became the integer 41135085240 on the way
//! to curtin. Reading the test's config with these rules lets the harness see what the
//! installer will see, and say so when that is not what the author meant.

use std::sync::LazyLock;

use regex::Regex;

use super::Scalar;

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file: a failure is a bug caught by the tests.
    Regex::new(pattern).expect("resolver pattern")
}

static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$"
    ))
});
static NULL: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:~|null|Null|NULL|)$"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$"
    ))
});

/// The value of a plain (unquoted, untagged) scalar.
pub(super) fn plain(text: &str) -> Scalar {
    if BOOL.is_match(text) {
        Scalar::Bool(matches!(
            text.to_ascii_lowercase().as_str(),
            "yes" | "true" | "on"
        ))
    } else if FLOAT.is_match(text) {
        float(text).map_or_else(|| unreadable("float"), Scalar::Float)
    } else if INT.is_match(text) {
        int(text).map_or_else(|| unreadable("int"), Scalar::Int)
    } else if NULL.is_match(text) {
        Scalar::Null
    } else if TIMESTAMP.is_match(text) {
        Scalar::Other {
            tag: "timestamp".into(),
        }
    } else {
        // `<<` (merge) is handled by the tree builder; `=` (value) PyYAML cannot construct.
        Scalar::Str(text.to_string())
    }
}

fn unreadable(tag: &str) -> Scalar {
    Scalar::Other { tag: tag.into() }
}

/// The value of a scalar with an explicit core-schema tag (`!!int 12`), or `None` when
/// PyYAML cannot construct one from this text.
pub(super) fn tagged(suffix: &str, text: &str) -> Option<Scalar> {
    Some(match suffix {
        "str" => Scalar::Str(text.to_string()),
        "null" => Scalar::Null,
        "bool" => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Scalar::Bool(true),
            "no" | "false" | "off" => Scalar::Bool(false),
            _ => return None,
        },
        "int" => Scalar::Int(int(text)?),
        "float" => Scalar::Float(float(text)?),
        other => Scalar::Other { tag: other.into() },
    })
}

/// PyYAML's integer construction: `_` dropped, a sign, then `0b` binary, `0x` hex, a
/// leading `0` octal, `:`-separated base 60, else decimal. `None` beyond 128 bits or
/// when the text holds no digits (PyYAML then raises).
fn int(text: &str) -> Option<i128> {
    let t: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    let v = if t == "0" {
        0
    } else if let Some(b) = t.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if let Some(h) = t.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix('0') {
        i128::from_str_radix(o, 8).ok()?
    } else if t.contains(':') {
        let mut v: i128 = 0;
        for part in t.split(':') {
            v = v.checked_mul(60)?.checked_add(part.parse::<i128>().ok()?)?;
        }
        v
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// PyYAML's float construction: `_` dropped, case ignored, `.inf`/`.nan`, base 60 with
/// `:`, else the decimal text.
fn float(text: &str) -> Option<f64> {
    let t: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    let v = if t == ".inf" {
        f64::INFINITY
    } else if t == ".nan" {
        f64::NAN
    } else if t.contains(':') {
        let mut v = 0.0;
        for part in t.split(':') {
            v = v * 60.0 + part.parse::<f64>().ok()?;
        }
        v
    } else {
        // Rust's parser, like Python's float(), takes `1.`, `1.e+3` and `.5`.
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(v: i128) -> Scalar {
        Scalar::Int(v)
    }

    #[test]
    fn pyyaml_reads_these_as_it_does() {
        use Scalar::*;
        for (text, want) in [
            ("52:54:00:12:34:01", i(41135085241)),
            ("12:30", i(750)),
            ("0755", i(493)),
            ("1_000", i(1000)),
            ("0x1F", i(31)),
            ("0b101", i(5)),
            ("-0b1", i(-1)),
            ("+12", i(12)),
            ("0", i(0)),
            ("yes", Bool(true)),
            ("No", Bool(false)),
            ("on", Bool(true)),
            ("OFF", Bool(false)),
            ("y", Str("y".into())),
            ("n", Str("n".into())),
            ("~", Null),
            ("", Null),
            ("null", Null),
            ("1e3", Str("1e3".into())),
            ("1.0e3", Str("1.0e3".into())),
            ("1.0e+3", Float(1000.0)),
            ("1.", Float(1.0)),
            (".5", Float(0.5)),
            ("1:30.5", Float(90.5)),
            ("-.inf", Float(f64::NEG_INFINITY)),
            ("08", Str("08".into())),
            ("10G", Str("10G".into())),
            (
                "2001-12-14",
                Other {
                    tag: "timestamp".into(),
                },
            ),
            ("1.2.3", Str("1.2.3".into())),
            ("0x", Str("0x".into())),
        ] {
            let got = plain(text);
            match (&got, &want) {
                (Float(a), Float(b)) => assert!(a == b, "{text}: {got:?}"),
                _ => assert_eq!(got, want, "{text}"),
            }
        }
        assert!(matches!(plain(".nan"), Float(f) if f.is_nan()));
        // 0b_ matches the pattern but has no digits: PyYAML raises on it.
        assert_eq!(plain("0b_"), Other { tag: "int".into() });
    }

    #[test]
    fn explicit_tags() {
        assert_eq!(tagged("str", "0755"), Some(Scalar::Str("0755".into())));
        assert_eq!(tagged("int", "0755"), Some(Scalar::Int(493)));
        assert_eq!(tagged("bool", "on"), Some(Scalar::Bool(true)));
        assert_eq!(tagged("bool", "maybe"), None);
        assert_eq!(tagged("int", "ten"), None);
    }
}
