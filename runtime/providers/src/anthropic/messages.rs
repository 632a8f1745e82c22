//! Anthropic's Messages API as the gateway's clients send it (`/anthropic/v1/messages` and
//! `/anthropic/v1/messages/count_tokens`): the request read with serde, fields we do not know
//! kept by name so that a translation can refuse them. What the gateway writes back is
//! [`super::reply`].
//!
//! Reference: <https://docs.anthropic.com/en/api/messages>.

use crate::Error;
use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/messages` (and `count_tokens`, which takes the same fields but `max_tokens`).
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub system: Option<InContent>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    #[serde(default)]
    pub tool_choice: Option<InToolChoice>,
    /// `{"type": "enabled", "budget_tokens": n}` or `{"type": "disabled"}`.
    #[serde(default)]
    pub thinking: Option<Value>,
    #[serde(default)]
    pub metadata: Option<InMetadata>,
    /// Structured output and effort.
    #[serde(default)]
    pub output_config: Option<InOutputConfig>,
    /// Everything else the client sent, by name.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `output_config`: `{"format": {"type": "json_schema", "schema": {...}}, "effort": "high"}`.
#[derive(Debug, Deserialize)]
pub struct InOutputConfig {
    #[serde(default)]
    pub format: Option<InOutputFormat>,
    /// `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default)]
    pub effort: Option<String>,
    /// Anything else, by name, to refuse it clearly.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct InOutputFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub schema: Value,
}

impl MessagesRequest {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("the messages request is invalid: {e}")))
    }

    /// The extended-thinking budget, when thinking is enabled.
    pub fn thinking_budget(&self) -> Result<Option<u32>, Error> {
        let Some(thinking) = self.thinking.as_ref().filter(|t| !t.is_null()) else {
            return Ok(None);
        };
        match thinking.get("type").and_then(Value::as_str) {
            Some("disabled") => Ok(None),
            Some("enabled") => thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .map(|b| Some(u32::try_from(b).unwrap_or(u32::MAX)))
                .ok_or_else(|| Error::invalid("`thinking.budget_tokens` is required")),
            _ => Err(Error::invalid(
                "`thinking.type` must be `enabled` or `disabled`",
            )),
        }
    }

    /// Refuses the fields this gateway does not know (null values are absent fields).
    pub fn refuse_unknown(&self, schema: &'static str) -> Result<(), Error> {
        if let Some((name, _)) = self.other.iter().find(|(_, value)| !value.is_null()) {
            return Err(Error::unsupported(schema, format!("`{name}`")));
        }
        let config = self.output_config.as_ref();
        let unknown = config.and_then(|c| c.other.iter().find(|(_, value)| !value.is_null()));
        if let Some((name, _)) = unknown {
            return Err(Error::unsupported(
                schema,
                format!("`output_config.{name}`"),
            ));
        }
        Ok(())
    }

    /// The JSON schema of `output_config.format`, when the answer must follow one.
    pub fn output_schema(&self, schema: &'static str) -> Result<Option<&Value>, Error> {
        let format = self.output_config.as_ref().and_then(|c| c.format.as_ref());
        match format {
            None => Ok(None),
            Some(format) if format.kind != "json_schema" => Err(Error::unsupported(
                schema,
                format!("an `output_config.format` of type `{}`", format.kind),
            )),
            Some(format) if !format.schema.is_object() => Err(Error::invalid(
                "`output_config.format.schema` must be a JSON schema object",
            )),
            Some(format) => Ok(Some(&format.schema)),
        }
    }

    /// `output_config.effort`.
    pub fn effort(&self) -> Option<&str> {
        self.output_config.as_ref()?.effort.as_deref()
    }
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: Role,
    pub content: InContent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A message's (or the system prompt's) content: a string, or blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

impl InContent {
    /// The text of a string or of text-only blocks, for what takes text alone (a system
    /// prompt, a tool result); anything else is named in the error.
    pub fn texts(&self, what: &str, schema: &'static str) -> Result<Vec<String>, Error> {
        match self {
            InContent::Text(text) => Ok(vec![text.clone()]),
            InContent::Blocks(blocks) => blocks
                .iter()
                .map(|b| match b.known()? {
                    InBlockKind::Text { text } => Ok(text.clone()),
                    other => Err(Error::unsupported(
                        schema,
                        format!("a `{}` block in {what}", other.kind()),
                    )),
                })
                .collect(),
        }
    }
}

/// A content block: a kind we know, or another one, kept by name to refuse it clearly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InBlock {
    Known(InBlockKind),
    Unknown {
        #[serde(rename = "type")]
        kind: String,
    },
}

impl InBlock {
    pub fn known(&self) -> Result<&InBlockKind, Error> {
        match self {
            InBlock::Known(block) => Ok(block),
            InBlock::Unknown { kind } if KNOWN_BLOCKS.contains(&kind.as_str()) => Err(
                Error::invalid(format!("a `{kind}` content block is malformed")),
            ),
            InBlock::Unknown { kind } => Err(Error::Invalid(
                format!("content blocks of type `{kind}` cannot be translated").into(),
            )),
        }
    }
}

const KNOWN_BLOCKS: &[&str] = &[
    "text",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

/// The blocks a client sends. `cache_control` and `citations` on them are read by no
/// translation: prompt caching is the provider's own business (OpenAI caches by itself).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InBlockKind {
    Text {
        text: String,
    },
    Image {
        source: InImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<InContent>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

impl InBlockKind {
    pub fn kind(&self) -> &'static str {
        match self {
            InBlockKind::Text { .. } => "text",
            InBlockKind::Image { .. } => "image",
            InBlockKind::ToolUse { .. } => "tool_use",
            InBlockKind::ToolResult { .. } => "tool_result",
            InBlockKind::Thinking { .. } => "thinking",
            InBlockKind::RedactedThinking { .. } => "redacted_thinking",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InImageSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// A Files API id, or a kind added later.
    #[serde(other)]
    Other,
}

/// A tool: a client tool (`type` absent or `custom`), or one of Anthropic's server tools.
#[derive(Debug, Deserialize)]
pub struct InTool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

impl InTool {
    /// A client tool's input schema; a server tool is refused by its type.
    pub fn schema(&self, schema: &'static str) -> Result<Value, Error> {
        match self.kind.as_deref() {
            None | Some("custom") => Ok(self
                .input_schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}))),
            Some(kind) => Err(Error::unsupported(
                schema,
                format!("Anthropic's server tool `{kind}`"),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct InMetadata {
    #[serde(default)]
    pub user_id: Option<String>,
}
