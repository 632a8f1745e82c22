//! The artifacts of `aigw compile`: a snapshot of every artifact of every valid testdata case,
//! byte-identical output whatever the order of files and documents, no secret value in any
//! output byte, the table loading in the runtime's loader, and the reference's golden HTTPRoute.

use crate::{root, sources};
use aigw_compiler::compile::{Artifact, Target, artifacts};
use aigw_compiler::{CheckOptions, check};
use serde_json::Value;
use std::path::PathBuf;

/// The valid cases: (name, directory, files, options).
fn valid_cases() -> Vec<(String, PathBuf, Vec<PathBuf>, CheckOptions)> {
    crate::cases::cases()
        .into_iter()
        .filter(|c| c.artifacts)
        .map(|c| (c.name, c.dir, c.files, c.options))
        .collect()
}

fn compile(files: &[PathBuf], options: CheckOptions) -> Vec<Artifact> {
    let checked = check(sources(files), options);
    artifacts(&checked, Target::ALL).expect("a valid case compiles")
}

fn compile_text(text: &str, options: CheckOptions) -> Vec<Artifact> {
    let mut map = aigw_diag::SourceMap::new();
    map.add("input.yaml", text);
    artifacts(&check(map, options), Target::ALL).expect("compiles")
}

#[test]
fn every_valid_case_has_a_snapshot_of_every_artifact() {
    let cases = valid_cases();
    assert!(cases.len() >= 4, "valid cases: {}", cases.len());
    for (name, dir, files, options) in cases {
        let produced = compile(&files, options);
        let names: Vec<&str> = produced
            .iter()
            .filter(|a| a.checked)
            .map(|a| a.name)
            .collect();
        assert_eq!(
            names,
            [
                "envoy.yaml",
                "gateway-api.yaml",
                "status.yaml",
                "table.json",
                "topology.dot",
                "topology.mmd"
            ],
            "{name}"
        );
        for artifact in produced.iter().filter(|a| a.checked) {
            let text = String::from_utf8(artifact.bytes.clone()).expect("utf-8 artifact");
            insta::with_settings!({
                snapshot_path => dir.clone(),
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!(format!("{name}.{}", artifact.name), text);
            });
        }
    }
}

#[test]
fn artifacts_do_not_depend_on_the_order_of_files_or_documents() {
    for (name, _, files, options) in valid_cases() {
        let forward = compile(&files, options);
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(
            forward,
            compile(&reversed, options),
            "{name}: file order changed an artifact"
        );
        // All documents of all files, reversed, in one file.
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read") + "\n---\n")
            .collect();
        let mut docs: Vec<&str> = text.split("\n---\n").collect();
        docs.reverse();
        let flipped = compile_text(&docs.join("\n---\n"), options);
        let keep = |a: &Vec<Artifact>| a.iter().filter(|a| a.checked).cloned().collect::<Vec<_>>();
        assert_eq!(
            keep(&forward),
            keep(&flipped),
            "{name}: document order changed an artifact"
        );
    }
}

