//! The provider's answer turned into the client's API: a whole body, an error in the
//! client's error shape, or a stream translated chunk by chunk.

use crate::bedrock::{self, eventstream};
use crate::translate::Ids;
use crate::{ClientApi, Usage, anthropic, embeddings, gemini, openai, sse};
use base64::Engine as _;
use bytes::BytesMut;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// The provider answers in the client's API.
    Identity,
    Anthropic,
    /// Anthropic's body; streams in Bedrock's event stream.
    AwsAnthropic,
    Bedrock,
    Gemini,
    /// Titan embeddings (Bedrock's errors); `base64` as the client asked.
    TitanEmbedding {
        base64: bool,
    },
    VertexEmbedding {
        base64: bool,
    },
    // ---- Anthropic clients ----
    /// Anthropic or Vertex AI: Anthropic's body and server-sent events, relayed.
    NativeMessages,
    /// Bedrock's invoke: Anthropic's body; its events wrapped in Bedrock's event stream.
    AwsNativeMessages,
    /// A chat completion (OpenAI, Azure OpenAI) turned into a message.
    OpenAIMessages,
    /// A Converse answer turned into a message.
    BedrockMessages,
    /// Anthropic's token count, relayed.
    NativeCount,
    /// Bedrock's CountTokens answer as Anthropic's.
    BedrockCount,
    /// OpenAI's Responses input token count as Anthropic's.
    OpenAICount,
    /// Cohere's own answer, relayed to a Cohere client.
    CohereNative,
}

impl Kind {
    fn client(self) -> ClientApi {
        match self {
            Kind::NativeMessages
            | Kind::AwsNativeMessages
            | Kind::OpenAIMessages
            | Kind::BedrockMessages
            | Kind::NativeCount
            | Kind::BedrockCount
            | Kind::OpenAICount => ClientApi::Anthropic,
            Kind::CohereNative => ClientApi::Cohere,
            _ => ClientApi::OpenAI,
        }
    }
}

/// Turns a provider's answer into the client's API.
#[derive(Debug)]
pub struct ResponseTranslator {
    kind: Kind,
    model: String,
    include_usage: bool,
}

impl ResponseTranslator {
    pub(super) fn new(kind: Kind, model: String, include_usage: bool) -> Self {
        ResponseTranslator {
            kind,
            model,
            include_usage,
        }
    }

    /// The API the client speaks.
    pub fn client(&self) -> ClientApi {
        self.kind.client()
    }

