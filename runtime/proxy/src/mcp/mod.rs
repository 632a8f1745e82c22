//! The MCP gateway: an MCPRoute served over the Streamable HTTP transport (MCP revisions
//! 2024-11-05 to 2025-11-25, the ones reached by the `initialize` handshake) as one MCP server
//! that aggregates the route's servers.
//!
//! - **POST** carries one JSON-RPC message. `initialize` opens a gateway session
//!   ([`session`]) and a session with every server of the route; lists (`tools/list`,
//!   `prompts/list`, `resources/list`, `resources/templates/list`) fan out and merge, each
//!   tool and prompt named `<server>__<name>` (the reference's convention; Kubernetes names
//!   hold no `_`, so the first `__` always splits them), tools filtered by the server's
//!   selector; calls go to the one server that owns the name, and its answer (JSON, or an SSE
//!   stream with progress notifications) is relayed as it comes ([`methods`], [`relay`]).
//! - **GET** opens the session's server stream: every server's own stream merged into one,
//!   list-changed notifications included.
//! - **DELETE** ends the session and every server session behind it.
//! - **OAuth** (the route's `securityPolicy.oauth`): every request must carry a bearer token
//!   the issuer's keys verify; without one the answer is 401 with a `WWW-Authenticate` that
//!   points at the protected-resource metadata (RFC 9728), served at
//!   `/.well-known/oauth-protected-resource<path>` with no token needed.
//!
//! A server that is down is left out of lists (and logged) and tried again on later requests;
//! it never fails the session. What is not done: the 2026-07-28 stateless revision (a client
//! that probes `server/discover` is told the method is unknown and falls back to
//! `initialize`), JSON-RPC batches, resumable streams (`Last-Event-ID`).

pub mod route;
pub mod session;
pub mod upstream;

mod lists;
mod methods;
mod relay;

use crate::body::Body;
use crate::generation::Generation;
use crate::metrics::{McpOperation, Metrics};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use route::Backend;
use serde_json::{Value, json};
use session::{Ready, Session};
use std::sync::Arc;
use std::time::Instant;
use upstream::Call;

pub use session::Sessions;

/// The revisions a client may negotiate with `initialize`, oldest first.
pub const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Between a server's name and its tool's or prompt's.
pub const SEPARATOR: &str = "__";
/// JSON-RPC's code for bad params: an unknown tool or prompt, a cursor not ours.
const INVALID_PARAMS: i64 = -32602;
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What one request on a route works with, borrowed from the request and its generation.
pub(crate) struct Ctx<'r> {
    pub generation: &'r Generation,
    pub index: usize,
    /// The client's request headers (for `forwardHeaders`).
    pub client: &'r HeaderMap,
    /// Headers made of the verified token's claims (`claimToHeaders`), sent to every server.
    pub claims: HeaderMap,
    /// The verified token's issuer and subject, on a route that takes OAuth tokens.
    pub owner: Option<String>,
    pub metrics: &'r Metrics,
    pub log: Option<&'r crate::access_log::AccessLog>,
}

impl Ctx<'_> {
    pub fn route(&self) -> &route::Route {
        &self.generation.mcp[self.index]
    }

    /// What `backend` is sent of the client's request.
    pub fn extra(&self, backend: &Backend) -> HeaderMap {
        let mut extra = self.claims.clone();
        for (from, to) in &backend.forward {
            for value in self.client.get_all(from) {
                extra.append(to.clone(), value.clone());
            }
        }
        extra
    }

    pub fn call<'a>(
        &self,
        backend: &'a Backend,
        ready: Option<&'a Ready>,
        extra: &'a HeaderMap,
    ) -> Call<'a> {
        Call {
            backend,
            session: ready.and_then(|r| r.session.as_ref()),
            version: ready.map(|r| r.version.as_str()),
            extra,
        }
    }

    /// Reports one operation to the metrics and, for operations on one server, the log.
    pub fn report(&self, op: &Operation<'_>, error: Option<&'static str>) {
        report(self.metrics, self.log, &self.route().name, op, error);
    }
}

/// One operation, for the metrics and the access log.
pub(crate) struct Operation<'a> {
    pub method: &'static str,
    pub backend: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub started: Instant,
}

