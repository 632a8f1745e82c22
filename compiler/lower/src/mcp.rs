//! Whole-graph checks of MCPRoutes: the parts of a route aigw does not serve yet are refused
//! (so that an authentication or a filter is never silently dropped), an `inline` API key is
//! refused (it would be written into table.json), a JWK set aigw cannot read is a warning (the
//! route then refuses every token), and the Secrets of API keys must hold `apiKey`.

use crate::diagnostics;
use aigw_diag::Diagnostic;
use aigw_ir::Ir;
use aigw_syntax::model::{MCPRouteSpec, McpLocalJwksType};
use aigw_syntax::{Kind, Spec};

const HELP: &str = "aigw serves an MCPRoute's backends, tool selectors, upstream API keys and `oauth`; until it applies this too, a request it should refuse could pass, so the route is refused";

pub(crate) fn check(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, route) in ir.objects(Kind::MCPRoute) {
        let Some(Spec::MCPRoute(spec)) = &route.spec else {
            continue;
        };
        for (field, what) in unsupported(spec) {
            let span = route.origin.span_of(&field);
            out.push(
                diagnostics::unsupported_policy(span, &field, &what, HELP)
                    .with_resource(route.resource()),
            );
        }
        if keys_unread(spec) {
            let field = "spec.securityPolicy.oauth.jwks.localJWKS";
            let span = route.origin.span_of(field);
            out.push(
                diagnostics::mcp_keys_unread(span, field, "a JWK set in a ConfigMap")
                    .with_resource(route.resource()),
            );
        }
        for (b, backend) in spec.backend_refs.iter().enumerate() {
            let key = backend
                .security_policy
                .as_ref()
                .and_then(|p| p.api_key.as_ref());
            if let Some(secret) = key.and_then(|k| k.secret_ref.as_ref()) {
                let field = format!("spec.backendRefs[{b}].securityPolicy.apiKey.secretRef");
                crate::checks::check_secret(ir, route, &field, secret, &["apiKey"], out);
            }
        }
    }
}

/// `(field, what)` for each part aigw does not apply.
fn unsupported(spec: &MCPRouteSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if spec.backend_selector.is_some() {
        out.push((
            "spec.backendSelector".to_owned(),
            "backend selection rules yet".to_owned(),
        ));
    }
    for (b, backend) in spec.backend_refs.iter().enumerate() {
        let key = backend
            .security_policy
            .as_ref()
            .and_then(|p| p.api_key.as_ref());
        if key.is_some_and(|k| k.inline.is_some()) {
            out.push((
                format!("spec.backendRefs[{b}].securityPolicy.apiKey.inline"),
                "inline API keys: they would be written into the compiled table; put the key in a Secret under `apiKey` and use `secretRef`".to_owned(),
            ));
        }
    }
    let Some(policy) = &spec.security_policy else {
        return out;
    };
    for (field, set, what) in [
        (
            "apiKeyAuth",
            policy.api_key_auth.is_some(),
            "client API keys on an MCPRoute yet (use `oauth`)",
        ),
        (
            "authorization",
            policy.authorization.is_some(),
            "tool-level authorization rules yet",
        ),
        (
            "extAuth",
            policy.ext_auth.is_some(),
            "external authorization yet",
        ),
    ] {
        if set {
            out.push((format!("spec.securityPolicy.{field}"), what.to_owned()));
        }
    }
    if let Some(oauth) = &policy.oauth {
        match &oauth.jwks {
            None => out.push((
                "spec.securityPolicy.oauth".to_owned(),
                "JWK sets discovered from the issuer's metadata yet (give `jwks`)".to_owned(),
            )),
            Some(jwks) => {
                let remote = jwks.remote_jwks.as_ref();
                for (field, set) in [
                    (
                        "backendRef",
                        remote.is_some_and(|r| r.backend_ref.is_some()),
                    ),
                    (
                        "backendRefs",
                        remote.is_some_and(|r| !r.backend_refs.is_empty()),
                    ),
                    (
                        "backendSettings",
                        remote.is_some_and(|r| r.backend_settings.is_some()),
                    ),
                ] {
                    if set {
                        out.push((
                            format!("spec.securityPolicy.oauth.jwks.remoteJWKS.{field}"),
                            "a JWK set fetched through a backend yet (it is fetched from `uri` directly)".to_owned(),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Whether the route's JWK set is one aigw does not read (a ConfigMap's).
fn keys_unread(spec: &MCPRouteSpec) -> bool {
    spec.security_policy
        .as_ref()
        .and_then(|p| p.oauth.as_ref())
        .and_then(|o| o.jwks.as_ref())
        .and_then(|j| j.local_jwks.as_ref())
        .is_some_and(|l| l.jwks_type == McpLocalJwksType::ValueRef || l.inline.is_none())
}
