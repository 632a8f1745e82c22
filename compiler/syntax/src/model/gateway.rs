//! The Gateway API kinds aigw reads (GatewayClass, Gateway, HTTPRoute, ReferenceGrant,
//! BackendTLSPolicy), Envoy Gateway's Backend, and core v1 Secret.
//!
//! These are other projects' APIs: we model in full the parts the graph and the targets use, and
//! carry the rest opaque (`serde_json::Value`), leaving their checks to their owners.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `spec` of a GatewayClass.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayClassSpec {
    #[schemars(length(min = 1, max = 253))]
    pub controller_name: String,
    pub parameters_ref: Option<serde_json::Value>,
    pub description: Option<String>,
}

/// The `spec` of a Gateway.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    #[schemars(length(min = 1, max = 253))]
    pub gateway_class_name: String,
    /// Required, with at least one listener (Gateway API `MinItems=1`): a Gateway that listens
    /// nowhere can carry no route.
    #[schemars(length(min = 1, max = 64))]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub addresses: Vec<serde_json::Value>,
    pub infrastructure: Option<serde_json::Value>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<serde_json::Value>,
    pub allowed_listeners: Option<serde_json::Value>,
    pub tls: Option<serde_json::Value>,
    pub default_scope: Option<String>,
}

/// One Gateway listener.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    #[schemars(length(min = 1, max = 253), regex(pattern = SECTION_NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub hostname: Option<String>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[schemars(length(min = 1, max = 255))]
    pub protocol: String,
    pub tls: Option<ListenerTls>,
    pub allowed_routes: Option<serde_json::Value>,
}

/// Listener TLS: the certificate Secrets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTls {
    pub mode: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub certificate_refs: Vec<SecretObjectReference>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub frontend_validation: Option<serde_json::Value>,
}

/// The `spec` of an HTTPRoute. Read because it shares Gateways with AIGatewayRoutes.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteSpec {
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
    pub use_default_gateways: Option<String>,
}

/// One HTTPRoute rule; retry and session persistence are carried opaque.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteRule {
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub filters: Vec<super::filters::HttpRouteFilter>,
    #[serde(default)]
    pub backend_refs: Vec<WeightedBackendRef>,
    pub timeouts: Option<serde_json::Value>,
    pub retry: Option<serde_json::Value>,
    pub session_persistence: Option<serde_json::Value>,
}

/// Gateway API `HTTPRouteMatch`: every present condition must hold.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteMatch {
    pub path: Option<HttpPathMatch>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub headers: Vec<HttpValueMatch>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub query_params: Vec<HttpValueMatch>,
    pub method: Option<HttpMethod>,
}

/// Gateway API `HTTPPathMatch` (type `PathPrefix` and value `/` by default).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpPathMatch {
    #[serde(rename = "type", default)]
    pub match_type: PathMatchType,
    #[serde(default = "root_path")]
    #[schemars(length(max = 1024))]
    pub value: String,
}

fn root_path() -> String {
    "/".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum PathMatchType {
    Exact,
    #[default]
    PathPrefix,
    RegularExpression,
}

/// Gateway API `HTTPHeaderMatch` and `HTTPQueryParamMatch` (type `Exact` by default).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpValueMatch {
    #[serde(rename = "type", default)]
    pub match_type: crate::model::route::HeaderMatchType,
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Connect => "CONNECT",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// The `spec` of a ReferenceGrant.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantSpec {
    #[schemars(length(min = 1, max = 16))]
    pub from: Vec<ReferenceGrantFrom>,
    #[schemars(length(min = 1, max = 16))]
    pub to: Vec<ReferenceGrantTo>,
}

/// Who may refer.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantFrom {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: String,
}

/// What may be referred to (all of a kind, or one name).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferenceGrantTo {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
}

/// The `spec` of a BackendTLSPolicy (v1alpha3 and v1 share this shape).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsPolicySpec {
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetReferenceWithSectionName>,
    pub validation: BackendTlsValidation,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// How the upstream certificate is verified.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsValidation {
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    #[serde(rename = "wellKnownCACertificates")]
    pub well_known_ca_certificates: Option<WellKnownCaCertificates>,
    #[schemars(length(min = 1, max = 253))]
    pub hostname: String,
    #[serde(default)]
    pub subject_alt_names: Vec<serde_json::Value>,
}

/// The only well-known CA set Gateway API defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum WellKnownCaCertificates {
    System,
}

/// Gateway API `LocalObjectReference`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The `spec` of an Envoy Gateway Backend.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendSpec {
    #[serde(rename = "type")]
    pub backend_type: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub endpoints: Vec<BackendEndpoint>,
    #[serde(default)]
    pub app_protocols: Vec<String>,
    pub fallback: Option<bool>,
    pub tls: Option<serde_json::Value>,
}

/// One Backend endpoint: exactly one of fqdn, ip, unix.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendEndpoint {
    pub fqdn: Option<FqdnEndpoint>,
    pub ip: Option<IpEndpoint>,
    pub unix: Option<UnixEndpoint>,
    pub zone: Option<String>,
    pub hostname: Option<String>,
}

/// A DNS name and port.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnEndpoint {
    #[schemars(length(min = 1, max = 253))]
    pub hostname: String,
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
}

/// An IP address and port.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpEndpoint {
    #[schemars(length(min = 3, max = 45))]
    pub address: String,
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
}

/// A unix domain socket.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnixEndpoint {
    pub path: String,
}

/// The `spec` of an InferencePool: recognised and carried; only its name is used for now.
pub type InferencePoolSpec = serde_json::Value;
