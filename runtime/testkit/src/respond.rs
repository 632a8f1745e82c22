//! The upstream's accept loop and its answers.

use crate::{Recorded, State, lock};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use serde_json::json;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Fixed, so that answers are reproducible.
const CREATED: i64 = 1_700_000_000;
const PROMPT_TOKENS: u64 = 10;
/// What `/v1/responses/input_tokens` answers: OpenAI's count of any input.
pub const COUNTED_TOKENS: u64 = 19;

/// The usage object the upstream reports for `completion` output tokens.
pub fn usage(completion: u64) -> serde_json::Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion, "total_tokens": PROMPT_TOKENS + completion})
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if lock(&state.behavior).reset {
                reset(stream).await;
                return;
            }
            match tls {
                None => connection(stream, state, None).await,
                Some(acceptor) => {
                    // A failed handshake (a client that refused our certificate) is the
                    // client's business: the connection just ends.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let sni = stream.get_ref().1.server_name().map(Arc::<str>::from);
                        connection(stream, state, sni).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection; `sni` is the server name a TLS client asked for.
async fn connection<S>(stream: S, state: Arc<State>, sni: Option<Arc<str>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |request| answer(state.clone(), sni.clone(), request));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Reads the request head, then resets the connection (SO_LINGER 0 makes close send RST).
async fn reset(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    let _ = stream.read(&mut buffer).await;
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

#[derive(Deserialize, Default)]
struct Asked {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

pub(crate) type Body = http_body_util::Either<http_body_util::Full<Bytes>, Channel>;

async fn answer(
    state: Arc<State>,
    sni: Option<Arc<str>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let behavior = lock(&state.behavior).clone();
    if state.record {
        let uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        lock(&state.recorded).push(Recorded {
            method: parts.method.clone(),
            uri,
            authority: parts
                .uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| {
                    let host = parts.headers.get(header::HOST)?;
                    host.to_str().ok().map(str::to_owned)
                }),
            version: parts.version,
            sni: sni.as_deref().map(str::to_owned),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    if behavior.reset {
        // On a connection opened before the reset was asked for: fail it without an answer.
        return Err(std::io::Error::other("reset"));
    }
    if !behavior.delay.is_zero() {
        tokio::time::sleep(behavior.delay).await;
    }
    if let Some(status) = behavior.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let text = behavior.body.clone().unwrap_or_else(|| {
            json!({"error": {"message": format!("upstream {} answers {}", state.name, status.as_u16()), "type": "mock_error", "code": status.as_u16()}})
                .to_string()
        });
        let mut answer = full(&state, status, text);
        for (name, value) in &behavior.headers {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                header::HeaderValue::from_str(value),
            ) {
                answer.headers_mut().insert(name, value);
            }
        }
        return Ok(answer);
    }
    let answer = reply(&state, &parts, &body, &behavior);
    Ok(if behavior.stall_body {
        stalled(answer).await
    } else {
        answer
    })
}

/// The answer to a request the behaviour lets through.
fn reply(
    state: &Arc<State>,
    parts: &http::request::Parts,
    body: &Bytes,
    behavior: &crate::Behavior,
) -> Response<Body> {
    if parts.uri.path() == "/mcp" {
        return crate::mcp::answer(state, &parts.method, body);
    }
    if let Some(reply) = crate::providers::answer(state, parts.uri.path(), body) {
        return reply;
    }
    let asked: Asked = serde_json::from_slice(body).unwrap_or_default();
    let model = asked.model.clone().unwrap_or_default();
    let name = &state.name;
    let chunks = behavior.chunks.unwrap_or(3);
    // Azure OpenAI serves the OpenAI API under per-deployment paths.
    let path = parts.uri.path();
    let path = match path.strip_prefix("/openai/deployments/") {
        Some(rest) => rest.split_once('/').map_or(path, |(_, endpoint)| endpoint),
        None => path,
    };
    let path = match path {
        "chat/completions" => "/v1/chat/completions",
        "embeddings" => "/v1/embeddings",
        "completions" => "/v1/completions",
        other => other,
    };
    let reply = match path {
        "/v1/chat/completions" if asked.stream => return stream(state, &asked, behavior),
        "/v1/chat/completions" => json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model, "system_fingerprint": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Hello from {name}")}, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(chunks as u64),
        }),
        "/v1/completions" => json!({
            "id": "cmpl-mock", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": format!("Hello from {name}"), "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(chunks as u64),
        }),
        "/v1/embeddings" => json!({
            "object": "list", "model": model,
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
        }),
        "/v1/responses/input_tokens" => {
            json!({"object": "response.input_tokens", "input_tokens": COUNTED_TOKENS})
        }
        path => json!({"upstream": name, "method": parts.method.as_str(), "path": path}),
    };
    full(state, StatusCode::OK, reply.to_string())
}

pub(crate) fn full(state: &State, status: StatusCode, text: String) -> Response<Body> {
    let mut response = labelled(
        state,
        http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(text))),
        "application/json",
    );
    *response.status_mut() = status;
    response
}