#[test]
fn no_secret_value_reaches_any_artifact() {
    let path = root().join("testdata/compile/valid/secrets.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let produced = compile(&[path], CheckOptions::default());
    // Every value of the case's Secrets, as written (base64 for `data`) and decoded.
    let values = [
        "U0VDUkVULUNFUlQtUEVNLWJ5dGVz",
        "SECRET-CERT-PEM-bytes",
        "U0VDUkVULUtFWS1QRU0tYnl0ZXM=",
        "SECRET-KEY-PEM-bytes",
        "SECRET-AZURE-CLIENT-VALUE",
        "sk-SECRET-OPENAI-VALUE",
        "SECRET-GCP-PRIVATE-KEY",
        "W2xsbV0KYXdzX2FjY2Vzc19rZXlfaWQgPSBTRUNSRVQtQVdTLUlE",
        "SECRET-AWS-ID",
        "SECRET-AWS-KEY",
    ];
    // The test must be able to fail: these are really in the input (the rest are their decodings).
    for written in [
        values[0], values[2], values[4], values[5], values[6], values[7],
    ] {
        assert!(text.contains(written), "{written} is not in the case");
    }
    for artifact in &produced {
        let bytes = String::from_utf8_lossy(&artifact.bytes);
        for value in values {
            assert!(
                !bytes.contains(value),
                "{} carries a secret value ({value})",
                artifact.name
            );
        }
        assert!(
            !bytes.contains("SECRET"),
            "{} carries something secret",
            artifact.name
        );
    }
    // The references are there instead.
    let table = produced
        .iter()
        .find(|a| a.name == "table.json")
        .expect("table");
    let table = String::from_utf8_lossy(&table.bytes);
    for reference in [
        "\"name\": \"openai-key\"",
        "\"key\": \"apiKey\"",
        "\"key\": \"client-secret\"",
        "\"key\": \"service_account.json\"",
        "\"key\": \"credentials\"",
        "\"name\": \"edge-cert\"",
    ] {
        assert!(table.contains(reference), "table.json lacks {reference}");
    }
}

#[test]
fn the_table_loads_and_routes_in_the_runtime_loader() {
    let path = root().join("testdata/compile/valid/secrets.yaml");
    let produced = compile(&[path], CheckOptions::default());
    let table = produced
        .iter()
        .find(|a| a.name == "table.json")
        .expect("table");
    let snapshot =
        aigw_table::load(&table.bytes).expect("the runtime loads what the compiler writes");
    let (https, _, _) = snapshot
        .listeners()
        .find(|(_, _, l)| l.name == "https")
        .expect("https listener");
    let (http, _, _) = snapshot
        .listeners()
        .find(|(_, _, l)| l.name == "http")
        .expect("http listener");
    let mut headers = http::HeaderMap::new();
    headers.insert("x-ai-eg-model", "gpt-4o".parse().expect("value"));
    headers.insert("x-tenant", "blue".parse().expect("value"));
    let selected = snapshot
        .select(https, "api.llm.example.com:8443", &headers)
        .expect("gpt rule");
    assert_eq!(selected.rule.name.as_deref(), Some("gpt"));
    assert_eq!(selected.rule.stream_idle_timeout_ms, Some(30_000));
    assert_eq!(selected.rule.request_timeout_ms, 60_000);
    assert_eq!(selected.rule.backend_request_timeout_ms, Some(20_000));
    // The route-level header wins over the backend's (names compared without case); removals stay.
    let azure = &selected.rule.backends[0];
    let set: Vec<(&str, &str)> = azure
        .header_mutation
        .set
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(set, [("x-route", "tenants"), ("X-Team", "route-wins")]);
    assert_eq!(azure.header_mutation.remove, ["x-internal"]);
    // Host scoping: another host, or the route's sectionName on the other listener, finds nothing.
    assert!(
        snapshot
            .select(https, "other.llm.example.com", &headers)
            .is_none()
    );
    assert!(
        snapshot
            .select(http, "api.llm.example.com", &headers)
            .is_none()
    );
    headers.insert("x-tenant", "green".parse().expect("value"));
    assert!(
        snapshot
            .select(https, "api.llm.example.com", &headers)
            .is_none()
    );
    let models: Vec<&str> = snapshot
        .models(https, "api.llm.example.com")
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(models, ["gpt-4o", "gemini-2.5-pro"]);
}

/// `translate_basic` minus the backend the reference's own admission forbids (a Service).
fn golden_input(text: &str) -> String {
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("corpus parses");
    docs.retain(|d| {
        !(d["kind"] == "AIServiceBackend"
            && d["metadata"]["name"] == "envoy-ai-gateway-basic-testupstream")
    });
    for doc in docs.iter_mut().filter(|d| d["kind"] == "AIGatewayRoute") {
        let rules = doc["spec"]["rules"].as_array_mut().expect("rules");
        rules.retain(|r| r["backendRefs"][0]["name"] != "envoy-ai-gateway-basic-testupstream");
    }
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).expect("yaml")))
        .collect()
}

/// Drops what the comparison leaves aside: owner uids, and nulls (absent in Kubernetes).
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| !v.is_null() && k != "uid");
            map.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[test]
fn gateway_api_output_matches_the_reference_golden() {
    let Some(dir) = crate::conformance::corpus() else {
        return;
    };
    let golden_text =
        std::fs::read_to_string(dir.join("translate/translate_basic.out.yaml")).expect("golden");
    let mut golden: Vec<Value> = serde_saphyr::from_multiple(&golden_text).expect("golden parses");
    golden.retain(|d| d["kind"] == "HTTPRoute" || d["kind"] == "HTTPRouteFilter");
    for doc in golden.iter_mut().filter(|d| d["kind"] == "HTTPRoute") {
        // Minus the Service-backed rule and its priority entry.
        let rules = doc["spec"]["rules"].as_array_mut().expect("rules");
        rules.retain(|r| r["backendRefs"][0]["kind"] != "Service");
        let annotation =
            &mut doc["metadata"]["annotations"]["gateway.envoyproxy.io/backend-ref-priority"];
        let kept: Vec<&str> = annotation
            .as_str()
            .expect("priority")
            .split(',')
            .filter(|p| !p.contains("testupstream"))
            .collect();
        *annotation = Value::String(kept.join(","));
    }
    golden.iter_mut().for_each(normalize);
    assert_eq!(
        golden.len(),
        3,
        "the golden holds one HTTPRoute and two filters"
    );
    for input in [
        "translate_basic.in.yaml",
        "translate_basic_v1alpha1.in.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join("translate").join(input)).expect("input");
        let produced = compile_text(&golden_input(&text), CheckOptions::default());
        let ours = produced
            .iter()
            .find(|a| a.name == "gateway-api.yaml")
            .expect("gateway-api.yaml");
        let mut ours: Vec<Value> =
            serde_saphyr::from_multiple(&String::from_utf8_lossy(&ours.bytes))
                .expect("ours parses");
        ours.iter_mut().for_each(normalize);
        assert_eq!(ours.len(), golden.len(), "{input}");
        for (a, b) in ours.iter().zip(&golden) {
            assert_eq!(
                a, b,
                "{input}: {} {} differs",
                a["kind"], a["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_reference_input_with_a_service_backend_is_rejected() {
    let Some(dir) = crate::conformance::corpus() else {
        return;
    };
    let text =
        std::fs::read_to_string(dir.join("translate/translate_basic.in.yaml")).expect("input");
    let mut map = aigw_diag::SourceMap::new();
    map.add("translate_basic.in.yaml", text);
    let checked = check(map, CheckOptions::default());
    assert!(checked.has_errors());
    assert!(
        artifacts(&checked, Target::ALL).is_err(),
        "nothing is produced from an input with errors"
    );
}
