//! OpenAI Chat Completions → Bedrock Converse / ConverseStream, and the answer back:
//! response, stream events (decoded from the event stream), errors.
//!
//! Decisions:
//! - images must be inline (data URLs): Converse takes image bytes, and a gateway that
//!   fetched URLs for its clients would be a server-side request forgery hole (422 otherwise);
//! - `tool_choice: "none"` has no Converse form: honoured by leaving the tools out when the
//!   conversation has no tool calls yet, 422 when it has (Converse then needs the tools);
//! - `reasoning_effort`, `thinking` and `top_k` go in `additionalModelRequestFields` in
//!   Anthropic's form for Claude models; for other models they are 422;
//! - `response_format` `json_schema` → `outputConfig.textFormat` (the schema as a JSON string,
//!   with its name and description); `json_object`, `n` > 1, `logprobs`, penalties, `seed` and
//!   `parallel_tool_calls: false` are 422;
//! - `user` (an end-user id for OpenAI's abuse monitoring, with no effect on the output) has
//!   no Converse field and is left out rather than refused, so that applications that always
//!   send it keep working.

use super::{Block, ConverseRequest, ConverseResponse, InferenceConfig};
use super::{BlockDelta, BlockStart, MessageStop, Metadata, ToolResultBlock, ToolSpec, ToolUse};
use super::{InputSchema, Message, RawUsage, SystemBlock, Tool, ToolConfig, ToolResult};
use crate::anthropic::from_openai::{
    DEFAULT_MAX_TOKENS, arguments, thinking_budget, thinking_conflicts,
};
use crate::openai::{self, ChatRequest, Content, Delta, FinishReason, Part};
use crate::stream::Core;
use crate::translate::{Ids, refuse_common, refuse_penalties_and_seed};
use crate::{Error, Usage};
use bytes::BytesMut;
use serde_json::{Value, json};

const SCHEMA: &str = "AWSBedrock";

