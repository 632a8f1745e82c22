//! The translation goldens: every request case of `testdata/translate/<client-api>/` through
//! every backend schema it covers, and every canned provider answer of `testdata/upstream/`
//! back to the client's API, as insta snapshots beside their inputs.
#![expect(clippy::expect_used, clippy::panic, reason = "test code")]

mod coverage;
mod messages;
mod oracle;
mod requests;
mod responses;

use std::path::PathBuf;

/// `testdata/` at the workspace root.
fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Pretty JSON with sorted keys, for stable snapshots.
fn pretty(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(value)).expect("json")
}

/// Snapshots `content` as `<dir>/<name>.snap`, described by the input it came from.
fn snapshot(dir: &std::path::Path, input: &std::path::Path, name: &str, content: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(input);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, content));
}
