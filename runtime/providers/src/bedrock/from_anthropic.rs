//! Anthropic Messages → Bedrock Converse / ConverseStream (any Bedrock model, not only
//! Claude), and the answer back as an Anthropic message: whole, as Anthropic's stream events,
//! or as an Anthropic error; `count_tokens` → Bedrock's CountTokens with a Converse input.
//!
//! Decisions:
//! - `thinking` blocks of earlier turns go back as `reasoningContent` with their signatures
//!   (Claude requires them in a tool-use loop with thinking on), `redacted_thinking` as
//!   `redactedContent`;
//! - `thinking` and `top_k` go in `additionalModelRequestFields` in Anthropic's form, for
//!   Claude models only (422 for others), as in the OpenAI translation;
//! - images must be inline (base64): a URL is 422 (Converse takes bytes, and fetching URLs for
//!   clients would be a server-side request forgery hole);
//! - tool choice `none` leaves the tools out (422 when the conversation already holds tool
//!   calls: Converse then needs them); `disable_parallel_tool_use` has no Converse form: 422;
//! - `metadata.user_id` has no effect on the answer and no Converse field that takes any
//!   string: it is left out, like OpenAI's `user`;
//! - `output_config` → `outputConfig`: its `format` as `textFormat` (the schema as a JSON
//!   string), its `effort` as `effort`; CountTokens' Converse input takes neither, so a count
//!   leaves them out;
//! - a `tool_result` with `is_error` is Converse's `status: error`;
//! - stop reasons: `guardrail_intervened` and `content_filtered` are `refusal`, and
//!   `model_context_window_exceeded` keeps its name (Anthropic has it too).

use super::from_openai::push;
use super::{Block, BlockDelta, BlockStart, ConverseRequest, ConverseResponse, InferenceConfig};
use super::{InputSchema, MessageStop, Metadata, RawUsage, Reasoning, SystemBlock, Tool};
use super::{ToolConfig, ToolResult, ToolResultBlock, ToolSpec, ToolUse};
use crate::anthropic::messages::{InBlockKind, InContent, InImageSource, MessagesRequest, Role};
use crate::anthropic::reply::{EventWriter, Message, OutBlock, OutUsage, StopReason};
use crate::{Error, Ids, Usage};
use bytes::BytesMut;
use serde_json::{Value, json};

const SCHEMA: &str = "AWSBedrock";

