//! YAML parser events → the spanned [`Node`] tree of one document. The parser is granit-parser,
//! the one serde-saphyr is built on (re-exported by it); we read its events directly instead of
//! deserializing through serde, because serde's generic machinery (and the two locations it
//! attaches to every value) cost two thirds of `aigw check`'s time on large inputs, and all we
//! need is a tree with spans.
//!
//! What this module decides, since serde no longer does:
//! - **Scalars** resolve by the YAML 1.2 core schema: plain `null`, `Null`, `NULL`, `~` and the
//!   empty scalar are null; `true`/`false` (and their `True`/`TRUE` forms) are booleans, nothing
//!   else is (`yes`, `on` stay strings); decimal, `0o` octal and `0x` hex integers; decimals,
//!   exponents are floats (`.inf` and `.nan` are refused: JSON, and so an API server, has
//!   neither); an integer past `i64` is a float; `1_000` is a string (YAML 1.1 read it as an
//!   integer, 1.2 does not); `007` is the integer 7. Quoted and block
//!   scalars are strings. The tags `!!str`, `!!null`, `!!bool`, `!!int` and `!!float` force their
//!   type (a value that cannot have it is an error); other tags are ignored.
//! - **Mapping keys** are scalars (their text, whatever it resolves to); a mapping or sequence as
//!   a key is an error.
//! - **Anchors and aliases**: an alias is a copy of its anchored node, every part of it spanned
//!   at the alias (as serde-saphyr did).
//! - **Merge keys** (`<<: *base`, `<<: [*a, *b]`): the explicit entries come first, then merged
//!   entries whose key is not already there, earlier sources first.
//! - **Limits** per document, so that input built to exhaust a reader fails fast with a message:
//!   [`MAX_DEPTH`] levels of nesting, [`MAX_NODES`] nodes after alias expansion (scalars,
//!   mapping keys and collections), [`MAX_ALIASES`] aliases,
//!   [`MAX_SCALAR_BYTES`] of scalar text after alias expansion, and [`MAX_MERGE_KEYS`] merge
//!   keys. The values are serde-saphyr's defaults, which this reader used before.

use crate::scalar::{owned, resolve, thousands};
use crate::yaml::{Key, Node, Value};
use aigw_diag::{FileId, Span};
use serde_saphyr::granit_parser::{
    ErrorKind, Event, Parser, ScalarStyle, ScanError, Span as Located,
};
use std::collections::HashMap;

/// Deepest nesting of collections.
pub const MAX_DEPTH: usize = 64;
/// Most nodes per document (scalars, mapping keys included, and collections), aliases
/// expanded.
pub const MAX_NODES: usize = 250_000;
/// Most aliases per document.
pub const MAX_ALIASES: usize = 50_000;
/// Most bytes of scalar text per document, aliases expanded.
pub const MAX_SCALAR_BYTES: usize = 64 * 1024 * 1024;
/// Most merge keys per document.
pub const MAX_MERGE_KEYS: usize = 10_000;

/// Why a document did not become a tree: where (a byte offset in the document's text) and what.
#[derive(Debug)]
pub struct Failure {
    pub at: usize,
    pub what: Problem,
}

#[derive(Debug)]
pub enum Problem {
    /// The parser's own error, in its words.
    Syntax(String),
    /// Over one of the limits above, in a user's words.
    Limit(String),
    /// Well-formed YAML this reader does not take (complex keys, a bad merge, a wrong tag).
    Unsupported(String),
}

/// What a node costs against the limits; kept with each anchor so that an alias is charged for
/// everything it copies.
#[derive(Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

/// The tree of the last document in `chunk` (`None` when it has none), spans offset by `start`.
pub fn document(file: FileId, start: usize, chunk: &str) -> Result<Option<Node>, Failure> {
    let (items, entries) = SCRATCH.take();
    let mut builder = Builder {
        file,
        start,
        chunk,
        stack: Vec::new(),
        items,
        entries,
        anchors: HashMap::new(),
        spent: Cost::default(),
        aliases: 0,
        merges: 0,
        root: None,
    };
    let built = builder.build();
    // A document that failed part-way leaves its pieces: the next one starts empty.
    builder.items.clear();
    builder.entries.clear();
    SCRATCH.set((builder.items, builder.entries));
    built?;
    Ok(builder.root.filter(|node| node.value != Value::Null))
}

