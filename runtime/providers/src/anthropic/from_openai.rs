//! OpenAI Chat Completions → Anthropic Messages (for the `Anthropic`, `AWSAnthropic` and
//! `GCPAnthropic` schemas), and the answer back: response, stream events, errors.
//!
//! Decisions:
//! - `system` and `developer` messages become the top-level `system` blocks, in order;
//! - `tool` messages become `tool_result` blocks of a user turn, and consecutive turns of
//!   one role are merged (Anthropic wants every result of a turn's tool calls in the next
//!   user turn);
//! - `max_tokens` is required by Anthropic: absent, it is [`DEFAULT_MAX_TOKENS`];
//! - `reasoning_effort` becomes extended thinking with the budgets of [`thinking_budget`]
//!   (the reference maps it to `output_config.effort` for the newest models only); without
//!   `max_tokens`, the answer gets [`DEFAULT_MAX_TOKENS`] on top of the budget; what
//!   Anthropic refuses with thinking (a forced tool, a temperature other than 1, `top_k`) is
//!   422 here;
//! - `response_format` `json_schema` → `output_config.format` (structured outputs, on
//!   Anthropic, Bedrock and Vertex AI alike; always enforced, as OpenAI's `strict: true`; the
//!   schema's `name` and `description` have no place); `json_object` (JSON of no given shape),
//!   `n` > 1, `logprobs`, penalties, `seed` and a `temperature` above 1 cannot be honoured:
//!   422.

use super::{Block, ContentBlock, Event, ImageSource, MessageParam, Metadata, Request};
use super::{BlockDelta, ErrorBody, RawUsage, ToolChoice, ToolParam};
use crate::openai::{self, ChatRequest, Content, Delta, FinishReason, Message, Part};
use crate::stream::Core;
use crate::translate::{Ids, refuse_common, refuse_penalties_and_seed};
use crate::{Error, Usage};
use bytes::BytesMut;
use serde_json::Value;

/// `max_tokens` when the client sets none. Anthropic requires the field and documents no
/// default; 4096 is the largest value every Claude model accepts (Claude 3 Haiku's output
/// limit). The reference sends 0 and lets the provider refuse the request; we answer instead.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Where the body goes: the model in the body (`Anthropic`) or in the path, with the
/// version in the body (Bedrock, Vertex AI). `stream_field`: the body says `stream`
/// (Bedrock's invoke takes none: its operation says it).
#[derive(Clone, Copy, Debug)]
pub enum Placement<'a> {
    Body {
        model: &'a str,
    },
    Path {
        version: &'a str,
        stream_field: bool,
    },
}

