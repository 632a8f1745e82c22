//! The golden matrix's table of coverage, `testdata/translate/coverage.snap`: for every client
//! request case, what each backend schema makes of it (a translated request, the client's body
//! relayed, a passthrough, or the error status the client gets), and for every canned provider
//! answer, which client APIs it is translated back to. Made from the same translations as the
//! goldens, so a pair that changes changes the table, which is reviewed with the snapshots.

use crate::requests::{CLIENTS, Cases, goldens};
use crate::responses::{files, stem};
use aigw_providers::Schema;
use std::fmt::Write as _;

/// What a schema makes of a case, from its rendered golden.
fn cell(rendered: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(rendered).expect("rendered JSON");
    if value.get("passthrough").is_some() {
        return "passthrough".into();
    }
    if let Some(status) = value.pointer("/error/status") {
        return status.to_string();
    }
    match value.pointer("/request/body") {
        Some(serde_json::Value::String(_)) => "relayed".into(),
        Some(_) => "✓".into(),
        None => panic!("a golden is a request, a passthrough or an error: {rendered}"),
    }
}

/// One client's table: a row per case, a column per schema any case covers.
fn table(out: &mut String, client: &str, cases: Cases) {
    let mut columns: Vec<Schema> = Vec::new();
    for (_, schemas) in cases {
        for schema in *schemas {
            if !columns.contains(schema) {
                columns.push(*schema);
            }
        }
    }
    let head: Vec<&str> = columns.iter().map(|s| s.as_str()).collect();
    let _ = writeln!(out, "| case | {} |", head.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    let goldens = goldens(client, cases);
    for (case, _) in cases {
        let cells: Vec<String> = columns
            .iter()
            .map(|schema| {
                goldens
                    .iter()
                    .find(|g| g.case == *case && g.schema == *schema)
                    .map_or_else(|| "–".into(), |g| cell(&g.rendered))
            })
            .collect();
        let _ = writeln!(out, "| `{case}` | {} |", cells.join(" | "));
    }
}

#[test]
fn the_coverage_table_is_current() {
    let mut out = String::new();
    out.push_str(
        "Which pairs each golden case covers. Cells: ✓ a translated request (validated by the \
         provider oracle), `relayed` the client's body sent on unchanged, `passthrough` no \
         translation, a status the error the client gets (400 malformed, 422 a field the \
         backend cannot honour, 501 a pair this build does not translate), – not a pair of \
         this case.\n\n",
    );
    for (client, cases) in CLIENTS {
        let title = if client == "openai" {
            "OpenAI"
        } else {
            "Anthropic"
        };
        let _ = writeln!(out, "## {title} clients (`testdata/translate/{client}/`)\n");
        table(&mut out, client, cases);
        out.push('\n');
    }
    out.push_str(
        "## Provider answers (`testdata/upstream/<provider>/`)\n\n\
         Each canned answer translated back to a client API (`<reply>.<client>.snap`); \
         streams are also fed byte by byte and must come out the same.\n\n\
         | provider | reply | kind | → OpenAI client | → Anthropic client |\n|---|---|---|---|---|\n",
    );
    let upstream = crate::testdata().join("upstream");
    let mut providers: Vec<_> = std::fs::read_dir(&upstream)
        .expect("testdata/upstream")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    providers.sort();
    for dir in providers {
        let provider = stem(&dir);
        for extension in ["json", "sse", "jsonl"] {
            for reply in files(&dir, extension) {
                let name = stem(&reply);
                let kind = match (extension, name.starts_with("error_")) {
                    ("json", true) => "error",
                    ("json", false) => "whole",
                    _ => "stream",
                };
                let has = |client: &str| {
                    if dir.join(format!("{name}.{client}.snap")).exists() {
                        "✓"
                    } else {
                        "–"
                    }
                };
                let _ = writeln!(
                    out,
                    "| {provider} | `{name}.{extension}` | {kind} | {} | {} |",
                    has("openai"),
                    has("anthropic")
                );
            }
        }
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(crate::testdata().join("translate"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("coverage", out));
}
