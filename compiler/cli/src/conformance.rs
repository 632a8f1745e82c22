//! Conformance against the reference corpus (read in place, never copied): the admission table
//! (`admission/expected.tsv`) and the examples. Shared by the integration test and
//! `cargo xtask conformance`.
//!
//! Matching a reject: the reference's message is reduced to its meaning (the field path before
//! `: ` and the text after `Invalid value: "..."`); one of our errors must carry that text, or,
//! where the reference reports an empty value (`Unsupported value: ""`, `at least 1 chars long`)
//! for a field the manifest omits, a required-field error on the same path. For
//! `reject-stricter`, our error must name what the reason names (the text in parentheses).
//!
//! Examples are checked with their folder's `basic.yaml`/`base.yaml` (unless they define their
//! own Gateway) in `--open` mode: several examples refer to objects of a sibling file, which
//! `--open` reports as warnings; errors fail the run.

use crate::{CheckOptions, check};
use aigw_diag::{Diagnostic, Severity, SourceMap, codes};
use std::path::{Path, PathBuf};

/// Where the corpus is: `AIGW_CONFORMANCE_DIR`, or `../shared/conformance/envoy-ai-gateway`
/// beside the workspace.
pub fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AIGW_CONFORMANCE_DIR") {
        return Some(PathBuf::from(dir)).filter(|d| d.is_dir());
    }
    let here =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/envoy-ai-gateway");
    here.is_dir().then_some(here)
}

/// The outcome of a conformance run.
#[derive(Debug, Default)]
pub struct Report {
    pub total: usize,
    pub passed: usize,
    pub failures: Vec<String>,
}

fn read(paths: &[PathBuf]) -> std::io::Result<SourceMap> {
    let mut map = SourceMap::new();
    for path in paths {
        map.add(path.display().to_string(), std::fs::read_to_string(path)?);
    }
    Ok(map)
}

/// Checks every admission file alone and compares with the reference verdict.
pub fn run_admission(dir: &Path) -> std::io::Result<Report> {
    let table = std::fs::read_to_string(dir.join("admission/expected.tsv"))?;
    let mut report = Report::default();
    for line in table.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut cols = line.splitn(3, '\t');
        let (path, verdict, message) = (
            cols.next().unwrap_or(""),
            cols.next().unwrap_or(""),
            cols.next().unwrap_or(""),
        );
        report.total += 1;
        let checked = check(
            read(&[dir.join("admission").join(path)])?,
            CheckOptions {
                open: false,
                admission_only: true,
            },
        );
        let errors: Vec<&Diagnostic> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .collect();
        let outcome = match verdict {
            "accept" if errors.is_empty() => Ok(()),
            "accept" => Err(format!("rejected: {}", errors[0].message())),
            _ if errors.is_empty() => Err("accepted".to_owned()),
            "reject" if errors.iter().any(|d| same_meaning(d, message)) => Ok(()),
            "reject-stricter" if errors.iter().any(|d| names_reason(d, message)) => Ok(()),
            _ => Err(format!(
                "rejected for another reason: {}",
                errors
                    .iter()
                    .map(|d| d.message())
                    .collect::<Vec<_>>()
                    .join(" | ")
            )),
        };
        match outcome {
            Ok(()) => report.passed += 1,
            Err(why) => report
                .failures
                .push(format!("{path} ({verdict} {message}): {why}")),
        }
    }
    Ok(report)
}

/// Splits a reference message into (field path, meaning).
fn reference_meaning(message: &str) -> (Option<&str>, String) {
    let message = message
        .split_once(" is invalid: ")
        .map_or(message, |(_, rest)| rest);
    let (field, rest) = match message.split_once(": ") {
        Some((field, rest)) if field.starts_with("spec") && !field.contains(' ') => {
            (Some(field), rest)
        }
        _ => (None, message),
    };
    let rest = rest
        .strip_prefix("Invalid value: \"object\": ")
        .or_else(|| rest.strip_prefix("Invalid value: \"array\": "))
        .unwrap_or(rest);
    (field, normalise(rest))
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .trim_end_matches('.')
        .replace("\\\"", "\"")
}

fn same_meaning(ours: &Diagnostic, reference: &str) -> bool {
    let (field, meaning) = reference_meaning(reference);
    let message = normalise(ours.message());
    // "spec.x in body should be at least 1 chars long": the field is inside the text.
    let meaning = match meaning.split_once(" in body ") {
        Some((path, rest)) if path.starts_with("spec") => {
            let empty = rest.starts_with("should be at least 1 chars long");
            let same_field = ours.field().is_some_and(|f| f.eq_ignore_ascii_case(path));
            return (message.contains(&format!("in body {rest}")) && same_field)
                || (empty && ours.code() == codes::REQUIRED_FIELD && same_field);
        }
        _ => meaning,
    };
    let empty_value = meaning.starts_with("unsupported value: \"\"");
    if empty_value {
        return ours.code() == codes::REQUIRED_FIELD && ours.field() == field;
    }
    // Enum lists may differ (we accept values the reference message omits): compare up to them.
    let key = meaning
        .split(": supported values")
        .next()
        .unwrap_or(&meaning);
    message.contains(key) && field.is_none_or(|f| ours.field() == Some(f))
}

fn names_reason(ours: &Diagnostic, reason: &str) -> bool {
    let named = reason
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(n, _)| n);
    named.is_some_and(|n| ours.message().contains(n))
}

/// Checks every example with its folder's base, in `--open` mode; errors fail.
/// Every example file with the inputs it is checked with: the file alone, or after its folder's
/// `basic.yaml`/`base.yaml` when it defines no Gateway of its own.
pub fn example_inputs(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    let mut out = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        let base = files
            .iter()
            .find(|f| f.ends_with("basic.yaml") || f.ends_with("base.yaml"))
            .cloned();
        for file in &files {
            let text = std::fs::read_to_string(file)?;
            let own_gateway = text.lines().any(|l| l.trim() == "kind: Gateway");
            let mut inputs = vec![file.clone()];
            if let Some(base) = base.as_ref().filter(|b| *b != file && !own_gateway) {
                inputs.insert(0, base.clone());
            }
            out.push((file.clone(), inputs));
        }
    }
    Ok(out)
}

/// Checks an example's inputs as the conformance run does (`--open`).
pub fn check_example(inputs: &[PathBuf]) -> std::io::Result<crate::Checked> {
    Ok(check(
        read(inputs)?,
        CheckOptions {
            open: true,
            admission_only: false,
        },
    ))
}

pub fn run_examples(dir: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    for (file, inputs) in example_inputs(dir)? {
        report.total += 1;
        let checked = check_example(&inputs)?;
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .map(|d| d.message().to_owned())
            .collect();
        if errors.is_empty() {
            report.passed += 1;
        } else {
            report
                .failures
                .push(format!("{}: {}", file.display(), errors.join(" | ")));
        }
    }
    Ok(report)
}
