//! The AIGatewayRoute and AIServiceBackend kinds (aigateway.envoyproxy.io, v1alpha1 and
//! v1beta1: the two versions have one schema, so one model serves both).

use super::common::*;
use super::gateway_config::LlmRequestCost;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of an AIGatewayRoute.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AIGatewayRouteSpec {
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub parent_refs: Vec<ParentReference>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<Hostname>,
    #[schemars(length(max = 15))]
    pub rules: Vec<RouteRule>,
    #[serde(rename = "llmRequestCosts", default)]
    #[schemars(length(max = 36))]
    pub llm_request_costs: Vec<LlmRequestCost>,
}

/// A Gateway API hostname (the newtype carries the pattern for every list item).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Hostname(
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))] pub String,
);

/// One rule: matches, backends, timeouts and the model list it advertises.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    #[schemars(length(min = 1, max = 253), regex(pattern = SECTION_NAME_PATTERN))]
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub backend_refs: Vec<RouteBackendRef>,
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub matches: Vec<RouteMatch>,
    pub timeouts: Option<RouteTimeouts>,
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub stream_idle_timeout: Option<String>,
    pub models_owned_by: Option<String>,
    /// RFC 3339 date-time.
    pub models_created_at: Option<String>,
}

/// A weighted, prioritised reference to an AIServiceBackend (or one InferencePool).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteBackendRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAMESPACE_PATTERN))]
    pub namespace: Option<String>,
    #[schemars(length(max = 253), regex(pattern = GROUP_PATTERN))]
    pub group: Option<String>,
    #[schemars(
        length(max = 63),
        regex(pattern = r"^$|^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub kind: Option<String>,
    pub model_name_override: Option<String>,
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub weight: i32,
    #[serde(default)]
    #[schemars(range(min = 0, max = 2147483647))]
    pub priority: i32,
    pub header_mutation: Option<HeaderMutation>,
    pub body_mutation: Option<BodyMutation>,
}

fn one() -> i32 {
    1
}

/// Header matches of a rule; all must hold.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,
}

/// One header match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatch {
    #[serde(rename = "type", default)]
    pub match_type: HeaderMatchType,
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// How a header value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum HeaderMatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// Rule timeouts (Gateway API durations).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTimeouts {
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub request: Option<String>,
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub backend_request: Option<String>,
}

/// Headers set or removed on the upstream request.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMutation {
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub set: Vec<HttpHeader>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub remove: Vec<String>,
}

/// Top-level JSON body fields set or removed on the upstream request.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyMutation {
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub set: Vec<BodyField>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub remove: Vec<String>,
}

/// One body field: `value` is JSON text.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodyField {
    #[schemars(length(min = 1))]
    pub path: String,
    pub value: String,
}

/// The `spec` of an AIServiceBackend.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AIServiceBackendSpec {
    pub schema: VersionedApiSchema,
    pub backend_ref: BackendObjectReference,
    pub header_mutation: Option<HeaderMutation>,
    pub body_mutation: Option<BodyMutation>,
}

/// The API a backend speaks.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionedApiSchema {
    pub name: ApiSchemaName,
    pub version: Option<String>,
    pub prefix: Option<String>,
}

/// Backend schema names. `AWSAnthropic` is accepted although the reference's enum message omits
/// it, because the reference CRD lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
pub enum ApiSchemaName {
    OpenAI,
    Cohere,
    AWSBedrock,
    AzureOpenAI,
    GCPVertexAI,
    GCPAnthropic,
    Anthropic,
    AWSAnthropic,
}

impl ApiSchemaName {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAI => "OpenAI",
            Self::Cohere => "Cohere",
            Self::AWSBedrock => "AWSBedrock",
            Self::AzureOpenAI => "AzureOpenAI",
            Self::GCPVertexAI => "GCPVertexAI",
            Self::GCPAnthropic => "GCPAnthropic",
            Self::Anthropic => "Anthropic",
            Self::AWSAnthropic => "AWSAnthropic",
        }
    }
}
