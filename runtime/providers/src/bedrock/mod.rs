//! AWS Bedrock Runtime: the Converse API's request and response shapes, the model path, and
//! the binary event stream (`application/vnd.amazon.eventstream`) its streaming operations
//! answer with, decoded by `aws-smithy-eventstream`.
//!
//! Reference: the `bedrock-runtime` service model (botocore ships it; the oracle test
//! validates our bodies against it), <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>.

pub mod eventstream;
pub mod from_anthropic;
pub mod from_openai;

use crate::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// `/model/{modelId}/{operation}`, the model id percent-encoded as botocore sends it (all but
/// RFC 3986's unreserved characters), so that `arn:aws:...:inference-profile/x` stays one
/// path segment.
pub fn model_path(model: &str, operation: &str) -> String {
    let mut path = String::with_capacity(model.len() + operation.len() + 16);
    path.push_str("/model/");
    crate::translate::escape_segment(model, &mut path);
    path.push('/');
    path.push_str(operation);
    path
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    /// Structured output: `{"textFormat": {"type": "json_schema", "structure": {"jsonSchema":
    /// {"schema": "<the schema as a JSON string>", "name", "description"}}}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
}

/// Converse's `outputConfig.textFormat` for a JSON schema the answer must follow. Converse
/// takes the schema as a string of JSON.
pub fn text_format(schema: &Value, name: Option<&str>, description: Option<&str>) -> Value {
    let mut json_schema = serde_json::Map::new();
    json_schema.insert("schema".into(), schema.to_string().into());
    if let Some(name) = name {
        json_schema.insert("name".into(), name.into());
    }
    if let Some(description) = description {
        json_schema.insert("description".into(), description.into());
    }
    serde_json::json!({"type": "json_schema", "structure": {"jsonSchema": json_schema}})
}

#[derive(Debug, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Vec<Block>,
}

#[derive(Debug, Serialize)]
pub struct SystemBlock {
    pub text: String,
}

/// A content block: one key naming its kind.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Block {
    Text(String),
    Image(Image),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
    /// Claude's thinking of an earlier turn, given back with its signature.
    ReasoningContent(Reasoning),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reasoning {
    ReasoningText {
        text: String,
        signature: String,
    },
    /// Base64 (a blob).
    RedactedContent(String),
}

/// Whether the conversation already holds tool calls or results (Converse then needs the
/// tool configuration, so tool choice `none` cannot be had by leaving the tools out).
pub(crate) fn uses_tools(messages: &[Message]) -> bool {
    messages
        .iter()
        .flat_map(|m| &m.content)
        .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)))
}

/// An image block from a media type and base64 data; Converse takes four formats.
pub fn image(media_type: &str, data: &str, schema: &'static str) -> Result<Block, crate::Error> {
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(crate::Error::unsupported(
                schema,
                format!("an image of type `{other}`"),
            ));
        }
    };
    Ok(Block::Image(Image {
        format,
        source: ImageSource {
            bytes: data.to_owned(),
        },
    }))
}

#[derive(Debug, Serialize)]
pub struct Image {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    pub source: ImageSource,
}

#[derive(Debug, Serialize)]
pub struct ImageSource {
    /// Base64 (a blob in the JSON protocol).
    pub bytes: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ToolResultBlock>,
    /// `error` for a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ToolResultBlock {
    pub text: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub tool_spec: ToolSpec,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: InputSchema,
}

#[derive(Debug, Serialize)]
pub struct InputSchema {
    pub json: Value,
}

// ---- what Bedrock answers ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse<'a> {
    #[serde(borrow)]
    pub output: Output<'a>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: RawUsage,
}

#[derive(Debug, Deserialize)]
pub struct Output<'a> {
    #[serde(borrow)]
    pub message: OutputMessage<'a>,
}

#[derive(Debug, Deserialize)]
pub struct OutputMessage<'a> {
    #[serde(borrow, default)]
    pub content: Vec<BlockOut<'a>>,
}

/// A response content block: the key present says its kind; kinds we do not map are
/// skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockOut<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseOut<'a>>,
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningOut<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseOut<'a> {
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub input: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningOut<'a> {
    #[serde(borrow, default)]
    pub reasoning_text: Option<ReasoningText<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct ReasoningText<'a> {
    #[serde(borrow, default)]
    pub text: Cow<'a, str>,
    #[serde(borrow, default)]
    pub signature: Option<Cow<'a, str>>,
}

/// Bedrock's usage: `inputTokens` excludes the cache reads and writes.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl RawUsage {
    pub fn usage(&self) -> Usage {
        Usage {
            input: self
                .input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_write_input_tokens),
            output: self.output_tokens,
            cached_input: self.cache_read_input_tokens,
            cache_creation_input: self.cache_write_input_tokens,
            reasoning: 0,
            total: self.total_tokens,
        }
    }
}

/// The error body of Bedrock's JSON protocol; the type is the `x-amzn-errortype` header.
#[derive(Debug, Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(borrow, default, alias = "Message")]
    pub message: Cow<'a, str>,
}

/// The error type named by an `x-amzn-errortype` value (`ValidationException:http://...`).
pub fn error_type(header: &str) -> &str {
    header.split(':').next().unwrap_or(header)
}

// ---- ConverseStream events ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStart<'a> {
    pub(crate) content_block_index: u32,
    #[serde(borrow, default)]
    pub(crate) start: Option<StartOf<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartOf<'a> {
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolStart<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolStart<'a> {
    #[serde(borrow)]
    pub(crate) tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockDelta<'a> {
    pub(crate) content_block_index: u32,
    #[serde(borrow)]
    pub(crate) delta: DeltaOf<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeltaOf<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolInput<'a>>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<ReasoningDelta<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ToolInput<'a> {
    #[serde(borrow, default)]
    pub(crate) input: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReasoningDelta<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) signature: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageStop<'a> {
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) usage: Option<RawUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_one_escaped_segment() {
        assert_eq!(
            model_path("anthropic.claude-3-5-sonnet-20240620-v1:0", "converse"),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            model_path(
                "arn:aws:bedrock:us-east-1:1:application-inference-profile/a b",
                "converse-stream"
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fa%20b/converse-stream"
        );
        assert_eq!(
            error_type("ValidationException:http://internal"),
            "ValidationException"
        );
    }
}