thread_local! {
    /// The element stacks of the collections being read ([`Builder::items`] and
    /// [`Builder::entries`]), kept for the thread's next document: after the first few
    /// documents they are large enough, so reading allocates each collection once, at its
    /// exact size, and never grows or shrinks one.
    static SCRATCH: std::cell::Cell<Stacks> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// The items and the entries stacks.
type Stacks = (Vec<Node>, Vec<(Key, Node)>);

/// A collection being read.
struct Frame {
    span: Span,
    anchor: usize,
    cost: Cost,
    body: Body,
}

/// A collection's elements so far are the top of the builder's stack of its kind, from `start`.
enum Body {
    Seq {
        start: usize,
    },
    Map {
        start: usize,
        /// The key read, waiting for its value; `None` for a merge key.
        key: Option<Option<Key>>,
        merges: Vec<Node>,
    },
}

struct Builder<'a> {
    file: FileId,
    start: usize,
    chunk: &'a str,
    stack: Vec<Frame>,
    /// The items of every sequence being read, innermost last.
    items: Vec<Node>,
    /// The entries of every mapping being read, innermost last.
    entries: Vec<(Key, Node)>,
    anchors: HashMap<usize, (Node, Cost)>,
    spent: Cost,
    aliases: usize,
    merges: usize,
    root: Option<Node>,
}

