//! Writes a [`Picture`] as Graphviz DOT or Mermaid. Both are plain text built line by line;
//! names are quoted for each format so that no object name can break out of its label.

use crate::{Picture, Shape};
use aigw_syntax::Kind;
use std::fmt::Write;

/// Fill colours by role: entry points, routing, backends, policies, secrets.
fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Gateway | Kind::GatewayConfig => "#dbeafe",
        Kind::AIGatewayRoute | Kind::HTTPRoute | Kind::MCPRoute => "#dcfce7",
        Kind::AIServiceBackend | Kind::InferencePool | Kind::Backend => "#fef9c3",
        Kind::Secret => "#fee2e2",
        _ => "#ede9fe",
    }
}

fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Graphviz DOT, left to right.
pub fn dot(picture: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph aigw {{");
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(
        out,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];");
    for (i, (namespace, shapes)) in picture.namespaces.iter().enumerate() {
        let indent = if namespace.is_empty() { "  " } else { "    " };
        if !namespace.is_empty() {
            let _ = writeln!(out, "  subgraph cluster_{i} {{");
            let _ = writeln!(
                out,
                "    label={};",
                dot_quote(&format!("namespace {namespace}"))
            );
            let _ = writeln!(out, "    style=\"rounded,dashed\"; color=\"#94a3b8\";");
        }
        for shape in shapes {
            let label = dot_quote(&format!("{}\n{}", shape.title, shape.name));
            let _ = writeln!(
                out,
                "{indent}{} [label={label}, fillcolor=\"{}\"];",
                shape.id,
                colour(shape.kind)
            );
        }
        if !namespace.is_empty() {
            let _ = writeln!(out, "  }}");
        }
    }
    for arrow in &picture.arrows {
        let mut attrs = Vec::new();
        if let Some(label) = &arrow.label {
            attrs.push(format!("label={}", dot_quote(label)));
        }
        if arrow.dashed {
            attrs.push("style=dashed".to_owned());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {} -> {}{attrs};", arrow.from, arrow.to);
    }
    let _ = writeln!(out, "}}");
    out
}

/// Mermaid text: `"` and markup characters become entity codes inside labels.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            _ => out.push(c),
        }
    }
    out
}

fn mermaid_shape(out: &mut String, indent: &str, shape: &Shape) {
    let _ = writeln!(
        out,
        "{indent}{}[\"{}<br/>{}\"]",
        shape.id,
        mermaid_text(&shape.title),
        mermaid_text(&shape.name)
    );
    let _ = writeln!(
        out,
        "{indent}style {} fill:{}",
        shape.id,
        colour(shape.kind)
    );
}

/// A Mermaid flowchart, left to right.
pub fn mermaid(picture: &Picture) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, (namespace, shapes)) in picture.namespaces.iter().enumerate() {
        if namespace.is_empty() {
            shapes.iter().for_each(|s| mermaid_shape(&mut out, "  ", s));
            continue;
        }
        let _ = writeln!(
            out,
            "  subgraph ns{i}[\"namespace {}\"]",
            mermaid_text(namespace)
        );
        shapes
            .iter()
            .for_each(|s| mermaid_shape(&mut out, "    ", s));
        let _ = writeln!(out, "  end");
    }
    for arrow in &picture.arrows {
        let link = if arrow.dashed { "-.->" } else { "-->" };
        match &arrow.label {
            Some(label) => {
                let _ = writeln!(
                    out,
                    "  {} {link}|\"{}\"| {}",
                    arrow.from,
                    mermaid_text(label),
                    arrow.to
                );
            }
            None => {
                let _ = writeln!(out, "  {} {link} {}", arrow.from, arrow.to);
            }
        }
    }
    out
}
