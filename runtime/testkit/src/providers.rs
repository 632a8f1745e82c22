//! Provider-shaped answers: the canned replies of `testdata/upstream/<provider>/` served on
//! the paths the providers use (Anthropic Messages, Vertex AI `rawPredict` and Gemini
//! `generateContent`, Bedrock Converse and `invoke`, Azure OpenAI deployments, and OpenAI
//! itself under `/canned/v1`). Streams go out in small pieces with a pause
//! between them, so that events and multi-byte characters arrive split across reads; Bedrock
//! streams are real event-stream frames.

use crate::State;
use crate::respond::{Body, Channel, labelled};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use bytes::Bytes;
use http::Response;
use hyper::body::Frame;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes per piece of a streamed answer.
const PIECE: usize = 23;

/// `testdata/upstream/` of the workspace.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/upstream")
}

fn fixture(provider: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(provider).join(name)).unwrap_or_default()
}

/// The answer for a provider path, or `None` when `path` is no provider's.
pub(crate) fn answer(state: &Arc<State>, path: &str, body: &[u8]) -> Option<Response<Body>> {
    let tools = memchr_tools(body);
    let pick = |with: &'static str, without: &'static str| if tools { with } else { without };
    let anthropic_json = || fixture("anthropic", pick("message_tools.json", "message_text.json"));
    // OpenAI's own canned replies, for a backend whose schema prefix is `/canned/v1`: the
    // passthrough that the translated streams are measured against, sent the same way.
    if path == "/canned/v1/chat/completions" {
        if streaming(body) {
            let reply = fixture("openai", "stream_tools.sse");
            return Some(pieces(state, reply, "text/event-stream"));
        }
        return Some(json(
            state,
            fixture("openai", pick("chat_tools.json", "chat_text.json")),
        ));
    }
    if path == "/v2/rerank" {
        return Some(json(state, fixture("cohere", "rerank.json")));
    }
    // Anthropic's and Vertex AI's token counts; Bedrock's CountTokens is below.
    if path == "/v1/messages/count_tokens" || path.ends_with("/count-tokens:rawPredict") {
        return Some(json(state, br#"{"input_tokens":14}"#.to_vec()));
    }
    if path == "/v1/messages" || path.ends_with(":rawPredict") {
        if streaming(body) {
            return Some(pieces(
                state,
                fixture("anthropic", "stream_tools.sse"),
                "text/event-stream",
            ));
        }
        return Some(json(state, anthropic_json()));
    }
    if path.ends_with(":streamRawPredict") {
        return Some(pieces(
            state,
            fixture("anthropic", "stream_tools.sse"),
            "text/event-stream",
        ));
    }
    if path.ends_with(":predict") {
        return Some(json(state, fixture("embeddings", "vertex.json")));
    }
    if path.starts_with("/model/") && path.contains("titan-embed") {
        return Some(json(state, fixture("embeddings", "titan.json")));
    }
    if path.ends_with(":generateContent") {
        let reply = pick("generate_tools.json", "generate_text.json");
        return Some(json(state, fixture("gemini", reply)));
    }
    if path.ends_with(":streamGenerateContent") {
        let reply = fixture("gemini", pick("stream_tools.sse", "stream_text.sse"));
        return Some(pieces(state, reply, "text/event-stream"));
    }
    if path.starts_with("/model/") {
        return Some(match path.rsplit('/').next().unwrap_or("") {
            "converse" => json(
                state,
                fixture("bedrock", pick("converse_tools.json", "converse_text.json")),
            ),
            "converse-stream" => {
                let frames = event_stream(&String::from_utf8_lossy(&fixture(
                    "bedrock",
                    "stream_tools.jsonl",
                )));
                pieces(state, frames, "application/vnd.amazon.eventstream")
            }
            "invoke" => json(state, anthropic_json()),
            "count-tokens" => json(state, br#"{"inputTokens":14}"#.to_vec()),
            "invoke-with-response-stream" => {
                let sse =
                    String::from_utf8_lossy(&fixture("anthropic", "stream_tools.sse")).into_owned();
                pieces(state, wrapped(&sse), "application/vnd.amazon.eventstream")
            }
            _ => return None,
        });
    }
    None
}

/// The request asks for a stream (`"stream": true`).
fn streaming(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(|s| s.as_bool()))
        .unwrap_or(false)
}

fn memchr_tools(body: &[u8]) -> bool {
    body.windows(7).any(|w| w == b"\"tools\"")
}

fn json(state: &State, bytes: Vec<u8>) -> Response<Body> {
    labelled(
        state,
        http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(bytes))),
        "application/json",
    )
}

/// `bytes` sent in pieces of [`PIECE`] bytes, 2 ms apart.
fn pieces(state: &Arc<State>, bytes: Vec<u8>, content_type: &'static str) -> Response<Body> {
    use std::sync::atomic::Ordering::SeqCst;
    let (sender, receiver) = mpsc::channel(4);
    let counts = state.clone();
    tokio::spawn(async move {
        for piece in bytes.chunks(PIECE) {
            if sender
                .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
                .await
                .is_err()
            {
                counts.streams_abandoned.fetch_add(1, SeqCst);
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        counts.streams_finished.fetch_add(1, SeqCst);
    });
    labelled(
        state,
        http_body_util::Either::Right(Channel(receiver)),
        content_type,
    )
}

fn frame(headers: &[(&str, &str)], payload: Vec<u8>) -> Vec<u8> {
    let mut message = Message::new(payload);
    for (name, value) in headers {
        message = message.add_header(Header::new(
            (*name).to_owned(),
            HeaderValue::String((*value).to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    let _ = write_message_to(&message, &mut out);
    out
}

/// The frames a `.jsonl` fixture describes: `{"event", "payload"}` or
/// `{"exception", "payload"}` per line.
pub fn event_stream(jsonl: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let payload = value["payload"].to_string().into_bytes();
        let headers = match (value["event"].as_str(), value["exception"].as_str()) {
            (Some(event), _) => vec![
                (":message-type", "event"),
                (":event-type", event),
                (":content-type", "application/json"),
            ],
            (_, Some(kind)) => vec![
                (":message-type", "exception"),
                (":exception-type", kind),
                (":content-type", "application/json"),
            ],
            _ => continue,
        };
        out.extend(frame(&headers, payload));
    }
    out
}

/// Anthropic SSE events as Bedrock's `invoke-with-response-stream` sends them: `chunk`
/// events wrapping each event's JSON in base64.
pub fn wrapped(sse: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let bytes = base64::engine::general_purpose::STANDARD.encode(line);
        let payload = serde_json::json!({ "bytes": bytes })
            .to_string()
            .into_bytes();
        out.extend(frame(
            &[
                (":message-type", "event"),
                (":event-type", "chunk"),
                (":content-type", "application/json"),
            ],
            payload,
        ));
    }
    out
}
