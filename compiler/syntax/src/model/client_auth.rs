//! The SecurityPolicy sections beyond API keys (Envoy Gateway 1.9, `api/v1alpha1`): `jwt`
//! (providers with a local or remote JWK set, claims copied to headers), `authorization`
//! (ordered allow/deny rules on client addresses, JWT claims and scopes, headers, methods and
//! paths) and `cors`. Fields aigw does not apply are read, so that one is refused by name
//! ([`super::SecurityPolicySpec::unsupported`]), never taken for a typo or dropped.

use super::common::*;
use super::gateway::{HttpMethod, HttpPathMatch};
use schemars::JsonSchema;
use serde::Deserialize;

/// `jwt`: the request must carry a JWT that one of the providers verifies.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Jwt {
    /// A request without a JWT passes; one with an invalid JWT is still refused.
    pub optional: Option<bool>,
    /// A request without a JWT, or with an invalid one, passes.
    pub fail_open: Option<bool>,
    #[schemars(length(min = 1, max = 16))]
    pub providers: Vec<JwtProvider>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtProvider {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The `iss` the token must have; not checked when unset.
    #[schemars(length(max = 253))]
    pub issuer: Option<String>,
    /// The token's `aud` must name one of these; not checked when unset.
    #[schemars(length(max = 8))]
    pub audiences: Option<Vec<String>>,
    #[serde(rename = "remoteJWKS")]
    pub remote_jwks: Option<RemoteJwks>,
    #[serde(rename = "localJWKS")]
    pub local_jwks: Option<LocalJwks>,
    pub claim_to_headers: Option<Vec<ClaimToHeader>>,
    pub recompute_route: Option<bool>,
    pub extract_from: Option<JwtExtractor>,
}

/// A JWK set fetched over HTTP(S) and kept for `cacheDuration`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteJwks {
    #[schemars(length(min = 1, max = 253))]
    pub uri: String,
    /// Default `300s`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cache_duration: Option<String>,
    /// After a failed fetch, the next is tried this much later (Envoy's default `1s`).
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub failed_refetch_duration: Option<String>,
    pub backend_ref: Option<serde_json::Value>,
    pub backend_refs: Option<serde_json::Value>,
    pub backend_settings: Option<serde_json::Value>,
}

/// A JWK set written in the policy (`Inline`) or in a ConfigMap (`ValueRef`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalJwks {
    #[serde(rename = "type", default)]
    pub jwks_type: LocalJwksType,
    pub inline: Option<String>,
    pub value_ref: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum LocalJwksType {
    #[default]
    Inline,
    ValueRef,
}

/// A claim (dots address nested ones) copied into a request header.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    #[schemars(regex(pattern = HEADER_NAME_PATTERN))]
    pub header: String,
    pub claim: String,
}

/// Where the token is read; unset: `Authorization: Bearer …`, then the `access_token` query
/// parameter (Envoy's default).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtExtractor {
    pub headers: Option<Vec<JwtHeaderExtractor>>,
    pub cookies: Option<Vec<String>>,
    pub params: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeaderExtractor {
    pub name: String,
    /// Taken off the value first, e.g. `Bearer ` (with its space).
    pub value_prefix: Option<String>,
}

/// `authorization`: rules in order, the first that matches decides; none: `defaultAction`
/// (`Deny` when unset).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    #[serde(default)]
    pub rules: Vec<AuthorizationRule>,
    pub default_action: Option<AuthorizationAction>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum AuthorizationAction {
    Allow,
    Deny,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRule {
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    pub action: AuthorizationAction,
    /// Unset: every operation.
    pub operation: Option<Operation>,
    pub principal: Option<Principal>,
    pub cel: Option<serde_json::Value>,
}

/// Which requests a rule is about: any of `methods`, and `path`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    #[schemars(length(min = 1, max = 16))]
    pub methods: Option<Vec<HttpMethod>>,
    pub path: Option<HttpPathMatch>,
}

/// Who a rule is about: all of the fields set must match.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    /// Any of these networks holds the client's address.
    #[serde(rename = "clientCIDRs")]
    #[schemars(length(min = 1))]
    pub client_cidrs: Option<Vec<String>>,
    pub jwt: Option<JwtPrincipal>,
    /// Every header named has one of its values (exactly).
    #[schemars(length(min = 1, max = 256))]
    pub headers: Option<Vec<AuthorizationHeaderMatch>>,
    #[serde(rename = "clientIPGeoLocations")]
    pub client_ip_geo_locations: Option<serde_json::Value>,
}

/// The verified JWT of `provider`: all of `claims` and all of `scopes`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtPrincipal {
    #[schemars(length(min = 1, max = 253))]
    pub provider: String,
    #[schemars(length(min = 1, max = 16))]
    pub claims: Option<Vec<JwtClaim>>,
    /// Each must be one of the space-separated `scope` (or `scp`) claim's.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 253)))]
    pub scopes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtClaim {
    /// Dots address nested claims.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default)]
    pub value_type: JwtClaimValueType,
    #[schemars(length(min = 1, max = 128))]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum JwtClaimValueType {
    /// The claim is a string equal to one of the values.
    #[default]
    String,
    /// The claim is an array with an item equal to one of the values.
    StringArray,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationHeaderMatch {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 1, max = 256))]
    pub values: Vec<String>,
}

/// Envoy Gateway's `Origin`: `*`, or a scheme and a host that may start with `*.`.
pub const ORIGIN_PATTERN: &str =
    r"^(\*|[A-Za-z][A-Za-z0-9+.-]*://(\*|(\*\.)?(([\w-]+\.?)+)?[\w-]+)(:\d{1,5})?)$";

/// `cors`: browsers' cross-origin requests.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    #[serde(default)]
    #[schemars(inner(length(min = 1, max = 253), regex(pattern = ORIGIN_PATTERN)))]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
}
