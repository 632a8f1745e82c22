//! One constructor per diagnostic this crate reports. Messages follow the Kubernetes API
//! server's wording (users search for it), lowercased, with offending values in backticks or
//! quotes as the API server prints them.

use aigw_diag::{Diagnostic, Span, codes};

fn at(path: &str, message: String) -> String {
    aigw_diag::about_field(path, message)
}

fn with_field(d: Diagnostic, path: &str) -> Diagnostic {
    if path.is_empty() {
        d
    } else {
        d.with_field(path)
    }
}

pub(crate) fn wrong_type(span: Span, path: &str, expected: &str, found: &str) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::WRONG_TYPE,
            at(
                path,
                format!("invalid value: {found}: must be of type {expected}"),
            ),
        )
        .with_primary(span, format!("expected {expected}, found {found}")),
        path,
    )
}

pub(crate) fn below_minimum(span: Span, path: &str, value: f64, min: f64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::OUT_OF_RANGE,
            at(
                path,
                format!("invalid value: {value}: should be greater than or equal to {min}"),
            ),
        )
        .with_primary(span, format!("below the minimum {min}")),
        path,
    )
}

pub(crate) fn above_maximum(span: Span, path: &str, value: f64, max: f64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::OUT_OF_RANGE,
            at(
                path,
                format!("invalid value: {value}: should be less than or equal to {max}"),
            ),
        )
        .with_primary(span, format!("above the maximum {max}")),
        path,
    )
}

pub(crate) fn unsupported_value(
    span: Span,
    path: &str,
    value: &str,
    supported: &[String],
) -> Diagnostic {
    let list = supported
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut d = Diagnostic::error(
        codes::UNSUPPORTED_VALUE,
        at(
            path,
            format!("unsupported value: \"{value}\": supported values: {list}"),
        ),
    )
    .with_primary(span, "not a supported value");
    if let Some(close) = closest(value, supported.iter().map(String::as_str)) {
        d = d.with_help(format!("did you mean \"{close}\"?"));
    }
    with_field(d, path)
}

pub(crate) fn too_short(span: Span, path: &str, min: u64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::BAD_LENGTH,
            at(path, format!("in body should be at least {min} chars long")),
        )
        .with_primary(span, "too short"),
        path,
    )
}

pub(crate) fn too_long(span: Span, path: &str, max: u64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::BAD_LENGTH,
            at(path, format!("in body should be at most {max} chars long")),
        )
        .with_primary(span, "too long"),
        path,
    )
}

pub(crate) fn too_many_items(span: Span, path: &str, count: u64, max: u64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::BAD_LENGTH,
            at(
                path,
                format!("too many: {count}: must have at most {max} items"),
            ),
        )
        .with_primary(
            span,
            format!("item {} and later are over the limit", max + 1),
        ),
        path,
    )
}

pub(crate) fn too_few_items(span: Span, path: &str, min: u64) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::BAD_LENGTH,
            at(path, format!("in body should have at least {min} items")),
        )
        .with_primary(span, "too few items"),
        path,
    )
}

pub(crate) fn pattern_mismatch(span: Span, path: &str, value: &str, pattern: &str) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::PATTERN_MISMATCH,
            at(
                path,
                format!("invalid value: \"{value}\": in body should match '{pattern}'"),
            ),
        )
        .with_primary(span, "does not match the pattern"),
        path,
    )
}

