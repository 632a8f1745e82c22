//! The providers' own models as oracles of the request bodies we produce: every request of
//! the golden matrix, rendered afresh, goes through `tests/oracle/validate.py` (botocore's
//! `bedrock-runtime` service model, the `anthropic` SDK's request types, `google-genai`'s
//! models), and the oracle's own self-test shows it refuses invalid bodies.

use std::process::Command;

const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle");

fn run(python: &std::path::Path, args: &[String]) -> (bool, String) {
    let output = Command::new(python)
        .args(args)
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every golden request as the code renders it now, written as `<case>.<schema>.snap` in a
/// fresh directory: the goldens' own tests write the committed files in the same run, so the
/// oracle does not read those.
fn rendered() -> Vec<std::path::PathBuf> {
    use crate::requests::{CLIENTS, goldens};
    let dir = std::env::temp_dir().join(format!("aigw-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let mut paths = Vec::new();
    for (client, cases) in CLIENTS {
        for golden in goldens(client, cases) {
            let path = dir.join(format!("{}.snap", golden.name()));
            std::fs::write(&path, format!("---\n---\n{}\n", golden.rendered)).expect("written");
            paths.push(path);
        }
    }
    paths.sort();
    paths
}

#[test]
fn request_bodies_validate_against_the_providers_models() {
    let Some(python) = aigw_testkit::python(
        "provider oracle",
        &["botocore", "anthropic", "google.genai"],
    ) else {
        return;
    };
    let snapshots = rendered();
    let expected = snapshots
        .iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(p).unwrap_or_default();
            // Embedding bodies (Titan `invoke`, Vertex `:predict`) have no SDK model; a body
            // passed on unchanged is the client's, not ours.
            !name.starts_with("embeddings_")
                && [
                    "awsbedrock",
                    "anthropic",
                    "awsanthropic",
                    "gcpanthropic",
                    "gcpvertexai",
                    "openai",
                    "azureopenai",
                ]
                .iter()
                .any(|s| name.ends_with(&format!(".{s}.snap")))
                && text.contains("\"request\"")
                && !text.contains("(the client's body, unchanged)")
        })
        .count();
    let mut args = vec![format!("{ORACLE}/validate.py")];
    args.extend(snapshots.iter().map(|p| p.display().to_string()));
    let (ok, report) = run(&python, &args);
    if let Some(dir) = snapshots.first().and_then(|p| p.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    eprintln!("{report}");
    assert!(ok, "the oracle refused a body we produce:\n{report}");
    // Every translated request of a checked schema was validated, none skipped quietly.
    let validated = report
        .lines()
        .find_map(|l| l.strip_prefix("validated "))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert!(expected > 0);
    assert_eq!(validated, expected, "{report}");
}

#[test]
fn the_oracle_refuses_invalid_bodies() {
    let Some(python) = aigw_testkit::python(
        "provider oracle self-test",
        &["botocore", "anthropic", "google.genai"],
    ) else {
        return;
    };
    let (ok, report) = run(&python, &[format!("{ORACLE}/selftest.py")]);
    assert!(ok, "the oracle's self-test failed:\n{report}");
}
