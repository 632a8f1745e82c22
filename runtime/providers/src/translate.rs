//! The one entry the proxy calls: a client request for an operation, and the backend's
//! schema, give the upstream request (path, body, extra headers) and the translator of its
//! answer (whole body, stream, or error).

use crate::bedrock::{self, eventstream};
use crate::openai::{self, ChatRequest};
use crate::{Error, Schema, Usage, anthropic, azure, embeddings, gemini, sse};
use base64::Engine as _;
use bytes::BytesMut;
use serde::Deserialize;
use std::borrow::Cow;

/// The API a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientApi {
    OpenAI,
}

/// What the client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// Anthropic's Messages API.
    Messages,
    /// Every other OpenAI endpoint (images, audio, models): passed through to OpenAI only.
    Other,
}

impl Operation {
    /// The client path, for messages.
    pub fn path(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "/v1/chat/completions",
            Operation::Completions => "/v1/completions",
            Operation::Embeddings => "/v1/embeddings",
            Operation::Responses => "/v1/responses",
            Operation::Messages => "/anthropic/v1/messages",
            Operation::Other => "/v1/images/*, /v1/audio/*",
        }
    }
}

/// The backend a request goes to.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub schema: Schema,
    /// The model the backend is asked for (the client's, or the backend's override): Azure's
    /// deployment. Chat translations read it from the body, where it is the same.
    pub model: &'a str,
    /// `schema.version`: Azure's `api-version`, the Anthropic version on AWS and GCP.
    pub version: Option<&'a str>,
    /// The GCP project and region (from the backend's GCPCredentials policy).
    pub gcp: Option<(&'a str, &'a str)>,
}

/// The request to send upstream, under the backend's base URL.
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Absolute path and query.
    pub path: String,
    /// `None`: the client's body, unchanged.
    pub body: Option<Vec<u8>>,
    /// Headers the provider requires (never credentials).
    pub headers: Vec<(&'static str, &'static str)>,
}

/// What a request becomes.
#[derive(Debug)]
pub enum Translation {
    /// The client's path and body go as they are (the backend speaks the client's API).
    Passthrough,
    Translated {
        request: UpstreamRequest,
        response: ResponseTranslator,
    },
}

/// The id and creation time of a response, given by the caller (this crate has no clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    /// Used when the provider gives no id of its own.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
}

/// Translates a request for `target`.
pub fn translate(
    client: ClientApi,
    operation: Operation,
    target: &Target<'_>,
    body: &[u8],
) -> Result<Translation, Error> {
    let ClientApi::OpenAI = client;
    let schema = target.schema;
    if schema == Schema::OpenAI {
        return Ok(Translation::Passthrough);
    }
    if schema == Schema::AzureOpenAI {
        let model = target.model.to_owned();
        let path = azure::path(operation, &model, target.version)
            .ok_or_else(|| untranslated(schema, operation))?;
        return Ok(translated(
            path,
            None,
            Vec::new(),
            Kind::Identity,
            model,
            false,
        ));
    }
    if operation == Operation::Embeddings {
        return embeddings(target, body);
    }
    if operation != Operation::ChatCompletions {
        return Err(untranslated(schema, operation));
    }
    let chat = ChatRequest::parse(body)?;
    let include_usage = chat.include_usage();
    let stream = chat.stream;
    let (path, body, headers, kind) = match schema {
        Schema::AWSBedrock => {
            let operation = if stream {
                "converse-stream"
            } else {
                "converse"
            };
            let path = bedrock::model_path(&chat.model, operation);
            let body = bedrock::from_openai::request(&chat, &chat.model)?;
            (path, body, Vec::new(), Kind::Bedrock)
        }
        Schema::Anthropic => {
            let placement = anthropic::from_openai::Placement::Body { model: &chat.model };
            let body = anthropic::from_openai::request(&chat, placement, schema.as_str())?;
            let headers = vec![("anthropic-version", anthropic::API_VERSION)];
            ("/v1/messages".to_owned(), body, headers, Kind::Anthropic)
        }
        Schema::AWSAnthropic => {
            let version = target.version.unwrap_or(anthropic::BEDROCK_VERSION);
            let placement = anthropic::from_openai::Placement::Path {
                version,
                stream_field: false,
            };
            let body = anthropic::from_openai::request(&chat, placement, schema.as_str())?;
            let operation = if stream {
                "invoke-with-response-stream"
            } else {
                "invoke"
            };
            let path = bedrock::model_path(&chat.model, operation);
            (path, body, Vec::new(), Kind::AwsAnthropic)
        }
        Schema::GCPAnthropic => {
            let version = target.version.unwrap_or(anthropic::VERTEX_VERSION);
            let placement = anthropic::from_openai::Placement::Path {
                version,
                stream_field: true,
            };
            let body = anthropic::from_openai::request(&chat, placement, schema.as_str())?;
            let method = if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            let path = gcp_path(target, "anthropic", &chat.model, method)?;
            (path, body, Vec::new(), Kind::Anthropic)
        }
        Schema::GCPVertexAI => {
            let body = gemini::from_openai::request(&chat)?;
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            let path = gcp_path(target, "google", &chat.model, method)?;
            (path, body, Vec::new(), Kind::Gemini)
        }
        _ => return Err(untranslated(schema, operation)),
    };
    Ok(translated(
        path,
        Some(body),
        headers,
        kind,
        chat.model,
        stream && include_usage,
    ))
}

