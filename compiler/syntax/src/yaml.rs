//! YAML text → spanned documents. Each document becomes a [`Node`] tree in which every value and
//! every mapping key knows its byte span, so any later finding can point at the exact place.
//!
//! Parsing is serde-saphyr's (its `Spanned` wrapper gives each node's location). We split the
//! stream into documents ourselves first, at `---`/`...` marker lines in column 0, so that one
//! broken document is reported and the others still load: YAML forbids such a line inside any
//! scalar of a document, so the split never cuts a document in two.

use aigw_diag::{Diagnostic, FileId, Span, codes};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// One YAML value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

/// A mapping key: scalar text and its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub span: Span,
    pub name: String,
}

/// The value of a node, resolved by the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The JSON type name used in messages (`string`, `integer`, `object`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::Seq(_) => "array",
            Value::Map(_) => "object",
        }
    }
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key and value under `key` when this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The string value, if this node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON, the form serde-derived model types are read from.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// One document of a YAML stream.
#[derive(Clone, Debug)]
pub struct Document {
    /// Position of the document in its file (0-based), for stable ordering.
    pub index: usize,
    pub root: Node,
}

/// Parses every document of `text`. Broken documents become diagnostics; the rest still load.
pub fn parse_stream(file: FileId, text: &str) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut documents = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, (start, chunk)) in split_documents(text).into_iter().enumerate() {
        match parse_chunk(file, start, chunk) {
            Ok(Some(root)) => documents.push(Document { index, root }),
            Ok(None) => {}
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    (documents, diagnostics)
}

/// Splits a stream at document markers. Each chunk keeps its own marker line so that directives
/// and `--- value` forms still parse; returns (byte offset, text) pairs.
pub(crate) fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        // `---` opens a new document; `...` closes the current one (below).
        if is_marker(line, "---") && offset > start {
            chunks.push((start, &text[start..offset]));
            start = offset;
        }
        offset += line.len();
        if is_marker(line, "...") {
            // The end marker closes its document; what follows starts afresh.
            chunks.push((start, &text[start..offset]));
            start = offset;
        }
    }
    if offset > start {
        chunks.push((start, &text[start..offset]));
    }
    chunks
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

pub(crate) fn parse_chunk(
    file: FileId,
    start: usize,
    chunk: &str,
) -> Result<Option<Node>, Diagnostic> {
    // Repeated keys reach our visitor, which keeps both, so that the error can point at both
    // places (serde-saphyr's own error names only the second).
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
    };
    match serde_saphyr::from_multiple_with_options::<RawNode>(chunk, options) {
        Ok(mut nodes) => {
            let Some(raw) = nodes.pop() else {
                return Ok(None);
            };
            let root = convert(file, start, chunk, raw);
            if let Some((first, again)) = repeated_key(&root) {
                return Err(duplicate_key(first, again));
            }
            Ok(match root.value {
                Value::Null => None,
                _ => Some(root),
            })
        }
        Err(error) => Err(syntax_error(file, start, chunk, &error)),
    }
}

fn syntax_error(
    file: FileId,
    start: usize,
    chunk: &str,
    error: &serde_saphyr::Error,
) -> Diagnostic {
    let message = match limit(error) {
        Some(limit) => limit,
        None => first_line(&error.to_string()),
    };
    let span = match error.location() {
        Some(loc) => {
            let at = start + offset_in(chunk, loc.line() as usize, loc.column() as usize);
            Span::new(file, at as u32, (at + 1).min(start + chunk.len()) as u32)
        }
        None => Span::new(file, start as u32, start as u32),
    };
    codes_yaml_syntax(span, message)
}

/// The error under serde-saphyr's wrappers (a snippet, an alias's expansion).
fn original(mut error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    use serde_saphyr::Error as E;
    while let E::WithSnippet { error: inner, .. } | E::AliasError { error: inner, .. } = error {
        error = inner;
    }
    error
}

/// A parser limit in the words of a user: the limits guard against documents built to exhaust
/// the reader (deep nesting, alias bombs), and serde-saphyr prints them as debug structures.
fn limit(error: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::budget::BudgetBreach as B;
    let serde_saphyr::Error::Budget { breach, .. } = original(error) else {
        return None;
    };
    // The limits are serde-saphyr's defaults, which we keep; quote them from there.
    let b = serde_saphyr::Budget::default();
    let n = thousands;
    let what = match breach {
        B::Depth { .. } => format!("nesting deeper than {} levels", b.max_depth),
        B::Nodes { .. } => format!("more than {} nodes, e.g. through aliases", n(b.max_nodes)),
        B::Aliases { .. } => format!("more than {} aliases", n(b.max_aliases)),
        B::Anchors { .. } => format!("more than {} anchors", n(b.max_anchors)),
        B::AliasAnchorRatio { .. } => format!(
            "aliases used more than {} times as often as anchors are defined, as in an alias bomb",
            b.alias_anchor_ratio_multiplier
        ),
        B::Events { .. } => format!("more than {} YAML events", n(b.max_events)),
        B::Documents { .. } => format!("more than {} documents", n(b.max_documents)),
        B::ScalarBytes { .. } => format!(
            "more than {} bytes of scalar text",
            n(b.max_total_scalar_bytes)
        ),
        B::MergeKeys { .. } => format!("more than {} merge keys", n(b.max_merge_keys)),
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "anchors that hold too much to expand".to_owned()
        }
        _ => "more than the reader's limits allow".to_owned(),
    };
    Some(format!(
        "the document is over a limit of the reader: {what}"
    ))
}

