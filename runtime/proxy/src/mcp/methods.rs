//! The JSON-RPC side of the gateway: `initialize` (a session with every server, capabilities
//! merged), the calls routed to the server that owns a name (tool selectors enforced),
//! notifications and responses the client sends, and DELETE. The lists are [`super::lists`].

use super::session::{Ready, Session, Sessions};
use super::upstream::SESSION;
use super::{
    Ctx, INVALID_PARAMS, Operation, SEPARATOR, VERSIONS, accepted, rpc_error, rpc_result,
    static_method,
};
use crate::body::Body;
use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

const INTERNAL: i64 = -32603;

/// One POSTed message.
pub(super) async fn post(ctx: &Ctx<'_>, sessions: &Sessions, body: Bytes) -> Response<Body> {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32700, "Parse error");
    };
    if !message.is_object() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "Invalid Request: one JSON-RPC message per POST (batches are not supported)",
        );
    }
    let id = message.get("id").cloned();
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if method.as_deref() == Some("initialize") {
        return initialize(ctx, sessions, id.unwrap_or(Value::Null), &message).await;
    }
    let session = match super::session(ctx, sessions) {
        Ok(session) => session,
        Err(refused) => return refused.response(),
    };
    match (method, id) {
        (Some(method), Some(id)) => request(ctx, &session, &method, id, message).await,
        (Some(method), None) => {
            notification(ctx, &session, &method, &message).await;
            accepted()
        }
        (None, Some(id)) => {
            respond(ctx, &session, &id, &message).await;
            accepted()
        }
        (None, None) => rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "Invalid Request",
        ),
    }
}

/// A session with every server; the answer merges what they can do.
async fn initialize(
    ctx: &Ctx<'_>,
    sessions: &Sessions,
    id: Value,
    message: &Value,
) -> Response<Body> {
    let started = Instant::now();
    let mut params = message.get("params").cloned().unwrap_or_else(|| json!({}));
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(VERSIONS[VERSIONS.len() - 1])
        .to_owned();
    if let Some(params) = params.as_object_mut() {
        params.insert("protocolVersion".to_owned(), json!(version));
    }
    let route = ctx.route();
    let names = route.backends.iter().map(|b| b.name.clone());
    let Some(session) = Session::new(
        (route.name.clone(), ctx.owner.clone()),
        names,
        version.clone(),
        params,
    ) else {
        let text = "the system's random generator failed: no session id can be drawn";
        return rpc_error(StatusCode::INTERNAL_SERVER_ERROR, id, INTERNAL, text);
    };
    let session = Arc::new(session);
    let readies = join_all(route.backends.iter().map(|b| {
        let session = &session;
        async move {
            let extra = ctx.extra(b);
            (
                b,
                session
                    .ready(&b.name, ctx.call(b, None, &extra), None)
                    .await,
            )
        }
    }))
    .await;
    let mut capabilities = Map::new();
    capabilities.insert("tools".to_owned(), json!({}));
    for (backend, ready) in readies {
        match ready {
            Ok(ready) => merge_capabilities(&mut capabilities, &ready.capabilities),
            Err(failure) => {
                tracing::warn!(route = %route.name, backend = %backend.name, error = %failure, "MCP server did not initialize: its tools are left out until it does")
            }
        }
    }
    if !sessions.insert(session.clone()) {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            INTERNAL,
            "the gateway holds too many MCP sessions",
        );
    }
    ctx.report(
        &Operation {
            method: "initialize",
            backend: None,
            tool: None,
            started,
        },
        None,
    );
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "aigw", "version": env!("CARGO_PKG_VERSION")},
    });
    let mut response = rpc_result(id, result);
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        response.headers_mut().insert(SESSION, value);
    }
    response
}

/// What the gateway offers is what any server offers: each feature, `listChanged` and
/// `subscribe` when one server has them. Completions are not routed, so never offered.
fn merge_capabilities(into: &mut Map<String, Value>, server: &Value) {
    for feature in ["tools", "prompts", "resources", "logging"] {
        let Some(offered) = server.get(feature).and_then(Value::as_object) else {
            continue;
        };
        let merged = into.entry(feature).or_insert_with(|| json!({}));
        for flag in ["listChanged", "subscribe"] {
            if offered.get(flag) == Some(&Value::Bool(true)) {
                merged[flag] = Value::Bool(true);
            }
        }
    }
}

/// A request that is not `initialize`.
async fn request(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    method: &str,
    id: Value,
    message: Value,
) -> Response<Body> {
    match method {
        "ping" => rpc_result(id, json!({})),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            super::lists::list(ctx, session, method, id, &message).await
        }
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe" => routed(ctx, session, method, id, message).await,
        "logging/setLevel" => {
            broadcast(ctx, session, &message, Some("logging"), true).await;
            rpc_result(id, json!({}))
        }
        _ => rpc_error(StatusCode::OK, id, -32601, "Method not found"),
    }
}

