//! Admission rules of the SecurityPolicy `jwt`, `authorization` and `cors` sections: Envoy
//! Gateway's CRD validations with their messages, and what its controller would only find
//! later, checked here: a JWK set that does not parse, a rule naming a provider the policy
//! does not have, a CIDR that is not one, a regular expression that does not compile.
//! (Durations are checked by the schema's pattern.)

use crate::Cx;
use aigw_syntax::model::*;

pub(crate) fn admit_client_auth(cx: &mut Cx<'_>, spec: &SecurityPolicySpec) {
    let providers: Vec<&str> = spec
        .jwt
        .iter()
        .flat_map(|j| j.providers.iter().map(|p| p.name.as_str()))
        .collect();
    if let Some(jwt) = &spec.jwt {
        admit_jwt(cx, jwt);
    }
    if let Some(authorization) = &spec.authorization {
        admit_authorization(cx, authorization, spec.jwt.is_some(), &providers);
    }
}

fn admit_jwt(cx: &mut Cx<'_>, jwt: &Jwt) {
    if jwt.optional.is_some() && jwt.fail_open.is_some() {
        cx.rule(
            "spec.jwt",
            "optional and failOpen cannot be set at the same time",
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, provider) in jwt.providers.iter().enumerate() {
        let at = format!("spec.jwt.providers[{i}]");
        if !seen.insert(provider.name.as_str()) {
            cx.rule(&format!("{at}.name"), "provider names must be unique");
        }
        match (&provider.remote_jwks, &provider.local_jwks) {
            (None, None) => cx.rule(&at, "either remoteJWKS or localJWKS must be specified."),
            (Some(_), Some(_)) => {
                cx.rule(&at, "remoteJWKS and localJWKS cannot both be specified.")
            }
            _ => {}
        }
        if provider.recompute_route == Some(true)
            && provider.claim_to_headers.as_ref().is_none_or(Vec::is_empty)
        {
            cx.rule(
                &at,
                "claimToHeaders must be specified if recomputeRoute is enabled.",
            );
        }
        if let Some(remote) = &provider.remote_jwks
            && (!(remote.uri.starts_with("https://") || remote.uri.starts_with("http://"))
                || remote.uri.parse::<http::Uri>().is_err())
        {
            cx.rule(
                &format!("{at}.remoteJWKS.uri"),
                "uri must be an http:// or https:// URL",
            );
        }
        if let Some(local) = &provider.local_jwks {
            let inline = local.jwks_type == LocalJwksType::Inline;
            if inline != local.inline.is_some() || inline == local.value_ref.is_some() {
                cx.rule(
                    &format!("{at}.localJWKS"),
                    "Exactly one of inline or valueRef must be set with correct type.",
                );
            }
            if let Some(text) = &local.inline
                && let Err(error) = serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(text)
            {
                cx.rule(
                    &format!("{at}.localJWKS.inline"),
                    &format!("inline is not a JWK set (each key needs `kty` and the parameters of its type, as `n` and `e` for RSA): {error}"),
                );
            }
        }
    }
}

fn admit_authorization(
    cx: &mut Cx<'_>,
    authorization: &Authorization,
    has_jwt: bool,
    providers: &[&str],
) {
    for (i, rule) in authorization.rules.iter().enumerate() {
        let at = format!("spec.authorization.rules[{i}]");
        if rule.principal.is_none() && rule.cel.is_none() {
            cx.rule(&at, "at least one of principal or cel must be specified");
        }
        if let Some(operation) = &rule.operation {
            if operation.methods.is_none() && operation.path.is_none() {
                cx.rule(
                    &format!("{at}.operation"),
                    "at least one of methods or path must be specified",
                );
            }
            if let Some(path) = &operation.path
                && path.match_type == PathMatchType::RegularExpression
            {
                crate::route::check_regex(cx, &format!("{at}.operation.path.value"), &path.value);
            }
        }
        let Some(principal) = &rule.principal else {
            continue;
        };
        let at = format!("{at}.principal");
        if principal.client_cidrs.is_none()
            && principal.jwt.is_none()
            && principal.headers.is_none()
            && principal.client_ip_geo_locations.is_none()
        {
            cx.rule(
                &at,
                "at least one of clientCIDRs, jwt, headers, or clientIPGeoLocations must be specified",
            );
        }
        for (j, cidr) in principal.client_cidrs.iter().flatten().enumerate() {
            if !is_cidr(cidr) {
                cx.rule(
                    &format!("{at}.clientCIDRs[{j}]"),
                    &format!(
                        "`{cidr}` is not a CIDR (an address and a prefix length, like `10.0.0.0/8`)"
                    ),
                );
            }
        }
        if let Some(jwt) = &principal.jwt {
            if jwt.claims.is_none() && jwt.scopes.is_none() {
                cx.rule(
                    &format!("{at}.jwt"),
                    "at least one of claims or scopes must be specified",
                );
            }
            if !has_jwt {
                cx.rule(
                    "spec",
                    "if authorization.rules.principal.jwt is used, jwt must be defined",
                );
            } else if !providers.contains(&jwt.provider.as_str()) {
                cx.rule(
                    &format!("{at}.jwt.provider"),
                    &format!(
                        "the policy's jwt has no provider `{}` (it has {})",
                        jwt.provider,
                        providers
                            .iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`: an address and a prefix length within its family's.
fn is_cidr(text: &str) -> bool {
    let Some((addr, bits)) = text.split_once('/') else {
        return false;
    };
    match (addr.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(bits)) => bits <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(bits)) => bits <= 128,
        _ => false,
    }
}
