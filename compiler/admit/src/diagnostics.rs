//! One constructor per diagnostic admission reports.

use aigw_diag::{Diagnostic, Span, about_field, codes};

/// A CRD `x-kubernetes-validations` rule that does not hold. The message is the reference's,
/// verbatim, so that users find it when they search.
pub(crate) fn rule(span: Span, field: &str, message: &str) -> Diagnostic {
    Diagnostic::error(
        codes::VALIDATION_RULE,
        about_field(field, message.trim_end_matches('.')),
    )
    .with_primary(span, "this value breaks the rule")
    .with_field(field)
}

/// Something the reference admits but that cannot work; we refuse it and say why.
pub(crate) fn unworkable(span: Span, field: &str, message: String, help: &str) -> Diagnostic {
    Diagnostic::error(codes::UNWORKABLE, about_field(field, message))
        .with_primary(span, "here")
        .with_field(field)
        .with_help(help)
}

pub(crate) fn cel_error(span: Span, field: &str, syntax: bool, message: &str) -> Diagnostic {
    let (code, what) = if syntax {
        (codes::CEL_SYNTAX, "cannot parse the CEL expression")
    } else {
        (codes::CEL_TYPE, "the CEL expression does not type-check")
    };
    Diagnostic::error(code, about_field(field, format_args!("{what}: {message}")))
        .with_primary(span, if syntax { "syntax error" } else { "type error" })
        .with_field(field)
        .with_help("variables: model, backend, route_name (string); input_tokens, cached_input_tokens, cache_creation_input_tokens, output_tokens, total_tokens, reasoning_tokens (uint)")
}

pub(crate) fn invalid_regex(span: Span, field: &str, pattern: &str, reason: &str) -> Diagnostic {
    Diagnostic::error(
        codes::INVALID_REGEX,
        about_field(
            field,
            format_args!("invalid regular expression `{pattern}`: {reason}"),
        ),
    )
    .with_primary(span, "does not compile")
    .with_field(field)
    .with_help("Envoy matches headers with RE2 syntax: no look-around and no back-references")
}

pub(crate) fn bad_format(span: Span, field: &str, value: &str, format: &str) -> Diagnostic {
    Diagnostic::error(
        codes::BAD_FORMAT,
        about_field(
            field,
            format_args!("invalid value: \"{value}\": must be a {format}"),
        ),
    )
    .with_primary(span, "wrong format")
    .with_field(field)
}
