//! MCPRoutes into the table: each route attached to the table's Gateways, its MCP servers
//! (endpoints and TLS as plain routes resolve them), their tool selectors and API keys, and the
//! route's OAuth as a JWT provider plus the protected-resource metadata (RFC 9728).
//!
//! Decisions:
//! - an API key comes from the Secret's `apiKey` key (the reference's convention); `inline`
//!   keys are refused by the compiler (they would put a credential into table.json);
//! - OAuth tokens are read from `Authorization: Bearer` only, as the MCP authorization
//!   specification requires (never from the query string);
//! - a JWK set in a ConfigMap is not read yet: the route gets an empty key set, so every token
//!   is refused (fail closed), and the compiler warns;
//! - the metadata's `authorization_servers` is the issuer, and `bearer_methods_supported` is
//!   `header`.

use crate::caller_auth::{JWKS_CACHE_MS, JWKS_RETRY_MS, millis};
use aigw_ir::{Ir, NodeId};
use aigw_syntax::model::{
    BackendObjectReference, McpBackendRef, McpHeaderMatchType, McpOAuth, McpToolSelector,
};
use aigw_syntax::{Kind, Object, Spec};
use aigw_table as t;
use std::collections::HashMap;

/// The Secret key holding an MCP server's API key.
pub const API_KEY_SECRET_KEY: &str = "apiKey";

/// The MCPRoutes attached to the table's Gateways, sorted by name.
pub(crate) fn routes(ir: &Ir, gateway_index: &HashMap<NodeId, usize>) -> Vec<t::McpRoute> {
    let mut routes = Vec::new();
    for (id, object) in ir.objects(Kind::MCPRoute) {
        let Some(Spec::MCPRoute(spec)) = &object.spec else {
            continue;
        };
        let parents = crate::parents(ir, id, object, &spec.parent_refs, gateway_index);
        if parents.is_empty() {
            continue;
        }
        routes.push(t::McpRoute {
            name: crate::name(object),
            parents,
            hostnames: spec.hostnames.clone(),
            headers: spec
                .headers
                .iter()
                .map(|h| t::HeaderMatch {
                    name: h.name.to_ascii_lowercase(),
                    kind: match h.match_type {
                        McpHeaderMatchType::Exact => t::MatchKind::Exact,
                        McpHeaderMatchType::RegularExpression => t::MatchKind::RegularExpression,
                    },
                    value: h.value.clone(),
                })
                .collect(),
            path: spec.path.clone(),
            backends: spec
                .backend_refs
                .iter()
                .map(|b| backend(ir, object, b))
                .collect(),
            oauth: spec
                .security_policy
                .as_ref()
                .and_then(|p| p.oauth.as_ref())
                .map(oauth),
        });
    }
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    routes
}

fn backend(ir: &Ir, route: &Object, reference: &McpBackendRef) -> t::McpBackend {
    let object_ref = BackendObjectReference {
        group: reference.group.clone(),
        kind: reference.kind.clone(),
        name: reference.name.clone(),
        namespace: reference.namespace.clone(),
        port: reference.port,
    };
    let api_key = reference
        .security_policy
        .as_ref()
        .and_then(|p| p.api_key.as_ref())
        .and_then(|key| {
            let secret = key.secret_ref.as_ref()?;
            Some(t::McpApiKey {
                secret: t::SecretRef {
                    namespace: secret
                        .namespace
                        .clone()
                        .unwrap_or_else(|| route.namespace.clone()),
                    name: secret.name.clone(),
                    key: API_KEY_SECRET_KEY.to_owned(),
                },
                header: key.header.clone(),
                query_param: key.query_param.clone(),
            })
        });
    t::McpBackend {
        name: reference.name.clone(),
        upstream: crate::plain::backend(ir, route, &object_ref, 1),
        path: reference.path.clone(),
        forward_headers: reference
            .forward_headers
            .iter()
            .map(|h| {
                let client = h.name.to_ascii_lowercase();
                let upstream = h
                    .backend_header
                    .as_deref()
                    .map_or_else(|| client.clone(), str::to_ascii_lowercase);
                (client, upstream)
            })
            .collect(),
        api_key,
        tools: reference.tool_selector.as_ref().map(tools),
    }
}

fn tools(selector: &McpToolSelector) -> t::ToolSelector {
    t::ToolSelector {
        include: selector.include.clone(),
        include_regex: selector.include_regex.clone(),
        exclude: selector.exclude.clone().unwrap_or_default(),
        exclude_regex: selector.exclude_regex.clone().unwrap_or_default(),
    }
}

fn oauth(oauth: &McpOAuth) -> t::McpOAuth {
    let jwks = match oauth.jwks.as_ref() {
        Some(j) => match (&j.remote_jwks, &j.local_jwks) {
            (Some(remote), _) => t::Jwks::Remote {
                uri: remote.uri.clone(),
                cache_ms: millis(Some(&remote.cache_duration), JWKS_CACHE_MS),
                retry_ms: JWKS_RETRY_MS,
            },
            (None, Some(local)) => t::Jwks::Local(
                local
                    .inline
                    .clone()
                    .unwrap_or_else(|| EMPTY_KEY_SET.to_owned()),
            ),
            (None, None) => t::Jwks::Local(EMPTY_KEY_SET.to_owned()),
        },
        None => t::Jwks::Local(EMPTY_KEY_SET.to_owned()),
    };
    let provider = t::JwtProvider {
        name: "oauth".to_owned(),
        issuer: Some(oauth.issuer.clone()),
        audiences: oauth.audiences.clone(),
        jwks,
        claim_to_headers: oauth
            .claim_to_headers
            .iter()
            .map(|c| t::ClaimToHeader {
                header: c.header.clone(),
                claim: c.claim.clone(),
            })
            .collect(),
        extract_from: vec![t::TokenSource::Header {
            name: "authorization".to_owned(),
            prefix: Some("Bearer ".to_owned()),
        }],
    };
    let prm = &oauth.protected_resource_metadata;
    let mut metadata = serde_json::Map::new();
    metadata.insert("resource".to_owned(), prm.resource.clone().into());
    metadata.insert(
        "authorization_servers".to_owned(),
        serde_json::json!([oauth.issuer]),
    );
    metadata.insert(
        "bearer_methods_supported".to_owned(),
        serde_json::json!(["header"]),
    );
    if !prm.scopes_supported.is_empty() {
        metadata.insert(
            "scopes_supported".to_owned(),
            serde_json::json!(prm.scopes_supported),
        );
    }
    for (key, value) in [
        ("resource_name", &prm.resource_name),
        ("resource_documentation", &prm.resource_documentation),
        ("resource_policy_uri", &prm.resource_policy_uri),
    ] {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), value.clone().into());
        }
    }
    if !prm.resource_signing_alg_values_supported.is_empty() {
        metadata.insert(
            "resource_signing_alg_values_supported".to_owned(),
            serde_json::json!(prm.resource_signing_alg_values_supported),
        );
    }
    t::McpOAuth {
        jwt: t::Jwt {
            optional: false,
            fail_open: false,
            providers: vec![provider],
        },
        metadata: serde_json::Value::Object(metadata),
    }
}

/// A key set no token verifies against: what a route gets when its keys cannot be read here.
const EMPTY_KEY_SET: &str = r#"{"keys":[]}"#;
