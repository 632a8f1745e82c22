//! The one entry the proxy calls: a client request for an operation, and the backend's
//! schema, give the upstream request (path, body, extra headers) and the translator of its
//! answer (whole body, stream, or error): OpenAI clients here, Anthropic clients in
//! [`messages`], the answers in [`answer`].

mod answer;
mod messages;

pub use answer::{ResponseTranslator, StreamTranslator};

use crate::bedrock;
use crate::openai::{self, ChatRequest};
use crate::{Error, Schema, anthropic, azure, embeddings, gemini};
use answer::Kind;
use bytes::BytesMut;

/// The API a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientApi {
    OpenAI,
    /// Anthropic's Messages API, under `/anthropic`.
    Anthropic,
    /// Cohere's API, under `/cohere`.
    Cohere,
}

/// What a client sent.
#[derive(Clone, Copy, Debug)]
pub struct ClientRequest<'a> {
    pub api: ClientApi,
    pub operation: Operation,
    pub body: &'a [u8],
    /// The client's `anthropic-beta` header (Bedrock takes it in the body).
    pub anthropic_beta: Option<&'a str>,
}

impl<'a> ClientRequest<'a> {
    /// An OpenAI client's request.
    pub fn openai(operation: Operation, body: &'a [u8]) -> Self {
        ClientRequest {
            api: ClientApi::OpenAI,
            operation,
            body,
            anthropic_beta: None,
        }
    }
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
    /// Anthropic's token count of a Messages request.
    CountTokens,
    /// Cohere's rerank (v2).
    Rerank,
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
            Operation::CountTokens => "/anthropic/v1/messages/count_tokens",
            Operation::Rerank => "/cohere/v2/rerank",
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
    /// `/` and the schema's prefix (`/v1` for OpenAI and Anthropic by default), without a
    /// trailing slash: where the OpenAI and Anthropic APIs live on the backend.
    pub prefix: &'a str,
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
    /// Headers set only when the client sent none of that name.
    pub header_defaults: Vec<(&'static str, &'static str)>,
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
pub fn translate(request: &ClientRequest<'_>, target: &Target<'_>) -> Result<Translation, Error> {
    match request.api {
        ClientApi::Anthropic => return messages::translate(request, target),
        ClientApi::Cohere => return cohere(request, target),
        ClientApi::OpenAI => {}
    }
    let (operation, body) = (request.operation, request.body);
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
            let path = format!("{}/messages", target.prefix);
            (path, body, headers, Kind::Anthropic)
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

/// Cohere's clients reach Cohere natively: `/v2/rerank` under the schema's prefix, the body
/// as it came, the answer relayed. No other schema reranks.
fn cohere(request: &ClientRequest<'_>, target: &Target<'_>) -> Result<Translation, Error> {
    if target.schema != Schema::Cohere || request.operation != Operation::Rerank {
        return Err(untranslated(target.schema, request.operation));
    }
    Ok(translated(
        format!("{}/v2/rerank", target.prefix),
        None,
        Vec::new(),
        Kind::CohereNative,
        target.model.to_owned(),
        false,
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
            header_defaults: Vec::new(),
        },
        response: ResponseTranslator::new(kind, model, include_usage),
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

/// Refuses penalties and `seed`, which the Anthropic family and Converse have no form of.
pub(crate) fn refuse_penalties_and_seed(
    chat: &ChatRequest,
    schema: &'static str,
) -> Result<(), Error> {
    for (field, set) in [
        (
            "`presence_penalty`",
            chat.presence_penalty.is_some_and(|p| p != 0.0),
        ),
        (
            "`frequency_penalty`",
            chat.frequency_penalty.is_some_and(|p| p != 0.0),
        ),
        ("`seed`", chat.seed.is_some()),
    ] {
        if set {
            return Err(Error::unsupported(schema, field));
        }
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