    /// The prefix of the ids given to the translator (`msg_` for Anthropic's messages).
    pub fn id_prefix(&self) -> &'static str {
        match self.client() {
            ClientApi::Anthropic => "msg_",
            ClientApi::OpenAI => "chatcmpl-",
            ClientApi::Cohere => "",
        }
    }

    /// The answer is already in the client's API.
    pub fn is_identity(&self) -> bool {
        self.kind == Kind::Identity
    }

    /// A successful non-streamed body. `Err` carries a client error body (the provider's
    /// answer could not be read: a 502).
    pub fn response(&self, body: &[u8], ids: &Ids) -> Result<(Vec<u8>, Usage), Vec<u8>> {
        let translated = match self.kind {
            Kind::Identity => return Err(openai::error_json("internal_error", "identity", None)),
            Kind::Anthropic | Kind::AwsAnthropic => {
                anthropic::from_openai::response(body, ids, &self.model)
            }
            Kind::Bedrock => bedrock::from_openai::response(body, ids, &self.model),
            Kind::Gemini => gemini::from_openai::response(body, ids, &self.model),
            Kind::TitanEmbedding { base64 } => {
                embeddings::titan_response(body, &self.model, base64)
            }
            Kind::VertexEmbedding { base64 } => {
                embeddings::vertex_response(body, &self.model, base64)
            }
            Kind::NativeMessages | Kind::AwsNativeMessages => {
                anthropic::from_anthropic::response_usage(body).map(|u| (body.to_vec(), u))
            }
            Kind::OpenAIMessages => openai::from_anthropic::response(body, ids, &self.model),
            Kind::BedrockMessages => bedrock::from_anthropic::response(body, ids, &self.model),
            Kind::NativeCount | Kind::CohereNative => Some((body.to_vec(), Usage::default())),
            Kind::BedrockCount => {
                anthropic::from_anthropic::count_response(body).map(|b| (b, Usage::default()))
            }
            Kind::OpenAICount => openai::count::response(body).map(|b| (b, Usage::default())),
        };
        const UNREADABLE: &str = "the provider's response could not be read";
        translated.ok_or_else(|| match self.client() {
            ClientApi::Anthropic => anthropic::reply::error_json("api_error", UNREADABLE),
            ClientApi::Cohere => cohere_error(UNREADABLE),
            ClientApi::OpenAI => openai::error_json("upstream_error", UNREADABLE, None),
        })
    }

    /// An error answer (status ≥ 400) in the client's shape, with the provider's message.
    /// `error_type` is Bedrock's `x-amzn-errortype` header.
    pub fn error(&self, status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        match self.client() {
            ClientApi::Anthropic => return anthropic_error(status, body),
            // Cohere's errors are `{"message"}` already; anything else is wrapped so.
            ClientApi::Cohere => {
                let given = serde_json::from_slice::<serde_json::Value>(body).ok();
                if given.is_some_and(|v| v.get("message").is_some_and(|m| m.is_string())) {
                    return body.to_vec();
                }
                let text: String = String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(2048)
                    .collect();
                return cohere_error(&text);
            }
            ClientApi::OpenAI => {}
        }
        let parsed = match self.kind {
            Kind::Identity => None,
            Kind::Anthropic | Kind::NativeMessages | Kind::NativeCount => {
                anthropic::from_openai::error(body)
            }
            Kind::OpenAIMessages | Kind::OpenAICount | Kind::CohereNative => None,
            Kind::Gemini | Kind::VertexEmbedding { .. } => gemini::from_openai::error(body),
            Kind::AwsAnthropic
            | Kind::Bedrock
            | Kind::TitanEmbedding { .. }
            | Kind::AwsNativeMessages
            | Kind::BedrockMessages
            | Kind::BedrockCount => {
                let message = serde_json::from_slice::<bedrock::ErrorBody<'_>>(body).ok();
                message.map(|m| {
                    let kind = error_type.map_or("AWSBedrockBackendError", bedrock::error_type);
                    (kind.to_owned(), m.message.into_owned())
                })
            }
        };
        let (kind, message) = parsed.unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            (
                "upstream_error".to_owned(),
                text.trim().chars().take(2048).collect(),
            )
        });
        let code = status.to_string();
        openai::error_json(&kind, &message, Some(&code))
    }

    /// The translator of a streamed answer.
    pub fn stream(&self, ids: Ids) -> StreamTranslator {
        let sse = || Framing::Sse(sse::Framer::default());
        let event_stream = || Framing::EventStream(eventstream::Decoder::default());
        let (model, usage) = (self.model.as_str(), self.include_usage);
        let (framing, events) = match self.kind {
            Kind::Bedrock => (
                event_stream(),
                Events::Bedrock(bedrock::from_openai::Stream::new(ids, model, usage)),
            ),
            Kind::AwsAnthropic => (
                event_stream(),
                Events::Anthropic(anthropic::from_openai::Stream::new(ids, model, usage)),
            ),
            // Embeddings are never streamed; a provider that streamed one anyway is read as
            // Gemini's whole-object events, which an embedding list is not: an error event.
            Kind::Gemini | Kind::TitanEmbedding { .. } | Kind::VertexEmbedding { .. } => (
                sse(),
                Events::Gemini(gemini::from_openai::Stream::new(ids, model, usage)),
            ),
            Kind::Anthropic | Kind::Identity => (
                sse(),
                Events::Anthropic(anthropic::from_openai::Stream::new(ids, model, usage)),
            ),
            // A count or a rerank is never streamed: read as Anthropic's events, it is an
            // error event.
            Kind::NativeMessages | Kind::NativeCount | Kind::OpenAICount | Kind::CohereNative => {
                (sse(), Events::Relay(Default::default()))
            }
            Kind::AwsNativeMessages | Kind::BedrockCount => {
                (event_stream(), Events::Relay(Default::default()))
            }
            Kind::OpenAIMessages => (
                sse(),
                Events::FromChat(openai::from_anthropic::Stream::new(ids, model)),
            ),
            Kind::BedrockMessages => (
                event_stream(),
                Events::FromConverse(bedrock::from_anthropic::Stream::new(ids, model)),
            ),
        };
        StreamTranslator { framing, events }
    }
}