/// The Messages request for `chat`.
pub fn request(
    chat: &ChatRequest,
    placement: Placement<'_>,
    schema: &'static str,
) -> Result<Vec<u8>, Error> {
    refuse_common(chat, schema)?;
    refuse_penalties_and_seed(chat, schema)?;
    if chat.temperature.is_some_and(|t| t > 1.0) {
        return Err(Error::unsupported(schema, "a `temperature` above 1"));
    }
    let output_config = chat.output_schema(schema)?.map(
        |format| serde_json::json!({"format": {"type": "json_schema", "schema": format.schema}}),
    );
    let (model, anthropic_version, stream_field) = match placement {
        Placement::Body { model } => (Some(model), None, true),
        Placement::Path {
            version,
            stream_field,
        } => (None, Some(version), stream_field),
    };
    let thinking = thinking(chat, schema)?;
    let budget = thinking
        .as_ref()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .map(|t| t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0));
    let max_tokens = match (chat.max_output(), budget) {
        (Some(max), Some(budget)) if u64::from(max) <= budget => {
            return Err(Error::unsupported(
                schema,
                format!(
                    "a thinking budget of {budget} tokens with `max_tokens` {max} (the budget must be below it)"
                ),
            ));
        }
        (Some(max), _) => max,
        // The answer gets the default on top of the thinking budget.
        (None, Some(budget)) => {
            DEFAULT_MAX_TOKENS.saturating_add(u32::try_from(budget).unwrap_or(u32::MAX))
        }
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    if budget.is_some() {
        thinking_conflicts(chat, schema)?;
    }
    let mut out = Request {
        model,
        anthropic_version,
        max_tokens,
        stop_sequences: chat
            .stop
            .as_ref()
            .map(|s| s.sequences())
            .unwrap_or_default(),
        temperature: chat.temperature,
        top_p: chat.top_p,
        top_k: chat.top_k,
        stream: chat.stream && stream_field,
        thinking,
        metadata: chat.user.clone().map(|user_id| Metadata { user_id }),
        output_config,
        ..Request::default()
    };
    for message in &chat.messages {
        convert_message(message, &mut out, schema)?;
    }
    if let Some(tools) = &chat.tools {
        out.tools = tools
            .iter()
            .map(|t| tool(t, schema))
            .collect::<Result<_, _>>()?;
    }
    out.tool_choice = tool_choice(chat, schema)?;
    serde_json::to_vec(&out).map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

/// `thinking` as given, or from `reasoning_effort`.
fn thinking(chat: &ChatRequest, schema: &'static str) -> Result<Option<Value>, Error> {
    if let Some(thinking) = &chat.thinking {
        return Ok(Some(thinking.clone()));
    }
    let Some(effort) = chat.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let budget = thinking_budget(effort)
        .ok_or_else(|| Error::unsupported(schema, format!("`reasoning_effort` `{effort}`")))?;
    Ok(Some(
        serde_json::json!({"type": "enabled", "budget_tokens": budget}),
    ))
}

/// What Anthropic refuses together with extended thinking
/// (<https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking>).
pub(crate) fn thinking_conflicts(chat: &ChatRequest, schema: &'static str) -> Result<(), Error> {
    if chat.temperature.is_some_and(|t| t != 1.0) {
        return Err(Error::unsupported(
            schema,
            "a `temperature` other than 1 with extended thinking",
        ));
    }
    if chat.top_k.is_some() {
        return Err(Error::unsupported(schema, "`top_k` with extended thinking"));
    }
    let forced = match &chat.tool_choice {
        Some(openai::ToolChoice::Mode(mode)) => mode == "required",
        Some(openai::ToolChoice::Named { .. }) => true,
        None => false,
    };
    if forced {
        return Err(Error::unsupported(
            schema,
            "a `tool_choice` that forces a tool with extended thinking",
        ));
    }
    Ok(())
}

/// The thinking budget for an OpenAI `reasoning_effort`. Anthropic's minimum budget is 1024.
pub fn thinking_budget(effort: &str) -> Option<u32> {
    Some(match effort {
        "minimal" | "low" => 1024,
        "medium" => 4096,
        "high" => 16384,
        _ => return None,
    })
}

fn convert_message(
    message: &Message,
    out: &mut Request<'_>,
    schema: &'static str,
) -> Result<(), Error> {
    match message {
        Message::System { content } | Message::Developer { content } => {
            let text = openai::text_only(content, "a system message", schema)?;
            out.system.push(Block::Text { text });
        }
        Message::User { content } => {
            let blocks = user_blocks(content, schema)?;
            push(&mut out.messages, "user", blocks);
        }
        Message::Assistant {
            content,
            tool_calls,
            refusal,
            reasoning_content: _,
        } => {
            let mut blocks: Vec<Block> =
                openai::assistant_texts(content.as_ref(), refusal.as_ref(), schema)?
                    .into_iter()
                    .map(|text| Block::Text { text })
                    .collect();
            for call in tool_calls.iter().flatten() {
                blocks.push(Block::ToolUse {
                    id: call.id.clone(),
                    name: call.function.name.clone(),
                    input: arguments(&call.function.arguments)?,
                });
            }
            push(&mut out.messages, "assistant", blocks);
        }
        Message::Tool {
            content,
            tool_call_id,
        } => {
            let text = openai::text_only(content, "a tool message", schema)?;
            let content = if text.is_empty() {
                Vec::new()
            } else {
                vec![Block::Text { text }]
            };
            let result = Block::ToolResult {
                tool_use_id: tool_call_id.clone(),
                content,
            };
            push(&mut out.messages, "user", vec![result]);
        }
    }
    Ok(())
}

/// Appends `blocks` as a turn of `role`, merged into the previous turn of the same role.
fn push(messages: &mut Vec<MessageParam>, role: &'static str, blocks: Vec<Block>) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(MessageParam {
            role,
            content: blocks,
        }),
    }
}