pub(crate) fn unknown_field(span: Span, path: &str, name: &str, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(codes::UNKNOWN_FIELD, format!("unknown field `{path}`"))
        .with_primary(span, "unknown field");
    let d = match closest(name, known.iter().copied()) {
        Some(close) => d.with_help(format!("did you mean `{close}`?")),
        None if known.is_empty() => d.with_help("no fields are allowed here"),
        None => d.with_help(format!(
            "expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    with_field(d, path)
}

pub(crate) fn removed_field(span: Span, path: &str, advice: &str) -> Diagnostic {
    Diagnostic::warning(
        codes::UNKNOWN_FIELD,
        format!(
            "`{path}` is no longer part of this kind; the API server prunes it and it has no effect"
        ),
    )
    .with_primary(span, "ignored")
    .with_field(path)
    .with_help(advice.to_owned())
}

pub(crate) fn not_a_manifest(span: Span) -> Diagnostic {
    Diagnostic::note(
        codes::NOT_AN_OBJECT,
        "document has no `apiVersion` or `kind`: not a Kubernetes object; passed over",
    )
    .with_primary(span, "passed over")
}

pub(crate) fn required_field(span: Span, path: &str, name: &str) -> Diagnostic {
    let full = if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    };
    Diagnostic::error(
        codes::REQUIRED_FIELD,
        at(&full, "required value".to_owned()),
    )
    .with_primary(span, format!("`{name}` is missing here"))
    .with_field(full)
}

pub(crate) fn decode_failed(span: Span, path: &str, reason: &str) -> Diagnostic {
    with_field(
        Diagnostic::error(
            codes::WRONG_TYPE,
            at(path, format!("invalid value: {reason}")),
        )
        .with_primary(span, "cannot be read"),
        path,
    )
}

pub(crate) fn not_an_object(span: Span, reason: &str) -> Diagnostic {
    Diagnostic::error(
        codes::NOT_AN_OBJECT,
        format!("not a Kubernetes object: {reason}"),
    )
    .with_primary(span, "this document")
    .with_help("every document needs `apiVersion`, `kind` and `metadata.name`")
}

pub(crate) fn unknown_kind(
    span: Span,
    api_version: &str,
    kind: &str,
    suggestion: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::error(
        codes::UNKNOWN_KIND,
        format!("unknown kind `{kind}` in `{api_version}`"),
    )
    .with_primary(span, "unknown kind");
    match suggestion {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d,
    }
}

pub(crate) fn passed_over(span: Span, api_version: &str, kind: &str) -> Diagnostic {
    Diagnostic::note(
        codes::UNKNOWN_KIND,
        format!("`{kind}` (`{api_version}`) is not part of the AI gateway model; passed over"),
    )
    .with_primary(span, "not compiled")
}

pub(crate) fn unsupported_version(
    span: Span,
    api_version: &str,
    kind: &str,
    supported: &[&str],
) -> Diagnostic {
    Diagnostic::error(
        codes::UNSUPPORTED_VERSION,
        format!("`{kind}` is not served at `{api_version}`"),
    )
    .with_primary(span, "unsupported version")
    .with_help(format!(
        "supported: {}",
        supported
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(crate) fn duplicate_object(span: Span, first: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        codes::DUPLICATE_OBJECT,
        format!("{what} is defined twice with different content"),
    )
    .with_primary(span, "defined again here, differently")
    .with_secondary(first, "first defined here")
    .with_help(
        "the later definition is ignored; object identity is kind, namespace and name \
         (identical copies, as concatenated overlays give, are merged without a word)",
    )
}

/// The candidate closest to `input`, when close enough to be a likely typo.
pub fn closest<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub(crate) fn not_utf8(span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::NOT_UTF8,
        "the file is not UTF-8 text: a byte here is not valid UTF-8",
    )
    .with_primary(span, "first byte that is not UTF-8")
    .with_help(
        "YAML manifests are UTF-8; convert the file (e.g. `iconv -f latin1 -t utf-8`); \
         nothing else in this file is checked",
    )
}

pub(crate) fn no_objects(files: usize, first: Option<Span>) -> Diagnostic {
    let d = Diagnostic::warning(
        codes::NO_OBJECTS,
        format!("no objects in the input ({files} file(s)): nothing to check or compile"),
    )
    .with_help(
        "kubectl would say \"no objects passed to apply\": check the paths, and that the \
         files hold manifests and not only comments or empty documents",
    );
    match first {
        Some(span) => d.with_primary(span, "no object in this input"),
        None => d,
    }
}
