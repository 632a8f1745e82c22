//! `testdata/compile/<area>/<case>.yaml` (or a `<case>/` directory of files): each case is checked
//! and its rendered diagnostics are compared with `<case>.diagnostics.snap` beside it. The case's
//! header says what it expects (`# expect: ok` or `# expect: error`) and its options
//! (`# options: --open`).

use crate::{root, sources};
use aigw_compiler::{CheckOptions, check};
use aigw_diag::{RenderOptions, render_text};
use std::path::PathBuf;

pub(crate) use aigw_compiler::testdata::Case;

pub(crate) fn cases() -> Vec<Case> {
    aigw_compiler::testdata::cases(&root()).expect("testdata")
}

fn render(case: &Case, files: &[PathBuf]) -> (String, bool) {
    let checked = check(sources(files), case.options);
    (
        render_text(
            &checked.diagnostics,
            &checked.sources,
            RenderOptions::default(),
        ),
        checked.has_errors(),
    )
}

#[test]
fn every_case_matches_its_snapshot_and_expectation() {
    let cases = cases();
    assert!(
        cases.len() >= 9,
        "testdata cases are missing: {}",
        cases.len()
    );
    for case in &cases {
        let (text, has_errors) = render(case, &case.files);
        assert_eq!(
            has_errors, case.expect_error,
            "{}: expected error={}\n{text}",
            case.name, case.expect_error
        );
        insta::with_settings!({
            snapshot_path => case.dir.clone(),
            prepend_module_to_snapshot => false,
            description => case.files.iter().map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string()).collect::<Vec<_>>().join(" "),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(format!("{}.diagnostics", case.name), text);
        });
    }
}

#[test]
fn file_and_document_order_do_not_change_the_output() {
    for case in cases() {
        let (forward, _) = render(&case, &case.files);
        let mut reversed_files = case.files.clone();
        reversed_files.reverse();
        let (backward, _) = render(&case, &reversed_files);
        assert_eq!(
            forward, backward,
            "{}: file order changed the output",
            case.name
        );
        // Reverse the documents of each file too (a temporary copy with the same name).
        // (A case that is not UTF-8 on purpose has no documents to flip.)
        if case.files.len() == 1
            && let Ok(text) = std::fs::read_to_string(&case.files[0])
        {
            let mut docs: Vec<&str> = text.split("\n---\n").collect();
            docs.reverse();
            let flipped = docs.join("\n---\n");
            let checked = check(
                {
                    let mut map = aigw_diag::SourceMap::new();
                    map.add("flipped.yaml", flipped);
                    map
                },
                case.options,
            );
            let original = check(sources(&case.files), case.options);
            let codes = |c: &aigw_compiler::Checked| {
                let mut v: Vec<_> = c
                    .diagnostics
                    .iter()
                    .map(|d| (d.code().id, d.message().to_owned()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(
                codes(&checked),
                codes(&original),
                "{}: document order changed the findings",
                case.name
            );
        }
    }
}

#[test]
fn every_diagnostic_code_has_a_snapshot() {
    let mut seen = String::new();
    for case in cases() {
        let snap = case.dir.join(format!("{}.diagnostics.snap", case.name));
        seen.push_str(&std::fs::read_to_string(&snap).unwrap_or_default());
    }
    let missing: Vec<_> = aigw_diag::codes::ALL
        .iter()
        .filter(|c| !seen.contains(c.id))
        .map(|c| c.id)
        .collect();
    assert!(missing.is_empty(), "codes without a snapshot: {missing:?}");
}

#[test]
fn the_graph_of_a_valid_case_is_complete() {
    let path = root().join("testdata/compile/valid/basic.yaml");
    let checked = check(
        sources(std::slice::from_ref(&path)),
        CheckOptions::default(),
    );
    let dump = checked.ir.expect("ir").dump();
    // Each reference of the case is one edge under its source node.
    for (source, edge) in [
        (
            "AIGatewayRoute default/chat",
            "-Parent-> Gateway default/ai",
        ),
        (
            "AIGatewayRoute default/chat rules[0].backendRefs[1]",
            "-Backend { weight: 1, priority: 1 }-> AIServiceBackend default/bedrock",
        ),
        (
            "AIServiceBackend default/openai",
            "-Upstream-> Backend default/openai",
        ),
        (
            "BackendSecurityPolicy default/openai-key",
            "-Secret-> Secret default/openai-key",
        ),
        (
            "BackendTLSPolicy default/openai-tls",
            "-Targets-> Backend default/openai",
        ),
        (
            "Gateway default/ai",
            "-Config-> GatewayConfig default/tuned",
        ),
    ] {
        let edges: Vec<&str> = dump
            .lines()
            .skip_while(|l| *l != source)
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        assert!(
            edges.contains(&edge),
            "{source}: missing `{edge}` in {edges:?}"
        );
    }
    insta::with_settings!({
        snapshot_path => path.parent().expect("dir"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("basic.ir", dump);
    });
}
