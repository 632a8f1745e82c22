//! The QuotaPolicy kind (aigateway.envoyproxy.io, v1alpha1): token-based quotas attached to
//! AIServiceBackends, for the whole service and per model, with client-selected buckets.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a QuotaPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPolicySpec {
    /// The AIServiceBackends this policy attaches to (every reference must be
    /// `aigateway.envoyproxy.io`/`AIServiceBackend`, checked by a rule).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// Quota for all models of the targeted backends, unless a per-model quota overrides it.
    pub service_quota: Option<QuotaServiceQuota>,
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub per_model_quotas: Vec<QuotaPerModel>,
}

/// The quota of a whole service.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaServiceQuota {
    /// CEL expression for the cost of a request; `total_tokens` when absent.
    pub cost_expression: Option<String>,
    pub quota: QuotaValue,
}

/// The quota of one model.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPerModel {
    /// Matched against the route backend's `modelNameOverride`.
    #[schemars(length(min = 1))]
    pub model_name: String,
    pub quota: QuotaDefinition,
}

/// A cost expression, a default bucket and client-selected buckets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaDefinition {
    /// CEL expression for the cost of a request; `total_tokens` when absent.
    pub cost_expression: Option<String>,
    #[serde(default)]
    pub mode: QuotaMode,
    pub default_bucket: Option<QuotaValue>,
    /// Every matching rule's quota is charged.
    #[serde(default)]
    pub bucket_rules: Vec<QuotaBucketRule>,
}

/// How quota is charged to the default bucket and the matching bucket rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaMode {
    #[default]
    Shared,
}

/// A limit per time window.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaValue {
    pub duration: QuotaDuration,
    pub limit: i64,
}

/// A quota time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaDuration {
    #[serde(rename = "1s")]
    OneSecond,
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "1d")]
    OneDay,
}

/// A quota applied to the requests all of whose client selectors match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaBucketRule {
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub client_selectors: Vec<QuotaClientSelector>,
    pub quota: QuotaValue,
    /// Count and report, but never enforce.
    pub shadow_mode: Option<bool>,
}

/// Conditions on the request (Envoy Gateway rate-limit `RateLimitSelectCondition`); a rule
/// requires at least one. The lists are `Option` because the rule tests presence (`has(...)`),
/// and an explicitly empty list counts as present.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaClientSelector {
    #[schemars(length(max = 64))]
    pub headers: Option<Vec<QuotaHeaderMatch>>,
    pub methods: Option<Vec<QuotaMethodMatch>>,
    pub path: Option<QuotaPathMatch>,
    #[serde(rename = "sourceCIDR")]
    pub source_cidr: Option<QuotaSourceMatch>,
    #[schemars(length(max = 16))]
    pub query_params: Option<Vec<QuotaQueryParamMatch>>,
}

/// How a header or query parameter value is matched; `Distinct` buckets each value apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaStringMatchType {
    #[default]
    Exact,
    RegularExpression,
    Distinct,
}

/// A request header match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaHeaderMatch {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(rename = "type", default)]
    pub match_type: QuotaStringMatchType,
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
    #[serde(default)]
    pub invert: bool,
}

/// A query parameter match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaQueryParamMatch {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(rename = "type", default)]
    pub match_type: QuotaStringMatchType,
    #[schemars(length(max = 1024))]
    pub value: Option<String>,
    #[serde(default)]
    pub invert: bool,
}

/// A request method match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaMethodMatch {
    pub value: QuotaHttpMethod,
    #[serde(default)]
    pub invert: bool,
}

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaHttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    CONNECT,
    OPTIONS,
    TRACE,
    PATCH,
}

/// A request path match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaPathMatch {
    #[serde(rename = "type", default)]
    pub match_type: QuotaPathMatchType,
    /// Required by the CRD, but the API server fills in its default `/` first.
    #[serde(default = "quota_root_path")]
    #[schemars(length(max = 1024))]
    pub value: String,
    #[serde(default)]
    pub invert: bool,
}

fn quota_root_path() -> String {
    "/".to_owned()
}

/// How a request path is matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaPathMatchType {
    Exact,
    #[default]
    PathPrefix,
    RegularExpression,
}

/// A client source address range match (CIDR).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuotaSourceMatch {
    #[serde(rename = "type", default)]
    pub match_type: QuotaSourceMatchType,
    #[schemars(length(min = 1, max = 256))]
    pub value: String,
    #[serde(default)]
    pub invert: bool,
}

/// How a source CIDR is matched; `Distinct` buckets each client address apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum QuotaSourceMatchType {
    #[default]
    Exact,
    Distinct,
}
