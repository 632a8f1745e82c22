//! The CustomResourceDefinitions of aigw's own kinds (group `aigw.dev`), generated from the
//! Rust types the compiler reads, with schemars: the schema an API server enforces is the one
//! `aigw check` checks, field for field. Rendered as Kubernetes wants a structural schema:
//! OpenAPI 3 with every subschema inlined, `nullable` for optional fields, and no
//! `additionalProperties: false` (Kubernetes forbids it next to `properties`; it prunes unknown
//! fields instead, where aigw reports them).
//!
//! The rendered files are committed under `targets/gateway-api/crds/`; a test fails when they
//! are stale.

use aigw_syntax::model::{
    AIGW_GROUP, AIGW_POLICY_GROUP, AIGatewayRouteSpec, AIServiceBackendSpec,
    BackendSecurityPolicySpec, GatewayConfigSpec, MCPRouteSpec, ModelAccessPolicySpec,
    PromptGuardPolicySpec, QuotaPolicySpec, ResponseCachePolicySpec,
};
use serde_json::{Value, json};

/// One kind: its names and its spec's type.
struct Crd {
    kind: &'static str,
    plural: &'static str,
    version: &'static str,
    description: &'static str,
    spec: fn() -> Value,
}

/// The reference's kinds, as aigw reads them: served at v1beta1 (stored) and v1alpha1
/// (deprecated, as the reference marks it), except QuotaPolicy, which has only v1alpha1.
/// Generated from aigw's model, so the API server takes exactly what `aigw check` takes
/// structurally; the reference's own CRDs add its CEL rules, which aigw checks itself.
const REFERENCE: &[Crd] = &[
    Crd {
        kind: "AIGatewayRoute",
        plural: "aigatewayroutes",
        version: "v1beta1",
        description: "AIGatewayRoute routes AI requests on Gateways to AIServiceBackends by model, with token costs.",
        spec: schema::<AIGatewayRouteSpec>,
    },
    Crd {
        kind: "AIServiceBackend",
        plural: "aiservicebackends",
        version: "v1beta1",
        description: "AIServiceBackend is one AI provider backend: its API schema and the Backend that serves it.",
        spec: schema::<AIServiceBackendSpec>,
    },
    Crd {
        kind: "BackendSecurityPolicy",
        plural: "backendsecuritypolicies",
        version: "v1beta1",
        description: "BackendSecurityPolicy is the credential aigw sends to the AIServiceBackends it targets.",
        spec: schema::<BackendSecurityPolicySpec>,
    },
    Crd {
        kind: "GatewayConfig",
        plural: "gatewayconfigs",
        version: "v1beta1",
        description: "GatewayConfig configures the AI gateway of the Gateways that reference it.",
        spec: schema::<GatewayConfigSpec>,
    },
    Crd {
        kind: "MCPRoute",
        plural: "mcproutes",
        version: "v1beta1",
        description: "MCPRoute serves MCP servers behind one endpoint of a Gateway.",
        spec: schema::<MCPRouteSpec>,
    },
    Crd {
        kind: "QuotaPolicy",
        plural: "quotapolicies",
        version: "v1alpha1",
        description: "QuotaPolicy limits the tokens the AIServiceBackends it targets may spend.",
        spec: schema::<QuotaPolicySpec>,
    },
];

const CRDS: &[Crd] = &[
    Crd {
        kind: "ModelAccessPolicy",
        plural: "modelaccesspolicies",
        version: "v1alpha1",
        description: "ModelAccessPolicy says which callers (the client IDs of the SecurityPolicy apiKeyAuth in force) may use which models, on the Gateways, HTTPRoutes and AIGatewayRoutes it targets.",
        spec: schema::<ModelAccessPolicySpec>,
    },
    Crd {
        kind: "PromptGuardPolicy",
        plural: "promptguardpolicies",
        version: "v1alpha1",
        description: "PromptGuardPolicy checks the prompts (and optionally the answers) of the AI requests on its targets with built-in PII detectors and regular expressions, rejecting the request or masking what it finds.",
        spec: schema::<PromptGuardPolicySpec>,
    },
    Crd {
        kind: "ResponseCachePolicy",
        plural: "responsecachepolicies",
        version: "v1alpha1",
        description: "ResponseCachePolicy keeps the answers of the deterministic AI requests on its targets for a while, in memory or in Redis, and serves them again to the same request of the same caller without calling the backend.",
        spec: schema::<ResponseCachePolicySpec>,
    },
];