/// A response carrying `content_type` and the upstream's name (`x-mock-upstream`).
pub(crate) fn labelled(state: &State, body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Ok(name) = header::HeaderValue::from_str(&state.name) {
        response.headers_mut().insert("x-mock-upstream", name);
    }
    response
}

/// A chat completion stream, written by a task so that pacing is real.
fn stream(state: &State, asked: &Asked, behavior: &crate::Behavior) -> Response<Body> {
    let (sender, receiver) = mpsc::channel(4);
    let model = asked.model.clone().unwrap_or_default();
    let name = state.name.clone();
    let chunks = behavior.chunks.unwrap_or(3);
    let include_usage = asked
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let (interval, cut_after) = (behavior.interval, behavior.cut_after);
    let endless = behavior.endless_event;
    tokio::spawn(async move {
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model, "system_fingerprint": name,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        let event =
            |value: serde_json::Value| Ok(Frame::data(Bytes::from(format!("data: {value}\n\n"))));
        for i in 0..chunks {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            if cut_after == Some(i) {
                let _ = sender.send(Err(std::io::Error::other("stream cut"))).await;
                return;
            }
            let delta = if i == 0 {
                json!({"role": "assistant", "content": format!("tok{i} ")})
            } else {
                json!({"content": format!("tok{i} ")})
            };
            if sender.send(event(chunk(delta, None))).await.is_err() {
                return;
            }
            if endless {
                let piece = Bytes::from(vec![b'a'; 64 << 10]);
                let _ = sender
                    .send(Ok(Frame::data(Bytes::from_static(b"data: "))))
                    .await;
                for _ in 0..(256 << 20) / piece.len() {
                    if sender.send(Ok(Frame::data(piece.clone()))).await.is_err() {
                        return;
                    }
                }
                return;
            }
        }
        let _ = sender.send(event(chunk(json!({}), Some("stop")))).await;
        if include_usage {
            let value = json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "system_fingerprint": name, "choices": [], "usage": usage(chunks as u64),
            });
            let _ = sender.send(event(value)).await;
        }
        let _ = sender
            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
            .await;
    });
    labelled(
        state,
        http_body_util::Either::Right(Channel(receiver)),
        "text/event-stream",
    )
}

/// `answer` with the first half of its body sent and the rest held back (a whole body only;
/// a stream is left as it is).
async fn stalled(answer: Response<Body>) -> Response<Body> {
    let (parts, body) = answer.into_parts();
    let http_body_util::Either::Left(full) = body else {
        return Response::from_parts(parts, body);
    };
    let bytes = full
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let half = bytes.slice(..bytes.len() / 2);
        if sender.send(Ok(Frame::data(half))).await.is_ok() {
            // Held open, sending nothing, until the client goes.
            sender.closed().await;
        }
    });
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, http_body_util::Either::Right(Channel(receiver)))
}

/// A response body fed by a channel.
pub(crate) struct Channel(pub(crate) mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx)
    }
}
