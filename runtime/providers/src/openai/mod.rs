//! The OpenAI Chat Completions API as the gateway's clients speak it: the request read with
//! serde (every field a client may send; fields we do not know are kept so that a translation
//! can refuse them by name), and the response, stream chunks and errors written back.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/chat>. The extensions `top_k`
//! and `thinking` are read as the reference gateway reads them, for Anthropic-family backends.

pub mod count;
pub mod from_anthropic;

use crate::{Error, Usage};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
    /// Extension: Anthropic's and Gemini's top-k sampling.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Extension: Anthropic's `thinking` object, passed as given.
    #[serde(default)]
    pub thinking: Option<Value>,
    /// Everything else the client sent, by name.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("the chat completion request is invalid: {e}")))
    }

    /// `max_completion_tokens`, or the deprecated `max_tokens`.
    pub fn max_output(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage.unwrap_or(false))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: Content,
    },
    Developer {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        tool_calls: Option<Vec<ToolCall>>,
        #[serde(default)]
        refusal: Option<String>,
        /// Extension: the reasoning text of an earlier turn, as some clients send it back.
        #[serde(default)]
        reasoning_content: Option<String>,
    },
    Tool {
        content: Content,
        tool_call_id: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: Value },
    File { file: Value },
    Refusal { refusal: String },
}

impl Part {
    /// The part's type as the client named it.
    pub fn kind(&self) -> &'static str {
        match self {
            Part::Text { .. } => "text",
            Part::ImageUrl { .. } => "image_url",
            Part::InputAudio { .. } => "input_audio",
            Part::File { .. } => "file",
            Part::Refusal { .. } => "refusal",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// An image given inline as a data URL (`data:image/png;base64,...`).
#[derive(Debug, PartialEq, Eq)]
pub struct DataUrl<'a> {
    pub media_type: &'a str,
    /// Base64, as given.
    pub data: &'a str,
}

impl ImageUrl {
    /// The inline image, when the URL is a base64 data URL.
    pub fn data_url(&self) -> Option<DataUrl<'_>> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        Some(DataUrl { media_type, data })
    }
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as the model produced it.
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    Named {
        function: NamedFunction,
    },
}

#[derive(Debug, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Debug, Deserialize)]
pub struct JsonSchema {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

impl ChatRequest {
    /// The JSON schema the answer must follow, for a provider whose structured outputs take
    /// a schema (Anthropic's `output_config.format`, Converse's `outputConfig.textFormat`):
    /// `None` for text; `json_object`, which asks for JSON of any shape, and a `json_schema`
    /// without its `schema` are 422.
    pub fn output_schema(&self, schema: &'static str) -> Result<Option<OutputSchema<'_>>, Error> {
        match &self.response_format {
            None | Some(ResponseFormat::Text) => Ok(None),
            Some(ResponseFormat::JsonObject) => Err(Error::unsupported(
                schema,
                "`response_format` `json_object` (send a `json_schema`)",
            )),
            Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
                Some(value) => Ok(Some(OutputSchema {
                    schema: value,
                    name: &json_schema.name,
                    description: json_schema.description.as_deref(),
                })),
                None => Err(Error::unsupported(
                    schema,
                    "a `json_schema` response format without its `schema`",
                )),
            },
        }
    }
}

/// A `json_schema` response format that has its schema.
#[derive(Clone, Copy, Debug)]
pub struct OutputSchema<'a> {
    pub schema: &'a Value,
    pub name: &'a str,
    pub description: Option<&'a str>,
}