/// `/v1/embeddings` to Titan on Bedrock or to Vertex AI.
fn embeddings(target: &Target<'_>, body: &[u8]) -> Result<Translation, Error> {
    let request = embeddings::EmbeddingRequest::parse(body)?;
    let base64 = request.base64()?;
    let (path, body, kind) = match target.schema {
        Schema::AWSBedrock => {
            let (path, body) = embeddings::titan_request(&request)?;
            (path, body, Kind::TitanEmbedding { base64 })
        }
        Schema::GCPVertexAI => {
            let body = embeddings::vertex_request(&request)?;
            let path = gcp_path(target, "google", &request.model, "predict")?;
            (path, body, Kind::VertexEmbedding { base64 })
        }
        schema => return Err(untranslated(schema, Operation::Embeddings)),
    };
    Ok(translated(
        path,
        Some(body),
        Vec::new(),
        kind,
        request.model,
        false,
    ))
}

fn translated(
    path: String,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, &'static str)>,
    kind: Kind,
    model: String,
    include_usage: bool,
) -> Translation {
    Translation::Translated {
        request: UpstreamRequest {
            path,
            body,
            headers,
        },
        response: ResponseTranslator {
            kind,
            model,
            include_usage,
        },
    }
}

fn untranslated(schema: Schema, operation: Operation) -> Error {
    Error::Untranslated {
        schema: schema.as_str(),
        operation,
    }
}

/// `/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`.
fn gcp_path(
    target: &Target<'_>,
    publisher: &str,
    model: &str,
    method: &str,
) -> Result<String, Error> {
    let (project, region) = target.gcp.ok_or(Error::Config(
        "a GCP backend needs a GCPCredentials policy naming its project and region",
    ))?;
    let mut path =
        format!("/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/");
    // Vertex model versions are written `name@version`; `@` is a path character (RFC 3986
    // pchar) and Google's SDKs send it as it is.
    for (i, piece) in model.split('@').enumerate() {
        if i > 0 {
            path.push('@');
        }
        escape_segment(piece, &mut path);
    }
    path.push(':');
    path.push_str(method);
    Ok(path)
}

/// Refuses what no translated backend can honour: several choices, log probabilities, and
/// fields this gateway does not know (by name).
pub(crate) fn refuse_common(chat: &ChatRequest, schema: &'static str) -> Result<(), Error> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(Error::unsupported(schema, "`n` greater than 1"));
    }
    if chat.logprobs == Some(true) || chat.top_logprobs.is_some() {
        return Err(Error::unsupported(schema, "`logprobs`"));
    }
    let unknown = chat.other.iter().find(|(name, value)| {
        // `store: false` asks for nothing; a null is an absent field.
        !(value.is_null() || (name.as_str() == "store" && value == &false))
    });
    if let Some((name, _)) = unknown {
        return Err(Error::unsupported(schema, format!("`{name}`")));
    }
    Ok(())
}

/// Percent-encodes a path segment: all but RFC 3986's unreserved characters.
pub(crate) fn escape_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
}

