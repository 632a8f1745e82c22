//! An MCPRoute resolved for one generation: each server's address, client, path (with its API
//! key as a query parameter when the route says so), the headers it is sent (its API key,
//! marked sensitive), and the route's OAuth ready to verify tokens.
//!
//! An API key reaches only its own server: each backend carries its own headers, and nothing
//! the client sent is forwarded except `forwardHeaders` (never `Authorization`, which is the
//! client's credential for the gateway).

use crate::generation::{BuildError, bases, client};
use crate::jwt::JwtAuth;
use crate::secrets::Secrets;
use crate::upstream::{Clients, Pools};
use aigw_table::{McpBackend, McpRoute, Snapshot};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// A route, resolved.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub backends: Vec<Backend>,
    pub oauth: Option<OAuth>,
}

/// One MCP server of a route.
#[derive(Debug)]
pub struct Backend {
    /// The tool prefix (`name__`).
    pub name: Arc<str>,
    /// `scheme://host:port/path[?param=key]`; `None` when the upstream has no endpoint.
    pub url: Option<http::Uri>,
    pub client: Pools,
    /// Sent on every request to this server (its API key).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `(client header, server header)`.
    pub forward: Vec<(HeaderName, HeaderName)>,
}

/// The route's OAuth.
#[derive(Debug)]
pub struct OAuth {
    pub jwt: JwtAuth,
    /// The protected-resource metadata document, serialized.
    pub metadata: Bytes,
}

/// Resolves every MCPRoute of the snapshot.
pub fn resolve(
    snapshot: &Snapshot,
    secrets: &Secrets,
    clients: &Clients,
) -> Result<Vec<Route>, BuildError> {
    snapshot
        .table()
        .mcp_routes
        .iter()
        .map(|route| resolve_route(route, secrets, clients))
        .collect()
}

fn resolve_route(
    route: &McpRoute,
    secrets: &Secrets,
    clients: &Clients,
) -> Result<Route, BuildError> {
    let backends = route
        .backends
        .iter()
        .map(|b| resolve_backend(&route.name, b, secrets, clients))
        .collect::<Result<_, _>>()?;
    let oauth = route
        .oauth
        .as_ref()
        .map(|o| {
            let jwt = JwtAuth::resolve(&o.jwt, &clients.plain()).map_err(|reason| {
                BuildError::McpOAuth {
                    route: route.name.clone(),
                    reason,
                }
            })?;
            let metadata = Bytes::from(serde_json::to_vec(&o.metadata).unwrap_or_default());
            Ok::<_, BuildError>(OAuth { jwt, metadata })
        })
        .transpose()?;
    Ok(Route {
        name: Arc::from(route.name.as_str()),
        backends,
        oauth,
    })
}

fn resolve_backend(
    route: &str,
    backend: &McpBackend,
    secrets: &Secrets,
    clients: &Clients,
) -> Result<Backend, BuildError> {
    let label = format!("{route} ({})", backend.name);
    let client = client(&label, backend.upstream.tls.as_ref(), secrets, clients)?;
    let mut headers = Vec::new();
    let mut query = None;
    if let Some(key) = &backend.api_key {
        let value = secrets
            .get(&key.secret)
            .map_err(|missing| BuildError::Secret {
                backend: label.clone(),
                missing,
            })?;
        let text = String::from_utf8_lossy(&value).trim().to_owned();
        let invalid = || BuildError::InvalidCredential {
            backend: label.clone(),
            secret: format!("{}/{}", key.secret.namespace, key.secret.name),
        };
        match (&key.header, &key.query_param) {
            (_, Some(param)) => query = Some((param.clone(), text)),
            (Some(header), None) => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| invalid())?;
                let mut value = HeaderValue::from_str(&text).map_err(|_| invalid())?;
                value.set_sensitive(true);
                headers.push((name, value));
            }
            (None, None) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {text}")).map_err(|_| invalid())?;
                value.set_sensitive(true);
                headers.push((http::header::AUTHORIZATION, value));
            }
        }
    }
    let forward = backend
        .forward_headers
        .iter()
        .filter_map(|(from, to)| {
            Some((
                HeaderName::from_bytes(from.as_bytes()).ok()?,
                HeaderName::from_bytes(to.as_bytes()).ok()?,
            ))
        })
        .filter(|(from, _)| from != http::header::AUTHORIZATION)
        .collect();
    let base = bases(&backend.upstream.endpoints, backend.upstream.tls.is_some())
        .into_iter()
        .next();
    let url = base.and_then(|base| {
        let mut text = format!("{base}{}", backend.path);
        if let Some((param, key)) = &query {
            text.push(if backend.path.contains('?') { '&' } else { '?' });
            text.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .append_pair(param, key)
                    .finish(),
            );
        }
        text.parse().ok()
    });
    Ok(Backend {
        name: Arc::from(backend.name.as_str()),
        url,
        client,
        headers,
        forward,
    })
}
