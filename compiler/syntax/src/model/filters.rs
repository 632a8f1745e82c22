//! Gateway API `HTTPRouteFilter`s on plain HTTPRoute rules. aigw applies the core and extended
//! filters a reverse proxy can: `RequestHeaderModifier`, `ResponseHeaderModifier`, `URLRewrite`,
//! `RequestRedirect` and `RequestMirror`. `ExtensionRef`, `CORS` and `ExternalAuth` are read so
//! they can be refused by name: a filter aigw would not apply is a compile error, never dropped.

use schemars::JsonSchema;
use serde::Deserialize;

/// One filter: its type and the block of that type (a rule of Gateway API checks they agree).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteFilter {
    #[serde(rename = "type")]
    pub filter_type: HttpFilterType,
    pub request_header_modifier: Option<HeaderModifier>,
    pub response_header_modifier: Option<HeaderModifier>,
    #[serde(rename = "urlRewrite")]
    pub url_rewrite: Option<UrlRewrite>,
    pub request_redirect: Option<RequestRedirect>,
    pub request_mirror: Option<RequestMirror>,
    pub extension_ref: Option<serde_json::Value>,
    pub cors: Option<serde_json::Value>,
    pub external_auth: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum HttpFilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    URLRewrite,
    RequestRedirect,
    RequestMirror,
    ExtensionRef,
    CORS,
    ExternalAuth,
}

impl HttpFilterType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestHeaderModifier => "RequestHeaderModifier",
            Self::ResponseHeaderModifier => "ResponseHeaderModifier",
            Self::URLRewrite => "URLRewrite",
            Self::RequestRedirect => "RequestRedirect",
            Self::RequestMirror => "RequestMirror",
            Self::ExtensionRef => "ExtensionRef",
            Self::CORS => "CORS",
            Self::ExternalAuth => "ExternalAuth",
        }
    }
}

/// Gateway API `HTTPRequestMirrorFilter`: a copy of each request (or of a share of them) sent
/// to another backend, its answer ignored.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMirror {
    pub backend_ref: super::BackendObjectReference,
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    pub fraction: Option<Fraction>,
}

/// Gateway API `Fraction`: `numerator` out of `denominator` (100 unless given).
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fraction {
    #[schemars(range(min = 0))]
    pub numerator: i32,
    #[serde(default = "hundred")]
    #[schemars(range(min = 1))]
    pub denominator: i32,
}

fn hundred() -> i32 {
    100
}

/// Gateway API `HTTPHeaderFilter`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub set: Vec<HeaderValue>,
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub add: Vec<HeaderValue>,
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")
    )]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// Gateway API `HTTPURLRewriteFilter`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// Gateway API `HTTPPathModifier`: the value of its type (a rule checks which is set).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathModifier {
    #[serde(rename = "type")]
    pub modifier_type: PathModifierType,
    #[schemars(length(max = 1024))]
    pub replace_full_path: Option<String>,
    #[schemars(length(max = 1024))]
    pub replace_prefix_match: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

/// Gateway API `HTTPRequestRedirectFilter`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestRedirect {
    pub scheme: Option<RedirectScheme>,
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    #[serde(default = "found")]
    pub status_code: RedirectCode,
}

fn found() -> RedirectCode {
    RedirectCode::Found
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedirectScheme {
    Http,
    Https,
}

/// The status codes Gateway API allows a redirect (301 and 302 core, 303, 307, 308 extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "u16")]
pub enum RedirectCode {
    MovedPermanently,
    Found,
    SeeOther,
    Temporary,
    Permanent,
}

impl TryFrom<u16> for RedirectCode {
    type Error = String;
    fn try_from(code: u16) -> Result<Self, String> {
        Ok(match code {
            301 => Self::MovedPermanently,
            302 => Self::Found,
            303 => Self::SeeOther,
            307 => Self::Temporary,
            308 => Self::Permanent,
            other => return Err(format!("{other} is not one of 301, 302, 303, 307, 308")),
        })
    }
}

impl RedirectCode {
    pub fn code(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::SeeOther => 303,
            Self::Temporary => 307,
            Self::Permanent => 308,
        }
    }
}