/// `250000` as `250,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first key of a mapping, anywhere in the tree, that repeats an earlier key of the same
/// mapping: (the first, the repeat).
fn repeated_key(node: &Node) -> Option<(&Key, &Key)> {
    match &node.value {
        Value::Seq(items) => items.iter().find_map(repeated_key),
        Value::Map(entries) => {
            let mut seen = std::collections::HashMap::with_capacity(entries.len());
            for (key, _) in entries {
                if let Some(first) = seen.insert(key.name.as_str(), key) {
                    return Some((first, key));
                }
            }
            entries.iter().find_map(|(_, value)| repeated_key(value))
        }
        _ => None,
    }
}

fn duplicate_key(first: &Key, again: &Key) -> Diagnostic {
    let name = &first.name;
    Diagnostic::error(
        codes::YAML_SYNTAX,
        format!("invalid YAML: duplicate key `{name}`"),
    )
    .with_primary(again.span, format!("`{name}` again"))
    .with_secondary(first.span, "first defined here")
    .with_help(
        "YAML requires unique keys in a mapping, and an API server refuses them; \
             remove one (this document is skipped; the others in the file are still checked)",
    )
}

fn codes_yaml_syntax(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(codes::YAML_SYNTAX, format!("invalid YAML: {message}"))
        .with_primary(span, "here")
        .with_help("this document is skipped; the others in the file are still checked")
}

/// serde-saphyr prints `error: line L column C: message` and a snippet; keep the message only.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
        _ => line.to_owned(),
    }
}

/// Byte offset of a 1-based line and character column inside `chunk`.
fn offset_in(chunk: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, text) in chunk.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let within = text
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(text.len(), |(b, _)| b);
            return offset + within;
        }
        offset += text.len();
    }
    chunk.len()
}

/// The tree as serde-saphyr hands it to us, before spans are made absolute.
type RawNode = Spanned<RawValue>;

enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
    Seq(Vec<RawNode>),
    Map(Vec<(Spanned<String>, RawNode)>),
}

fn convert(file: FileId, start: usize, chunk: &str, raw: RawNode) -> Node {
    let span = span_of(file, start, chunk, &raw.referenced);
    let value = match raw.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        // Integers past i64 are out of every bound our schemas have; keep them as numbers.
        RawValue::UInt(u) => i64::try_from(u).map_or(Value::Float(u as f64), Value::Int),
        RawValue::Float(f) => Value::Float(f),
        RawValue::String(s) => Value::String(s),
        // Fresh, exact-size vectors: an in-place `collect` would keep the much larger buffer of
        // the raw nodes (two serde-saphyr locations each) alive for the life of the tree.
        RawValue::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            out.extend(items.into_iter().map(|n| convert(file, start, chunk, n)));
            Value::Seq(out)
        }
        RawValue::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            out.extend(entries.into_iter().map(|(k, v)| {
                let key = Key {
                    span: span_of(file, start, chunk, &k.referenced),
                    name: k.value,
                };
                (key, convert(file, start, chunk, v))
            }));
            Value::Map(out)
        }
    };
    Node { span, value }
}

fn span_of(file: FileId, start: usize, chunk: &str, loc: &serde_saphyr::Location) -> Span {
    let span = loc.span();
    let begin = match span.byte_offset() {
        Some(b) => b as usize,
        None => offset_in(chunk, loc.line() as usize, loc.column() as usize),
    };
    let len = span.byte_len().unwrap_or(span.len()) as usize;
    let begin = begin.min(chunk.len());
    let end = (begin + len).min(chunk.len());
    Span::new(file, (start + begin) as u32, (start + end) as u32)
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawValue, E> {
        Ok(RawValue::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_diag::SourceMap;

    fn parse(text: &str) -> (Vec<Document>, Vec<Diagnostic>) {
        let mut map = SourceMap::new();
        let id = map.add("t.yaml", text);
        parse_stream(id, text)
    }

    #[test]
    fn a_broken_document_does_not_hide_the_others() {
        let (docs, diags) = parse("a: 1\n---\nb: [1, 2\nc: 3\n---\nd: 4\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(diags.len(), 1);
        assert_eq!(docs[1].root.get("d").map(|n| n.span.start), Some(30));
        assert!(
            diags[0].message().starts_with("invalid YAML"),
            "{}",
            diags[0].message()
        );
    }

    #[test]
    fn spans_are_absolute_byte_ranges() {
        let text = "x: 1\n---\nkind: Foo\nlist: [a, \"b\"]\n";
        let (docs, _) = parse(text);
        let doc = &docs[1].root;
        let kind = doc.get("kind").unwrap();
        assert_eq!(
            &text[kind.span.start as usize..kind.span.end as usize],
            "Foo"
        );
        let Value::Seq(items) = &doc.get("list").unwrap().value else {
            panic!()
        };
        assert_eq!(
            &text[items[1].span.start as usize..items[1].span.end as usize],
            "\"b\""
        );
        let (key, _) = doc.entry("list").unwrap();
        assert_eq!(
            &text[key.span.start as usize..key.span.end as usize],
            "list"
        );
    }

    #[test]
    fn duplicate_keys_are_errors_and_empty_documents_vanish() {
        let (docs, diags) = parse("---\n---\na: 1\na: 2\n---\n# only a comment\n");
        assert!(docs.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].message().contains("duplicate"),
            "{}",
            diags[0].message()
        );
    }

    #[test]
    fn marker_lines_split_only_in_column_zero() {
        let chunks = split_documents("a: |\n  ---\n---\nb: 1\n...\nc: 2\n");
        let texts: Vec<_> = chunks.iter().map(|(_, t)| *t).collect();
        assert_eq!(texts, vec!["a: |\n  ---\n", "---\nb: 1\n...\n", "c: 2\n"]);
    }
}
