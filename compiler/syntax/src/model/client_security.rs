//! Envoy Gateway's SecurityPolicy (gateway.envoyproxy.io/v1alpha1): who may call the gateway.
//! aigw applies `apiKeyAuth` (caller API keys from Secrets, each key of a Secret being a client
//! ID), `jwt`, `authorization` and `cors` (their types in `client_auth.rs`). The policy's other
//! sections (`basicAuth`, `oidc`, `extAuth`, `csrf`), `targetSelectors`, and the parts of the
//! applied sections aigw does not apply are read as written so that one is refused by name (an
//! authentication aigw would not apply must never be silently dropped), not as an unknown
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
    pub cors: Option<super::Cors>,
    pub csrf: Option<serde_json::Value>,
    pub basic_auth: Option<serde_json::Value>,
    pub jwt: Option<super::Jwt>,
    pub oidc: Option<serde_json::Value>,
    pub ext_auth: Option<serde_json::Value>,
    pub authorization: Option<super::Authorization>,
}

impl SecurityPolicySpec {
    /// Every target, the deprecated `targetRef` first, with its field path.
    pub fn targets(&self) -> Vec<(String, &PolicyTargetReferenceWithSectionName)> {
        policy_targets(self.target_ref.as_ref(), &self.target_refs)
    }

    /// Whether it authenticates callers in a way aigw applies (`apiKeyAuth`, `jwt`).
    pub fn authenticates(&self) -> bool {
        self.api_key_auth.is_some() || self.jwt.is_some()
    }

    /// Whether aigw applies anything of it (a policy with none of these does nothing).
    pub fn applies(&self) -> bool {
        self.authenticates() || self.authorization.is_some() || self.cors.is_some()
    }

    /// What is set that aigw does not apply: its field path and what it is.
    pub fn unsupported(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            ("targetSelectors", self.target_selectors.is_some()),
            ("mergeType", self.merge_type.is_some()),
            ("csrf", self.csrf.is_some()),
            ("basicAuth", self.basic_auth.is_some()),
            ("oidc", self.oidc.is_some()),
            ("extAuth", self.ext_auth.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| {
            (
                format!("spec.{name}"),
                format!("SecurityPolicy `{name}` yet"),
            )
        })
        .collect();
        for (i, provider) in self.jwt.iter().flat_map(|j| j.providers.iter()).enumerate() {
            let at = format!("spec.jwt.providers[{i}]");
            if let Some(remote) = &provider.remote_jwks {
                for (field, set) in [
                    ("backendRef", remote.backend_ref.is_some()),
                    ("backendRefs", remote.backend_refs.is_some()),
                    ("backendSettings", remote.backend_settings.is_some()),
                ] {
                    if set {
                        out.push((
                            format!("{at}.remoteJWKS.{field}"),
                            "a JWK set fetched through a backend yet (it is fetched from `uri` directly)".to_owned(),
                        ));
                    }
                }
            }
            if provider
                .local_jwks
                .as_ref()
                .is_some_and(|l| l.jwks_type == super::LocalJwksType::ValueRef)
            {
                out.push((
                    format!("{at}.localJWKS.valueRef"),
                    "a JWK set in a ConfigMap yet (write it `inline`)".to_owned(),
                ));
            }
            if provider.recompute_route == Some(true) {
                out.push((
                    format!("{at}.recomputeRoute"),
                    "choosing the route again after claims are copied to headers".to_owned(),
                ));
            }
        }
        let rules = self.authorization.iter().flat_map(|a| a.rules.iter());
        for (i, rule) in rules.enumerate() {
            let at = format!("spec.authorization.rules[{i}]");
            if rule.cel.is_some() {
                out.push((
                    format!("{at}.cel"),
                    "CEL authorization rules yet".to_owned(),
                ));
            }
            if rule
                .principal
                .as_ref()
                .is_some_and(|p| p.client_ip_geo_locations.is_some())
            {
                out.push((
                    format!("{at}.principal.clientIPGeoLocations"),
                    "geolocation principals (aigw has no GeoIP database)".to_owned(),
                ));
            }
        }
        out
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
