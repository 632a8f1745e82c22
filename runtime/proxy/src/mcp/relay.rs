//! Answers relayed from one server as they come: a call's SSE stream (progress notifications,
//! requests the server sends the client, then the response) passed on event by event, and the
//! session's GET stream merged from every server's.
//!
//! Each relay is a task that stops as soon as the client leaves (its channel closes), dropping
//! the server's stream with it, and reports the call when its response passes. A server stream
//! that ends before the response is answered to the client with a JSON-RPC error for the same
//! id, so a client never waits on a call that can no longer finish.

use super::session::Session;
use super::upstream::{ANSWER_LIMIT, Failure, answers, is_stream};
use super::{Ctx, Operation, rpc_error};
use crate::body::{Body, BoxError};
use crate::metrics::Metrics;
use aigw_providers::sse::Framer;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// A call on one server, for its report.
pub(super) struct Op {
    pub method: &'static str,
    pub backend: Arc<str>,
    pub tool: Option<String>,
    pub started: Instant,
}

/// Reports a call once, from wherever it ends.
struct Reporter {
    metrics: Metrics,
    log: Option<crate::access_log::AccessLog>,
    route: Arc<str>,
    op: Op,
}

impl Reporter {
    fn finish(&self, error: Option<&'static str>) {
        let op = Operation {
            method: self.op.method,
            backend: Some(&self.op.backend),
            tool: self.op.tool.as_deref(),
            started: self.op.started,
        };
        super::report(&self.metrics, self.log.as_ref(), &self.route, &op, error);
    }
}

/// Sends `message` to server `b` and relays its answer.
pub(super) async fn forward(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    b: usize,
    id: Value,
    message: &Value,
    op: Op,
) -> Response<Body> {
    let reporter = Reporter {
        metrics: ctx.metrics.clone(),
        log: ctx.log.cloned(),
        route: ctx.route().name.clone(),
        op,
    };
    let backend = &ctx.route().backends[b];
    let extra = ctx.extra(backend);
    let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
    let failed = |failure: Failure| {
        reporter.finish(Some(failure.kind()));
        let text = format!("MCP server `{}` is unavailable: {failure}", backend.name);
        rpc_error(StatusCode::OK, id.clone(), -32603, &text)
    };
    let mut ready = match session
        .ready(&backend.name, ctx.call(backend, None, &extra), None)
        .await
    {
        Ok(ready) => ready,
        Err(failure) => return failed(failure),
    };
    let mut answer = None;
    for retry in [false, true] {
        match ctx
            .call(backend, Some(&ready), &extra)
            .send(Method::POST, Some(body.clone()))
            .await
        {
            Ok(a) => {
                answer = Some(a);
                break;
            }
            Err(Failure::SessionGone) if !retry => {
                match session
                    .ready(&backend.name, ctx.call(backend, None, &extra), Some(&ready))
                    .await
                {
                    Ok(again) => ready = again,
                    Err(failure) => return failed(failure),
                }
            }
            Err(failure) => {
                session.forget(&backend.name, true).await;
                return failed(failure);
            }
        }
    }
    let Some(answer) = answer else {
        return failed(Failure::SessionGone);
    };
    let (parts, incoming) = answer.into_parts();
    if !is_stream(&parts.headers) {
        let bytes = match http_body_util::Limited::new(incoming, ANSWER_LIMIT)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return failed(Failure::Invalid("the body could not be read whole")),
        };
        let Ok(response) = serde_json::from_slice::<Value>(&bytes) else {
            return failed(Failure::Invalid("the body is not JSON"));
        };
        reporter.finish(outcome(&response));
        return crate::error::json_response(StatusCode::OK, bytes);
    }
    let (tx, rx) = mpsc::channel(16);
    let session = session.clone();
    tokio::spawn(async move {
        let owner = reporter.op.backend.clone();
        let answered = pump(incoming, &tx, &session, &owner, Some((&id, &reporter))).await;
        if !answered {
            reporter.finish(Some("stream_ended"));
            let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": format!("MCP server `{owner}` ended its stream before answering")}});
            let _ = tx.send(event(error.to_string().as_bytes())).await;
        }
    });
    stream_response(rx)
}

/// The session's GET stream: every server's own stream, merged. 405 when no server offers one.
pub(super) async fn listen(ctx: &Ctx<'_>, session: Arc<Session>) -> Response<Body> {
    let (tx, rx) = mpsc::channel(64);
    let mut streams = 0;
    for backend in &ctx.route().backends {
        let Some(ready) = session.existing(&backend.name).await else {
            continue;
        };
        let extra = ctx.extra(backend);
        let Ok(answer) = ctx
            .call(backend, Some(&ready), &extra)
            .send(Method::GET, None)
            .await
        else {
            continue;
        };
        if !is_stream(answer.headers()) {
            continue;
        }
        streams += 1;
        let (tx, session, owner) = (tx.clone(), session.clone(), backend.name.clone());
        tokio::spawn(async move {
            pump(answer.into_body(), &tx, &session, &owner, None).await;
        });
    }
    if streams == 0 {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return response;
    }
    stream_response(rx)
}

/// Passes a server's events to the client until the server ends, the client leaves, or (with
/// `call`) the call's response has passed; true when it has. Requests the server sends are
/// noted so that the client's responses find their way back.
async fn pump(
    mut body: hyper::body::Incoming,
    tx: &mpsc::Sender<Bytes>,
    session: &Session,
    owner: &Arc<str>,
    call: Option<(&Value, &Reporter)>,
) -> bool {
    let mut framer = Framer::default();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tx.closed() => return false,
        };
        let at_end = !matches!(frame, Some(Ok(_)));
        if let Some(Ok(frame)) = frame
            && let Ok(data) = frame.into_data()
        {
            framer.push(&data);
            if framer.pending() > crate::relay::EVENT_LIMIT {
                tracing::warn!(backend = %owner, "an MCP server's event passed the limit: its stream is cut");
                return false;
            }
        }
        while let Some(raw) = framer.next_event(at_end) {
            let Ok(message) = serde_json::from_slice::<Value>(&raw.data) else {
                continue;
            };
            if message.get("method").is_some()
                && let Some(id) = message.get("id")
            {
                session
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.to_string(), owner.clone());
            }
            let last = call.is_some_and(|(id, _)| answers(&message, id));
            if tx.send(event(&raw.data)).await.is_err() {
                return false;
            }
            if last {
                if let Some((_, reporter)) = call {
                    reporter.finish(outcome(&message));
                }
                return true;
            }
        }
        if at_end {
            return false;
        }
    }
}

/// What a response says went wrong: a JSON-RPC error, or a tool that reported an error.
fn outcome(response: &Value) -> Option<&'static str> {
    if response.get("error").is_some() {
        Some("jsonrpc_error")
    } else if response.pointer("/result/isError") == Some(&Value::Bool(true)) {
        Some("tool_error")
    } else {
        None
    }
}

fn event(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let frames =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok::<_, BoxError>(Frame::data(b)));
    let mut response = Response::new(Body::stream(http_body_util::StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}
