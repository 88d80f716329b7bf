//! YAML as curtin reads it.
//!
//! The harness reads test configs written for curtin, whose YAML reader is PyYAML
//! (`yaml.safe_load`, YAML 1.1), and writes YAML that PyYAML reads back.
//!
//! - [`load`] parses text (with `saphyr-parser`, which gives every event its position)
//!   into a [`Node`] tree where every node knows its line and column and every plain
//!   scalar is resolved as PyYAML resolves it ([`resolve`]): anchors and aliases expanded,
//!   `<<` merge keys applied, duplicate keys kept (the last one wins, as in PyYAML).
//! - [`from_node`] deserializes any serde type from a node; its errors carry the line and
//!   column of the offending key or value and its key path ([`de`]).
//! - [`emit`] writes a JSON value in the one form PyYAML reads back to the same value.

mod de;
pub mod emit;
mod resolve;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

pub use de::{DeError, PathSeg, from_node};

/// Most nodes a document may expand to (aliases included): a test config has a few
/// hundred; this keeps an alias bomb from taking the machine.
pub const MAX_NODES: usize = 200_000;
/// Deepest nesting accepted (the deserializer recurses).
pub const MAX_DEPTH: usize = 64;

/// A position in the text: line and column, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A scalar's value as PyYAML constructs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// A value PyYAML constructs as something the harness never reads (a timestamp,
    /// binary, an integer beyond 128 bits, ...): `tag` names it.
    Other {
        tag: String,
    },
}

impl Scalar {
    /// What it is, for messages ("the integer 41135085241").
    pub fn describe(&self) -> String {
        match self {
            Scalar::Null => "null (nothing)".into(),
            Scalar::Bool(b) => format!("the boolean {}", if *b { "true" } else { "false" }),
            Scalar::Int(i) => format!("the integer {i}"),
            Scalar::Float(f) => format!("the float {f}"),
            Scalar::Str(s) => format!("the string {s:?}"),
            Scalar::Other { tag } => format!("a {tag}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `text` is the scalar as written (after YAML's quoting and folding), `plain` says
    /// whether it was unquoted and untagged (so YAML 1.1 typed it).
    Scalar {
        value: Scalar,
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order, duplicates included; lookups take the last.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub mark: Mark,
    pub kind: Kind,
}

impl Node {
    /// The value under `key` in a mapping (the last one, as PyYAML keeps).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value under `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            Kind::Map(m) => m
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar {
                value: Scalar::Str(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar() == Some(&Scalar::Null)
    }

    /// What makes two mapping keys the same key to PyYAML (their constructed value).
    pub(crate) fn key_id(&self) -> String {
        match &self.kind {
            Kind::Scalar { value, .. } => format!("{value:?}"),
            // Refused when loading: lists and mappings cannot be keys.
            _ => String::new(),
        }
    }

    /// Every string scalar below this node (keys and values), in document order.
    pub fn strings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.kind {
                Kind::Scalar {
                    value: Scalar::Str(s),
                    ..
                } => out.push(s.as_str()),
                Kind::Scalar { .. } => {}
                Kind::Seq(s) => stack.extend(s.iter().rev()),
                Kind::Map(m) => {
                    for (k, v) in m.iter().rev() {
                        stack.push(v);
                        stack.push(k);
                    }
                }
            }
        }
        out
    }

    /// The first key that occurs twice in one mapping anywhere below this node: (key,
    /// where it first occurs, where it occurs again).
    pub fn first_duplicate_key(&self) -> Option<(String, Mark, Mark)> {
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            match &n.kind {
                Kind::Scalar { .. } => {}
                Kind::Seq(s) => stack.extend(s.iter().rev()),
                Kind::Map(m) => {
                    let mut seen: HashMap<String, Mark> = HashMap::new();
                    for (k, _) in m {
                        if let Some(first) = seen.insert(k.key_id(), k.mark) {
                            let name = match &k.kind {
                                Kind::Scalar { text, .. } => text.clone(),
                                _ => "?".into(),
                            };
                            return Some((name, first, k.mark));
                        }
                    }
                    stack.extend(m.iter().rev().map(|(_, v)| v));
                }
            }
        }
        None
    }
}

/// Why a text is not a YAML document curtin could read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg}")]
pub struct LoadError {
    pub mark: Option<Mark>,
    pub msg: String,
}

fn load_err(mark: Mark, msg: impl Into<String>) -> LoadError {
    LoadError {
        mark: Some(mark),
        msg: msg.into(),
    }
}

/// A node under construction.
enum Open {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    anchors: HashMap<usize, Node>,
    nodes: usize,
    stack: Vec<Open>,
    root: Option<Node>,
}

fn size_of(n: &Node) -> usize {
    match &n.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(s) => 1 + s.iter().map(size_of).sum::<usize>(),
        Kind::Map(m) => {
            1 + m
                .iter()
                .map(|(k, v)| size_of(k) + size_of(v))
                .sum::<usize>()
        }
    }
}

fn is_merge_key(k: &Node) -> bool {
    matches!(&k.kind, Kind::Scalar { text, plain: true, .. } if text == "<<")
}

impl Builder {
    fn count(&mut self, n: usize, mark: Mark) -> Result<(), LoadError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(load_err(
                mark,
                format!(
                    "the document expands to more than {MAX_NODES} nodes (aliases included): refused"
                ),
            ));
        }
        Ok(())
    }

    /// Starts a collection, within the node budget and the nesting limit.
    fn open(&mut self, collection: Open, mark: Mark) -> Result<(), LoadError> {
        self.count(1, mark)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(load_err(
                mark,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(collection);
        Ok(())
    }

    /// Adds a finished node to whatever is open (or makes it the root).
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), LoadError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(load_err(
                        node.mark,
                        "a second document in the file: curtin reads one",
                    ));
                }
                self.root = Some(node);
            }
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                None => {
                    if matches!(node.kind, Kind::Seq(_) | Kind::Map(_)) {
                        return Err(load_err(
                            node.mark,
                            "a list or mapping used as a mapping key: curtin's YAML reader cannot hash it",
                        ));
                    }
                    *key = Some(node);
                }
                Some(k) if is_merge_key(&k) => merge_into(entries, k, node)?,
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// `<<: *base` or `<<: [*a, *b]`: the merged mappings' entries come before the
/// mapping's own (which therefore win), and in a list the first mapping wins (PyYAML's
/// order).
fn merge_into(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) -> Result<(), LoadError> {
    let maps: Vec<Node> = match value.kind {
        Kind::Map(_) => vec![value],
        Kind::Seq(items) => items.into_iter().rev().collect(),
        _ => {
            return Err(load_err(
                key.mark,
                "a merge key (<<) needs a mapping or a list of mappings",
            ));
        }
    };
    let mut merged = Vec::new();
    for m in maps {
        match m.kind {
            Kind::Map(e) => merged.extend(e),
            _ => {
                return Err(load_err(
                    m.mark,
                    "a merge key (<<) list holds something that is not a mapping",
                ));
            }
        }
    }
    merged.append(entries);
    *entries = merged;
    Ok(())
}

