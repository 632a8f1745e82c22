//! The `Diagnostic` value: what is wrong, where, in which resource and field, and how to fix it.

use crate::excerpt::{excerpt, tame};
use crate::{Code, LineCol, SourceMap, Span};
use std::borrow::Cow;
use std::fmt;

/// How bad a finding is. Errors fail `aigw check`; warnings and notes do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    /// `error`, `warning` or `note`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        }
    }
}

/// Names one Kubernetes object: group, kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A message about the field at `path`, led by the path as the API server writes it
/// (`` `spec.rules[0].name`: invalid value: ...``), so that the text alone says where; the
/// message itself when `path` is empty.
pub fn about_field(path: &str, message: impl fmt::Display) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("`{path}`: {message}")
    }
}

/// A span with a short label shown under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One finding. Built with [`Diagnostic::error`] (or `warning`, `note`) and the `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic(Box<Inner>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    severity: Severity,
    code: Code,
    message: String,
    primary: Option<Label>,
    secondary: Vec<Label>,
    help: Option<String>,
    resource: Option<ResourceRef>,
    field: Option<String>,
}

impl Diagnostic {
    /// A new diagnostic with the given severity, code and message.
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            severity,
            code,
            message: tame(message.into()),
            primary: None,
            secondary: Vec::new(),
            help: None,
            resource: None,
            field: None,
        }))
    }

    /// A new error.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A new warning.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    /// A new note.
    pub fn note(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, code, message)
    }

    /// Sets the primary location and its label.
    pub fn with_primary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.0.primary = Some(Label {
            span,
            message: tame(label.into()),
        });
        self
    }

    /// Adds a secondary location.
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.0.secondary.push(Label {
            span,
            message: tame(label.into()),
        });
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(tame(help.into()));
        self
    }

    /// Sets the resource the finding is about.
    pub fn with_resource(mut self, mut resource: ResourceRef) -> Self {
        for part in [&mut resource.namespace, &mut resource.name] {
            if let Cow::Owned(cut) = excerpt(part) {
                *part = cut;
            }
        }
        self.0.resource = Some(resource);
        self
    }

    /// Sets the field path (`spec.rules[0].name`).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(tame(field.into()));
        self
    }

    /// Changes the severity (`--open` turns some errors into warnings).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.0.severity = severity;
        self
    }

    pub fn severity(&self) -> Severity {
        self.0.severity
    }
    pub fn code(&self) -> Code {
        self.0.code
    }
    pub fn message(&self) -> &str {
        &self.0.message
    }
    pub fn primary(&self) -> Option<&Label> {
        self.0.primary.as_ref()
    }
    pub fn secondary(&self) -> &[Label] {
        &self.0.secondary
    }
    pub fn help(&self) -> Option<&str> {
        self.0.help.as_deref()
    }
    pub fn resource(&self) -> Option<&ResourceRef> {
        self.0.resource.as_ref()
    }
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// Where the finding starts, if it has a location.
    pub fn location(&self, sources: &SourceMap) -> Option<(String, LineCol)> {
        let span = self.primary()?.span;
        Some((
            sources.file(span.file).name().to_owned(),
            sources.line_col(span),
        ))
    }

    /// Orders by file name, position, severity, code, then message: stable whatever the input
    /// order of files and documents.
    pub(crate) fn sort_key<'a>(
        &'a self,
        sources: &'a SourceMap,
    ) -> (
        Option<&'a str>,
        u32,
        Severity,
        &'a str,
        &'a str,
        Option<&'a str>,
    ) {
        let (file, start) = match self.primary() {
            Some(label) => (Some(sources.file(label.span.file).name()), label.span.start),
            None => (None, 0),
        };
        (
            file,
            start,
            self.severity(),
            self.code().id,
            self.message(),
            self.field(),
        )
    }
}
