//! OpenAI Chat Completions → Gemini `generateContent` / `streamGenerateContent`, and the
//! answer back: response, stream events, errors.
//!
//! Decisions:
//! - system and developer messages become the `systemInstruction`; assistant turns are role
//!   `model`; consecutive turns of one role are merged (Gemini wants them to alternate, and
//!   the answers to parallel function calls in one turn);
//! - a tool message becomes a `functionResponse` named after the call it answers (looked up
//!   by `tool_call_id` in the assistant turns before it), its text under `output` as Gemini's
//!   documentation asks;
//! - images: data URLs go inline (`inlineData`); other URLs go as `fileData` for Google to
//!   fetch (the gateway never fetches them), their MIME type told by the file's extension;
//! - all functions go in one `Tool` with `parametersJsonSchema` (Gemini 2.5 and later);
//!   `tool_choice` auto/none/required/named → `AUTO`/`NONE`/`ANY`/`ANY` with the one name;
//! - `response_format` json_object/json_schema → `responseMimeType: application/json` (with
//!   `responseJsonSchema`); penalties, `seed`, `top_k` and stop sequences map one to one;
//! - `reasoning_effort` (or Anthropic's `thinking` object) → `thinkingConfig` with a budget
//!   and thought summaries, returned as `reasoning_content`;
//! - Gemini gives function calls no ids: the gateway names them `call_<n>_<response id>`;
//! - `parallel_tool_calls: false` has no Gemini form and is a 422; `user` is left out, as
//!   for Bedrock.

use super::{Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration};
use super::{ErrorBody, ThinkingConfig, Tool, ToolConfig};
use super::{FunctionResponse, GenerationConfig, Part, RawUsage, Request, Response};
use crate::anthropic::from_openai::{arguments, thinking_budget};
use crate::openai::{self, ChatRequest, Delta, FinishReason};
use crate::stream::Core;
use crate::translate::{Ids, refuse_common};
use crate::{Error, Usage};
use bytes::BytesMut;
use serde_json::{Value, json};

const SCHEMA: &str = "GCPVertexAI";

