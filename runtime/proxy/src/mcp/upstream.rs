//! One MCP server as the gateway's upstream: a JSON-RPC message POSTed to its endpoint with
//! the server's session, protocol version and credential, and its answer read as the
//! Streamable HTTP transport allows it (JSON, or an SSE stream that carries the response among
//! notifications and requests).
//!
//! Bounded: headers within [`HEAD_TIMEOUT`], a fan-out answer within [`ANSWER_TIMEOUT`], and no
//! more than [`ANSWER_LIMIT`] bytes read for it; a relayed stream is bounded by the client, who
//! may leave at any time.

use super::route::Backend;
use crate::body::Body;
use aigw_providers::sse::Framer;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Duration;

/// The session header of the Streamable HTTP transport.
pub const SESSION: &str = "mcp-session-id";
/// The protocol version header, sent on every request after initialization.
pub const VERSION: &str = "mcp-protocol-version";
/// How long a server has to answer with headers.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fan-out (initialize, lists) waits for a server's whole answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// The most bytes read for one fan-out answer.
pub const ANSWER_LIMIT: usize = 16 << 20;

/// Why a server gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("the server has no endpoint")]
    NoEndpoint,
    #[error("{0}")]
    Unreachable(&'static str),
    #[error("the server did not answer in time")]
    Timeout,
    /// 404 on a request with a session: the server forgot it (restarted, expired).
    #[error("the server no longer knows the session")]
    SessionGone,
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("the server's answer is not MCP: {0}")]
    Invalid(&'static str),
}

impl Failure {
    /// The error type for metrics and the access log.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::NoEndpoint => "no_endpoint",
            Failure::Unreachable(_) => "unreachable",
            Failure::Timeout => "timeout",
            Failure::SessionGone => "session_gone",
            Failure::Status(_) => "status",
            Failure::Invalid(_) => "invalid_answer",
        }
    }
}

/// What a request carries besides its body: the server session, the protocol version, and
/// the headers taken from the client's request (forwarded headers, claims).
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub backend: &'a Backend,
    pub session: Option<&'a HeaderValue>,
    pub version: Option<&'a str>,
    pub extra: &'a HeaderMap,
}

impl Call<'_> {
    /// Sends `method` with `body` and returns the answer's head and body, 2xx only.
    pub async fn send(
        &self,
        method: Method,
        body: Option<Bytes>,
    ) -> Result<Response<hyper::body::Incoming>, Failure> {
        let url = self.backend.url.clone().ok_or(Failure::NoEndpoint)?;
        let mut request = Request::builder().method(method).uri(url);
        let headers = request.headers_mut().ok_or(Failure::NoEndpoint)?;
        headers.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, value) in &self.backend.headers {
            headers.insert(name, value.clone());
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        if body.is_some() {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(session) = self.session {
            headers.insert(SESSION, session.clone());
        }
        if let Some(version) = self.version.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(VERSION, version);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::full))
            .map_err(|_| Failure::NoEndpoint)?;
        let answer = tokio::time::timeout(HEAD_TIMEOUT, self.backend.client.request(request))
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| Failure::Unreachable(crate::upstream::describe(&e)))?;
        match answer.status() {
            s if s.is_success() => Ok(answer),
            StatusCode::NOT_FOUND if self.session.is_some() => Err(Failure::SessionGone),
            s => Err(Failure::Status(s)),
        }
    }

    /// POSTs one JSON-RPC request and waits for its response message (within the fan-out
    /// bounds); notifications the server sends meanwhile are dropped.
    pub async fn request(&self, message: &Value) -> Result<(HeaderMap, Value), Failure> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let work = async {
            let answer = self.send(Method::POST, Some(body)).await?;
            let (parts, incoming) = answer.into_parts();
            let response = response_of(&parts.headers, incoming, &id).await?;
            Ok((parts.headers, response))
        };
        tokio::time::timeout(ANSWER_TIMEOUT, work)
            .await
            .map_err(|_| Failure::Timeout)?
    }

    /// POSTs a notification (the server answers 202 and no body).
    pub async fn notify(&self, message: &Value) -> Result<(), Failure> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.send(Method::POST, Some(body)))
            .await
            .map_err(|_| Failure::Timeout)??;
        // Drain what little there is so the connection goes back to the pool.
        let _ = answer.into_body().collect().await;
        Ok(())
    }
}

/// Whether an answer's head says it is an SSE stream.
pub fn is_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The response message with `id` out of an answer: its JSON body, or the first message of its
/// SSE stream that answers `id`.
async fn response_of(
    headers: &HeaderMap,
    mut body: hyper::body::Incoming,
    id: &Value,
) -> Result<Value, Failure> {
    if !is_stream(headers) {
        let bytes = http_body_util::Limited::new(body, ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|_| Failure::Invalid("the body could not be read whole"))?
            .to_bytes();
        return serde_json::from_slice(&bytes)
            .map_err(|_| Failure::Invalid("the body is not JSON"));
    }
    let mut framer = Framer::default();
    let mut read = 0usize;
    loop {
        let frame = body.frame().await;
        let at_end = frame.is_none();
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    if read > ANSWER_LIMIT {
                        return Err(Failure::Invalid("the stream is too long"));
                    }
                    framer.push(&data);
                }
            }
            Some(Err(_)) => return Err(Failure::Unreachable("the server's stream broke")),
            None => {}
        }
        while let Some(event) = framer.next_event(at_end) {
            if let Ok(message) = serde_json::from_slice::<Value>(&event.data)
                && answers(&message, id)
            {
                return Ok(message);
            }
        }
        if at_end {
            return Err(Failure::Invalid("the stream ended without the response"));
        }
    }
}

/// Whether `message` is the response (result or error) to the request with `id`.
pub fn answers(message: &Value, id: &Value) -> bool {
    message.get("id") == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}