impl Builder<'_> {
    fn build(&mut self) -> Result<(), Failure> {
        for item in Parser::new_from_str(self.chunk) {
            let (event, at) = item.map_err(|e| self.scan_failure(&e))?;
            self.event(event, at)?;
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, at: Located) -> Result<(), Failure> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let cost = Cost {
                    nodes: 1,
                    bytes: text.len(),
                };
                self.charge(cost, &at)?;
                let span = self.span(&at);
                if self.wants_key() {
                    let merge = style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                    let key = Key {
                        span,
                        name: owned(text),
                    };
                    if anchor != 0 {
                        let node = Node {
                            span,
                            value: Value::String(key.name.clone()),
                        };
                        self.anchors.insert(anchor, (node, cost));
                    }
                    self.set_key(if merge { None } else { Some(key) });
                    return Ok(());
                }
                let value = resolve(text, style, tag.as_deref())
                    .map_err(|message| self.fail(&at, Problem::Unsupported(message)))?;
                self.finish(Node { span, value }, anchor, cost)
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > MAX_ALIASES {
                    return Err(
                        self.limit(&at, format!("more than {} aliases", thousands(MAX_ALIASES)))
                    );
                }
                let Some((mut node, cost)) = self.anchors.get(&id).cloned() else {
                    return Err(self.fail(
                        &at,
                        Problem::Unsupported(
                            "an alias to an anchor that is still being defined (a recursive reference)"
                                .to_owned(),
                        ),
                    ));
                };
                self.charge(cost, &at)?;
                respan(&mut node, self.span(&at));
                if self.wants_key() {
                    let name = match node.value {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Seq(_) | Value::Map(_) => return Err(self.complex_key(&at)),
                    };
                    self.set_key(Some(Key {
                        span: node.span,
                        name,
                    }));
                    return Ok(());
                }
                self.finish(node, 0, cost)
            }
            Event::SequenceStart(_, anchor, _) => {
                let start = self.items.len();
                self.open(&at, anchor, Body::Seq { start })
            }
            Event::MappingStart(_, anchor, _) => {
                let start = self.entries.len();
                self.open(
                    &at,
                    anchor,
                    Body::Map {
                        start,
                        key: None,
                        merges: Vec::new(),
                    },
                )
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(&at),
            // Stream and document boundaries, and presentation metadata (comments, anchor
            // names) when a feature turns them on: nothing to build.
            _ => Ok(()),
        }
    }

    fn open(&mut self, at: &Located, anchor: usize, body: Body) -> Result<(), Failure> {
        if self.wants_key() {
            return Err(self.complex_key(at));
        }
        if self.stack.len() + 1 > MAX_DEPTH {
            return Err(self.limit(at, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let cost = Cost { nodes: 1, bytes: 0 };
        self.charge(cost, at)?;
        self.stack.push(Frame {
            span: self.span(at),
            anchor,
            cost,
            body,
        });
        Ok(())
    }

    fn close(&mut self, at: &Located) -> Result<(), Failure> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        // Exact-size vectors, each allocated once: the tree lives as long as the compile.
        let value = match frame.body {
            Body::Seq { start } => Value::Seq(self.items.drain(start..).collect()),
            Body::Map { start, merges, .. } => {
                let entries = self.entries.drain(start..).collect();
                let mut entries = merged(entries, merges)
                    .map_err(|message| self.fail(at, Problem::Unsupported(message)))?;
                entries.shrink_to_fit();
                Value::Map(entries)
            }
        };
        let node = Node {
            span: frame.span,
            value,
        };
        self.finish(node, frame.anchor, frame.cost)
    }

    /// A complete node: kept for its anchor, then given to its parent (or made the root).
    fn finish(&mut self, node: Node, anchor: usize, cost: Cost) -> Result<(), Failure> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        parent.cost.nodes += cost.nodes;
        parent.cost.bytes += cost.bytes;
        match &mut parent.body {
            Body::Seq { .. } => self.items.push(node),
            Body::Map { key, merges, .. } => match key.take() {
                Some(Some(key)) => self.entries.push((key, node)),
                Some(None) => {
                    self.merges += 1;
                    if self.merges > MAX_MERGE_KEYS {
                        let at = node.span.start as usize - self.start;
                        return Err(Failure {
                            at,
                            what: Problem::Limit(format!(
                                "more than {} merge keys",
                                thousands(MAX_MERGE_KEYS)
                            )),
                        });
                    }
                    merges.push(node);
                }
                // Never: a node in key position is read as a key (or refused) before this.
                None => {}
            },
        }
        Ok(())
    }

    /// Whether the innermost collection is a mapping waiting for a key.
    fn wants_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                body: Body::Map { key: None, .. },
                ..
            })
        )
    }

    fn set_key(&mut self, new: Option<Key>) {
        if let Some(Frame {
            body: Body::Map { key, .. },
            cost,
            ..
        }) = self.stack.last_mut()
        {
            cost.nodes += 1;
            if let Some(k) = &new {
                cost.bytes += k.name.len();
            }
            *key = Some(new);
        }
    }

    fn charge(&mut self, cost: Cost, at: &Located) -> Result<(), Failure> {
        self.spent.nodes += cost.nodes;
        self.spent.bytes += cost.bytes;
        if self.spent.nodes > MAX_NODES {
            return Err(self.limit(
                at,
                format!(
                    "more than {} nodes, e.g. through aliases",
                    thousands(MAX_NODES)
                ),
            ));
        }
        if self.spent.bytes > MAX_SCALAR_BYTES {
            return Err(self.limit(
                at,
                format!(
                    "more than {} bytes of scalar text",
                    thousands(MAX_SCALAR_BYTES)
                ),
            ));
        }
        Ok(())
    }

    fn fail(&self, at: &Located, what: Problem) -> Failure {
        Failure {
            at: self.offset(at),
            what,
        }
    }

    fn limit(&self, at: &Located, what: String) -> Failure {
        self.fail(at, Problem::Limit(what))
    }

    fn complex_key(&self, at: &Located) -> Failure {
        self.fail(
            at,
            Problem::Unsupported(
                "a mapping or sequence as a mapping key (keys must be scalars)".to_owned(),
            ),
        )
    }

    fn scan_failure(&self, error: &ScanError) -> Failure {
        let mark = error.marker();
        let at = mark
            .byte_offset()
            .unwrap_or_else(|| crate::yaml::offset_in(self.chunk, mark.line(), mark.col() + 1));
        // The parser's own nesting guard (flow collections nest 255 deep in it before our
        // limit sees them): the same user's words as ours.
        let what = match error.kind() {
            ErrorKind::RecursionLimitExceeded => {
                Problem::Limit(format!("nesting deeper than {MAX_DEPTH} levels"))
            }
            _ => Problem::Syntax(error.info()),
        };
        Failure {
            at: at.min(self.chunk.len()),
            what,
        }
    }

    /// Byte offset of an event in the document's text.
    fn offset(&self, at: &Located) -> usize {
        at.start
            .byte_offset()
            .unwrap_or_else(|| {
                crate::yaml::offset_in(self.chunk, at.start.line(), at.start.col() + 1)
            })
            .min(self.chunk.len())
    }

    fn span(&self, at: &Located) -> Span {
        let begin = self.offset(at);
        let end = match at.end.byte_offset() {
            Some(end) => end.clamp(begin, self.chunk.len()),
            None => begin + at.len().min(self.chunk.len() - begin),
        };
        Span::new(
            self.file,
            (self.start + begin) as u32,
            (self.start + end) as u32,
        )
    }
}