/// The client's error for a provider's error answer, in Anthropic's shape: an Anthropic
/// error keeps its type; any other provider's message gets the type of the HTTP status.
fn anthropic_error(status: u16, body: &[u8]) -> Vec<u8> {
    use anthropic::reply::{error_json, error_type};
    #[derive(Deserialize)]
    struct Shape<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        error: anthropic::ErrorObject<'a>,
    }
    // OpenAI's and Google's errors also have an `error` object: Anthropic's says `"type":
    // "error"` beside it.
    if let Ok(shape) = serde_json::from_slice::<Shape<'_>>(body)
        && shape.kind == "error"
        && !shape.error.kind.is_empty()
    {
        return error_json(&shape.error.kind, &shape.error.message);
    }
    let message = openai::from_anthropic::error_message(body)
        .or_else(|| {
            serde_json::from_slice::<bedrock::ErrorBody<'_>>(body)
                .ok()
                .map(|b| b.message.into_owned())
                .filter(|m| !m.is_empty())
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(2048)
                .collect()
        });
    error_json(error_type(status), &message)
}

/// Cohere's error shape: `{"message": "..."}`.
pub(crate) fn cohere_error(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default()
}

/// An error kind of Bedrock's stream (or ours) as Anthropic names errors.
fn anthropic_kind(kind: &str) -> &str {
    match kind {
        "throttlingException" => "rate_limit_error",
        "serviceUnavailableException" => "overloaded_error",
        "validationException" => "invalid_request_error",
        k if k.ends_with("_error") && k != "upstream_error" => k,
        _ => "api_error",
    }
}

/// Translates a provider's stream into the client's, chunk by chunk: bytes in, whole client
/// events out. Whatever the provider sends, it ends with the client API's last event
/// (`[DONE]`, `message_stop`) or an error event.
#[derive(Debug)]
pub struct StreamTranslator {
    framing: Framing,
    events: Events,
}

#[derive(Debug)]
enum Framing {
    Sse(sse::Framer),
    EventStream(eventstream::Decoder),
}

#[derive(Debug)]
enum Events {
    Anthropic(anthropic::from_openai::Stream),
    Bedrock(bedrock::from_openai::Stream),
    Gemini(gemini::from_openai::Stream),
    /// Anthropic's own events, for an Anthropic client.
    Relay(anthropic::from_anthropic::Passthrough),
    FromChat(openai::from_anthropic::Stream),
    FromConverse(bedrock::from_anthropic::Stream),
}

/// Bedrock wraps each Anthropic event of `invoke-with-response-stream` as
/// `{"bytes": "<base64 of the event's JSON>"}`.
#[derive(Deserialize)]
struct Wrapped<'a> {
    #[serde(borrow)]
    bytes: Cow<'a, str>,
}

impl StreamTranslator {
    /// Translates bytes as they arrive, appending the client's bytes to `out`.
    /// Bytes held back waiting for the rest of an event or a message.
    pub fn pending(&self) -> usize {
        match &self.framing {
            Framing::Sse(framer) => framer.pending(),
            Framing::EventStream(decoder) => decoder.pending(),
        }
    }

