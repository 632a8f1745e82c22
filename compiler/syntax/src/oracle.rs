//! The reader this crate used before `tree`: serde-saphyr's deserializer with its `Spanned`
//! wrapper on every node. Kept for tests only, as an oracle: on every manifest we have, the event
//! reader must build the same tree (values and spans) and fail where this one fails.

use crate::scalar::thousands;
use crate::yaml::{Key, Node, Value, codes_yaml_syntax, duplicate_key, offset_in, repeated_key};
use aigw_diag::{Diagnostic, FileId, Span};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

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

/// serde-saphyr prints `error: line L column C: message` and a snippet; keep the message only.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
        _ => line.to_owned(),
    }
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
    use crate::yaml::split_documents;
    use std::path::{Path, PathBuf};

    fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }

    /// Every document of every manifest we have: the project's test cases and, when present,
    /// the reference project's corpus (read in place).
    #[test]
    fn the_event_reader_builds_what_serde_saphyr_built() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        yaml_files(&root.join("testdata"), &mut files);
        let corpus = root.join("../shared/conformance/envoy-ai-gateway");
        if corpus.is_dir() {
            yaml_files(&corpus, &mut files);
        } else {
            eprintln!("SKIP the reference corpus: {} is absent", corpus.display());
        }
        let mut map = aigw_diag::SourceMap::new();
        let file = map.add("t.yaml", "");
        let (mut documents, mut failures, mut differences) = (0, 0, Vec::new());
        let mut texts: Vec<(String, String)> = files
            .iter()
            .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?)))
            .collect();
        texts.push(("scalars".into(), SCALARS.into()));
        for (path, text) in &texts {
            for (start, chunk) in split_documents(text) {
                documents += 1;
                let old = parse_chunk(file, start, chunk);
                let new = crate::yaml::parse_chunk(file, start, chunk);
                match (&old, &new) {
                    (Ok(a), Ok(b)) if a == b => {}
                    // Both refuse it: at the same place (the messages may be worded apart).
                    (Err(a), Err(b)) => {
                        failures += 1;
                        let at = |d: &Diagnostic| d.primary().map(|l| l.span);
                        if at(a) != at(b) {
                            differences.push(format!(
                                "{path}@{start}: refused at {:?} before, at {:?} now",
                                at(a),
                                at(b)
                            ));
                        }
                    }
                    _ => differences.push(format!(
                        "{}@{start}:\n  serde-saphyr: {:?}\n  events: {:?}",
                        path,
                        old.map_err(|d| d.message().to_owned()),
                        new.map_err(|d| d.message().to_owned())
                    )),
                }
            }
        }
        assert!(documents > 300, "only {documents} documents read");
        assert!(
            differences.is_empty(),
            "{} of {documents} documents differ ({failures} fail in both):\n{}",
            differences.len(),
            differences
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Scalars and structures of every form, one document each, for the oracle test.
    const SCALARS: &str = r#"a: [0, -0, +1, 0x1f, 0xFF, 0o17, 0o8, 9223372036854775807, 9223372036854775808, -9223372036854775809, 99999999999999999999999]
---
b: [1.5, .5, -.5, 1., 1e3, 1E-3, +2.5e+2, 1.2.3, 1e, e3, .]
---
inf: .inf
---
nan: [.NaN]
---
c: [true, True, TRUE, false, False, FALSE, yes, no, on, off, y, n, tRUE]
---
d: [null, Null, NULL, ~, "", '', "null", 'true', "80"]
e:
f: ~
---
g: !!str 80
h: !!str true
i: !!float 1
j: !!int "42"
k: !!bool true
l: !!null null
m: ! 12
n: !custom 12
---
o: |
  line one
  line two
p: >-
  folded
  text
q: "esc\t\u00e9\n"
r: 'it''s'
s: plain
  continued
t: "multi
  line"
---
base: &base {x: 1, y: [a, b]}
u:
  <<: *base
  y: 2
v: *base
w: &w 60s
z: *w
---
? explicit
: value
"quoted key": 1
'single': 2
3: three
true: yes
---
- [a, {b: c}, [d]]
- {e: [f, {g: h}]}
- - nested
  - - deeper
- 'é ü 中文 🎉'
---
apiVersion: v1 # a comment
kind: ConfigMap   # another
data: {a: "1", b: '2', c: 3}
"#;
}
