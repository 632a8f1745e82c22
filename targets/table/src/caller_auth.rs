//! A SecurityPolicy's `jwt`, `authorization` and `cors` in the table's form: defaults filled
//! in as Envoy Gateway fills them (the token from `Authorization: Bearer` or `access_token`,
//! a remote JWK set kept 300 s and fetched again 1 s after a failure, `Deny` when no rule
//! matches), durations in milliseconds.

use aigw_syntax::model::{
    Authorization, AuthorizationAction, Cors, Jwt, JwtClaimValueType, PathMatchType,
};
use aigw_syntax::values::parse_duration;
use aigw_table as t;

pub(crate) const JWKS_CACHE_MS: u64 = 300_000;
pub(crate) const JWKS_RETRY_MS: u64 = 1_000;

pub(crate) fn millis(text: Option<&str>, default: u64) -> u64 {
    text.and_then(parse_duration).map_or(default, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    })
}

pub(crate) fn jwt(jwt: &Jwt) -> t::Jwt {
    let providers = jwt
        .providers
        .iter()
        .map(|p| {
            let jwks = match (&p.remote_jwks, &p.local_jwks) {
                (Some(remote), _) => t::Jwks::Remote {
                    uri: remote.uri.clone(),
                    cache_ms: millis(remote.cache_duration.as_deref(), JWKS_CACHE_MS),
                    retry_ms: millis(remote.failed_refetch_duration.as_deref(), JWKS_RETRY_MS),
                },
                (None, local) => t::Jwks::Local(
                    local
                        .as_ref()
                        .and_then(|l| l.inline.clone())
                        .unwrap_or_default(),
                ),
            };
            let mut extract_from = Vec::new();
            if let Some(from) = &p.extract_from {
                for header in from.headers.iter().flatten() {
                    extract_from.push(t::TokenSource::Header {
                        name: header.name.clone(),
                        prefix: header.value_prefix.clone(),
                    });
                }
                for cookie in from.cookies.iter().flatten() {
                    extract_from.push(t::TokenSource::Cookie(cookie.clone()));
                }
                for param in from.params.iter().flatten() {
                    extract_from.push(t::TokenSource::Param(param.clone()));
                }
            }
            if extract_from.is_empty() {
                extract_from = vec![
                    t::TokenSource::Header {
                        name: "authorization".to_owned(),
                        prefix: Some("Bearer ".to_owned()),
                    },
                    t::TokenSource::Param("access_token".to_owned()),
                ];
            }
            t::JwtProvider {
                name: p.name.clone(),
                issuer: p.issuer.clone().filter(|i| !i.is_empty()),
                audiences: p.audiences.clone().unwrap_or_default(),
                jwks,
                claim_to_headers: p
                    .claim_to_headers
                    .iter()
                    .flatten()
                    .map(|c| t::ClaimToHeader {
                        header: c.header.clone(),
                        claim: c.claim.clone(),
                    })
                    .collect(),
                extract_from,
            }
        })
        .collect();
    t::Jwt {
        optional: jwt.optional.unwrap_or(false),
        fail_open: jwt.fail_open.unwrap_or(false),
        providers,
    }
}

pub(crate) fn authorization(authorization: &Authorization) -> t::Authorization {
    let rules = authorization
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let principal = rule.principal.as_ref();
            let operation = rule.operation.as_ref();
            t::AuthorizationRule {
                name: rule.name.clone().unwrap_or_else(|| format!("rule-{i}")),
                allow: rule.action == AuthorizationAction::Allow,
                methods: operation
                    .and_then(|o| o.methods.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
                path: operation
                    .and_then(|o| o.path.as_ref())
                    .map(|p| t::PathMatch {
                        kind: match p.match_type {
                            PathMatchType::Exact => t::PathKind::Exact,
                            PathMatchType::PathPrefix => t::PathKind::PathPrefix,
                            PathMatchType::RegularExpression => t::PathKind::RegularExpression,
                        },
                        value: p.value.clone(),
                    }),
                client_cidrs: principal
                    .and_then(|p| p.client_cidrs.clone())
                    .unwrap_or_default(),
                jwt: principal
                    .and_then(|p| p.jwt.as_ref())
                    .map(|j| t::JwtPrincipal {
                        provider: j.provider.clone(),
                        claims: j
                            .claims
                            .iter()
                            .flatten()
                            .map(|c| t::ClaimMatch {
                                name: c.name.clone(),
                                array: c.value_type == JwtClaimValueType::StringArray,
                                values: c.values.clone(),
                            })
                            .collect(),
                        scopes: j.scopes.clone().unwrap_or_default(),
                    }),
                headers: principal
                    .and_then(|p| p.headers.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|h| t::HeaderValues {
                        name: h.name.to_ascii_lowercase(),
                        values: h.values.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    t::Authorization {
        rules,
        default_allow: authorization.default_action == Some(AuthorizationAction::Allow),
    }
}

pub(crate) fn cors(cors: &Cors) -> t::Cors {
    t::Cors {
        allow_origins: cors.allow_origins.clone(),
        allow_methods: cors.allow_methods.clone(),
        allow_headers: cors.allow_headers.clone(),
        expose_headers: cors.expose_headers.clone(),
        max_age_s: cors
            .max_age
            .as_deref()
            .and_then(parse_duration)
            .map(|d| d.as_secs()),
        allow_credentials: cors.allow_credentials.unwrap_or(false),
    }
}
