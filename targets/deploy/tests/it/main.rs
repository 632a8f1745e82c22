//! The install manifests: the default rendering (a reviewed snapshot), the values that change
//! its shape, and the mistakes a values file can make. Schema validation of the output against
//! the Kubernetes OpenAPI schemas runs through the `aigw` binary (compiler/cli tests, `deploy`).

use aigw_target_deploy::{DeployError, render, values};

fn rendered(overrides: &str) -> String {
    let values = values(Some(("values-test.yaml", overrides)))
        .unwrap_or_else(|e| unreachable!("values: {e}"));
    render(&values).unwrap_or_else(|e| unreachable!("render: {e}"))
}

fn kinds(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_default_install() {
    let text = rendered("");
    insta::assert_snapshot!("default", text);
    assert!(text.starts_with("---\n") && text.ends_with("\n") && !text.ends_with("\n\n"));
    assert_eq!(
        kinds(&text),
        [
            "Namespace",
            "ServiceAccount",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    );
}

#[test]
fn the_same_values_render_the_same_bytes() {
    assert_eq!(rendered(""), rendered(""));
}

#[test]
fn listed_namespaces_get_roles_instead_of_cluster_wide_reads() {
    let text = rendered(
        "controller:\n  replicas: 1\n  watchNamespaces: [team-a, team-b]\n  applyGatewayApi: true\n\
         dataPlane:\n  replicas: 1\n  secrets: [{name: openai}]\n",
    );
    let kinds = kinds(&text);
    assert_eq!(
        kinds.iter().filter(|k| *k == "PodDisruptionBudget").count(),
        0
    );
    for ns in ["team-a", "team-b"] {
        assert!(
            text.contains(&format!("- \"--namespace\"\n            - \"{ns}\"")),
            "{text}"
        );
    }
    assert!(text.contains("\"--apply-gateway-api\""), "{text}");
    assert!(
        text.contains("/etc/aigw/secrets/aigw-system/openai"),
        "{text}"
    );
    // The ClusterRole reads only the cluster-scoped GatewayClasses; Secrets are read per namespace.
    let cluster_role = text
        .split("---\n")
        .find(|d| d.contains("kind: ClusterRole\n"))
        .unwrap_or_default();
    assert!(cluster_role.contains("gatewayclasses"), "{cluster_role}");
    assert!(!cluster_role.contains("secrets"), "{cluster_role}");
}

#[test]
fn a_mistyped_or_unknown_value_is_refused_with_its_path() {
    let unknown = values(Some(("v.yaml", "dataPlane:\n  replica: 3\n")));
    assert!(
        matches!(&unknown, Err(DeployError::Unknown { path, .. }) if path == "dataPlane.replica"),
        "{unknown:?}"
    );
    let mistyped = values(Some((
        "v.yaml",
        "dataPlane:\n  ports: [{name: http, port: \"80\"}]\n",
    )));
    assert!(
        matches!(&mistyped, Err(DeployError::Type { path, want: "an integer", .. }) if path == "dataPlane.ports[0].port"),
        "{mistyped:?}"
    );
    let item = values(Some(("v.yaml", "dataPlane:\n  secrets: [{nam: x}]\n")));
    assert!(
        matches!(&item, Err(DeployError::Unknown { path, .. }) if path == "dataPlane.secrets[0].nam"),
        "{item:?}"
    );
    let yaml = values(Some(("v.yaml", "a: [\n")));
    assert!(
        matches!(&yaml, Err(DeployError::Yaml { file, .. }) if file == "v.yaml"),
        "{yaml:?}"
    );
}

#[test]
fn every_default_value_is_documented() {
    fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaves(&path, child, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let defaults = values(None).unwrap_or_else(|e| unreachable!("{e}"));
    let mut paths = Vec::new();
    leaves("", &defaults, &mut paths);
    assert!(paths.len() > 20, "{paths:?}");
    let text = aigw_target_deploy::DEFAULT_VALUES;
    for path in paths {
        assert!(
            text.contains(&format!("# {path}:")) || text.contains(&format!("# {path}. ")),
            "`{path}` has no comment in values.yaml"
        );
    }
}
