//! Diagnostics for the aigw compiler: source files, spans, the `Diagnostic` type, the registry of
//! stable diagnostic codes, and the two renderers (human text and JSON lines).
//!
//! This crate owns no policy about *what* is wrong; each compiler crate builds its diagnostics
//! through constructor functions in its own `diagnostics.rs`, using the codes registered in
//! [`codes`]. Rendering happens only at the edge (the CLI).

pub mod codes;
mod diagnostic;
mod excerpt;
mod render;
mod source;

pub use codes::Code;
pub use diagnostic::{Diagnostic, Label, ResourceRef, Severity, about_field};
pub use excerpt::{MAX_QUOTED, MAX_TEXT, excerpt};
pub use render::{RenderOptions, render_json, render_text};
pub use source::{FileId, LineCol, SourceFile, SourceMap, Span};

/// Collects diagnostics from a pass. Passes keep going after a problem and push every finding
/// here; the CLI decides what to do with them at the end.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Adds every diagnostic of `other`.
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(other);
    }

    /// True when at least one diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity() == Severity::Error)
    }

    /// Number of diagnostics with the given severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity() == severity)
            .count()
    }

    /// The diagnostics, in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorts by file, position, code and message, so that output does not depend on the order
    /// in which passes ran or files were given.
    pub fn sort(&mut self, sources: &SourceMap) {
        self.items
            .sort_by(|a, b| a.sort_key(sources).cmp(&b.sort_key(sources)));
        self.items.dedup_by(|a, b| a == b);
    }

    /// Consumes the collection.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}
