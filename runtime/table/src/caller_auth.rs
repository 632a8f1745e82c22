//! The wire form of a SecurityPolicy's `jwt`, `authorization` and `cors` (since 1.4), carried
//! in its [`crate::Callers`] entry. Durations are milliseconds; JWK sets written in the
//! policy are carried as written (public keys, never secrets).

use serde::{Deserialize, Serialize};

/// `jwt`: one of the providers must verify the request's token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwt {
    /// No token passes (an invalid one does not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// No token, or an invalid one, passes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    pub providers: Vec<JwtProvider>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtProvider {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The token's `aud` must name one; empty: not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    pub jwks: Jwks,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_to_headers: Vec<ClaimToHeader>,
    /// Where the token is read, in order.
    pub extract_from: Vec<TokenSource>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jwks {
    /// The JWK set's JSON.
    Local(String),
    Remote {
        uri: String,
        cache_ms: u64,
        /// After a failed fetch, the next one waits this long.
        retry_ms: u64,
    },
}

impl Default for Jwks {
    fn default() -> Self {
        Jwks::Local(String::new())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimToHeader {
    pub header: String,
    /// Dots address nested claims.
    pub claim: String,
}

/// One place a token may be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Header {
        name: String,
        /// Taken off the value (`Bearer `); a value without it is no token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    Param(String),
    Cookie(String),
}

/// `authorization`: the first rule that matches decides, else `default_allow`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AuthorizationRule>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_allow: bool,
}

/// One rule: every condition set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRule {
    pub name: String,
    pub allow: bool,
    /// Upper case; any of them. Empty: every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<crate::PathMatch>,
    /// The client's address is in one of them. Empty: any address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtPrincipal>,
    /// Every header named has one of its values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderValues>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtPrincipal {
    /// The provider that verified the token.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimMatch>,
    /// Each must be in the `scope` or `scp` claim (space-separated, or a list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMatch {
    pub name: String,
    /// The claim is a list with an item among `values` (else a string among them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub array: bool,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderValues {
    pub name: String,
    pub values: Vec<String>,
}

/// `cors`: browsers' cross-origin requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cors {
    /// Exact, `*`, or with `*` standing for any run of characters.
    pub allow_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_s: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
}