/// The Converse request for `chat`, to be sent for `model`.
pub fn request(chat: &ChatRequest, model: &str) -> Result<Vec<u8>, Error> {
    refuse_common(chat, SCHEMA)?;
    refuse_penalties_and_seed(chat, SCHEMA)?;
    // Converse's toolChoice has no form of Anthropic's `disable_parallel_tool_use`.
    if chat.parallel_tool_calls == Some(false) {
        return Err(Error::unsupported(SCHEMA, "`parallel_tool_calls: false`"));
    }
    let mut out = ConverseRequest::default();
    if let Some(format) = chat.output_schema(SCHEMA)? {
        let text_format = super::text_format(format.schema, Some(format.name), format.description);
        out.output_config = Some(json!({"textFormat": text_format}));
    }
    for message in &chat.messages {
        convert_message(message, &mut out)?;
    }
    let stop_sequences = chat
        .stop
        .as_ref()
        .map(|s| s.sequences())
        .unwrap_or_default();
    let config = InferenceConfig {
        max_tokens: chat.max_output(),
        temperature: chat.temperature,
        top_p: chat.top_p,
        stop_sequences,
    };
    if config.max_tokens.is_some()
        || config.temperature.is_some()
        || config.top_p.is_some()
        || !config.stop_sequences.is_empty()
    {
        out.inference_config = Some(config);
    }
    out.tool_config = tool_config(chat, &out.messages)?;
    out.additional_model_request_fields = additional_fields(chat, model)?;
    let budget = out
        .additional_model_request_fields
        .as_ref()
        .and_then(|f| f.get("thinking"))
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .map(|t| t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0));
    if let Some(budget) = budget {
        // Claude's rules for extended thinking hold on Bedrock too.
        thinking_conflicts(chat, SCHEMA)?;
        let config = out
            .inference_config
            .get_or_insert_with(InferenceConfig::default);
        match config.max_tokens {
            Some(max) if u64::from(max) <= budget => {
                return Err(Error::unsupported(
                    SCHEMA,
                    format!(
                        "a thinking budget of {budget} tokens with `max_tokens` {max} (the budget must be below it)"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                let budget = u32::try_from(budget).unwrap_or(u32::MAX);
                config.max_tokens = Some(DEFAULT_MAX_TOKENS.saturating_add(budget));
            }
        }
    }
    serde_json::to_vec(&out).map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

/// Claude's own request fields, which Converse passes to the model.
fn additional_fields(chat: &ChatRequest, model: &str) -> Result<Option<Value>, Error> {
    let claude = model.contains("anthropic") || model.contains("claude");
    let mut fields = serde_json::Map::new();
    if let Some(thinking) = &chat.thinking {
        fields.insert("thinking".into(), thinking.clone());
    } else if let Some(effort) = chat.reasoning_effort.as_deref() {
        let budget = thinking_budget(effort)
            .ok_or_else(|| Error::unsupported(SCHEMA, format!("`reasoning_effort` `{effort}`")))?;
        fields.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    if let Some(k) = chat.top_k {
        fields.insert("top_k".into(), k.into());
    }
    if fields.is_empty() {
        return Ok(None);
    }
    if !claude {
        let given = if chat.thinking.is_some() {
            "`thinking`"
        } else if chat.reasoning_effort.is_some() {
            "`reasoning_effort`"
        } else {
            "`top_k`"
        };
        return Err(Error::unsupported(
            SCHEMA,
            format!("{given} for a model other than Claude"),
        ));
    }
    Ok(Some(Value::Object(fields)))
}

fn convert_message(message: &openai::Message, out: &mut ConverseRequest) -> Result<(), Error> {
    match message {
        openai::Message::System { content } | openai::Message::Developer { content } => {
            let text = openai::text_only(content, "a system message", SCHEMA)?;
            out.system.push(SystemBlock { text });
        }
        openai::Message::User { content } => {
            let blocks = user_blocks(content)?;
            push(&mut out.messages, "user", blocks);
        }
        openai::Message::Assistant {
            content,
            tool_calls,
            refusal,
            reasoning_content: _,
        } => {
            let mut blocks: Vec<Block> =
                openai::assistant_texts(content.as_ref(), refusal.as_ref(), SCHEMA)?
                    .into_iter()
                    .map(Block::Text)
                    .collect();
            for call in tool_calls.iter().flatten() {
                blocks.push(Block::ToolUse(ToolUse {
                    tool_use_id: call.id.clone(),
                    name: call.function.name.clone(),
                    input: arguments(&call.function.arguments)?,
                }));
            }
            push(&mut out.messages, "assistant", blocks);
        }
        openai::Message::Tool {
            content,
            tool_call_id,
        } => {
            let text = openai::text_only(content, "a tool message", SCHEMA)?;
            let result = Block::ToolResult(ToolResult {
                tool_use_id: tool_call_id.clone(),
                content: vec![ToolResultBlock { text }],
                status: None,
            });
            push(&mut out.messages, "user", vec![result]);
        }
    }
    Ok(())
}

/// Appends `blocks` as a turn of `role`, merged into the previous turn of the same role
/// (Converse wants the turns to alternate).
pub(crate) fn push(messages: &mut Vec<Message>, role: &'static str, blocks: Vec<Block>) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(Message {
            role,
            content: blocks,
        }),
    }
}

fn user_blocks(content: &Content) -> Result<Vec<Block>, Error> {
    let parts = match content {
        Content::Text(text) => return Ok(vec![Block::Text(text.clone())]),
        Content::Parts(parts) => parts,
    };
    parts
        .iter()
        .map(|part| match part {
            Part::Text { text } => Ok(Block::Text(text.clone())),
            Part::ImageUrl { image_url } => {
                let inline = image_url.data_url().ok_or_else(|| {
                    Error::unsupported(SCHEMA, "an image by URL (send it inline as a data URL)")
                })?;
                super::image(inline.media_type, inline.data, SCHEMA)
            }
            other => Err(Error::unsupported(
                SCHEMA,
                format!("`{}` content in a user message", other.kind()),
            )),
        })
        .collect()
}

fn tool_config(chat: &ChatRequest, messages: &[Message]) -> Result<Option<ToolConfig>, Error> {
    let Some(tools) = chat.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let choice = match &chat.tool_choice {
        None => None,
        Some(openai::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" => Some(json!({"any": {}})),
            "none" => {
                if super::uses_tools(messages) {
                    return Err(Error::unsupported(
                        SCHEMA,
                        "`tool_choice` `none` in a conversation that has tool calls",
                    ));
                }
                return Ok(None);
            }
            other => {
                return Err(Error::unsupported(
                    SCHEMA,
                    format!("`tool_choice` `{other}`"),
                ));
            }
        },
        Some(openai::ToolChoice::Named { function }) => {
            Some(json!({"tool": {"name": function.name}}))
        }
    };
    let tools = tools
        .iter()
        .map(|t| {
            if t.kind != "function" {
                return Err(Error::unsupported(
                    SCHEMA,
                    format!("a tool of type `{}`", t.kind),
                ));
            }
            Ok(Tool {
                tool_spec: ToolSpec {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    input_schema: InputSchema {
                        json: t
                            .function
                            .parameters
                            .clone()
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    },
                },
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(ToolConfig {
        tools,
        tool_choice: choice,
    }))
}

/// Converse's `stopReason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> FinishReason {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "content_filtered" | "guardrail_intervened" => FinishReason::ContentFilter,
        // end_turn, stop_sequence
        _ => FinishReason::Stop,
    }
}

/// A Converse response as a chat completion; `None` when it is not one.
pub fn response(body: &[u8], ids: &Ids, model: &str) -> Option<(Vec<u8>, Usage)> {
    let parsed: ConverseResponse<'_> = serde_json::from_slice(body).ok()?;
    let mut reply = openai::ResponseMessage {
        role: "assistant",
        ..Default::default()
    };
    let mut text = String::new();
    for block in &parsed.output.message.content {
        if let Some(t) = &block.text {
            text.push_str(t);
        }
        if let Some(call) = &block.tool_use {
            reply.tool_calls.push(openai::ToolCallOut {
                index: None,
                id: call.tool_use_id.to_string(),
                kind: "function",
                function: openai::FunctionOut {
                    name: call.name.to_string(),
                    arguments: call.input.to_string(),
                },
            });
        }
        if let Some(reasoning) = block
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
        {
            reply
                .reasoning_content
                .get_or_insert_with(String::new)
                .push_str(&reasoning.text);
        }
    }
    reply.content = Some(text);
    let usage = parsed.usage.usage();
    let finish = parsed
        .stop_reason
        .as_deref()
        .map_or(FinishReason::Stop, finish_reason);
    let completion = openai::ChatCompletion {
        id: &ids.id,
        object: "chat.completion",
        created: ids.created,
        model,
        choices: [openai::Choice {
            index: 0,
            message: reply,
            finish_reason: Some(finish),
        }],
        usage: Some(usage.into()),
    };
    Some((serde_json::to_vec(&completion).ok()?, usage))
}

// ---- the stream ----

/// The state of one translated ConverseStream.
#[derive(Debug)]
pub struct Stream {
    core: Core,
    usage: Option<RawUsage>,
    /// Converse content-block index → OpenAI tool-call index, for the tool-use blocks.
    tool_index: Vec<(u32, u32)>,
    stopped: bool,
}

impl Stream {
    pub fn new(ids: Ids, model: &str, include_usage: bool) -> Self {
        Stream {
            core: Core::new(ids, model, include_usage),
            usage: None,
            tool_index: Vec::new(),
            stopped: false,
        }
    }

    /// One event (`:event-type` and its JSON payload).
    pub fn event(&mut self, name: &str, payload: &[u8], out: &mut BytesMut) {
        if self.core.ended() {
            return;
        }
        if stream_event(self, name, payload, out).is_none() {
            self.core.unreadable(out);
        }
    }

    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.core.fail(kind, message, out);
    }

    /// The upstream closed: the end of the stream if it stopped, an error event if not.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.stopped {
            self.end(out);
        }
        self.core.cut(out);
    }

    fn end(&mut self, out: &mut BytesMut) {
        self.core.end(self.usage(), out);
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(|u| u.usage())
    }
}

