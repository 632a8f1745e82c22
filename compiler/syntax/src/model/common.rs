//! Types shared by many kinds: object metadata, the Gateway API reference shapes, and the
//! string patterns of Kubernetes and Gateway API that the CRDs use for names and durations.
//!
//! Every struct here follows the model conventions (see `model/mod.rs`): serde for reading,
//! schemars attributes for the CRD bounds, and `deny_unknown_fields` so typos are errors.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// RFC 1123 subdomain, the pattern Gateway API uses for hostnames-like names and groups.
pub const GROUP_PATTERN: &str =
    r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Gateway API `Kind`.
pub const KIND_PATTERN: &str = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$";
/// Gateway API `Namespace` (an RFC 1123 label).
pub const NAMESPACE_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Gateway API `SectionName` and route rule names.
pub const SECTION_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Gateway API `Duration` (GEP-2257).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";
/// HTTP header names (RFC 7230 token).
pub const HEADER_NAME_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$";
/// Gateway API `Hostname`, with an optional leading wildcard label.
pub const HOSTNAME_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Kubernetes `ObjectMeta`, with the fields a manifest may carry. Server-set fields are accepted
/// so that `kubectl get -o yaml` output can be checked as it is.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<serde_json::Value>,
    pub deletion_timestamp: Option<serde_json::Value>,
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub owner_references: Vec<serde_json::Value>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    #[serde(default)]
    pub managed_fields: Vec<serde_json::Value>,
    pub self_link: Option<String>,
}

/// Gateway API `ParentReference`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentReference {
    #[serde(default = "gateway_group")]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[serde(default = "gateway_kind")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
    #[schemars(length(min = 1, max = 253), regex(pattern = SECTION_NAME_PATTERN))]
    pub section_name: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Gateway API `LocalPolicyTargetReference` (no namespace: policies target their own).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalPolicyTargetReference {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Gateway API `LocalPolicyTargetReferenceWithSectionName`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReferenceWithSectionName {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = SECTION_NAME_PATTERN))]
    pub section_name: Option<String>,
}

/// Gateway API `SecretObjectReference` (group "" and kind "Secret" by default).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretObjectReference {
    #[serde(default)]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[serde(default = "secret_kind")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
}

/// Gateway API `BackendObjectReference` (group "" and kind "Service" by default).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendObjectReference {
    #[serde(default)]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[serde(default = "service_kind")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Gateway API `BackendRef`: a backend object reference plus a weight.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedBackendRef {
    #[serde(default)]
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[serde(default = "service_kind")]
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: Option<i32>,
    #[serde(default)]
    pub filters: Vec<serde_json::Value>,
}

impl WeightedBackendRef {
    /// The reference without its weight and filters.
    pub fn to_object_reference(&self) -> BackendObjectReference {
        BackendObjectReference {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
        }
    }
}

/// An HTTP header matched or set by name and value.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

pub fn gateway_group() -> String {
    "gateway.networking.k8s.io".to_owned()
}
pub fn gateway_kind() -> String {
    "Gateway".to_owned()
}
pub fn secret_kind() -> String {
    "Secret".to_owned()
}
pub fn service_kind() -> String {
    "Service".to_owned()
}
pub fn default_true() -> bool {
    true
}

/// The targets of an Envoy Gateway policy (its deprecated `targetRef` first, then
/// `targetRefs`), each with its field path.
pub fn policy_targets<'a>(
    single: Option<&'a PolicyTargetReferenceWithSectionName>,
    many: &'a [PolicyTargetReferenceWithSectionName],
) -> Vec<(String, &'a PolicyTargetReferenceWithSectionName)> {
    let single = single.map(|t| ("spec.targetRef".to_owned(), t));
    let many = many
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("spec.targetRefs[{i}]"), t));
    single.into_iter().chain(many).collect()
}
