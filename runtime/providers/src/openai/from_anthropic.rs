//! Anthropic Messages → OpenAI Chat Completions (for the `OpenAI` and `AzureOpenAI` schemas),
//! and the answer back as an Anthropic message: whole, as Anthropic's stream events, or as an
//! Anthropic error.
//!
//! Decisions:
//! - the system prompt becomes the first message, `system`; `tool_result` blocks become
//!   `tool` messages ahead of the rest of their user turn (OpenAI wants them right after the
//!   assistant's calls); OpenAI has no error flag on a tool result, so `is_error` is not sent;
//! - `thinking` and `redacted_thinking` blocks of earlier assistant turns are not sent: their
//!   signatures only mean something to Anthropic's models;
//! - `max_tokens` → `max_completion_tokens`, `stop_sequences` → `stop`, `metadata.user_id` →
//!   `user`, tool choice `any` → `required`, `disable_parallel_tool_use` →
//!   `parallel_tool_calls: false`;
//! - `output_config.effort` → `reasoning_effort` (the same names); without it, `thinking`
//!   with a budget → `reasoning_effort` (below 4096 tokens `low`, below 16384 `medium`, else
//!   `high`: the budgets `reasoning_effort` maps to the other way);
//! - `output_config.format` → `response_format` `json_schema` named `output`, `strict: true`
//!   (Anthropic's structured outputs are always enforced);
//! - `top_k`, server tools, image sources other than base64 and URLs, images in tool results
//!   and fields we do not know are 422;
//! - streams ask for the usage chunk, so that `message_delta` carries the usage; the stop
//!   reason of `finish_reason` waits for it (OpenAI sends usage after the finish);
//! - `stop` → `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`,
//!   `content_filter` → `refusal`. OpenAI does not say whether a stop sequence matched, so
//!   `stop_sequence` is never reported.

use crate::anthropic::messages::{
    InBlockKind, InContent, InImageSource, InMessage, MessagesRequest, Role,
};
use crate::anthropic::reply::{EventWriter, Message, OutBlock, OutUsage, StopReason};
use crate::{Error, Ids, Usage};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// The chat completion request for `request`.
pub fn request(request: &MessagesRequest, schema: &'static str) -> Result<Vec<u8>, Error> {
    request.refuse_unknown(schema)?;
    if request.top_k.is_some() {
        return Err(Error::unsupported(schema, "`top_k`"));
    }
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        let texts = system.texts("the system prompt", schema)?;
        messages.push(json!({"role": "system", "content": text_content(texts)}));
    }
    for message in &request.messages {
        convert_message(message, &mut messages, schema)?;
    }
    let mut out = Map::new();
    out.insert("model".into(), request.model.clone().into());
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = request.max_tokens {
        out.insert("max_completion_tokens".into(), max.into());
    }
    if let Some(stop) = request.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        out.insert("stop".into(), json!(stop));
    }
    if let Some(t) = request.temperature {
        out.insert("temperature".into(), t.into());
    }
    if let Some(p) = request.top_p {
        out.insert("top_p".into(), p.into());
    }
    if request.stream {
        out.insert("stream".into(), true.into());
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = request.metadata.as_ref().and_then(|m| m.user_id.as_ref()) {
        out.insert("user".into(), user.clone().into());
    }
    if let Some(effort) = reasoning_effort(request)? {
        out.insert("reasoning_effort".into(), effort.into());
    }
    if let Some(schema) = request.output_schema(schema)? {
        let format = json!({"name": OUTPUT_NAME, "schema": schema, "strict": true});
        out.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": format}),
        );
    }
    tools(request, &mut out, schema)?;
    Ok(serde_json::to_vec(&out).unwrap_or_default())
}

/// The name OpenAI's `json_schema` response format requires; Anthropic's schema has none.
pub(super) const OUTPUT_NAME: &str = "output";

/// OpenAI's reasoning effort for the request: `output_config.effort` as it is (OpenAI's
/// efforts have Anthropic's names), else the effort of the thinking budget (the budgets the
/// efforts map to the other way).
pub(super) fn reasoning_effort(request: &MessagesRequest) -> Result<Option<&str>, Error> {
    if let Some(effort) = request.effort() {
        return Ok(Some(effort));
    }
    Ok(request.thinking_budget()?.map(|budget| match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }))
}

/// One text as a string, several as text parts.
fn text_content(mut texts: Vec<String>) -> Value {
    if texts.len() == 1 {
        return Value::String(texts.remove(0));
    }
    Value::Array(
        texts
            .into_iter()
            .map(|text| json!({"type": "text", "text": text}))
            .collect(),
    )
}