fn user_blocks(content: &Content, schema: &'static str) -> Result<Vec<Block>, Error> {
    let parts = match content {
        Content::Text(text) => return Ok(vec![Block::Text { text: text.clone() }]),
        Content::Parts(parts) => parts,
    };
    parts
        .iter()
        .map(|part| match part {
            Part::Text { text } => Ok(Block::Text { text: text.clone() }),
            Part::ImageUrl { image_url } => Ok(Block::Image {
                source: match image_url.data_url() {
                    Some(inline) => {
                        image_type(inline.media_type, schema)?;
                        ImageSource::Base64 {
                            media_type: inline.media_type.to_owned(),
                            data: inline.data.to_owned(),
                        }
                    }
                    None if image_url.url.starts_with("https://")
                        || image_url.url.starts_with("http://") =>
                    {
                        ImageSource::Url {
                            url: image_url.url.clone(),
                        }
                    }
                    None => {
                        return Err(Error::invalid(
                            "an `image_url` must be an http(s) URL or a base64 data URL",
                        ));
                    }
                },
            }),
            other => Err(Error::unsupported(
                schema,
                format!("`{}` content in a user message", other.kind()),
            )),
        })
        .collect()
}

/// Anthropic takes JPEG, PNG, GIF and WebP images.
fn image_type(media_type: &str, schema: &'static str) -> Result<(), Error> {
    match media_type {
        "image/jpeg" | "image/png" | "image/gif" | "image/webp" => Ok(()),
        other => Err(Error::unsupported(
            schema,
            format!("an image of type `{other}`"),
        )),
    }
}

/// A tool call's `arguments` (JSON text) as the object Anthropic wants.
pub(crate) fn arguments(text: &str) -> Result<Value, Error> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("a tool call's `arguments` is not JSON: {e}")))
}

fn tool(tool: &openai::Tool, schema: &'static str) -> Result<ToolParam, Error> {
    if tool.kind != "function" {
        return Err(Error::unsupported(
            schema,
            format!("a tool of type `{}`", tool.kind),
        ));
    }
    Ok(ToolParam {
        name: tool.function.name.clone(),
        description: tool.function.description.clone(),
        input_schema: tool
            .function
            .parameters
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
    })
}

fn tool_choice(chat: &ChatRequest, schema: &'static str) -> Result<Option<ToolChoice>, Error> {
    let disable_parallel = chat.parallel_tool_calls.map(|p| !p).filter(|d| *d);
    let (kind, name) = match &chat.tool_choice {
        None if disable_parallel.is_some() => ("auto", None),
        None => return Ok(None),
        Some(openai::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => ("auto", None),
            "required" => ("any", None),
            "none" => ("none", None),
            other => {
                return Err(Error::unsupported(
                    schema,
                    format!("`tool_choice` `{other}`"),
                ));
            }
        },
        Some(openai::ToolChoice::Named { function }) => ("tool", Some(function.name.clone())),
    };
    Ok(Some(ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: disable_parallel.filter(|_| kind != "none"),
    }))
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop: &str) -> FinishReason {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // end_turn, stop_sequence, pause_turn
        _ => FinishReason::Stop,
    }
}

/// A Messages response as a chat completion; `None` when it is not one.
pub fn response(body: &[u8], ids: &Ids, model: &str) -> Option<(Vec<u8>, Usage)> {
    let message: super::Response<'_> = serde_json::from_slice(body).ok()?;
    let mut reply = openai::ResponseMessage {
        role: "assistant",
        ..Default::default()
    };
    let mut text = String::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::ToolUse { id, name, input } => {
                reply.tool_calls.push(openai::ToolCallOut {
                    index: None,
                    id: id.to_string(),
                    kind: "function",
                    function: openai::FunctionOut {
                        name: name.to_string(),
                        arguments: input.to_string(),
                    },
                })
            }
            ContentBlock::Thinking { thinking } => reply
                .reasoning_content
                .get_or_insert_with(String::new)
                .push_str(thinking),
            ContentBlock::Other => {}
        }
    }
    reply.content = Some(text);
    let usage = message.usage.usage();
    let model = if message.model.is_empty() {
        model
    } else {
        &message.model
    };
    let id = if message.id.is_empty() {
        &ids.id
    } else {
        &*message.id
    };
    let completion = openai::ChatCompletion {
        id,
        object: "chat.completion",
        created: ids.created,
        model,
        choices: [openai::Choice {
            index: 0,
            message: reply,
            finish_reason: Some(
                message
                    .stop_reason
                    .as_deref()
                    .map_or(FinishReason::Stop, finish_reason),
            ),
        }],
        usage: Some(usage.into()),
    };
    Some((serde_json::to_vec(&completion).ok()?, usage))
}