/// A request for one server, chosen by the name or URI it carries.
async fn routed(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    method: &str,
    id: Value,
    mut message: Value,
) -> Response<Body> {
    let started = Instant::now();
    let route = ctx.route();
    let (b, tool) = match method {
        "tools/call" | "prompts/get" => {
            let name = message
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let what = if method == "tools/call" {
                "tool"
            } else {
                "prompt"
            };
            let unknown = || {
                rpc_error(
                    StatusCode::OK,
                    id.clone(),
                    INVALID_PARAMS,
                    &format!("Unknown {what}: {name}"),
                )
            };
            let Some((server, own)) = name.split_once(SEPARATOR) else {
                return unknown();
            };
            let Some(b) = route.backends.iter().position(|b| &*b.name == server) else {
                return unknown();
            };
            // A filtered tool cannot be called by guessing its name.
            if method == "tools/call"
                && ctx
                    .generation
                    .snapshot
                    .mcp_tools(ctx.index, b)
                    .is_some_and(|t| !t.allows(own))
            {
                return unknown();
            }
            let own = own.to_owned();
            message["params"]["name"] = json!(own);
            (b, (method == "tools/call").then_some(own))
        }
        _ => {
            let uri = message
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let listed = session
                .resources
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(uri)
                .cloned();
            let b = match listed {
                Some(name) => route.backends.iter().position(|b| b.name == name),
                None => first_with_resources(ctx, session).await,
            };
            let Some(b) = b else {
                return rpc_error(
                    StatusCode::OK,
                    id,
                    -32002,
                    &format!("Resource not found: {uri}"),
                );
            };
            (b, None)
        }
    };
    let op = super::relay::Op {
        method: static_method(method),
        backend: route.backends[b].name.clone(),
        tool,
        started,
    };
    super::relay::forward(ctx, session, b, id, &message, op).await
}

/// The first server (in route order) whose session offers resources.
async fn first_with_resources(ctx: &Ctx<'_>, session: &Arc<Session>) -> Option<usize> {
    for (b, backend) in ctx.route().backends.iter().enumerate() {
        if session
            .existing(&backend.name)
            .await
            .is_some_and(|r| r.capabilities.get("resources").is_some())
        {
            return Some(b);
        }
    }
    None
}

/// A notification from the client: `initialized` was sent to each server when its session
/// began; the others (cancellations, roots changed) go to every server with a session.
async fn notification(ctx: &Ctx<'_>, session: &Arc<Session>, method: &str, message: &Value) {
    if method != "notifications/initialized" {
        broadcast(ctx, session, message, None, false).await;
    }
}

/// Sends `message` to every server with a session (that offers `feature`, if given). With
/// `request`, it is a request and each server's copy gets an id of the gateway's.
async fn broadcast(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    message: &Value,
    feature: Option<&str>,
    request: bool,
) {
    let route = ctx.route();
    join_all(route.backends.iter().map(|backend| async move {
        let Some(ready) = session.existing(&backend.name).await else {
            return;
        };
        if feature.is_some_and(|f| ready.capabilities.get(f).is_none()) {
            return;
        }
        let extra = ctx.extra(backend);
        let call = ctx.call(backend, Some(&ready), &extra);
        let outcome = if request {
            let mut copy = message.clone();
            copy["id"] = session.next_id();
            call.request(&copy).await.map(drop)
        } else {
            call.notify(message).await
        };
        if let Err(failure) = outcome {
            tracing::debug!(backend = %backend.name, error = %failure, "MCP message not delivered");
        }
    }))
    .await;
}

/// The client's response to a request a server sent it goes back to that server.
async fn respond(ctx: &Ctx<'_>, session: &Arc<Session>, id: &Value, message: &Value) {
    let owner = session
        .pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&id.to_string());
    let Some(owner) = owner else {
        return;
    };
    let Some(backend) = ctx.route().backends.iter().find(|b| b.name == owner) else {
        return;
    };
    let Some(ready) = session.existing(&backend.name).await else {
        return;
    };
    let extra = ctx.extra(backend);
    if let Err(failure) = ctx
        .call(backend, Some(&ready), &extra)
        .notify(message)
        .await
    {
        tracing::debug!(backend = %backend.name, error = %failure, "MCP response not delivered");
    }
}

/// DELETE: the session ends here and at every server.
pub(super) async fn delete(
    ctx: &Ctx<'_>,
    sessions: &Sessions,
    session: &Arc<Session>,
) -> Response<Body> {
    sessions.remove(&session.id);
    join_all(ctx.route().backends.iter().map(|backend| async move {
        let Some(ready): Option<Arc<Ready>> = session.existing(&backend.name).await else {
            return;
        };
        if ready.session.is_none() {
            return;
        }
        let extra = ctx.extra(backend);
        let _ = ctx
            .call(backend, Some(&ready), &extra)
            .send(Method::DELETE, None)
            .await;
    }))
    .await;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_merge_features_and_flags() {
        let mut merged = Map::new();
        merged.insert("tools".to_owned(), json!({}));
        merge_capabilities(
            &mut merged,
            &json!({"tools": {"listChanged": false}, "resources": {"subscribe": true}}),
        );
        merge_capabilities(
            &mut merged,
            &json!({"tools": {"listChanged": true}, "prompts": {}, "completions": {}}),
        );
        assert_eq!(
            Value::Object(merged),
            json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}, "prompts": {}})
        );
    }
}
