//! The workspace's pinned Python venv (`.venv`, made by `.ci/run` from `.ci/requirements.txt`),
//! where the official SDKs and provider models used as test oracles live.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's python when it can import every module of `modules`. Where it cannot, the
/// test `test` is skipped with a line saying why, except under CI (`CI` set), where a missing
/// oracle is a failure: CI must run it.
#[expect(
    clippy::panic,
    reason = "a test helper: under CI a missing oracle fails the test"
)]
pub fn python(test: &str, modules: &[&str]) -> Option<PathBuf> {
    match probe(modules) {
        Ok(python) => Some(python),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIP {test}: {why}");
            None
        }
        Err(why) => panic!("CI must run {test}: {why}"),
    }
}

fn probe(modules: &[&str]) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        return Err(format!("{} is absent (.ci/run makes it)", python.display()));
    }
    let import = format!("import {}", modules.join(", "));
    let output = Command::new(&python)
        .args(["-c", &import])
        .output()
        .map_err(|e| format!("{} does not run: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the venv cannot `{import}` (.ci/run installs the pinned packages)"
        ));
    }
    Ok(python)
}
