//! The MCPRoute kind (aigateway.envoyproxy.io, v1alpha1 and v1beta1: one schema serves both):
//! the MCP servers a route aggregates, their tool filters and credentials, and the route's
//! security policy (OAuth, API keys, external authorization and tool-level authorization).
//! Envoy Gateway's `backendSettings` (cluster settings) sub-trees are carried opaque.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of an MCPRoute.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MCPRouteSpec {
    /// The Gateways this route attaches to; a rule requires every kind to be `Gateway`.
    #[schemars(length(min = 1, max = 16))]
    pub parent_refs: Vec<ParentReference>,
    /// Hostnames matched against the Host header.
    #[serde(default)]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))
    )]
    pub hostnames: Vec<String>,
    /// Headers that must all match for the route to be selected.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub headers: Vec<McpHeaderMatch>,
    /// The path serving MCP over Streamable HTTP.
    #[serde(default = "default_mcp_path")]
    #[schemars(length(max = 1024))]
    pub path: String,
    /// The MCP servers aggregated behind this route; names must be unique.
    #[schemars(length(min = 1, max = 256))]
    pub backend_refs: Vec<McpBackendRef>,
    pub backend_selector: Option<McpBackendSelector>,
    pub security_policy: Option<McpSecurityPolicy>,
}

fn default_mcp_path() -> String {
    "/mcp".to_owned()
}

/// A header match of the route.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpHeaderMatch {
    #[serde(rename = "type", default)]
    pub match_type: McpHeaderMatchType,
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// How a route header value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum McpHeaderMatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// One MCP server: a backend object reference plus MCP-specific settings.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackendRef {
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
    /// Required (by rule) when the referent is a core `Service`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Client request headers forwarded to this server.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub forward_headers: Vec<McpForwardHeader>,
    /// The server's MCP endpoint path.
    #[serde(default = "default_mcp_path")]
    #[schemars(length(max = 1024))]
    pub path: String,
    pub security_policy: Option<McpBackendSecurityPolicy>,
    pub tool_selector: Option<McpToolSelector>,
}

/// A client header copied onto the upstream request, optionally under another name.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpForwardHeader {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub backend_header: Option<String>,
}

/// Credentials injected when calling one MCP server.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackendSecurityPolicy {
    pub api_key: Option<McpBackendApiKey>,
}

/// An API key for an MCP server: exactly one of `secretRef` and `inline`, injected into at
/// most one of `header` and `queryParam` (both checked by rules).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackendApiKey {
    pub secret_ref: Option<SecretObjectReference>,
    pub inline: Option<String>,
    #[schemars(length(min = 1))]
    pub header: Option<String>,
    #[schemars(length(min = 1))]
    pub query_param: Option<String>,
}

/// Which tools of an MCP server are exposed. The lists are `Option` because the rules test
/// presence (`has(...)`), and an explicitly empty list counts as present.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpToolSelector {
    #[schemars(length(max = 32))]
    pub include: Option<Vec<String>>,
    /// RE2 regular expressions.
    #[schemars(length(max = 32))]
    pub include_regex: Option<Vec<String>>,
    #[schemars(length(max = 32))]
    pub exclude: Option<Vec<String>>,
    /// RE2 regular expressions.
    #[schemars(length(max = 32))]
    pub exclude_regex: Option<Vec<String>>,
}

/// The decision of an authorization or backend-selection rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum McpAction {
    Allow,
    Deny,
}

fn mcp_allow() -> McpAction {
    McpAction::Allow
}

fn mcp_deny() -> McpAction {
    McpAction::Deny
}

/// Which backends a session may fan out to, decided per candidate backend.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackendSelector {
    #[serde(default = "mcp_deny")]
    pub default_action: McpAction,
    /// Evaluated in order; the first match decides.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub rules: Vec<McpBackendSelectorRule>,
}

/// One backend-selection rule.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpBackendSelectorRule {
    #[serde(default = "mcp_allow")]
    pub action: McpAction,
    /// CEL expression over the candidate backend and the request.
    #[schemars(length(max = 4096))]
    pub cel: Option<String>,
}

