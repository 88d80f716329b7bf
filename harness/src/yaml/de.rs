//! serde deserialization from a [`Node`]: every error carries the position of the key or
//! value it is about and its key path (`vmtest.disks.sda.size`), found structurally (no
//! searching the text).
//!
//! Scalars are what PyYAML reads ([`super::resolve`]). A plain scalar that PyYAML reads
//! as a number, boolean or null is not accepted where a string is wanted: the installer
//! would get the number, so the author learns it here (`quote it`).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use super::{Kind, Mark, Node, Scalar};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A value that does not fit the type the harness reads it as.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// Where: the innermost key or value the error is about.
    pub mark: Option<Mark>,
    /// The key path from the node deserialized (outermost first).
    pub path: Vec<PathSeg>,
    pub msg: String,
}

impl DeError {
    /// The key path as `a.b[2].c`, after `prefix` (a path of its own, may be empty).
    pub fn path_string(&self, prefix: &str) -> String {
        let mut s = prefix.to_string();
        for seg in &self.path {
            match seg {
                PathSeg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            mark: None,
            path: Vec::new(),
            msg: msg.to_string(),
        }
    }
}

/// Gives an error that has no position yet the position of `node`, and prepends `seg`
/// to its path (errors bubble outwards, so the path is built from the inside).
fn locate(mut e: DeError, node: &Node, seg: Option<PathSeg>) -> DeError {
    if e.mark.is_none() {
        e.mark = Some(node.mark);
    }
    if let Some(s) = seg {
        e.path.insert(0, s);
    }
    e
}

/// Deserializes `T` from `node`.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e| locate(e, node, None))
}

struct NodeDe<'a>(&'a Node);

fn key_seg(k: &Node) -> PathSeg {
    match &k.kind {
        Kind::Scalar { text, .. } => PathSeg::Key(text.clone()),
        _ => PathSeg::Key("?".into()),
    }
}

impl<'a> NodeDe<'a> {
    /// The string a plain-or-quoted scalar holds, or an error saying what PyYAML reads.
    fn string(&self, what: &dyn de::Expected) -> Result<&'a str, DeError> {
        match &self.0.kind {
            Kind::Scalar {
                value: Scalar::Str(s),
                ..
            } => Ok(s),
            Kind::Scalar {
                value, text, plain, ..
            } => {
                let how = if *plain { "`" } else { "the tagged `" };
                Err(de::Error::custom(format!(
                    "expected {what}, but curtin's YAML reader (PyYAML, YAML 1.1) reads {how}{text}` as {}: quote it (\"{text}\") if a string is meant",
                    value.describe()
                )))
            }
            Kind::Seq(_) => Err(de::Error::custom(format!("expected {what}, found a list"))),
            Kind::Map(_) => Err(de::Error::custom(format!(
                "expected {what}, found a mapping"
            ))),
        }
    }
}

/// Map entries with duplicates removed the way PyYAML does (the last value wins).
fn last_wins(m: &[(Node, Node)]) -> Vec<&(Node, Node)> {
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, (k, _)) in m.iter().enumerate() {
        last.insert(k.key_id(), i);
    }
    m.iter()
        .enumerate()
        .filter(|(i, (k, _))| last.get(&k.key_id()) == Some(i))
        .map(|(_, e)| e)
        .collect()
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Scalar { value, .. } => match value {
                Scalar::Null => v.visit_unit(),
                Scalar::Bool(b) => v.visit_bool(*b),
                Scalar::Int(i) => {
                    if let Ok(u) = u64::try_from(*i) {
                        v.visit_u64(u)
                    } else if let Ok(s) = i64::try_from(*i) {
                        v.visit_i64(s)
                    } else {
                        v.visit_i128(*i)
                    }
                }
                Scalar::Float(f) => v.visit_f64(*f),
                Scalar::Str(s) => v.visit_str(s),
                Scalar::Other { tag } => Err(de::Error::custom(format!(
                    "curtin's YAML reader reads this as a {tag}, which the harness does not take here"
                ))),
            },
            Kind::Seq(items) => v.visit_seq(SeqDe { items, i: 0 }),
            Kind::Map(m) => v.visit_map(MapDe {
                entries: last_wins(m),
                i: 0,
                value: None,
            }),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let s = self.string(&v)?;
        v.visit_str(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match &self.0.kind {
            // `kind: curtin`: a unit variant.
            Kind::Scalar { .. } => {
                let s = self.string(&"a name")?;
                v.visit_enum(s.into_deserializer())
                    .map_err(|e: DeError| locate(e, self.0, None))
            }
            // `- file_exists: [fstab]`: a variant with its content.
            Kind::Map(m) if m.len() == 1 => v.visit_enum(EnumDe {
                key: &m[0].0,
                value: &m[0].1,
            }),
            _ => Err(de::Error::custom(
                "expected a name, or a mapping with exactly one key naming the kind",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct
    }
}

struct SeqDe<'a> {
    items: &'a [Node],
    i: usize,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(n) = self.items.get(self.i) else {
            return Ok(None);
        };
        let i = self.i;
        self.i += 1;
        seed.deserialize(NodeDe(n))
            .map(Some)
            .map_err(|e| locate(e, n, Some(PathSeg::Index(i))))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.i)
    }
}