    pub fn feed(&mut self, data: &[u8], out: &mut BytesMut) {
        match &mut self.framing {
            Framing::Sse(framer) => framer.push(data),
            Framing::EventStream(decoder) => decoder.push(data),
        }
        self.drain(false, out);
    }

    /// The upstream body ended (whole or cut).
    pub fn finish(&mut self, out: &mut BytesMut) {
        self.drain(true, out);
        match &mut self.events {
            Events::Anthropic(s) => s.finish(out),
            Events::Bedrock(s) => s.finish(out),
            Events::Gemini(s) => s.finish(out),
            Events::Relay(s) => s.finish(out),
            Events::FromChat(s) => s.finish(out),
            Events::FromConverse(s) => s.finish(out),
        }
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Option<Usage> {
        match &self.events {
            Events::Anthropic(s) => s.usage(),
            Events::Bedrock(s) => s.usage(),
            Events::Gemini(s) => s.usage(),
            Events::Relay(s) => s.usage(),
            Events::FromChat(s) => s.usage(),
            Events::FromConverse(s) => s.usage(),
        }
    }

    fn drain(&mut self, at_end: bool, out: &mut BytesMut) {
        loop {
            match &mut self.framing {
                Framing::Sse(framer) => {
                    let Some(event) = framer.next_event(at_end) else {
                        return;
                    };
                    match &mut self.events {
                        Events::Anthropic(s) => s.event(&event.data, out),
                        Events::Gemini(s) => s.event(&event.data, out),
                        Events::Relay(s) => s.event(&event.data, out),
                        Events::FromChat(s) => s.event(&event.data, out),
                        Events::Bedrock(_) | Events::FromConverse(_) => {}
                    }
                }
                Framing::EventStream(decoder) => match decoder.next_frame() {
                    Ok(None) => return,
                    Ok(Some(frame)) => self.frame(frame, out),
                    Err(corrupt) => {
                        self.fail("upstream_error", &corrupt.to_string(), out);
                        return;
                    }
                },
            }
        }
    }

    fn frame(&mut self, frame: eventstream::Frame, out: &mut BytesMut) {
        let (name, payload) = match frame {
            eventstream::Frame::Event { name, payload } => (name, payload),
            eventstream::Frame::Exception { kind, payload } => {
                let message = serde_json::from_slice::<bedrock::ErrorBody<'_>>(&payload)
                    .map(|b| b.message.into_owned())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&payload).into_owned());
                self.fail(&kind, &message, out);
                return;
            }
        };
        match &mut self.events {
            Events::Bedrock(s) => s.event(&name, &payload, out),
            Events::FromConverse(s) => s.event(&name, &payload, out),
            Events::Anthropic(_) | Events::Relay(_) => {
                if name != "chunk" {
                    return;
                }
                let decoded = serde_json::from_slice::<Wrapped<'_>>(&payload)
                    .ok()
                    .and_then(|w| {
                        base64::engine::general_purpose::STANDARD
                            .decode(w.bytes.as_bytes())
                            .ok()
                    });
                match (decoded, &mut self.events) {
                    (Some(event), Events::Anthropic(s)) => s.event(&event, out),
                    (Some(event), Events::Relay(s)) => s.event(&event, out),
                    _ => self.fail(
                        "upstream_error",
                        "the provider sent a chunk that could not be read",
                        out,
                    ),
                }
            }
            // Gemini and OpenAI answer in server-sent events only.
            Events::Gemini(_) | Events::FromChat(_) => {}
        }
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        match &mut self.events {
            Events::Anthropic(s) => s.fail(kind, message, out),
            Events::Bedrock(s) => s.fail(kind, message, out),
            Events::Gemini(s) => s.fail(kind, message, out),
            Events::Relay(s) => s.fail(anthropic_kind(kind), message, out),
            Events::FromChat(s) => s.fail(anthropic_kind(kind), message, out),
            Events::FromConverse(s) => s.fail(anthropic_kind(kind), message, out),
        }
    }
}