/// Every node and key of an alias's copy points at the alias: a finding inside it is about the
/// place that uses the anchor.
fn respan(node: &mut Node, span: Span) {
    node.span = span;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| respan(n, span)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            k.span = span;
            respan(v, span);
        }),
        _ => {}
    }
}

/// The explicit entries, then the merged ones whose key is not there yet.
fn merged(mut entries: Vec<(Key, Node)>, merges: Vec<Node>) -> Result<Vec<(Key, Node)>, String> {
    if merges.is_empty() {
        return Ok(entries);
    }
    let mut sources = Vec::new();
    for merge in merges {
        match merge.value {
            Value::Map(map) => sources.push(map),
            Value::Seq(items) => {
                for item in items {
                    match item.value {
                        Value::Map(map) => sources.push(map),
                        _ => return Err(bad_merge()),
                    }
                }
            }
            _ => return Err(bad_merge()),
        }
    }
    for source in sources {
        for (key, value) in source {
            if !entries.iter().any(|(k, _)| k.name == key.name) {
                entries.push((key, value));
            }
        }
    }
    Ok(entries)
}

fn bad_merge() -> String {
    "a merge key `<<` takes a mapping or a list of mappings".to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file id for documents read in tests.
    pub(crate) fn file() -> FileId {
        aigw_diag::SourceMap::new().add("t.yaml", "")
    }

    /// The value under `v` of a one-document text.
    pub(crate) fn value(text: &str) -> Value {
        let node = document(file(), 0, text)
            .expect("parses")
            .expect("a document");
        node.get("v").expect("v").value.clone()
    }

    #[test]
    fn aliases_copy_and_merge_keys_fill_in() {
        let text = "base: &b {x: 1, y: 2}\nv:\n  <<: *b\n  y: 3\n";
        let Value::Map(entries) = value(text) else {
            panic!("a map");
        };
        let pairs: Vec<(&str, &Value)> = entries
            .iter()
            .map(|(k, v)| (k.name.as_str(), &v.value))
            .collect();
        assert_eq!(pairs, [("y", &Value::Int(3)), ("x", &Value::Int(1))]);
        // The alias is spanned where it is used.
        let node = document(file(), 0, "a: &x hi\nb: *x\n")
            .expect("parses")
            .expect("a document");
        let b = node.get("b").expect("b");
        assert_eq!((b.span.start, b.span.end), (12, 14));
        assert_eq!(b.value, Value::String("hi".into()));
        // So is every part of a copied collection.
        let node = document(file(), 0, "a: &x {k: [1]}\nb: *x\n")
            .expect("parses")
            .expect("a document");
        let Some(Value::Map(entries)) = node.get("b").map(|b| &b.value) else {
            panic!("a map");
        };
        assert_eq!(entries[0].0.span.start, 18);
        let Value::Seq(items) = &entries[0].1.value else {
            panic!("a list");
        };
        assert_eq!(items[0].span.start, 18);
    }

    #[test]
    fn nesting_past_the_parser_guard_reads_as_our_limit() {
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let failure = document(file(), 0, &text).expect_err("too deep");
        assert!(
            matches!(&failure.what, Problem::Limit(m) if m == "nesting deeper than 64 levels"),
            "{failure:?}"
        );
        let block: String = (0..10_000)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect();
        let failure = document(file(), 0, &block).expect_err("too deep");
        assert!(matches!(failure.what, Problem::Limit(_)), "{failure:?}");
    }

    #[test]
    fn complex_keys_and_recursive_aliases_are_refused() {
        for text in ["? [a, b]\n: c\n", "a: &x [*x]\n", "a:\n  <<: 5\n"] {
            let failure = document(file(), 0, text).expect_err(text);
            assert!(matches!(failure.what, Problem::Unsupported(_)), "{text}");
        }
    }
}