/// The Converse request for `request`, to be sent for `model`.
pub fn request(request: &MessagesRequest, model: &str) -> Result<Vec<u8>, Error> {
    let out = converse(request, model)?;
    serde_json::to_vec(&out).map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

/// CountTokens' body: the conversation, without the inference settings.
pub fn count_request(request: &MessagesRequest, model: &str) -> Result<Vec<u8>, Error> {
    let mut converse = converse(request, model)?;
    // CountTokens' Converse input has neither.
    converse.inference_config = None;
    converse.output_config = None;
    serde_json::to_vec(&json!({"input": {"converse": converse}}))
        .map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

fn converse(request: &MessagesRequest, model: &str) -> Result<ConverseRequest, Error> {
    request.refuse_unknown(SCHEMA)?;
    let mut out = ConverseRequest::default();
    if let Some(system) = &request.system {
        for text in system.texts("the system prompt", SCHEMA)? {
            out.system.push(SystemBlock { text });
        }
    }
    for message in &request.messages {
        let (role, blocks) = match (&message.role, &message.content) {
            (Role::User, content) => ("user", user_blocks(content)?),
            (Role::Assistant, content) => ("assistant", assistant_blocks(content)?),
        };
        push(&mut out.messages, role, blocks);
    }
    let config = InferenceConfig {
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: request.stop_sequences.clone().unwrap_or_default(),
    };
    if config.max_tokens.is_some()
        || config.temperature.is_some()
        || config.top_p.is_some()
        || !config.stop_sequences.is_empty()
    {
        out.inference_config = Some(config);
    }
    out.tool_config = tool_config(request, &out)?;
    let mut config = serde_json::Map::new();
    if let Some(schema) = request.output_schema(SCHEMA)? {
        config.insert("textFormat".into(), super::text_format(schema, None, None));
    }
    if let Some(effort) = request.effort() {
        config.insert("effort".into(), effort.into());
    }
    if !config.is_empty() {
        out.output_config = Some(Value::Object(config));
    }
    let mut fields = serde_json::Map::new();
    if let Some(thinking) = request.thinking.as_ref().filter(|t| !t.is_null()) {
        request.thinking_budget()?;
        fields.insert("thinking".into(), thinking.clone());
    }
    if let Some(k) = request.top_k {
        fields.insert("top_k".into(), k.into());
    }
    if !fields.is_empty() {
        if !(model.contains("anthropic") || model.contains("claude")) {
            let given = if fields.contains_key("thinking") {
                "`thinking`"
            } else {
                "`top_k`"
            };
            return Err(Error::unsupported(
                SCHEMA,
                format!("{given} for a model other than Claude"),
            ));
        }
        out.additional_model_request_fields = Some(Value::Object(fields));
    }
    Ok(out)
}

fn user_blocks(content: &InContent) -> Result<Vec<Block>, Error> {
    let blocks = match content {
        InContent::Text(text) => return Ok(vec![Block::Text(text.clone())]),
        InContent::Blocks(blocks) => blocks,
    };
    blocks
        .iter()
        .map(|block| match block.known()? {
            InBlockKind::Text { text } => Ok(Block::Text(text.clone())),
            InBlockKind::Image { source } => match source {
                InImageSource::Base64 { media_type, data } => {
                    super::image(media_type, data, SCHEMA)
                }
                _ => Err(Error::unsupported(
                    SCHEMA,
                    "an image by URL or file id (send it inline as base64)",
                )),
            },
            InBlockKind::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let texts = match content {
                    Some(content) => content.texts("a tool result", SCHEMA)?,
                    None => Vec::new(),
                };
                Ok(Block::ToolResult(ToolResult {
                    tool_use_id: tool_use_id.clone(),
                    content: texts
                        .into_iter()
                        .map(|text| ToolResultBlock { text })
                        .collect(),
                    status: is_error.then_some("error"),
                }))
            }
            other => Err(Error::invalid(format!(
                "a user message cannot hold a `{}` block",
                other.kind()
            ))),
        })
        .collect()
}

fn assistant_blocks(content: &InContent) -> Result<Vec<Block>, Error> {
    let blocks = match content {
        InContent::Text(text) => return Ok(vec![Block::Text(text.clone())]),
        InContent::Blocks(blocks) => blocks,
    };
    blocks
        .iter()
        .map(|block| match block.known()? {
            InBlockKind::Text { text } => Ok(Block::Text(text.clone())),
            InBlockKind::ToolUse { id, name, input } => Ok(Block::ToolUse(ToolUse {
                tool_use_id: id.clone(),
                name: name.clone(),
                input: input.clone(),
            })),
            InBlockKind::Thinking {
                thinking,
                signature,
            } => Ok(Block::ReasoningContent(Reasoning::ReasoningText {
                text: thinking.clone(),
                signature: signature.clone(),
            })),
            InBlockKind::RedactedThinking { data } => Ok(Block::ReasoningContent(
                Reasoning::RedactedContent(data.clone()),
            )),
            other => Err(Error::invalid(format!(
                "an assistant message cannot hold a `{}` block",
                other.kind()
            ))),
        })
        .collect()
}

fn tool_config(
    request: &MessagesRequest,
    converse: &ConverseRequest,
) -> Result<Option<ToolConfig>, Error> {
    let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let choice = match &request.tool_choice {
        None => None,
        Some(choice) => {
            if choice.disable_parallel_tool_use == Some(true) {
                return Err(Error::unsupported(SCHEMA, "`disable_parallel_tool_use`"));
            }
            match choice.kind.as_str() {
                "auto" => Some(json!({"auto": {}})),
                "any" => Some(json!({"any": {}})),
                "tool" => {
                    let name = choice.name.as_ref().ok_or_else(|| {
                        Error::invalid("`tool_choice` of type `tool` needs a `name`")
                    })?;
                    Some(json!({"tool": {"name": name}}))
                }
                "none" => {
                    if super::uses_tools(&converse.messages) {
                        return Err(Error::unsupported(
                            SCHEMA,
                            "`tool_choice` `none` in a conversation that has tool calls",
                        ));
                    }
                    return Ok(None);
                }
                other => {
                    return Err(Error::invalid(format!(
                        "`tool_choice` type `{other}` is not one of auto, any, tool, none"
                    )));
                }
            }
        }
    };
    let tools = tools
        .iter()
        .map(|tool| {
            Ok(Tool {
                tool_spec: ToolSpec {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    input_schema: InputSchema {
                        json: tool.schema(SCHEMA)?,
                    },
                },
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Some(ToolConfig {
        tools,
        tool_choice: choice,
    }))
}

/// Converse's `stopReason` as Anthropic's.
pub fn stop_reason(stop: &str) -> StopReason {
    match stop {
        "max_tokens" => StopReason::MaxTokens,
        "model_context_window_exceeded" => StopReason::ModelContextWindowExceeded,
        "tool_use" => StopReason::ToolUse,
        "stop_sequence" => StopReason::StopSequence,
        "content_filtered" | "guardrail_intervened" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A Converse response as an Anthropic message; `None` when it is not one.
pub fn response(body: &[u8], ids: &Ids, model: &str) -> Option<(Vec<u8>, Usage)> {
    let parsed: ConverseResponse<'_> = serde_json::from_slice(body).ok()?;
    let mut message = Message::new(&ids.id, model);
    for block in parsed.output.message.content {
        if let Some(reasoning) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            message.content.push(OutBlock::Thinking {
                thinking: reasoning.text.into_owned(),
                signature: reasoning
                    .signature
                    .map(|s| s.into_owned())
                    .unwrap_or_default(),
            });
        }
        if let Some(text) = block.text {
            message.content.push(OutBlock::Text {
                text: text.into_owned(),
            });
        }
        if let Some(call) = block.tool_use {
            message.content.push(OutBlock::ToolUse {
                id: call.tool_use_id.into_owned(),
                name: call.name.into_owned(),
                input: call.input,
            });
        }
    }
    message.stop_reason = Some(
        parsed
            .stop_reason
            .as_deref()
            .map_or(StopReason::EndTurn, stop_reason),
    );
    let usage = parsed.usage.usage();
    message.usage = OutUsage::from(usage);
    Some((serde_json::to_vec(&message).ok()?, usage))
}

/// The state of one ConverseStream translated into Anthropic's events.
#[derive(Debug)]
pub struct Stream {
    writer: EventWriter,
    usage: Option<RawUsage>,
}

impl Stream {
    pub fn new(ids: Ids, model: &str) -> Self {
        Stream {
            writer: EventWriter::new(ids, model),
            usage: None,
        }
    }

    /// One event (`:event-type` and its JSON payload).
    pub fn event(&mut self, name: &str, payload: &[u8], out: &mut BytesMut) {
        if self.writer.ended() {
            return;
        }
        if self.translate(name, payload, out).is_none() {
            self.writer.unreadable(out);
        }
    }

    fn translate(&mut self, name: &str, payload: &[u8], out: &mut BytesMut) -> Option<()> {
        let w = &mut self.writer;
        match name {
            "messageStart" => w.start(out),
            "contentBlockStart" => {
                let start: BlockStart<'_> = serde_json::from_slice(payload).ok()?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    w.tool_start(
                        start.content_block_index,
                        &tool.tool_use_id,
                        &tool.name,
                        out,
                    );
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta<'_> = serde_json::from_slice(payload).ok()?;
                let index = delta.content_block_index;
                if let Some(text) = &delta.delta.text {
                    w.text(index, text, out);
                }
                if let Some(reasoning) = &delta.delta.reasoning_content {
                    if let Some(text) = &reasoning.text {
                        w.thinking(index, text, out);
                    }
                    if let Some(signature) = &reasoning.signature {
                        w.signature(index, signature, out);
                    }
                }
                if let Some(input) = &delta.delta.tool_use
                    && !w.tool_input(index, &input.input, out)
                {
                    return None;
                }
            }
            "contentBlockStop" => w.close(out),
            "messageStop" => {
                let stop: MessageStop<'_> = serde_json::from_slice(payload).ok()?;
                let reason = stop
                    .stop_reason
                    .as_deref()
                    .map_or(StopReason::EndTurn, stop_reason);
                w.stop(reason, out);
            }
            "metadata" => {
                let metadata: Metadata = serde_json::from_slice(payload).ok()?;
                self.usage = metadata.usage.or(self.usage);
                if self.writer.stopped() {
                    self.writer.end(self.usage(), out);
                }
            }
            _ => {}
        }
        Some(())
    }

    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.writer.fail(kind, message, out);
    }

    /// The upstream closed: the end of the message if the model stopped, an error if not.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.writer.stopped() {
            self.writer.end(self.usage(), out);
        }
        self.writer.cut(out);
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(|u| u.usage())
    }
}