struct MapDe<'a> {
    entries: Vec<&'a (Node, Node)>,
    i: usize,
    value: Option<&'a (Node, Node)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(e) = self.entries.get(self.i).copied() else {
            return Ok(None);
        };
        self.i += 1;
        self.value = Some(e);
        seed.deserialize(NodeDe(&e.0))
            .map(Some)
            .map_err(|err| locate(err, &e.0, Some(key_seg(&e.0))))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let e = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("a value without its key"))?;
        seed.deserialize(NodeDe(&e.1))
            .map_err(|err| locate(err, &e.1, Some(key_seg(&e.0))))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.i)
    }
}

struct EnumDe<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = VariantDe<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantDe<'a>), DeError> {
        let v = seed
            .deserialize(NodeDe(self.key))
            .map_err(|e| locate(e, self.key, Some(key_seg(self.key))))?;
        Ok((
            v,
            VariantDe {
                key: self.key,
                value: self.value,
            },
        ))
    }
}

struct VariantDe<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl VariantDe<'_> {
    fn wrap(&self, e: DeError) -> DeError {
        locate(e, self.value, Some(key_seg(self.key)))
    }
}

impl<'de> de::VariantAccess<'de> for VariantDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        if self.value.is_null() {
            Ok(())
        } else {
            Err(self.wrap(de::Error::custom("this kind takes no value")))
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(NodeDe(self.value))
            .map_err(|e| self.wrap(e))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(NodeDe(self.value), v).map_err(|e| self.wrap(e))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(NodeDe(self.value), v).map_err(|e| self.wrap(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::load;
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Disk {
        #[serde(default)]
        size: Option<String>,
        #[serde(default)]
        block_size: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Check {
        FileExists(Vec<String>),
        SwapsInUse(usize),
        Nothing,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Top {
        release: String,
        #[serde(default)]
        disks: BTreeMap<String, Disk>,
        #[serde(default)]
        expect: Vec<Check>,
        #[serde(default)]
        uefi: bool,
    }

    fn de(t: &str) -> Result<Top, DeError> {
        from_node(&load(t).unwrap().unwrap())
    }

    #[test]
    fn reads_types() {
        let t = de("release: bookworm\nuefi: yes\ndisks: {sda: {size: 3G, block_size: 4096}}\nexpect:\n  - file_exists: [fstab]\n  - swaps_in_use: 1\n  - nothing\n").unwrap();
        assert!(t.uefi);
        assert_eq!(t.disks["sda"].block_size, Some(4096));
        assert_eq!(
            t.expect,
            vec![
                Check::FileExists(vec!["fstab".into()]),
                Check::SwapsInUse(1),
                Check::Nothing
            ]
        );
    }

    #[test]
    fn errors_name_the_true_line_and_path() {
        // `size:` appears before `block_size:` as text: a text search would find it.
        let e = de("release: x\ndisks:\n  sda:\n    size: 3G\n    block_size: lots\n").unwrap_err();
        assert_eq!(
            e.mark,
            Some(Mark {
                line: 5,
                column: 17
            }),
            "{e:?}"
        );
        assert_eq!(e.path_string("vmtest"), "vmtest.disks.sda.block_size");
        let e = de("release: x\ndisks:\n  sda:\n    size: 3G\n    sise: 1G\n").unwrap_err();
        assert_eq!(e.mark, Some(Mark { line: 5, column: 5 }), "{e:?}");
        assert!(e.msg.contains("unknown field `sise`"), "{e}");
        assert_eq!(e.path_string(""), "disks.sda.sise");
        let e = de("release: x\nexpect:\n  - file_exists: [fstab]\n  - swaps_in_use: many\n")
            .unwrap_err();
        assert_eq!(e.mark.unwrap().line, 4);
        assert_eq!(e.path_string(""), "expect[1].swaps_in_use");
        let e = de("release: x\nexpect:\n  - file_exist: [fstab]\n").unwrap_err();
        assert_eq!(e.mark, Some(Mark { line: 3, column: 5 }), "{e:?}");
        let e = de("disks: {}\n").unwrap_err();
        assert!(e.msg.contains("missing field `release`"), "{e}");
        assert_eq!(e.mark.unwrap().line, 1);
    }

    #[test]
    fn a_plain_scalar_pyyaml_types_is_no_string() {
        let e = de("release: no\n").unwrap_err();
        assert!(
            e.msg.contains("the boolean false") && e.msg.contains("quote it"),
            "{e}"
        );
        let e = de("release: 52:54:00:12:34:01\n").unwrap_err();
        assert!(e.msg.contains("41135085241"), "{e}");
        assert_eq!(de("release: \"no\"\n").unwrap().release, "no");
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let t = de("release: a\nrelease: b\n").unwrap();
        assert_eq!(t.release, "b");
    }
}