/// One ConverseStream event as OpenAI chunks; `None` when its payload cannot be read.
pub fn stream_event(
    state: &mut Stream,
    name: &str,
    payload: &[u8],
    out: &mut BytesMut,
) -> Option<()> {
    let w = &state.core.writer;
    match name {
        "messageStart" => {
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            w.delta(out, delta, None);
        }
        "contentBlockStart" => {
            let start: BlockStart<'_> = serde_json::from_slice(payload).ok()?;
            if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                let call = state.tool_index.len() as u32;
                state.tool_index.push((start.content_block_index, call));
                let calls = [openai::DeltaToolCall {
                    index: call,
                    id: Some(&tool.tool_use_id),
                    kind: Some("function"),
                    function: openai::DeltaFunction {
                        name: Some(&tool.name),
                        arguments: "",
                    },
                }];
                let delta = Delta {
                    tool_calls: &calls,
                    ..Delta::default()
                };
                state.core.writer.delta(out, delta, None);
            }
        }
        "contentBlockDelta" => {
            let delta: BlockDelta<'_> = serde_json::from_slice(payload).ok()?;
            if let Some(text) = &delta.delta.text {
                let d = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                w.delta(out, d, None);
            }
            if let Some(text) = delta
                .delta
                .reasoning_content
                .as_ref()
                .and_then(|r| r.text.as_ref())
            {
                let d = Delta {
                    reasoning_content: Some(text),
                    ..Delta::default()
                };
                w.delta(out, d, None);
            }
            if let Some(input) = &delta.delta.tool_use {
                let index = delta.content_block_index;
                let &(_, call) = state.tool_index.iter().find(|(i, _)| *i == index)?;
                let calls = [openai::DeltaToolCall {
                    index: call,
                    id: None,
                    kind: None,
                    function: openai::DeltaFunction {
                        name: None,
                        arguments: &input.input,
                    },
                }];
                let d = Delta {
                    tool_calls: &calls,
                    ..Delta::default()
                };
                w.delta(out, d, None);
            }
        }
        "messageStop" => {
            let stop: MessageStop<'_> = serde_json::from_slice(payload).ok()?;
            let finish = stop
                .stop_reason
                .as_deref()
                .map_or(FinishReason::Stop, finish_reason);
            w.delta(out, Delta::default(), Some(finish));
            state.stopped = true;
        }
        "metadata" => {
            let metadata: Metadata = serde_json::from_slice(payload).ok()?;
            state.usage = metadata.usage.or(state.usage);
            if state.stopped {
                state.end(out);
            }
        }
        // contentBlockStop and events added later carry nothing a chunk needs.
        _ => {}
    }
    Some(())
}