/// The `generateContent` body for `chat`.
pub fn request(chat: &ChatRequest) -> Result<Vec<u8>, Error> {
    refuse_common(chat, SCHEMA)?;
    if chat.parallel_tool_calls == Some(false) {
        return Err(Error::unsupported(SCHEMA, "`parallel_tool_calls: false`"));
    }
    let mut out = Request::default();
    let mut system = Vec::new();
    // Every call id of the assistant turns, with its function's name (for the tool messages).
    let calls: Vec<(&str, &str)> = chat
        .messages
        .iter()
        .filter_map(|m| match m {
            openai::Message::Assistant { tool_calls, .. } => tool_calls.as_ref(),
            _ => None,
        })
        .flatten()
        .map(|call| (call.id.as_str(), call.function.name.as_str()))
        .collect();
    for message in &chat.messages {
        match message {
            openai::Message::System { content } | openai::Message::Developer { content } => {
                let text = openai::text_only(content, "a system message", SCHEMA)?;
                system.push(Part::Text(text));
            }
            openai::Message::User { content } => {
                let parts = user_parts(content)?;
                push(&mut out.contents, "user", parts);
            }
            openai::Message::Assistant {
                content,
                tool_calls,
                refusal,
                reasoning_content: _,
            } => {
                let mut parts: Vec<Part> =
                    openai::assistant_texts(content.as_ref(), refusal.as_ref(), SCHEMA)?
                        .into_iter()
                        .map(Part::Text)
                        .collect();
                for call in tool_calls.iter().flatten() {
                    parts.push(Part::FunctionCall(FunctionCall {
                        name: call.function.name.clone(),
                        args: arguments(&call.function.arguments)?,
                    }));
                }
                push(&mut out.contents, "model", parts);
            }
            openai::Message::Tool {
                content,
                tool_call_id,
            } => {
                let text = openai::text_only(content, "a tool message", SCHEMA)?;
                let name = called(&calls, tool_call_id)?;
                let part = Part::FunctionResponse(FunctionResponse {
                    name,
                    response: json!({ "output": text }),
                });
                push(&mut out.contents, "user", vec![part]);
            }
        }
    }
    if !system.is_empty() {
        out.system_instruction = Some(Content {
            role: None,
            parts: system,
        });
    }
    if let Some(tools) = chat.tools.as_ref().filter(|t| !t.is_empty()) {
        let declarations = tools
            .iter()
            .map(|t| {
                if t.kind != "function" {
                    return Err(Error::unsupported(
                        SCHEMA,
                        format!("a tool of type `{}`", t.kind),
                    ));
                }
                Ok(FunctionDeclaration {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    parameters_json_schema: t.function.parameters.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        out.tools.push(Tool {
            function_declarations: declarations,
        });
        out.tool_config = tool_config(chat)?;
    }
    out.generation_config = generation_config(chat)?;
    serde_json::to_vec(&out).map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

/// The name of the function whose call `id` is, among the assistant turns' `calls`.
fn called(calls: &[(&str, &str)], id: &str) -> Result<String, Error> {
    calls
        .iter()
        .find(|(call, _)| *call == id)
        .map(|(_, name)| (*name).to_owned())
        .ok_or_else(|| {
            Error::invalid(format!(
                "the tool message for `{id}` answers no tool call of an assistant message"
            ))
        })
}

/// Appends `parts` as a turn of `role`, merged into the previous turn of the same role.
fn push(contents: &mut Vec<Content>, role: &'static str, parts: Vec<Part>) {
    match contents.last_mut() {
        Some(last) if last.role == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role),
            parts,
        }),
    }
}

fn user_parts(content: &openai::Content) -> Result<Vec<Part>, Error> {
    let parts = match content {
        openai::Content::Text(text) => return Ok(vec![Part::Text(text.clone())]),
        openai::Content::Parts(parts) => parts,
    };
    parts
        .iter()
        .map(|part| match part {
            openai::Part::Text { text } => Ok(Part::Text(text.clone())),
            openai::Part::ImageUrl { image_url } => match image_url.data_url() {
                Some(inline) => Ok(Part::InlineData(Blob {
                    mime_type: inline.media_type.to_owned(),
                    data: inline.data.to_owned(),
                })),
                None => {
                    let mime_type = image_type(&image_url.url).ok_or_else(|| {
                        Error::unsupported(
                            SCHEMA,
                            "an image URL whose type its extension does not tell (png, jpeg, gif, webp, heic, heif)",
                        )
                    })?;
                    Ok(Part::FileData(FileData {
                        mime_type,
                        file_uri: image_url.url.clone(),
                    }))
                }
            },
            other => Err(Error::unsupported(
                SCHEMA,
                format!("`{}` content in a user message", other.kind()),
            )),
        })
        .collect()
}

/// An image's MIME type from its URL's extension (the query and fragment aside).
fn image_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let (_, extension) = path.rsplit_once('.')?;
    Some(match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

fn tool_config(chat: &ChatRequest) -> Result<Option<ToolConfig>, Error> {
    let (mode, allowed) = match &chat.tool_choice {
        None => return Ok(None),
        Some(openai::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => ("AUTO", Vec::new()),
            "none" => ("NONE", Vec::new()),
            "required" => ("ANY", Vec::new()),
            other => {
                return Err(Error::unsupported(
                    SCHEMA,
                    format!("`tool_choice` `{other}`"),
                ));
            }
        },
        Some(openai::ToolChoice::Named { function }) => ("ANY", vec![function.name.clone()]),
    };
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: allowed,
        },
    }))
}

