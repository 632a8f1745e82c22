//! `aigw deploy render` and `aigw crds` through the binary, their output validated against the
//! Kubernetes OpenAPI schemas (strict: an unknown field is an error) by the `kubernetes-validate`
//! package, offline, in the venv (`targets/deploy/validate.py`).

use std::io::Write;
use std::process::{Command, Stdio};

fn aigw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aigw"))
        .args(args)
        .output()
        .expect("aigw runs")
}

/// Validates a multi-document YAML; the validator's output lines.
fn validate(test: &str, yaml: &[u8]) -> Option<String> {
    let python = aigw_testkit::python(test, &["kubernetes_validate"])?;
    let mut child = Command::new(python)
        .arg(crate::root().join("targets/deploy/validate.py"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("validate.py runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("written");
    let out = child.wait_with_output().expect("validate.py ends");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text)
}

#[test]
fn the_default_install_manifests_are_valid_kubernetes() {
    let out = aigw(&["deploy", "render"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(report) = validate("deploy render defaults", &out.stdout) else {
        return;
    };
    for object in [
        "ok Namespace/aigw-system",
        "ok ClusterRole/aigw-controller",
        "ok Deployment/aigw-system/aigw-controller",
        "ok Deployment/aigw-system/aigw-data-plane",
        "ok Service/aigw-system/aigw-controller",
        "ok PodDisruptionBudget/aigw-system/aigw-data-plane",
        "ok Role/aigw-system/aigw-controller-leader-election",
    ] {
        assert!(
            report.lines().any(|l| l == object),
            "{object} missing:\n{report}"
        );
    }
}

#[test]
fn namespaced_installs_with_every_option_are_valid_kubernetes() {
    let dir = tempfile::tempdir().expect("dir");
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "name: gw\nnamespace:\n  name: ai\n  create: false\nimage:\n  pullSecrets: [registry]\n\
         controller:\n  replicas: 1\n  watchNamespaces: [team-a, team-b]\n  applyGatewayApi: true\n\
         dataPlane:\n  replicas: 3\n  secrets: [{name: openai}, {name: bedrock}]\n  service:\n    type: LoadBalancer\n  \
         ports:\n    - {name: http, port: 8080, servicePort: 80}\n    - {name: https, port: 8443, servicePort: 443}\n",
    )
    .expect("values");
    let out = aigw(&[
        "deploy",
        "render",
        "--values",
        &values.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(report) = validate("deploy render options", &out.stdout) else {
        return;
    };
    for object in [
        "ok Role/team-a/gw-controller",
        "ok RoleBinding/team-b/gw-controller",
        "ok Deployment/ai/gw-data-plane",
        "ok PodDisruptionBudget/ai/gw-data-plane",
    ] {
        assert!(
            report.lines().any(|l| l == object),
            "{object} missing:\n{report}"
        );
    }
    assert!(!report.contains("Namespace/"), "{report}");
}

#[test]
fn a_wrong_value_is_a_clear_error_and_no_output() {
    let dir = tempfile::tempdir().expect("dir");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "dataPlane:\n  replicas: two\n").expect("values");
    let out = aigw(&[
        "deploy",
        "render",
        "--values",
        &values.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("`dataPlane.replicas` must be an integer, not a string"),
        "{error}"
    );
}

#[test]
fn the_crds_are_valid_and_cover_every_kind_with_status() {
    let out = aigw(&["crds"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for (kind, _) in aigw_target_gateway_api::STATUS_KINDS {
        assert!(
            text.contains(&format!("kind: {kind:?}\n")),
            "{kind:?} missing"
        );
    }
    let Some(report) = validate("aigw crds", &out.stdout) else {
        return;
    };
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("ok CustomResourceDefinition/"))
            .count(),
        9,
        "{report}"
    );
    let own = aigw(&["crds", "--own"]);
    assert_eq!(
        String::from_utf8_lossy(&own.stdout)
            .matches("kind: CustomResourceDefinition")
            .count(),
        3
    );
}