fn mark_of(m: &saphyr_parser::Marker) -> Mark {
    Mark {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// The core-schema suffix of a tag (`!!int` → `int`); an error for tags PyYAML's safe
/// loader has no constructor for.
fn tag_suffix(tag: &Tag, mark: Mark) -> Result<Option<String>, LoadError> {
    if tag.is_yaml_core_schema() {
        return Ok(Some(tag.suffix.clone()));
    }
    if tag.handle.is_empty() && tag.suffix == "!" {
        // The non-specific tag `!`: a plain string.
        return Ok(None);
    }
    Err(load_err(
        mark,
        format!("the tag {tag}: curtin's YAML reader (PyYAML safe_load) cannot construct it"),
    ))
}

fn scalar_node(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    mark: Mark,
) -> Result<Node, LoadError> {
    let plain = style == ScalarStyle::Plain && tag.is_none();
    let value = match tag {
        Some(t) => match tag_suffix(t, mark)? {
            Some(suffix) => resolve::tagged(&suffix, &text)
                .ok_or_else(|| load_err(mark, format!("`{text}` is not a valid !!{suffix}")))?,
            None => Scalar::Str(text.to_string()),
        },
        None if plain => resolve::plain(&text),
        None => Scalar::Str(text.to_string()),
    };
    Ok(Node {
        mark,
        kind: Kind::Scalar {
            value,
            text: text.into_owned(),
            plain,
        },
    })
}

fn check_collection_tag(tag: Option<&Tag>, want: &[&str], mark: Mark) -> Result<(), LoadError> {
    if let Some(t) = tag
        && let Some(suffix) = tag_suffix(t, mark)?
        && !want.contains(&suffix.as_str())
    {
        return Err(load_err(
            mark,
            format!("the tag !!{suffix} does not fit this node"),
        ));
    }
    Ok(())
}

/// Parses one YAML document into a node tree with positions. An empty text is `None`.
pub fn load(text: &str) -> Result<Option<Node>, LoadError> {
    let mut b = Builder {
        anchors: HashMap::new(),
        nodes: 0,
        stack: Vec::new(),
        root: None,
    };
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| load_err(mark_of(e.marker()), e.info().to_string()))?;
        let mark = mark_of(&span.start);
        match ev {
            Event::Scalar(t, style, anchor, tag) => {
                b.count(1, mark)?;
                let n = scalar_node(t, style, tag.as_deref(), mark)?;
                b.push(n, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), &["seq", "set", "omap", "pairs"], mark)?;
                b.open(
                    Open::Seq {
                        mark,
                        anchor,
                        items: Vec::new(),
                    },
                    mark,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), &["map", "set", "omap"], mark)?;
                b.open(
                    Open::Map {
                        mark,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    },
                    mark,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match b.stack.pop() {
                    Some(Open::Seq {
                        mark,
                        anchor,
                        items,
                    }) => (
                        Node {
                            mark,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Open::Map {
                        mark,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            mark,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    ),
                    None => return Err(load_err(mark, "unbalanced end of a collection")),
                };
                b.push(node, anchor)?;
            }
            Event::Alias(id) => {
                let mut n = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| load_err(mark, "an alias to an unknown anchor"))?;
                b.count(size_of(&n), mark)?;
                // Errors about the value point at where it is used.
                n.mark = mark;
                b.push(n, 0)?;
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
    }
    Ok(b.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(t: &str) -> Node {
        load(t).unwrap().unwrap()
    }

    #[test]
    fn positions_and_pyyaml_values() {
        let n = doc(
            "a:\n  mac: 52:54:00:12:34:01\n  q: \"52:54:00:12:34:01\"\n  b: [on, '0755', 0755]\n",
        );
        let a = n.get("a").unwrap();
        assert_eq!(a.mark, Mark { line: 2, column: 3 });
        let mac = a.get("mac").unwrap();
        assert_eq!(mac.mark, Mark { line: 2, column: 8 });
        assert_eq!(mac.scalar(), Some(&Scalar::Int(41135085241)));
        assert_eq!(a.get("q").unwrap().as_str(), Some("52:54:00:12:34:01"));
        let b = a.get("b").unwrap().as_seq().unwrap();
        assert_eq!(b[0].scalar(), Some(&Scalar::Bool(true)));
        assert_eq!(b[1].as_str(), Some("0755"));
        assert_eq!(b[2].scalar(), Some(&Scalar::Int(493)));
        assert_eq!(a.entry("b").unwrap().0.mark, Mark { line: 4, column: 3 });
    }

    #[test]
    fn anchors_merges_and_duplicates_as_pyyaml() {
        let n = doc("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: [&s hi, *s]\nd: 1\nd: 2\n");
        let u = n.get("use").unwrap();
        assert_eq!(u.get("x").unwrap().scalar(), Some(&Scalar::Int(1)));
        assert_eq!(u.get("y").unwrap().scalar(), Some(&Scalar::Int(3)));
        assert_eq!(
            n.get("list").unwrap().as_seq().unwrap()[1].as_str(),
            Some("hi")
        );
        assert_eq!(n.get("d").unwrap().scalar(), Some(&Scalar::Int(2)));
        let (k, first, again) = n.first_duplicate_key().unwrap();
        assert_eq!((k.as_str(), first.line, again.line), ("d", 4, 5));
        // In a merge list the first mapping wins.
        let n = doc("a: &a {k: 1}\nb: &b {k: 2}\nc: {<<: [*a, *b]}\n");
        assert_eq!(
            n.get("c").unwrap().get("k").unwrap().scalar(),
            Some(&Scalar::Int(1))
        );
    }

    #[test]
    fn tags() {
        let n = doc("a: !!str 0755\nb: !!int '12'\nc: ! 12\n");
        assert_eq!(n.get("a").unwrap().as_str(), Some("0755"));
        assert_eq!(n.get("b").unwrap().scalar(), Some(&Scalar::Int(12)));
        assert_eq!(n.get("c").unwrap().as_str(), Some("12"));
        let e = load("a: !custom x\n").unwrap_err();
        assert!(e.msg.contains("!custom"), "{e:?}");
        assert_eq!(e.mark.unwrap().line, 1);
    }

    #[test]
    fn refusals() {
        assert_eq!(load("").unwrap(), None);
        assert!(
            load("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .msg
                .contains("second document")
        );
        assert!(load("? [a]\n: 1\n").unwrap_err().msg.contains("key"));
        let e = load("a: [\n").unwrap_err();
        assert!(e.mark.is_some(), "{e:?}");
        // An alias bomb stops at the node budget.
        let mut t = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            t.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(load(&t).unwrap_err().msg.contains("nodes"));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(load(&deep).unwrap_err().msg.contains("nested"));
    }
}
