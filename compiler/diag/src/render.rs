//! Renderers: rustc-style text for people (annotate-snippets) and one JSON object per line for
//! tools. Both read positions from the [`SourceMap`]; neither ever prints more of the input than
//! the lines a finding points at.

use crate::{Diagnostic, SourceMap, Span};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

/// How to render text.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// ANSI colours (only when writing to a terminal).
    pub color: bool,
}

/// Renders diagnostics as rustc-style text, one block per diagnostic, followed by a summary
/// line when there is anything to report.
pub fn render_text(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    options: RenderOptions,
) -> String {
    let renderer = if options.color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&render_one(diagnostic, sources, &renderer));
        out.push_str("\n\n");
    }
    out
}

fn level(diagnostic: &Diagnostic) -> Level<'static> {
    match diagnostic.severity() {
        crate::Severity::Error => Level::ERROR,
        crate::Severity::Warning => Level::WARNING,
        crate::Severity::Note => Level::NOTE,
    }
}

fn render_one(diagnostic: &Diagnostic, sources: &SourceMap, renderer: &Renderer) -> String {
    let title = level(diagnostic)
        .primary_title(diagnostic.message())
        .id(diagnostic.code().id);
    let mut group = Group::with_title(title);
    if let Some(primary) = diagnostic.primary() {
        let file = sources.file(primary.span.file);
        let mut snippet = Snippet::source(file.text())
            .path(file.name())
            .fold(true)
            .annotation(
                AnnotationKind::Primary
                    .span(range(primary.span, file.text()))
                    .label(&primary.message),
            );
        // Secondary labels in other files cannot share the snippet; they become notes below.
        for label in diagnostic
            .secondary()
            .iter()
            .filter(|l| l.span.file == primary.span.file)
        {
            snippet = snippet.annotation(
                AnnotationKind::Context
                    .span(range(label.span, file.text()))
                    .label(&label.message),
            );
        }
        group = group.element(snippet);
        for label in diagnostic
            .secondary()
            .iter()
            .filter(|l| l.span.file != primary.span.file)
        {
            let other = sources.file(label.span.file);
            group = group.element(
                Snippet::source(other.text())
                    .path(other.name())
                    .fold(true)
                    .annotation(
                        AnnotationKind::Context
                            .span(range(label.span, other.text()))
                            .label(&label.message),
                    ),
            );
        }
    }
    if let Some(resource) = diagnostic.resource() {
        group = group.element(Level::NOTE.message(format!("resource: {resource}")));
    }
    if let Some(field) = diagnostic.field() {
        group = group.element(Level::NOTE.message(format!("field: {field}")));
    }
    if let Some(help) = diagnostic.help() {
        group = group.element(Level::HELP.message(help));
    }
    renderer.render(&[group])
}

/// The span's bytes in `text`, widened to whole characters and kept inside it: a span that a
/// parser reported inside a multi-byte character (a BOM mid-line, say) is still shown, never
/// a panic of the snippet renderer (found by the compiler's fuzzing, issue #21).
fn range(span: Span, text: &str) -> std::ops::Range<usize> {
    let mut start = (span.start as usize).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (span.end as usize).clamp(start, text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: &'static str,
    code: &'static str,
    code_name: &'static str,
    message: &'a str,
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    end_line: Option<u32>,
    end_column: Option<u32>,
    group: Option<&'a str>,
    kind: Option<&'a str>,
    namespace: Option<&'a str>,
    #[serde(rename = "name")]
    resource_name: Option<&'a str>,
    field: Option<&'a str>,
    help: Option<&'a str>,
}

/// Renders one JSON object per line per diagnostic. Positions are 1-based.
pub fn render_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let primary = d.primary();
        let start = primary.map(|p| sources.line_col(p.span));
        let end = primary.map(|p| sources.file(p.span.file).line_col(p.span.end));
        let resource = d.resource();
        let json = JsonDiagnostic {
            severity: d.severity().as_str(),
            code: d.code().id,
            code_name: d.code().name,
            message: d.message(),
            file: primary.map(|p| sources.file(p.span.file).name().to_owned()),
            line: start.map(|lc| lc.line),
            column: start.map(|lc| lc.column),
            end_line: end.map(|lc| lc.line),
            end_column: end.map(|lc| lc.column),
            group: resource.map(|r| r.group.as_str()),
            kind: resource.map(|r| r.kind.as_str()),
            namespace: resource.map(|r| r.namespace.as_str()),
            resource_name: resource.map(|r| r.name.as_str()),
            field: d.field(),
            help: d.help(),
        };
        // Serialising a struct of strings and integers cannot fail.
        if let Ok(line) = serde_json::to_string(&json) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    /// Issue #21 (found by fuzzing): a span that ends inside a multi-byte character.
    #[test]
    fn a_span_inside_a_character_is_widened_not_a_panic() {
        let mut sources = SourceMap::new();
        let file = sources.add("bom.yaml", " \u{feff} kind: Gateway\n");
        let diagnostic = Diagnostic::error(codes::YAML_SYNTAX, "unexpected character")
            .with_primary(Span::new(file, 1, 2), "here")
            .with_secondary(Span::new(file, 3, 40), "and past the end");
        let text = render_text(&[diagnostic], &sources, RenderOptions { color: false });
        assert!(text.contains("kind: Gateway"), "{text}");
        assert_eq!(range(Span::new(file, 1, 2), " \u{feff}x"), 1..4);
        assert_eq!(range(Span::new(file, 9, 12), "abc"), 3..3);
    }
}