/// The text of a message's content (parts joined), refusing parts other than text.
pub fn text_only(content: &Content, what: &str, schema: &'static str) -> Result<String, Error> {
    match content {
        Content::Text(text) => Ok(text.clone()),
        Content::Parts(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text { text } => {
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        out.push_str(text);
                    }
                    other => {
                        return Err(Error::unsupported(
                            schema,
                            format!("`{}` content in {what}", other.kind()),
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The visible texts of an assistant turn: its content (parts joined, text only) and its
/// refusal, each when not empty, in that order.
pub fn assistant_texts(
    content: Option<&Content>,
    refusal: Option<&String>,
    schema: &'static str,
) -> Result<Vec<String>, Error> {
    let mut texts = Vec::new();
    if let Some(content) = content {
        let text = text_only(content, "an assistant message", schema)?;
        if !text.is_empty() {
            texts.push(text);
        }
    }
    if let Some(refusal) = refusal.filter(|r| !r.is_empty()) {
        texts.push(refusal.clone());
    }
    Ok(texts)
}

// ---- what the gateway writes back ----

/// A finish reason OpenAI clients know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: [Choice; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default, Serialize)]
pub struct ResponseMessage {
    pub role: &'static str,
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
    /// The model's visible reasoning, where the provider returns it (the field DeepSeek and
    /// the reference use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut,
}

#[derive(Debug, Serialize)]
pub struct FunctionOut {
    pub name: String,
    pub arguments: String,
}

/// OpenAI's `usage`, with the cache and reasoning details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
    /// Not in OpenAI's API: the tokens written to the provider's prompt cache (the
    /// reference reports them under this name).
    pub cache_creation_tokens: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        UsageOut {
            prompt_tokens: u.input,
            completion_tokens: u.output,
            total_tokens: u.total(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: u.cached_input,
                cache_creation_tokens: u.cache_creation_input,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: u.reasoning,
            },
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tool_calls: &'a [DeltaToolCall<'a>],
}

#[derive(Debug, Serialize)]
pub struct DeltaToolCall<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: DeltaFunction<'a>,
}

#[derive(Debug, Serialize)]
pub struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// Writes OpenAI chat chunks as server-sent events. Holds what every chunk repeats.
#[derive(Debug)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: i64,
}

impl ChunkWriter {
    pub fn new(ids: crate::Ids, model: &str) -> Self {
        ChunkWriter {
            id: ids.id,
            model: model.to_owned(),
            created: ids.created,
        }
    }

    /// `data: {chunk}\n\n` with one choice carrying `delta`.
    pub fn delta(&self, out: &mut BytesMut, delta: Delta<'_>, finish: Option<FinishReason>) {
        let choices = [ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }];
        self.write(out, &choices, None);
    }

    /// The usage-only chunk that ends a stream whose client asked for usage.
    pub fn usage(&self, out: &mut BytesMut, usage: Usage) {
        self.write(out, &[], Some(usage.into()));
    }

    fn write(&self, out: &mut BytesMut, choices: &[ChunkChoice<'_>], usage: Option<UsageOut>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        data_event(out, &chunk);
    }
}

/// `data: <json>\n\n`.
pub fn data_event(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    // Serializing our own types into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), value);
    out.put_slice(b"\n\n");
}

/// The end of an OpenAI stream.
pub fn done(out: &mut BytesMut) {
    out.put_slice(b"data: [DONE]\n\n");
}

/// OpenAI's error object.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
    pub code: Option<&'a str>,
}

/// An error in OpenAI's shape, as JSON.
pub fn error_json(kind: &str, message: &str, code: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ErrorObject {
            kind,
            message,
            code,
        },
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_are_split_into_media_type_and_data() {
        let image = ImageUrl {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
            detail: None,
        };
        assert_eq!(
            image.data_url(),
            Some(DataUrl {
                media_type: "image/png",
                data: "iVBORw0KGgo="
            })
        );
        let remote = ImageUrl {
            url: "https://example.com/cat.png".into(),
            detail: None,
        };
        assert_eq!(remote.data_url(), None);
    }

    #[test]
    fn unknown_fields_are_kept_by_name() {
        let request = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"foo":1}"#,
        )
        .map_err(|e| e.to_string());
        let request = request.as_ref().map(|r| r.other.keys().collect::<Vec<_>>());
        assert_eq!(request, Ok(vec![&"foo".to_owned()]));
    }
}