fn convert_message(
    message: &InMessage,
    out: &mut Vec<Value>,
    schema: &'static str,
) -> Result<(), Error> {
    let blocks = match &message.content {
        InContent::Text(text) => {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        InContent::Blocks(blocks) => blocks,
    };
    match message.role {
        Role::User => {
            let mut parts = Vec::new();
            for block in blocks {
                match block.known()? {
                    InBlockKind::Text { text } => parts.push(json!({"type": "text", "text": text})),
                    InBlockKind::Image { source } => {
                        let url = image_url(source, schema)?;
                        parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    }
                    InBlockKind::ToolResult {
                        tool_use_id,
                        content,
                        is_error: _,
                    } => {
                        let texts = match content {
                            Some(content) => content.texts("a tool result", schema)?,
                            None => Vec::new(),
                        };
                        let content = if texts.is_empty() {
                            Value::String(String::new())
                        } else {
                            text_content(texts)
                        };
                        out.push(
                            json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}),
                        );
                    }
                    other => {
                        return Err(Error::invalid(format!(
                            "a user message cannot hold a `{}` block",
                            other.kind()
                        )));
                    }
                }
            }
            if !parts.is_empty() {
                out.push(json!({"role": "user", "content": parts}));
            }
        }
        Role::Assistant => {
            let mut texts = Vec::new();
            let mut calls = Vec::new();
            for block in blocks {
                match block.known()? {
                    InBlockKind::Text { text } => texts.push(text.clone()),
                    InBlockKind::ToolUse { id, name, input } => calls.push(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": input.to_string()},
                    })),
                    InBlockKind::Thinking { .. } | InBlockKind::RedactedThinking { .. } => {}
                    other => {
                        return Err(Error::invalid(format!(
                            "an assistant message cannot hold a `{}` block",
                            other.kind()
                        )));
                    }
                }
            }
            let mut assistant = Map::new();
            assistant.insert("role".into(), "assistant".into());
            let content = if texts.is_empty() {
                Value::Null
            } else {
                text_content(texts)
            };
            assistant.insert("content".into(), content);
            if !calls.is_empty() {
                assistant.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(Value::Object(assistant));
        }
    }
    Ok(())
}

pub(super) fn image_url(source: &InImageSource, schema: &'static str) -> Result<String, Error> {
    match source {
        InImageSource::Base64 { media_type, data } => {
            Ok(format!("data:{media_type};base64,{data}"))
        }
        InImageSource::Url { url } => Ok(url.clone()),
        InImageSource::Other => Err(Error::unsupported(
            schema,
            "an image source other than `base64` and `url`",
        )),
    }
}