fn generation_config(chat: &ChatRequest) -> Result<GenerationConfig, Error> {
    let (response_mime_type, response_json_schema) = match &chat.response_format {
        None | Some(openai::ResponseFormat::Text) => (None, None),
        Some(openai::ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(openai::ResponseFormat::JsonSchema { json_schema }) => {
            (Some("application/json"), json_schema.schema.clone())
        }
    };
    Ok(GenerationConfig {
        temperature: chat.temperature,
        top_p: chat.top_p,
        top_k: chat.top_k,
        max_output_tokens: chat.max_output(),
        stop_sequences: chat
            .stop
            .as_ref()
            .map(|s| s.sequences())
            .unwrap_or_default(),
        presence_penalty: chat.presence_penalty,
        frequency_penalty: chat.frequency_penalty,
        seed: chat.seed,
        response_mime_type,
        response_json_schema,
        thinking_config: thinking_config(chat)?,
    })
}

/// `reasoning_effort`, or Anthropic's `thinking` object, as a thinking budget.
fn thinking_config(chat: &ChatRequest) -> Result<Option<ThinkingConfig>, Error> {
    if let Some(thinking) = &chat.thinking {
        let budget = match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .and_then(|b| u32::try_from(b).ok())
                .ok_or_else(|| {
                    Error::invalid("`thinking` of type `enabled` needs `budget_tokens`")
                })?,
            Some("disabled") => 0,
            _ => return Err(Error::unsupported(SCHEMA, "this `thinking` object")),
        };
        return Ok(Some(ThinkingConfig {
            thinking_budget: budget,
            include_thoughts: budget > 0,
        }));
    }
    let Some(effort) = chat.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let budget = thinking_budget(effort)
        .ok_or_else(|| Error::unsupported(SCHEMA, format!("`reasoning_effort` `{effort}`")))?;
    Ok(Some(ThinkingConfig {
        thinking_budget: budget,
        include_thoughts: true,
    }))
}

/// A candidate's `finishReason` as an OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, called: bool) -> FinishReason {
    match reason {
        "STOP" if called => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        // SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL..:
        // the answer did not end as the model meant it to (the reference's mapping).
        _ => FinishReason::ContentFilter,
    }
}

/// The id the gateway gives the `n`th function call of a response.
fn call_id(n: usize, response: &str) -> String {
    format!("call_{n}_{response}")
}

/// A `generateContent` response as a chat completion; `None` when it is not one.
pub fn response(body: &[u8], ids: &Ids, model: &str) -> Option<(Vec<u8>, Usage)> {
    let parsed: Response<'_> = serde_json::from_slice(body).ok()?;
    let id = parsed.response_id.as_deref().unwrap_or(&ids.id);
    let mut reply = openai::ResponseMessage {
        role: "assistant",
        ..Default::default()
    };
    let mut text = String::new();
    let candidate = parsed.candidates.first();
    for part in candidate
        .and_then(|c| c.content.as_ref())
        .map_or(&[][..], |c| &c.parts)
    {
        match (&part.text, &part.function_call) {
            (Some(t), _) if part.thought => reply
                .reasoning_content
                .get_or_insert_with(String::new)
                .push_str(t),
            (Some(t), _) => text.push_str(t),
            (None, Some(call)) => {
                let n = reply.tool_calls.len();
                reply.tool_calls.push(openai::ToolCallOut {
                    index: None,
                    id: call
                        .id
                        .as_deref()
                        .map_or_else(|| call_id(n, id), str::to_owned),
                    kind: "function",
                    function: openai::FunctionOut {
                        name: call.name.to_string(),
                        arguments: call
                            .args
                            .as_ref()
                            .map_or_else(|| "{}".into(), |a| a.to_string()),
                    },
                });
            }
            (None, None) => {}
        }
    }
    reply.content = Some(text);
    let finish = match candidate.and_then(|c| c.finish_reason.as_deref()) {
        Some(reason) => finish_reason(reason, !reply.tool_calls.is_empty()),
        // No candidate: the prompt itself was blocked.
        None if parsed
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some()) =>
        {
            FinishReason::ContentFilter
        }
        None => FinishReason::Stop,
    };
    let usage = parsed.usage_metadata.unwrap_or_default().usage();
    let completion = openai::ChatCompletion {
        id,
        object: "chat.completion",
        created: ids.created,
        model: parsed.model_version.as_deref().unwrap_or(model),
        choices: [openai::Choice {
            index: 0,
            message: reply,
            finish_reason: Some(finish),
        }],
        usage: Some(usage.into()),
    };
    Some((serde_json::to_vec(&completion).ok()?, usage))
}

