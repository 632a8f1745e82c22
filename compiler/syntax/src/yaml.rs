//! YAML text → spanned documents. Each document becomes a [`Node`] tree in which every value and
//! every mapping key knows its byte span, so any later finding can point at the exact place.
//!
//! The parser is serde-saphyr's (granit-parser), read event by event into the tree (`tree`). We
//! split the stream into documents ourselves first, at `---`/`...` marker lines in column 0, so that one
//! broken document is reported and the others still load: YAML forbids such a line inside any
//! scalar of a document, so the split never cuts a document in two.

use crate::tree::Problem;
use aigw_diag::{Diagnostic, FileId, Span, codes};

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
    let root = crate::tree::document(file, start, chunk).map_err(|failure| {
        let at = start + failure.at;
        let span = Span::new(file, at as u32, (at + 1).min(start + chunk.len()) as u32);
        let message = match failure.what {
            Problem::Syntax(message) | Problem::Unsupported(message) => message,
            Problem::Limit(what) => format!("the document is over a limit of the reader: {what}"),
        };
        codes_yaml_syntax(span, message)
    })?;
    if let Some((first, again)) = root.as_ref().and_then(repeated_key) {
        return Err(duplicate_key(first, again));
    }
    Ok(root)
}

/// The first key of a mapping, anywhere in the tree, that repeats an earlier key of the same
/// mapping: (the first, the repeat).
pub(crate) fn repeated_key(node: &Node) -> Option<(&Key, &Key)> {
    match &node.value {
        Value::Seq(items) => items.iter().find_map(repeated_key),
        Value::Map(entries) => {
            // Most mappings have a handful of keys: comparing them pairwise is cheaper than
            // hashing them.
            if entries.len() <= 16 {
                for (i, (key, _)) in entries.iter().enumerate() {
                    if let Some((first, _)) = entries[..i].iter().find(|(k, _)| k.name == key.name)
                    {
                        return Some((first, key));
                    }
                }
            } else {
                let mut seen = std::collections::HashMap::with_capacity(entries.len());
                for (key, _) in entries {
                    if let Some(first) = seen.insert(key.name.as_str(), key) {
                        return Some((first, key));
                    }
                }
            }
            entries.iter().find_map(|(_, value)| repeated_key(value))
        }
        _ => None,
    }
}

pub(crate) fn duplicate_key(first: &Key, again: &Key) -> Diagnostic {
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

pub(crate) fn codes_yaml_syntax(span: Span, message: String) -> Diagnostic {
    Diagnostic::error(codes::YAML_SYNTAX, format!("invalid YAML: {message}"))
        .with_primary(span, "here")
        .with_help("this document is skipped; the others in the file are still checked")
}

/// Byte offset of a 1-based line and character column inside `chunk`.
pub(crate) fn offset_in(chunk: &str, line: usize, column: usize) -> usize {
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