/// The route's client-facing security policy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpSecurityPolicy {
    pub api_key_auth: Option<McpApiKeyAuth>,
    pub authorization: Option<McpAuthorization>,
    pub ext_auth: Option<McpExtAuth>,
    /// Required (by rule) when any authorization rule has a JWT source.
    pub oauth: Option<McpOAuth>,
}

/// Client API-key authentication (Envoy Gateway `APIKeyAuth`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpApiKeyAuth {
    /// Opaque Secrets whose keys are client ids and values are API keys.
    pub credential_refs: Vec<SecretObjectReference>,
    /// Where to read the key from; the first source that has one wins.
    pub extract_from: Vec<McpApiKeyExtractFrom>,
    #[serde(rename = "forwardClientIDHeader")]
    pub forward_client_id_header: Option<String>,
    pub sanitize: Option<bool>,
}

/// One place to look for a client API key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpApiKeyExtractFrom {
    #[serde(default)]
    pub cookies: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub params: Vec<String>,
}

/// MCP tool-level authorization.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorization {
    #[serde(default = "mcp_deny")]
    pub default_action: McpAction,
    /// Evaluated in order; the first match decides.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub rules: Vec<McpAuthorizationRule>,
}

/// One authorization rule; a missing source or target matches everything.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorizationRule {
    #[serde(default = "mcp_allow")]
    pub action: McpAction,
    /// CEL expression; errors and non-boolean results count as no match.
    #[schemars(length(max = 4096))]
    pub cel: Option<String>,
    pub source: Option<McpAuthorizationSource>,
    pub target: Option<McpAuthorizationTarget>,
}

/// Who a rule applies to.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorizationSource {
    pub jwt: McpJwtSource,
}

/// The JWT scopes and claims a rule requires; a rule requires at least one of them.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpJwtSource {
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub scopes: Vec<String>,
    /// The claim name `scope` is reserved (checked by a rule).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub claims: Vec<McpJwtClaim>,
}

/// A JWT claim and the values it must carry.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpJwtClaim {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default)]
    pub value_type: McpJwtClaimValueType,
    #[schemars(length(min = 1, max = 128))]
    pub values: Vec<String>,
}

/// The JSON type of a JWT claim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum McpJwtClaimValueType {
    #[default]
    String,
    StringArray,
}

/// What a rule applies to.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpAuthorizationTarget {
    #[schemars(length(min = 1, max = 16))]
    pub tools: Vec<McpToolCall>,
}

/// A tool of one backend (by backend name as listed in `backendRefs`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpToolCall {
    pub backend: String,
    pub tool: String,
}

/// External authorization (Envoy Gateway `ExtAuth`): exactly one of `grpc` and `http`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpExtAuth {
    pub body_to_ext_auth: Option<McpExtAuthBody>,
    #[serde(default)]
    pub context_extensions: Vec<McpContextExtension>,
    #[serde(default)]
    pub fail_open: bool,
    pub grpc: Option<McpGrpcExtAuth>,
    #[serde(default)]
    pub headers_to_ext_auth: Vec<String>,
    pub http: Option<McpHttpExtAuth>,
    pub include_route_metadata: Option<bool>,
    pub recompute_route: Option<bool>,
    /// A 4xx or 5xx status; the CRD enumerates the accepted codes.
    pub status_on_error: Option<i32>,
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// How much of the request body is sent to the authorization service.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpExtAuthBody {
    #[schemars(range(min = 1))]
    pub max_request_bytes: i32,
}

/// A context extension sent to the authorization service: `value` for type `Value`,
/// `valueRef` for type `ValueRef` (checked by a rule).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpContextExtension {
    pub name: String,
    /// Required by the CRD, but the API server fills in its default first.
    #[serde(rename = "type", default)]
    pub extension_type: McpContextExtensionType,
    pub value: Option<String>,
    pub value_ref: Option<McpContextExtensionValueRef>,
}

/// How a context extension value is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum McpContextExtensionType {
    #[default]
    Value,
    ValueRef,
}

/// A key of a ConfigMap or Secret in the core group (checked by a rule).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpContextExtensionValueRef {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    pub key: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A gRPC authorization service: `backendRef` or a non-empty `backendRefs`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpGrpcExtAuth {
    /// Deprecated by Envoy Gateway in favour of `backendRefs`.
    pub backend_ref: Option<BackendObjectReference>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<McpEnvoyBackendRef>,
    /// Envoy Gateway `ClusterSettings`, carried opaque and checked by its owner.
    pub backend_settings: Option<serde_json::Value>,
}