/// Every CRD as `(file name, document)`, in a fixed order.
pub fn crds() -> Vec<(String, Value)> {
    CRDS.iter()
        .map(|crd| {
            let file = format!("{AIGW_POLICY_GROUP}_{}.yaml", crd.plural);
            (file, document(crd))
        })
        .collect()
}

/// The reference's kinds (group `aigateway.envoyproxy.io`), generated from aigw's model, as
/// `(file name, document)`, in a fixed order.
pub fn reference_crds() -> Vec<(String, Value)> {
    REFERENCE
        .iter()
        .map(|crd| {
            let file = format!("{AIGW_GROUP}_{}.yaml", crd.plural);
            (file, reference_document(crd))
        })
        .collect()
}

fn reference_document(crd: &Crd) -> Value {
    let mut document = document_in(crd, AIGW_GROUP, "aigw");
    let schema = document["spec"]["versions"][0].clone();
    if crd.version == "v1beta1" {
        let mut older = schema.clone();
        older["name"] = json!("v1alpha1");
        older["storage"] = json!(false);
        older["deprecated"] = json!(true);
        older["deprecationWarning"] = json!(format!(
            "{AIGW_GROUP}/v1alpha1 is deprecated; use {AIGW_GROUP}/v1beta1"
        ));
        document["spec"]["versions"] = json!([older, schema]);
    }
    document
}

fn document(crd: &Crd) -> Value {
    document_in(crd, AIGW_POLICY_GROUP, "aigw")
}

fn document_in(crd: &Crd, group: &str, category: &str) -> Value {
    let singular = crd.kind.to_ascii_lowercase();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{group}", crd.plural)},
        "spec": {
            "group": group,
            "names": {
                "kind": crd.kind,
                "listKind": format!("{}List", crd.kind),
                "plural": crd.plural,
                "singular": singular,
                "categories": [category],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": crd.version,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "description": crd.description,
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": (crd.spec)(),
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// The structural schema of `T`.
fn schema<T: schemars::JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
    });
    let mut value = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    structural(&mut value);
    value
}

/// Removes what Kubernetes does not take in a structural schema.
fn structural(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in ["$schema", "title", "components", "definitions", "$defs"] {
                map.remove(key);
            }
            if map.contains_key("properties") {
                map.remove("additionalProperties");
            }
            // schemars writes integer widths Kubernetes does not know (`uint`, `uint32`).
            if map.get("format").and_then(Value::as_str).is_some_and(|f| {
                !matches!(
                    f,
                    "int32" | "int64" | "float" | "double" | "byte" | "date-time"
                )
            }) {
                map.remove("format");
            }
            for child in map.values_mut() {
                structural(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(structural),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crds_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
    }

    /// The committed CRDs are what the types give (`UPDATE_CRDS=1` rewrites them).
    #[test]
    fn committed_crds_are_fresh() {
        for (file, document) in crds() {
            let text = crate::to_yaml([document]).unwrap_or_else(|e| unreachable!("{e}"));
            let path = crds_dir().join(&file);
            if std::env::var_os("UPDATE_CRDS").is_some() {
                std::fs::create_dir_all(crds_dir()).unwrap_or_else(|e| unreachable!("{e}"));
                std::fs::write(&path, &text).unwrap_or_else(|e| unreachable!("{e}"));
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(committed, text, "{file} is stale: run with UPDATE_CRDS=1");
        }
    }

    #[test]
    fn the_schema_is_structural_and_keeps_the_bounds() {
        let (_, crd) = &crds()[0];
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let text = spec.to_string();
        for absent in ["$ref", "$schema", "additionalProperties", "\"uint"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(spec["required"], json!(["targetRefs", "rules"]));
        let rules = &spec["properties"]["rules"];
        assert_eq!(
            (rules["minItems"].as_u64(), rules["maxItems"].as_u64()),
            (Some(1), Some(128))
        );
        let clients = &rules["items"]["properties"]["clients"];
        assert_eq!(clients["items"]["minLength"], 1);
        assert_eq!(
            spec["properties"]["targetRefs"]["items"]["properties"]["kind"]["maxLength"],
            63
        );
    }
}