fn tools(
    request: &MessagesRequest,
    out: &mut Map<String, Value>,
    schema: &'static str,
) -> Result<(), Error> {
    let choice = tool_choice(
        request,
        |name| json!({"type": "function", "function": {"name": name}}),
    )?;
    let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let tools = tools
        .iter()
        .map(|tool| {
            let parameters = tool.schema(schema)?;
            let mut function = Map::new();
            function.insert("name".into(), tool.name.clone().into());
            if let Some(description) = &tool.description {
                function.insert("description".into(), description.clone().into());
            }
            function.insert("parameters".into(), parameters);
            Ok(json!({"type": "function", "function": function}))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    out.insert("tools".into(), Value::Array(tools));
    insert_choice(choice, out);
    Ok(())
}

/// OpenAI's tool choice for the request's (`named` writes the choice of one named tool,
/// which chat completions and the Responses API shape differently), and whether parallel
/// calls are off. Without tools, only `none` and `auto` mean anything: they are left out.
pub(super) fn tool_choice(
    request: &MessagesRequest,
    named: impl Fn(&str) -> Value,
) -> Result<Option<(Value, bool)>, Error> {
    let Some(choice) = &request.tool_choice else {
        return Ok(None);
    };
    if request.tools.as_ref().is_none_or(|t| t.is_empty()) {
        return match choice.kind.as_str() {
            "none" | "auto" => Ok(None),
            _ => Err(Error::invalid("`tool_choice` requires `tools`")),
        };
    }
    let value = match choice.kind.as_str() {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice
                .name
                .as_ref()
                .ok_or_else(|| Error::invalid("`tool_choice` of type `tool` needs a `name`"))?;
            named(name)
        }
        other => {
            return Err(Error::invalid(format!(
                "`tool_choice` type `{other}` is not one of auto, any, tool, none"
            )));
        }
    };
    Ok(Some((
        value,
        choice.disable_parallel_tool_use == Some(true),
    )))
}

/// Writes a choice of [`tool_choice`] into the request.
pub(super) fn insert_choice(choice: Option<(Value, bool)>, out: &mut Map<String, Value>) {
    if let Some((value, serial)) = choice {
        out.insert("tool_choice".into(), value);
        if serial {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
}

// ---- the answer ----

#[derive(Debug, Deserialize)]
struct CompletionIn<'a> {
    #[serde(borrow, default)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    /// An error object in a stream.
    #[serde(borrow, default)]
    error: Option<ErrorIn<'a>>,
}

#[derive(Debug, Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    message: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    delta: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallIn<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionIn<'a>>,
}

#[derive(Debug, Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// OpenAI's usage: `prompt_tokens` includes the cached tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct UsageIn {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsIn>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetailsIn>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct PromptDetailsIn {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct CompletionDetailsIn {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl UsageIn {
    pub fn usage(&self) -> Usage {
        Usage {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            cached_input: self.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_creation_input: 0,
            reasoning: self
                .completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
            total: self.total_tokens,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorIn<'a> {
    #[serde(borrow, default)]
    message: Cow<'a, str>,
}

/// An OpenAI `finish_reason` as Anthropic's stop reason.
pub fn stop_reason(finish: &str) -> StopReason {
    match finish {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// A chat completion as an Anthropic message; `None` when it is not one (or a tool call's
/// arguments are not JSON, which Anthropic's `input` must be).
pub fn response(body: &[u8], ids: &Ids, model: &str) -> Option<(Vec<u8>, Usage)> {
    let parsed: CompletionIn<'_> = serde_json::from_slice(body).ok()?;
    let choice = parsed.choices.into_iter().next()?;
    let reply = choice.message.unwrap_or_default();
    let mut message = Message::new(&ids.id, model);
    if let Some(thinking) = reply.reasoning_content.filter(|t| !t.is_empty()) {
        message.content.push(OutBlock::Thinking {
            thinking: thinking.into_owned(),
            signature: String::new(),
        });
    }
    for text in [reply.content, reply.refusal].into_iter().flatten() {
        if !text.is_empty() {
            message.content.push(OutBlock::Text {
                text: text.into_owned(),
            });
        }
    }
    for call in reply.tool_calls.unwrap_or_default() {
        let function = call.function?;
        let arguments = function.arguments.as_deref().unwrap_or("{}");
        let input = if arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(arguments).ok()?
        };
        message.content.push(OutBlock::ToolUse {
            id: call.id.map(Cow::into_owned).unwrap_or_default(),
            name: function.name.map(Cow::into_owned).unwrap_or_default(),
            input,
        });
    }
    message.stop_reason = Some(
        choice
            .finish_reason
            .as_deref()
            .map_or(StopReason::EndTurn, stop_reason),
    );
    let usage = parsed.usage.map(|u| u.usage()).unwrap_or_default();
    message.usage = OutUsage::from(usage);
    Some((serde_json::to_vec(&message).ok()?, usage))
}

/// The state of one translated chat completion stream.
#[derive(Debug)]
pub struct Stream {
    writer: EventWriter,
    usage: Option<Usage>,
}

impl Stream {
    pub fn new(ids: Ids, model: &str) -> Self {
        Stream {
            writer: EventWriter::new(ids, model),
            usage: None,
        }
    }

    /// One event's data.
    pub fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.writer.ended() {
            return;
        }
        if data == b"[DONE]" {
            self.writer.end(self.usage, out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<CompletionIn<'_>>(data) else {
            self.writer.unreadable(out);
            return;
        };
        if let Some(error) = chunk.error {
            self.writer.fail("api_error", &error.message, out);
            return;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.usage());
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(finish) = choice.finish_reason {
                self.writer.stop(stop_reason(&finish), out);
            }
        }
    }

    fn delta(&mut self, delta: MessageIn<'_>, out: &mut BytesMut) {
        let w = &mut self.writer;
        if let Some(thinking) = delta.reasoning_content.filter(|t| !t.is_empty()) {
            w.thinking(0, &thinking, out);
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                w.text(0, &text, out);
            }
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let function = call.function;
            if let Some(id) = call.id {
                let name = function.as_ref().and_then(|f| f.name.as_deref());
                w.tool_start(call.index, &id, name.unwrap_or_default(), out);
            }
            let arguments = function.as_ref().and_then(|f| f.arguments.as_deref());
            if let Some(arguments) = arguments.filter(|a| !a.is_empty())
                && !w.tool_input(call.index, arguments, out)
            {
                w.fail(
                    "api_error",
                    "the provider interleaved the arguments of several tool calls",
                    out,
                );
            }
        }
        // A chunk with nothing to write (the role) still starts the message.
        w.start(out);
    }

    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.writer.fail(kind, message, out);
    }

    /// The upstream closed: the end of the message if the model stopped, an error if not.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.writer.stopped() {
            self.writer.end(self.usage, out);
        }
        self.writer.cut(out);
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// An OpenAI error body's message (`None` when the body is not one).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: ErrorIn<'a>,
    }
    let parsed: Body<'_> = serde_json::from_slice(body).ok()?;
    Some(parsed.error.message.into_owned())
}