/// An HTTP authorization service: `backendRef` or a non-empty `backendRefs`, and at most one
/// of `path` and `pathOverride`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpHttpExtAuth {
    /// Deprecated by Envoy Gateway in favour of `backendRefs`.
    pub backend_ref: Option<BackendObjectReference>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<McpEnvoyBackendRef>,
    /// Envoy Gateway `ClusterSettings`, carried opaque and checked by its owner.
    pub backend_settings: Option<serde_json::Value>,
    #[serde(default)]
    pub headers_to_backend: Vec<String>,
    pub path: Option<String>,
    pub path_override: Option<String>,
}

/// Envoy Gateway `BackendRef`: a backend object reference with a weight and a fallback flag.
/// Rules allow kinds Service, ServiceImport and Backend in the core, `multicluster.x-k8s.io`
/// and `gateway.envoyproxy.io` groups.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpEnvoyBackendRef {
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
    #[serde(default = "mcp_weight_one")]
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: i32,
    pub fallback: Option<bool>,
}

fn mcp_weight_one() -> i32 {
    1
}

/// MCP-spec OAuth: access tokens issued by `issuer`, verified against a JWKS.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpOAuth {
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub audiences: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub claim_to_headers: Vec<McpClaimToHeader>,
    #[schemars(url)]
    pub issuer: String,
    /// When absent, discovered from the issuer's RFC 8414 metadata.
    pub jwks: Option<McpJwks>,
    pub protected_resource_metadata: McpProtectedResourceMetadata,
}

/// A JWT claim (dotted path for nested claims) copied into a request header.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpClaimToHeader {
    pub claim: String,
    pub header: String,
}

/// Where the JWKS comes from: exactly one of `remoteJWKS` and `localJWKS`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpJwks {
    #[serde(rename = "remoteJWKS")]
    pub remote_jwks: Option<McpRemoteJwks>,
    #[serde(rename = "localJWKS")]
    pub local_jwks: Option<McpLocalJwks>,
}

/// A JWKS fetched over HTTP(S) and cached. Rules forbid `backendRef` (use `backendRefs`) and,
/// inside `backendSettings`, `retry.perRetry.timeout` and `retry.retryOn.httpStatusCodes`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpRemoteJwks {
    #[schemars(length(min = 1, max = 253))]
    pub uri: String,
    #[serde(default = "default_jwks_cache_duration")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cache_duration: String,
    pub backend_ref: Option<BackendObjectReference>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<McpEnvoyBackendRef>,
    /// Envoy Gateway `ClusterSettings`, carried opaque and checked by its owner.
    pub backend_settings: Option<serde_json::Value>,
}

fn default_jwks_cache_duration() -> String {
    "300s".to_owned()
}

/// A JWKS given inline or by reference: `inline` for type `Inline`, `valueRef` for type
/// `ValueRef` (checked by a rule).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpLocalJwks {
    /// Required by the CRD, but the API server fills in its default first.
    #[serde(rename = "type", default)]
    pub jwks_type: McpLocalJwksType,
    pub inline: Option<String>,
    /// A ConfigMap whose `jwks` key (or else first value) holds the key set.
    pub value_ref: Option<McpLocalObjectReference>,
}

/// How a local JWKS is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum McpLocalJwksType {
    #[default]
    Inline,
    ValueRef,
}

/// Gateway API `LocalObjectReference`: an object in the route's namespace.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpLocalObjectReference {
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = KIND_PATTERN))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// OAuth 2.0 protected resource metadata served to MCP clients for discovery.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpProtectedResourceMetadata {
    /// The resource identifier; should be the route's URL.
    #[schemars(url)]
    pub resource: String,
    #[schemars(url)]
    pub resource_documentation: Option<String>,
    #[schemars(length(max = 256))]
    pub resource_name: Option<String>,
    #[schemars(url)]
    pub resource_policy_uri: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1, max = 16))]
    pub resource_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub scopes_supported: Vec<String>,
}
