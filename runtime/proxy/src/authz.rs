//! The SecurityPolicy `authorization`: its rules in order, the first whose operation and
//! principal match the request deciding; none: the default action (`Deny` unless the policy
//! says `Allow`), as Envoy's RBAC filter applies them for Envoy Gateway. It runs after
//! authentication, so a principal's `headers` see the client ID that `apiKeyAuth` forwards
//! (the way to authorize API-key callers, for which Envoy Gateway has no principal), and a
//! JWT principal the claims the token was verified with.

use crate::jwt::{JwtAuth, Verified};
use aigw_table as t;
use std::net::IpAddr;

#[derive(Debug)]
pub struct Authz {
    rules: Vec<Rule>,
    default_allow: bool,
}

#[derive(Debug)]
struct Rule {
    name: String,
    allow: bool,
    methods: Vec<http::Method>,
    path: Option<aigw_table::PathTest>,
    cidrs: Vec<(IpAddr, u8)>,
    jwt: Option<t::JwtPrincipal>,
    headers: Vec<(http::HeaderName, Vec<String>)>,
}

/// What a request is decided on.
pub struct Subject<'a> {
    pub parts: &'a http::request::Parts,
    pub peer: IpAddr,
    /// The verified token and its provider's name.
    pub token: Option<(&'a str, &'a Verified)>,
}

impl Authz {
    pub fn compile(wire: &t::Authorization) -> Result<Self, String> {
        let rules = wire
            .rules
            .iter()
            .map(|rule| {
                let methods = rule
                    .methods
                    .iter()
                    .map(|m| http::Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
                let path = rule
                    .path
                    .as_ref()
                    .map(|p| aigw_table::PathTest::compile(p, || format!("rule `{}`", rule.name)))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                let cidrs = rule
                    .client_cidrs
                    .iter()
                    .map(|c| crate::select::cidr(c).ok_or_else(|| format!("`{c}` is not a CIDR")))
                    .collect::<Result<_, _>>()?;
                let headers = rule
                    .headers
                    .iter()
                    .map(|h| {
                        http::HeaderName::from_bytes(h.name.as_bytes())
                            .map(|n| (n, h.values.clone()))
                            .map_err(|_| format!("`{}` is not a header name", h.name))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Rule {
                    name: rule.name.clone(),
                    allow: rule.allow,
                    methods,
                    path,
                    cidrs,
                    jwt: rule.jwt.clone(),
                    headers,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Authz {
            rules,
            default_allow: wire.default_allow,
        })
    }

    /// Whether the request may go on, and the rule that decided (none: the default).
    pub fn allows<'s>(&'s self, subject: &Subject<'_>) -> (bool, Option<&'s str>) {
        match self.rules.iter().find(|r| r.matches(subject)) {
            Some(rule) => (rule.allow, Some(&rule.name)),
            None => (self.default_allow, None),
        }
    }
}

impl Rule {
    fn matches(&self, s: &Subject<'_>) -> bool {
        (self.methods.is_empty() || self.methods.contains(&s.parts.method))
            && self
                .path
                .as_ref()
                .is_none_or(|p| p.matches(s.parts.uri.path()))
            && (self.cidrs.is_empty()
                || self
                    .cidrs
                    .iter()
                    .any(|(net, bits)| crate::select::within(s.peer, *net, *bits)))
            && self.headers.iter().all(|(name, values)| {
                s.parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| values.iter().any(|want| want == v))
            })
            && self.jwt.as_ref().is_none_or(|p| jwt_matches(p, s.token))
    }
}

fn jwt_matches(principal: &t::JwtPrincipal, token: Option<(&str, &Verified)>) -> bool {
    let Some((provider, verified)) = token else {
        return false;
    };
    if provider != principal.provider {
        return false;
    }
    let claims = &verified.claims;
    let claims_ok =
        principal
            .claims
            .iter()
            .all(|want| match crate::jwt::claim(claims, &want.name) {
                Some(serde_json::Value::String(s)) if !want.array => want.values.contains(s),
                Some(serde_json::Value::Array(items)) if want.array => items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .any(|i| want.values.iter().any(|v| v == i)),
                _ => false,
            });
    claims_ok
        && principal.scopes.iter().all(|scope| {
            ["scope", "scp"]
                .iter()
                .any(|c| has_scope(&claims[c], scope))
        })
}

/// `scope`/`scp` as Envoy Gateway normalises them: a space-separated string or a list.
fn has_scope(value: &serde_json::Value, scope: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s.split(' ').any(|s| s == scope),
        serde_json::Value::Array(items) => items.iter().any(|i| i.as_str() == Some(scope)),
        _ => false,
    }
}

/// The provider name of a verified token.
pub fn provider_name<'a>(jwt: Option<&'a JwtAuth>, verified: &Verified) -> &'a str {
    jwt.and_then(|j| j.providers.get(verified.provider))
        .map_or("", |p| p.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_on_spaces_or_listed() {
        assert!(has_scope(&serde_json::json!("read write"), "write"));
        assert!(!has_scope(&serde_json::json!("read writer"), "write"));
        assert!(has_scope(&serde_json::json!(["a", "b"]), "b"));
        assert!(!has_scope(&serde_json::Value::Null, "b"));
    }
}