/// An Anthropic error body's type and message (`None` when the body is not one).
pub fn error(body: &[u8]) -> Option<(String, String)> {
    let parsed: ErrorBody<'_> = serde_json::from_slice(body).ok()?;
    Some((
        parsed.error.kind.into_owned(),
        parsed.error.message.into_owned(),
    ))
}

/// The state of one translated stream. Framing (SSE, or Bedrock's event stream) is the
/// caller's: [`Stream::event`] takes one event's JSON.
#[derive(Debug)]
pub struct Stream {
    core: Core,
    usage: RawUsage,
    /// Anthropic content-block index → OpenAI tool-call index, for the tool_use blocks.
    tool_index: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
}

impl Stream {
    pub fn new(ids: Ids, model: &str, include_usage: bool) -> Self {
        Stream {
            core: Core::new(ids, model, include_usage),
            usage: RawUsage::default(),
            tool_index: Vec::new(),
            finish: None,
        }
    }

    /// One event's JSON.
    pub fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.core.ended() {
            return;
        }
        match serde_json::from_slice::<Event<'_>>(data) {
            Ok(parsed) => stream_event(self, parsed, out),
            Err(_) => self.core.unreadable(out),
        }
    }

    /// Ends the stream with an error event.
    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.core.fail(kind, message, out);
    }

    /// The upstream closed: an error event unless the stream had ended.
    pub fn finish(&mut self, out: &mut BytesMut) {
        self.core.cut(out);
    }

    pub fn usage(&self) -> Option<Usage> {
        (self.usage.input_tokens.is_some() || self.usage.output_tokens.is_some())
            .then(|| self.usage.usage())
    }
}

/// One Anthropic stream event as OpenAI chunks.
pub fn stream_event(state: &mut Stream, event: Event<'_>, out: &mut BytesMut) {
    let w = &state.core.writer;
    match event {
        Event::MessageStart { message } => {
            state.usage.merge(message.usage);
            let writer = &mut state.core.writer;
            if !message.id.is_empty() {
                writer.id = message.id.into_owned();
            }
            if !message.model.is_empty() {
                writer.model = message.model.into_owned();
            }
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            writer.delta(out, delta, None);
        }
        Event::ContentBlockStart {
            index,
            content_block,
        } => match content_block {
            ContentBlock::ToolUse { id, name, .. } => {
                let call = state.tool_index.len() as u32;
                state.tool_index.push((index, call));
                let calls = [openai::DeltaToolCall {
                    index: call,
                    id: Some(&id),
                    kind: Some("function"),
                    function: openai::DeltaFunction {
                        name: Some(&name),
                        arguments: "",
                    },
                }];
                let delta = Delta {
                    tool_calls: &calls,
                    ..Delta::default()
                };
                w.delta(out, delta, None);
            }
            ContentBlock::Text { text } if !text.is_empty() => {
                w.delta(out, text_delta(&text), None);
            }
            _ => {}
        },
        Event::ContentBlockDelta { index, delta } => match delta {
            BlockDelta::TextDelta { text } => w.delta(out, text_delta(&text), None),
            BlockDelta::ThinkingDelta { thinking } => {
                let delta = Delta {
                    reasoning_content: Some(&thinking),
                    ..Delta::default()
                };
                w.delta(out, delta, None);
            }
            BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                let Some(&(_, call)) = state.tool_index.iter().find(|(i, _)| *i == index) else {
                    return;
                };
                let calls = [openai::DeltaToolCall {
                    index: call,
                    id: None,
                    kind: None,
                    function: openai::DeltaFunction {
                        name: None,
                        arguments: &partial_json,
                    },
                }];
                let delta = Delta {
                    tool_calls: &calls,
                    ..Delta::default()
                };
                w.delta(out, delta, None);
            }
            BlockDelta::InputJsonDelta { .. } | BlockDelta::Other => {}
        },
        Event::MessageDelta { delta, usage } => {
            state.usage.merge(usage);
            let finish = delta
                .stop_reason
                .as_deref()
                .map_or(FinishReason::Stop, finish_reason);
            state.finish = Some(finish);
            w.delta(out, Delta::default(), Some(finish));
        }
        Event::MessageStop => {
            if state.finish.is_none() {
                w.delta(out, Delta::default(), Some(FinishReason::Stop));
            }
            let usage = state.usage.usage();
            state.core.end(Some(usage), out);
        }
        Event::Error { error } => state.core.fail(&error.kind, &error.message, out),
        Event::ContentBlockStop { .. } | Event::Ping | Event::Other => {}
    }
}

fn text_delta(text: &str) -> Delta<'_> {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}
