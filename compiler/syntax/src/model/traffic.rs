//! Envoy Gateway's BackendTrafficPolicy (gateway.envoyproxy.io/v1alpha1), of which aigw applies
//! `rateLimit`: request-rate limits per client (local, per replica; or global, shared through
//! Redis). Its client selectors are the rate-limit select conditions QuotaPolicy's bucket rules
//! also use. The policy's other sections (retries, timeouts, load balancing, circuit breakers
//! and the rest) are Envoy's to apply: read loosely, so they are no unknown field, and named in
//! a warning where aigw's data plane serves the route.

use super::common::*;
use super::quota::QuotaClientSelector;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a BackendTrafficPolicy: no `deny_unknown_fields`, as Envoy Gateway's other
/// sections are carried unread.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTrafficPolicySpec {
    pub target_ref: Option<PolicyTargetReferenceWithSectionName>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReferenceWithSectionName>,
    pub target_selectors: Option<serde_json::Value>,
    pub rate_limit: Option<RateLimitSpec>,
}

impl BackendTrafficPolicySpec {
    /// Every target, the deprecated `targetRef` first, with its field path.
    pub fn targets(&self) -> Vec<(String, &PolicyTargetReferenceWithSectionName)> {
        policy_targets(self.target_ref.as_ref(), &self.target_refs)
    }

    /// Its rules with their field paths and whether each is global.
    pub fn rules(&self) -> Vec<(String, bool, &RateLimitRule)> {
        let Some(limit) = &self.rate_limit else {
            return Vec::new();
        };
        let local = limit.local.iter().flat_map(|l| {
            l.rules
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.rateLimit.local.rules[{i}]"), false, r))
        });
        let global = limit.global.iter().flat_map(|g| {
            g.rules
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.rateLimit.global.rules[{i}]"), true, r))
        });
        local.chain(global).collect()
    }
}

/// `rateLimit`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Deprecated by Envoy Gateway: which of `global` and `local` is meant.
    #[serde(rename = "type")]
    pub limit_type: Option<RateLimitType>,
    pub global: Option<RateLimitRules>,
    pub local: Option<RateLimitRules>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum RateLimitType {
    Global,
    Local,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitRules {
    #[schemars(length(max = 128))]
    pub rules: Vec<RateLimitRule>,
}

/// One limit: the requests a client may make per unit of time.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitRule {
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub client_selectors: Vec<QuotaClientSelector>,
    pub limit: RateLimitValue,
    /// What a request takes from the counter: on the request path (a number, 1 by default; 0
    /// checks without taking), and after the answer (a number, or a request cost the route
    /// records, named by its metadata key: the reference's token rate limit).
    pub cost: Option<RateLimitCost>,
    /// A global rule's counter shared by every route the policy targets.
    pub shared: Option<bool>,
    pub shadow_mode: Option<bool>,
    pub x_rate_limit_headers: Option<XRateLimitHeaders>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitCost {
    pub request: Option<RateLimitCostSpecifier>,
    pub response: Option<RateLimitCostSpecifier>,
}

/// Where a cost comes from: a fixed number, or metadata (a rule checks only one is given).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitCostSpecifier {
    pub from: RateLimitCostFrom,
    pub number: Option<u64>,
    pub metadata: Option<RateLimitCostMetadata>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum RateLimitCostFrom {
    Number,
    Metadata,
}

/// Dynamic metadata: for aigw, a request cost (`llmRequestCosts`) in the AI Gateway namespace.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitCostMetadata {
    pub namespace: String,
    pub key: String,
}

/// The dynamic metadata namespace of the reference's request costs.
pub const AI_GATEWAY_METADATA_NAMESPACE: &str = "io.envoy.ai_gateway";

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitValue {
    pub requests: u32,
    pub unit: RateLimitUnit,
    /// A limit read from metadata (refused by name, as `cost`).
    pub from_metadata: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum RateLimitUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl RateLimitUnit {
    /// The window in milliseconds (a month is 30 days and a year 365, as Envoy's rate-limit
    /// service counts them).
    pub fn millis(self) -> u64 {
        const DAY: u64 = 86_400_000;
        match self {
            Self::Second => 1_000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => DAY,
            Self::Week => 7 * DAY,
            Self::Month => 30 * DAY,
            Self::Year => 365 * DAY,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum XRateLimitHeaders {
    Off,
    DraftVersion03,
}
