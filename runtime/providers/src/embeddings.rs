//! OpenAI `/v1/embeddings` → Amazon Titan text embeddings on Bedrock (`InvokeModel`) and
//! Vertex AI text embeddings (`:predict`), and their answers back as OpenAI's embedding list.
//!
//! Decisions:
//! - Titan embeds one text per call: a list of more than one input is a 422 (the client
//!   sends one request per text), as are token-id inputs, which neither provider reads;
//! - `dimensions` → Titan's `dimensions`, Vertex's `parameters.outputDimensionality`;
//! - `encoding_format: "base64"` (what the `openai` SDKs ask for by default) is honoured by
//!   the gateway: the provider's floats are written as little-endian `f32`, base64-encoded,
//!   as OpenAI does (as floats, they are copied as the provider wrote them);
//! - `user` is left out, as for chat; other fields the gateway does not know are 422.

use crate::bedrock;
use crate::{Error, Usage};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Input,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<u32>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingRequest {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("the embeddings request is invalid: {e}")))
    }

    /// Whether the client asked for base64 (`float` otherwise).
    pub fn base64(&self) -> Result<bool, Error> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(false),
            Some("base64") => Ok(true),
            Some(other) => Err(Error::invalid(format!(
                "`encoding_format` must be `float` or `base64`, not `{other}`"
            ))),
        }
    }

    /// The texts, refusing token ids and unknown fields.
    fn texts(&self, schema: &'static str) -> Result<Vec<&str>, Error> {
        if let Some((name, _)) = self.other.iter().find(|(_, v)| !v.is_null()) {
            return Err(Error::unsupported(schema, format!("`{name}`")));
        }
        match &self.input {
            Input::Text(text) => Ok(vec![text]),
            Input::Texts(texts) if texts.is_empty() => Err(Error::invalid("`input` is empty")),
            Input::Texts(texts) => Ok(texts.iter().map(String::as_str).collect()),
            Input::Tokens(_) | Input::TokenLists(_) => {
                Err(Error::unsupported(schema, "`input` as token ids"))
            }
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

/// The `InvokeModel` path and body for a Titan embedding model.
pub fn titan_request(request: &EmbeddingRequest) -> Result<(String, Vec<u8>), Error> {
    let texts = request.texts("AWSBedrock")?;
    let [text] = texts[..] else {
        return Err(Error::unsupported(
            "AWSBedrock",
            format!(
                "{} inputs in one request (Titan embeds one text per call)",
                texts.len()
            ),
        ));
    };
    let body = serde_json::to_vec(&TitanRequest {
        input_text: text,
        dimensions: request.dimensions,
    })
    .map_err(|e| Error::invalid(format!("cannot encode request: {e}")))?;
    Ok((bedrock::model_path(&request.model, "invoke"), body))
}

#[derive(Serialize)]
struct VertexRequest<'a> {
    instances: Vec<VertexInstance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<VertexParameters>,
}

#[derive(Serialize)]
struct VertexInstance<'a> {
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VertexParameters {
    output_dimensionality: u32,
}

/// The `:predict` body for a Vertex AI text-embedding model.
pub fn vertex_request(request: &EmbeddingRequest) -> Result<Vec<u8>, Error> {
    let texts = request.texts("GCPVertexAI")?;
    serde_json::to_vec(&VertexRequest {
        instances: texts
            .into_iter()
            .map(|content| VertexInstance { content })
            .collect(),
        parameters: request.dimensions.map(|n| VertexParameters {
            output_dimensionality: n,
        }),
    })
    .map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f64>,
    #[serde(default)]
    input_text_token_count: u64,
}

#[derive(Deserialize)]
struct VertexResponse {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: VertexEmbedding,
}

#[derive(Deserialize)]
struct VertexEmbedding {
    values: Vec<f64>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    token_count: f64,
}

/// A Titan answer as an OpenAI embedding list; `None` when it is not one.
pub fn titan_response(body: &[u8], model: &str, base64: bool) -> Option<(Vec<u8>, Usage)> {
    let parsed: TitanResponse = serde_json::from_slice(body).ok()?;
    let usage = input_usage(parsed.input_text_token_count);
    Some((list(&[parsed.embedding], model, base64, usage)?, usage))
}

/// A Vertex answer as an OpenAI embedding list; `None` when it is not one.
pub fn vertex_response(body: &[u8], model: &str, base64: bool) -> Option<(Vec<u8>, Usage)> {
    let parsed: VertexResponse = serde_json::from_slice(body).ok()?;
    let tokens = parsed
        .predictions
        .iter()
        .filter_map(|p| p.embeddings.statistics.as_ref())
        .map(|s| s.token_count as u64)
        .sum();
    let usage = input_usage(tokens);
    let vectors: Vec<Vec<f64>> = parsed
        .predictions
        .into_iter()
        .map(|p| p.embeddings.values)
        .collect();
    Some((list(&vectors, model, base64, usage)?, usage))
}

fn input_usage(tokens: u64) -> Usage {
    Usage {
        input: tokens,
        ..Usage::default()
    }
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: ListUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Serialize)]
struct ListUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

fn list(vectors: &[Vec<f64>], model: &str, base64: bool, usage: Usage) -> Option<Vec<u8>> {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|&f| (f as f32).to_le_bytes())
                    .collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                vector.iter().map(|&f| Value::from(f)).collect()
            },
        })
        .collect();
    serde_json::to_vec(&List {
        object: "list",
        data,
        model,
        usage: ListUsage {
            prompt_tokens: usage.input,
            total_tokens: usage.input,
        },
    })
    .ok()
}