pub(crate) fn report(
    metrics: &Metrics,
    log: Option<&crate::access_log::AccessLog>,
    route: &str,
    op: &Operation<'_>,
    error: Option<&'static str>,
) {
    let elapsed = op.started.elapsed();
    metrics.mcp_operation(
        &McpOperation {
            mcp_method_name: op.method,
            mcp_route: route.to_owned(),
            mcp_backend: op.backend.unwrap_or_default().to_owned(),
            gen_ai_tool_name: op.tool.map(str::to_owned),
            error_type: error,
        },
        elapsed.as_secs_f64(),
    );
    let (Some(log), Some(backend)) = (log, op.backend) else {
        return;
    };
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let line = json!({
        "time": time,
        "kind": "mcp",
        "route": route,
        "backend": backend,
        "method": op.method,
        "tool": op.tool,
        "error": error,
        "duration_ms": elapsed.as_secs_f64() * 1000.0,
    });
    if let Ok(bytes) = serde_json::to_vec(&line) {
        log.send_json(&bytes);
    }
}

/// The method's static name (for metrics labels).
fn static_method(method: &str) -> &'static str {
    match method {
        "tools/list" => "tools/list",
        "prompts/list" => "prompts/list",
        "resources/list" => "resources/list",
        "resources/templates/list" => "resources/templates/list",
        "tools/call" => "tools/call",
        "prompts/get" => "prompts/get",
        "resources/read" => "resources/read",
        "resources/subscribe" => "resources/subscribe",
        "resources/unsubscribe" => "resources/unsubscribe",
        _ => "other",
    }
}