/// An error event in an OpenAI stream (the `openai` SDKs raise it as an `APIError`).
pub(crate) fn stream_error(out: &mut BytesMut, kind: &str, message: &str) {
    openai::data_event(
        out,
        &openai::ErrorBody {
            error: openai::ErrorObject {
                kind,
                message,
                code: None,
            },
        },
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
}

/// Turns a provider's answer into the client's API.
#[derive(Debug)]
pub struct ResponseTranslator {
    kind: Kind,
    model: String,
    include_usage: bool,
}

impl ResponseTranslator {
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
        };
        translated.ok_or_else(|| {
            openai::error_json(
                "upstream_error",
                "the provider's response could not be read",
                None,
            )
        })
    }

    /// An error answer (status ≥ 400) in the client's shape, with the provider's message.
    /// `error_type` is Bedrock's `x-amzn-errortype` header.
    pub fn error(&self, status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        let parsed = match self.kind {
            Kind::Identity => None,
            Kind::Anthropic => anthropic::from_openai::error(body),
            Kind::Gemini | Kind::VertexEmbedding { .. } => gemini::from_openai::error(body),
            Kind::AwsAnthropic | Kind::Bedrock | Kind::TitanEmbedding { .. } => {
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
        let (framing, events) = match self.kind {
            Kind::Bedrock => (
                Framing::EventStream(eventstream::Decoder::default()),
                Events::Bedrock(bedrock::from_openai::Stream::new(
                    ids,
                    &self.model,
                    self.include_usage,
                )),
            ),
            Kind::AwsAnthropic => (
                Framing::EventStream(eventstream::Decoder::default()),
                Events::Anthropic(anthropic::from_openai::Stream::new(
                    ids,
                    &self.model,
                    self.include_usage,
                )),
            ),
            // Embeddings are never streamed; a provider that streamed one anyway is read as
            // Gemini's whole-object events, which an embedding list is not: an error event.
            Kind::Gemini | Kind::TitanEmbedding { .. } | Kind::VertexEmbedding { .. } => (
                Framing::Sse(sse::Framer::default()),
                Events::Gemini(gemini::from_openai::Stream::new(
                    ids,
                    &self.model,
                    self.include_usage,
                )),
            ),
            Kind::Anthropic | Kind::Identity => (
                Framing::Sse(sse::Framer::default()),
                Events::Anthropic(anthropic::from_openai::Stream::new(
                    ids,
                    &self.model,
                    self.include_usage,
                )),
            ),
        };
        StreamTranslator { framing, events }
    }
}

/// Translates a provider's stream into the client's, chunk by chunk: bytes in, whole client
/// events out. Whatever the provider sends, it ends with `[DONE]` or an error event.
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
        }
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Option<Usage> {
        match &self.events {
            Events::Anthropic(s) => s.usage(),
            Events::Bedrock(s) => s.usage(),
            Events::Gemini(s) => s.usage(),
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
                        Events::Bedrock(_) => {}
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
        match (frame, &mut self.events) {
            (eventstream::Frame::Event { name, payload }, Events::Bedrock(s)) => {
                s.event(&name, &payload, out)
            }
            (eventstream::Frame::Event { name, payload }, Events::Anthropic(s)) => {
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
                match decoded {
                    Some(event) => s.event(&event, out),
                    None => s.fail(
                        "upstream_error",
                        "the provider sent a chunk that could not be read",
                        out,
                    ),
                }
            }
            // Gemini answers in server-sent events only.
            (eventstream::Frame::Event { .. }, Events::Gemini(_)) => {}
            (eventstream::Frame::Exception { kind, payload }, _) => {
                let message = serde_json::from_slice::<bedrock::ErrorBody<'_>>(&payload)
                    .map(|b| b.message.into_owned())
                    .unwrap_or_else(|_| String::from_utf8_lossy(&payload).into_owned());
                self.fail(&kind, &message, out);
            }
        }
    }

    fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        match &mut self.events {
            Events::Anthropic(s) => s.fail(kind, message, out),
            Events::Bedrock(s) => s.fail(kind, message, out),
            Events::Gemini(s) => s.fail(kind, message, out),
        }
    }
}
