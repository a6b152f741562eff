//! Where each field of a TOML document is, by dotted path.
//!
//! The document is read a second time into a schema-less tree whose every key
//! and value is a `toml::Spanned`. That gives a location to every field
//! without cluttering the raw types with `Spanned` wrappers, lets validation
//! of the typed model name fields by path only (the same checks then serve
//! the runtime API, which has no text), and turns the byte span of a serde
//! error back into the field it is about.

use std::{collections::HashMap, fmt, ops::Range};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// Field path to span, for every key and value of a document.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    /// Span of each field's value (for tables: header and body).
    values: HashMap<String, Range<usize>>,
    /// Every key and value span with its field, for span-to-field lookups.
    all: Vec<(String, Range<usize>)>,
}

/// A TOML value with only its shape kept.
enum Node {
    Scalar,
    Array(Vec<Spanned<Node>>),
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl SpanIndex {
    /// The index of `text`; empty if it does not parse (then errors simply
    /// carry no location).
    pub(crate) fn build(text: &str) -> SpanIndex {
        let mut index = SpanIndex::default();
        if let Ok(root) = toml::from_str::<Spanned<Node>>(text) {
            index.add(String::new(), &root);
        }
        index
    }

    fn add(&mut self, field: String, node: &Spanned<Node>) {
        match node.get_ref() {
            Node::Scalar => {}
            Node::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.add(format!("{field}[{i}]"), item);
                }
            }
            Node::Table(entries) => {
                for (key, value) in entries {
                    let child = join(&field, key.get_ref());
                    self.all.push((child.clone(), key.span()));
                    self.add(child, value);
                }
            }
        }
        self.all.push((field.clone(), node.span()));
        self.values.insert(field, node.span());
    }

    /// The span of `field`, or of its nearest ancestor present in the text
    /// (a defaulted field is blamed on the table that left it out).
    pub(crate) fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let mut current = Some(field);
        while let Some(f) = current {
            match self.values.get(f) {
                Some(span) if !span.is_empty() => return Some(span.clone()),
                _ => current = parent(f),
            }
        }
        None
    }

    /// The field a span (from a toml error) points at: the one with exactly
    /// that span, else the narrowest one containing its start; among equals
    /// the deepest.
    pub(crate) fn field_at(&self, span: &Range<usize>) -> Option<&str> {
        let exact = self
            .all
            .iter()
            .filter(|(_, s)| s == span)
            .max_by_key(|(f, _)| f.len());
        let containing = || {
            self.all
                .iter()
                .filter(|(_, s)| s.start <= span.start && span.start < s.end)
                .min_by_key(|(f, s)| (s.len(), usize::MAX - f.len()))
        };
        exact.or_else(containing).map(|(f, _)| f.as_str())
    }
}

/// `parent.key`, or `key` at the top level.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The enclosing field: `a.b[2]` → `a.b` → `a` → `` (the document) → none.
fn parent(field: &str) -> Option<&str> {
    if field.is_empty() {
        return None;
    }
    Some(field.rfind(['.', '[']).map_or("", |i| &field[..i]))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any toml value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Table(entries))
    }
}
