//! Field paths (`spec.rules[0].backendRefs[1].name`) resolved against a spanned document, so
//! that passes working on the typed model can still point at the YAML they came from.

use crate::yaml::{Node, Value};
use aigw_diag::Span;

/// One step of a field path.
enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

fn steps(path: &str) -> impl Iterator<Item = Step<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let (field, rest) = part.split_once('[').unwrap_or((part, ""));
        let indices = rest
            .split('[')
            .filter_map(|i| i.trim_end_matches(']').parse::<usize>().ok())
            .map(Step::Index);
        (!field.is_empty())
            .then_some(Step::Field(field))
            .into_iter()
            .chain(indices)
    })
}

/// Walks as far as the path exists; returns the deepest node reached and the span of the key
/// that led to it (the node's own span for list items and the root).
fn walk<'a>(root: &'a Node, path: &str) -> (&'a Node, Span) {
    let mut node = root;
    let mut key = root.span;
    for step in steps(path) {
        let next = match (step, &node.value) {
            (Step::Field(name), Value::Map(_)) => node.entry(name).map(|(k, v)| (v, k.span)),
            (Step::Index(i), Value::Seq(items)) => items.get(i).map(|v| (v, v.span)),
            _ => None,
        };
        match next {
            Some((n, k)) => {
                node = n;
                key = k;
            }
            None => break,
        }
    }
    (node, key)
}

/// The node at exactly `path`, if it exists.
pub fn node_at<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    for step in steps(path) {
        node = match (step, &node.value) {
            (Step::Field(name), Value::Map(_)) => node.get(name)?,
            (Step::Index(i), Value::Seq(items)) => items.get(i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The span of the value at `path`, or of the deepest enclosing value that exists.
pub fn span_of(root: &Node, path: &str) -> Span {
    let (node, key) = walk(root, path);
    match node.value {
        // A mapping's own span is only its first token; its key reads better.
        Value::Map(_) | Value::Seq(_) => key,
        _ => node.span,
    }
}

/// The span of the key at `path`, falling back as `span_of` does.
pub fn key_span_of(root: &Node, path: &str) -> Span {
    walk(root, path).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;
    use aigw_diag::SourceMap;

    #[test]
    fn resolves_fields_and_indices_and_falls_back_to_the_deepest_existing_node() {
        let text = "spec:\n  rules:\n  - name: a\n  - name: b\n    backendRefs: [{name: x}]\n";
        let mut map = SourceMap::new();
        let id = map.add("t.yaml", text);
        let (docs, _) = parse_stream(id, text);
        let root = &docs[0].root;
        let at = |s: Span| &text[s.start as usize..s.end as usize];
        assert_eq!(at(span_of(root, "spec.rules[1].name")), "b");
        assert_eq!(at(span_of(root, "spec.rules[1].backendRefs[0].name")), "x");
        assert_eq!(at(key_span_of(root, "spec.rules[1].name")), "name");
        // Missing leaf: the deepest existing key.
        assert_eq!(
            span_of(root, "spec.rules[0].timeouts.request").start as usize,
            text.find("name: a").unwrap()
        );
        assert_eq!(at(span_of(root, "spec.rules[7]")), "rules");
    }
}