/// A Google error body's status and message (`None` when the body is not one).
pub fn error(body: &[u8]) -> Option<(String, String)> {
    let parsed: ErrorBody<'_> = serde_json::from_slice(body).ok()?;
    let error = parsed.into_error();
    let kind = error.status.as_deref().unwrap_or("GCPVertexAIBackendError");
    Some((kind.to_owned(), error.message.into_owned()))
}

/// The state of one translated `streamGenerateContent?alt=sse`. Every event is a whole
/// response; the stream has ended when a candidate gave its finish reason and the upstream
/// closed.
#[derive(Debug)]
pub struct Stream {
    core: Core,
    usage: Option<RawUsage>,
    started: bool,
    calls: usize,
    finished: bool,
}

impl Stream {
    pub fn new(ids: Ids, model: &str, include_usage: bool) -> Self {
        Stream {
            core: Core::new(ids, model, include_usage),
            usage: None,
            started: false,
            calls: 0,
            finished: false,
        }
    }

    /// One event's JSON.
    pub fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.core.ended() {
            return;
        }
        // An error object also reads as an empty response: tell them apart by content.
        if let Ok(parsed) = serde_json::from_slice::<Response<'_>>(data)
            && (!parsed.candidates.is_empty()
                || parsed.usage_metadata.is_some()
                || parsed.prompt_feedback.is_some())
        {
            return stream_event(self, parsed, out);
        }
        match error(data) {
            Some((kind, message)) => self.core.fail(&kind, &message, out),
            None => self.core.unreadable(out),
        }
    }

    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        self.core.fail(kind, message, out);
    }

    /// The upstream closed: the end of the stream if a candidate finished, an error if not.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.finished {
            let usage = self.usage();
            self.core.end(usage, out);
        }
        self.core.cut(out);
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(|u| u.usage())
    }
}

/// One streamed response as OpenAI chunks.
pub fn stream_event(state: &mut Stream, event: Response<'_>, out: &mut BytesMut) {
    if let Some(usage) = event.usage_metadata {
        state.usage = Some(usage);
    }
    let writer = &mut state.core.writer;
    if !state.started {
        state.started = true;
        if let Some(id) = event.response_id.as_deref() {
            writer.id = id.to_owned();
        }
        if let Some(model) = event.model_version.as_deref() {
            writer.model = model.to_owned();
        }
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Delta::default()
        };
        writer.delta(out, delta, None);
    }
    let writer = &state.core.writer;
    let Some(candidate) = event.candidates.first() else {
        // No candidate: the prompt itself was blocked.
        if event
            .prompt_feedback
            .is_some_and(|f| f.block_reason.is_some())
        {
            writer.delta(out, Delta::default(), Some(FinishReason::ContentFilter));
            state.finished = true;
        }
        return;
    };
    for part in candidate.content.iter().flat_map(|c| &c.parts) {
        match (&part.text, &part.function_call) {
            (Some(text), _) if part.thought => {
                let delta = Delta {
                    reasoning_content: Some(text),
                    ..Delta::default()
                };
                writer.delta(out, delta, None);
            }
            (Some(text), _) => {
                let delta = Delta {
                    content: Some(text),
                    ..Delta::default()
                };
                writer.delta(out, delta, None);
            }
            (None, Some(call)) => {
                let n = state.calls;
                state.calls += 1;
                let id = call
                    .id
                    .as_deref()
                    .map_or_else(|| call_id(n, &writer.id), str::to_owned);
                let arguments = call
                    .args
                    .as_ref()
                    .map_or_else(|| "{}".into(), |a| a.to_string());
                let calls = [openai::DeltaToolCall {
                    index: n as u32,
                    id: Some(&id),
                    kind: Some("function"),
                    function: openai::DeltaFunction {
                        name: Some(&call.name),
                        arguments: &arguments,
                    },
                }];
                let delta = Delta {
                    tool_calls: &calls,
                    ..Delta::default()
                };
                writer.delta(out, delta, None);
            }
            (None, None) => {}
        }
    }
    if let Some(reason) = candidate.finish_reason.as_deref() {
        let finish = finish_reason(reason, state.calls > 0);
        writer.delta(out, Delta::default(), Some(finish));
        state.finished = true;
    }
}
