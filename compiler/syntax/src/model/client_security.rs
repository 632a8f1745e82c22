//! Envoy Gateway's SecurityPolicy (gateway.envoyproxy.io/v1alpha1): who may call the gateway.
//! aigw applies `apiKeyAuth` (caller API keys from Secrets, each key of a Secret being a client
//! ID). The policy's other sections (`jwt`, `authorization`, `cors`, `basicAuth`, `oidc`,
//! `extAuth`, `csrf`) and `targetSelectors` are read as written so that one is refused by name
//! (an authentication aigw would not apply must never be silently dropped), not as an unknown
//! field.

use super::common::*;
use schemars::JsonSchema;
use serde::Deserialize;

/// The `spec` of a SecurityPolicy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityPolicySpec {
    /// The deprecated single target.
    pub target_ref: Option<PolicyTargetReferenceWithSectionName>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetReferenceWithSectionName>,
    pub target_selectors: Option<serde_json::Value>,
    pub merge_type: Option<serde_json::Value>,
    pub api_key_auth: Option<ApiKeyAuth>,
    pub cors: Option<serde_json::Value>,
    pub csrf: Option<serde_json::Value>,
    pub basic_auth: Option<serde_json::Value>,
    pub jwt: Option<serde_json::Value>,
    pub oidc: Option<serde_json::Value>,
    pub ext_auth: Option<serde_json::Value>,
    pub authorization: Option<serde_json::Value>,
}

impl SecurityPolicySpec {
    /// Every target, the deprecated `targetRef` first, with its field path.
    pub fn targets(&self) -> Vec<(String, &PolicyTargetReferenceWithSectionName)> {
        policy_targets(self.target_ref.as_ref(), &self.target_refs)
    }

    /// Whether it authenticates callers in a way aigw applies (`apiKeyAuth`).
    pub fn authenticates(&self) -> bool {
        self.api_key_auth.is_some()
    }

    /// The sections set that aigw does not apply, by field name.
    pub fn unsupported(&self) -> Vec<&'static str> {
        [
            ("targetSelectors", self.target_selectors.is_some()),
            ("mergeType", self.merge_type.is_some()),
            ("cors", self.cors.is_some()),
            ("csrf", self.csrf.is_some()),
            ("basicAuth", self.basic_auth.is_some()),
            ("jwt", self.jwt.is_some()),
            ("oidc", self.oidc.is_some()),
            ("extAuth", self.ext_auth.is_some()),
            ("authorization", self.authorization.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// `apiKeyAuth`: caller API keys.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyAuth {
    /// Opaque Secrets; each key is a client ID and its value that client's API key. A client
    /// ID in two Secrets takes the first.
    #[schemars(length(min = 1))]
    pub credential_refs: Vec<SecretObjectReference>,
    /// Where the key is read from, the first source that has one winning.
    #[schemars(length(min = 1))]
    pub extract_from: Vec<ExtractFrom>,
    /// The header the client ID is sent to the backend in.
    #[serde(rename = "forwardClientIDHeader")]
    #[schemars(length(min = 1))]
    pub forward_client_id_header: Option<String>,
    /// Remove the key from the request before it is forwarded.
    pub sanitize: Option<bool>,
}

/// One source of the key: exactly one of `headers`, `params` and `cookies` (a rule checks it).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractFrom {
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub headers: Option<Vec<String>>,
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub params: Option<Vec<String>>,
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub cookies: Option<Vec<String>>,
}