/// The MCPRoute (index into the generation's) that takes a request on `port`.
pub fn select(
    generation: &Generation,
    port: Option<u16>,
    host: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<usize> {
    if generation.mcp.is_empty() {
        return None;
    }
    let snapshot = &generation.snapshot;
    snapshot
        .listeners()
        .filter(|(_, _, l)| port.is_none_or(|p| l.port == p))
        .find_map(|(id, _, _)| snapshot.select_mcp(id, host, path, headers))
}

/// The protected-resource metadata of the OAuth route a `/.well-known/oauth-protected-resource`
/// request names (by its path after the prefix, or the only one when it names none).
pub fn metadata(
    generation: &Generation,
    port: Option<u16>,
    host: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    let rest = path.strip_prefix(WELL_KNOWN)?;
    let index = if rest.is_empty() || rest == "/" {
        let mut with_oauth = generation
            .mcp
            .iter()
            .enumerate()
            .filter(|(_, r)| r.oauth.is_some());
        let (index, _) = with_oauth.next()?;
        index
    } else {
        select(generation, port, host, rest, headers)?
    };
    let oauth = generation.mcp[index].oauth.as_ref()?;
    let mut response = crate::error::json_response(StatusCode::OK, oauth.metadata.clone());
    // Public by design (clients discover it before they have a token), from any origin.
    response.headers_mut().insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Some(response)
}

/// Serves one request on the MCPRoute `index` of `generation`.
pub async fn serve(
    shared: &crate::Shared,
    generation: &Arc<Generation>,
    index: usize,
    request: Request<crate::body::RequestBody>,
) -> Response<Body> {
    let (parts, incoming) = request.into_parts();
    let (mut claims, mut owner) = (HeaderMap::new(), None);
    if let Some(oauth) = &generation.mcp[index].oauth {
        match oauth.jwt.verify(&parts).await {
            Ok(Some(verified)) => {
                let text = |name: &str| verified.claims.get(name).and_then(Value::as_str);
                owner = Some(format!(
                    "{} {}",
                    text("iss").unwrap_or_default(),
                    text("sub").unwrap_or_default()
                ));
                if let Some(provider) = oauth.jwt.providers.first() {
                    for (header, claim) in &provider.claim_to_headers {
                        if let Some(value) = crate::jwt::claim(&verified.claims, claim)
                            .and_then(crate::jwt::claim_header)
                        {
                            claims.insert(header.clone(), value);
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(refused) => return unauthorized(&oauth.metadata, refused),
        }
    }
    // The transport's rule: a version the server does not speak is a bad request.
    if let Some(version) = parts.headers.get(upstream::VERSION)
        && !VERSIONS.iter().any(|v| v.as_bytes() == version.as_bytes())
    {
        let text = "Bad Request: Unsupported protocol version (supported: 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25)";
        return rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32600, text);
    }
    let ctx = Ctx {
        generation,
        index,
        client: &parts.headers,
        claims,
        owner,
        metrics: &shared.metrics,
        log: shared.recorder.log.as_ref(),
    };
    let sessions = &shared.mcp;
    match parts.method {
        Method::POST => {
            let body = match crate::body::read(incoming, shared.config.body_limit).await {
                Ok(body) => body,
                Err(error) => return rpc_error(error.status, Value::Null, -32600, &error.message),
            };
            methods::post(&ctx, sessions, body).await
        }
        Method::GET => match session(&ctx, sessions) {
            Ok(session) => relay::listen(&ctx, session).await,
            Err(refused) => refused.response(),
        },
        Method::DELETE => match session(&ctx, sessions) {
            Ok(session) => methods::delete(&ctx, sessions, &session).await,
            Err(refused) => refused.response(),
        },
        _ => {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "MCP is served with POST, GET and DELETE",
            );
            response.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            response
        }
    }
}

/// Why a request names no session of this route.
pub(crate) enum NoSession {
    /// No `Mcp-Session-Id`: 400.
    Missing,
    /// One that ended, or was never made here (or on this route): 404, the transport's answer
    /// that tells the client to initialize again.
    Unknown,
}

impl NoSession {
    pub fn response(self) -> Response<Body> {
        match self {
            NoSession::Missing => rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "Bad Request: Mcp-Session-Id header is required",
            ),
            NoSession::Unknown => rpc_error(
                StatusCode::NOT_FOUND,
                Value::Null,
                -32001,
                "Session not found",
            ),
        }
    }
}

/// The client's session, named by its `Mcp-Session-Id`, on this route.
pub(crate) fn session(ctx: &Ctx<'_>, sessions: &Sessions) -> Result<Arc<Session>, NoSession> {
    let id = ctx
        .client
        .get(upstream::SESSION)
        .and_then(|v| v.to_str().ok())
        .ok_or(NoSession::Missing)?;
    match sessions.get(id) {
        Some(session) if session.route == ctx.route().name && session.owner == ctx.owner => {
            Ok(session)
        }
        _ => Err(NoSession::Unknown),
    }
}

/// 401 (or 403 for another audience) with the challenge that names the metadata.
fn unauthorized(metadata: &Bytes, refused: crate::jwt::Refused) -> Response<Body> {
    // RFC 6750 §3.1: a request with no token is challenged without an error code.
    let (status, error, description) = match refused {
        crate::jwt::Refused::Missing => (
            StatusCode::UNAUTHORIZED,
            None,
            "No access token was provided in this request",
        ),
        crate::jwt::Refused::Invalid(why) => (StatusCode::UNAUTHORIZED, Some("invalid_token"), why),
        crate::jwt::Refused::Audience => (
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "Audiences in Jwt are not allowed",
        ),
    };
    let resource = serde_json::from_slice::<Value>(metadata)
        .ok()
        .and_then(|m| m.get("resource")?.as_str()?.parse::<http::Uri>().ok());
    let mut parts = Vec::new();
    if let Some(error) = error {
        parts.push(format!(
            "error=\"{error}\", error_description=\"{description}\""
        ));
    }
    if let Some(uri) = resource
        && let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority())
    {
        let path = uri.path().trim_end_matches('/');
        parts.push(format!(
            "resource_metadata=\"{scheme}://{authority}{WELL_KNOWN}{path}\""
        ));
    }
    let challenge = format!("Bearer {}", parts.join(", "));
    let mut response = plain(status, description);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, value);
    }
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

/// A JSON-RPC answer with `result`.
pub(crate) fn rpc_result(id: Value, result: Value) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
    crate::error::json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// A JSON-RPC error answer.
pub(crate) fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    crate::error::json_response(status, Bytes::from(body.to_string()))
}

/// 202, the answer to a notification or a response.
pub(crate) fn accepted() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
