//! aigw's own ModelAccessPolicy (aigw.dev/v1alpha1): which callers may use which models. No
//! existing CRD says this: Envoy Gateway's SecurityPolicy knows who a caller is (its
//! `apiKeyAuth` client IDs) but not what a model is. It attaches like the others, by
//! `targetRefs` to a Gateway, an HTTPRoute or an AIGatewayRoute; the route's policy, when it
//! has one, replaces its Gateway's.
//!
//! ```yaml
//! apiVersion: aigw.dev/v1alpha1
//! kind: ModelAccessPolicy
//! metadata: {name: teams, namespace: default}
//! spec:
//!   targetRefs:
//!     - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
//!   rules:
//!     - clients: [team-a, "ci-*"]
//!       models: [gpt-4o-mini, "claude-*"]
//! ```
//!
//! A caller may use a model when one rule names both (`*` matches any run of characters, `?`
//! one); anything no rule names is refused. The callers are the client IDs of the SecurityPolicy
//! `apiKeyAuth` in force on the same route, so a ModelAccessPolicy where no caller is
//! authenticated is an error.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The API group of aigw's own policies.
pub const AIGW_POLICY_GROUP: &str = "aigw.dev";

/// The `spec` of a ModelAccessPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelAccessPolicySpec {
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    #[schemars(length(min = 1, max = 128))]
    pub rules: Vec<ModelAccessRule>,
}

/// Callers and the models they may use.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelAccessRule {
    /// Client IDs (globs).
    #[schemars(length(min = 1, max = 1024), inner(length(min = 1, max = 253)))]
    pub clients: Vec<String>,
    /// Model names (globs).
    #[schemars(length(min = 1, max = 1024), inner(length(min = 1, max = 253)))]
    pub models: Vec<String>,
}
