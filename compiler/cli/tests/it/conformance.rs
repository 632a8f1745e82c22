//! The reference corpus (`../shared/conformance/envoy-ai-gateway`, or `AIGW_CONFORMANCE_DIR`),
//! read in place: every admission verdict, and every example checked clean. Skips, saying so,
//! where the corpus is absent.

use aigw_compiler::conformance::{corpus_dir, run_admission, run_examples};
use std::path::PathBuf;

/// The corpus, or `None` after saying the test is skipped.
pub(crate) fn corpus() -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        eprintln!("SKIP: reference corpus not found (set AIGW_CONFORMANCE_DIR)");
    }
    dir
}

#[test]
fn admission_verdicts_match_the_reference() {
    let Some(dir) = corpus() else { return };
    let report = run_admission(&dir).expect("read corpus");
    assert_eq!(report.total, 67, "the corpus has 67 admission files");
    assert!(
        report.failures.is_empty(),
        "{}/{} admission verdicts match:\n{}",
        report.passed,
        report.total,
        report.failures.join("\n")
    );
}

#[test]
fn every_example_checks_without_errors() {
    let Some(dir) = corpus() else { return };
    let report = run_examples(&dir).expect("read corpus");
    assert!(
        report.total >= 25,
        "expected the corpus examples, found {}",
        report.total
    );
    assert!(
        report.failures.is_empty(),
        "{}/{} examples clean:\n{}",
        report.passed,
        report.total,
        report.failures.join("\n")
    );
}
