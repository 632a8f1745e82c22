//! Anthropic's `count_tokens` for the `OpenAI` schema: the conversation as the input of
//! OpenAI's `POST /v1/responses/input_tokens`, and its answer (`{"object":
//! "response.input_tokens", "input_tokens": n}`) back as Anthropic's `{"input_tokens": n}`.
//!
//! OpenAI counts the input of a Responses API request, not a chat completion's messages, so
//! the request is written as Responses items. What is counted is what the chat translation
//! ([`super::from_anthropic`]) would send, item for item:
//! - the system prompt is the first item, a `system` message;
//! - a user turn's text and images are one `message` item of `input_text` and `input_image`
//!   parts (images as URLs or data URLs, `detail: auto`); its `tool_result` blocks are
//!   `function_call_output` items ahead of them, texts only as for chat;
//! - an assistant turn's texts are assistant messages with string content (the API takes
//!   `output_text` parts only in the items it wrote itself), its `tool_use` blocks are
//!   `function_call` items, and its thinking blocks are not sent;
//! - tools are flat function tools with `strict: false`: the Responses API is strict by
//!   default, which an Anthropic input schema need not satisfy (chat is not);
//! - the tool choice is chat's (`any` → `required`, a named tool → `{"type": "function",
//!   "name"}`), the effort is `reasoning.effort` and `output_config.format` is
//!   `text.format`, as chat maps them;
//! - what does not change the input (`max_tokens`, `temperature`, `top_p`, `top_k`,
//!   `stop_sequences`, `stream`, `metadata`) is not sent; fields we do not know are 422.
//!
//! Azure OpenAI documents no such endpoint (its v1 API is reported to answer 404 for
//! `/responses/input_tokens`): a count for it stays 501.
//!
//! Reference: <https://platform.openai.com/docs/api-reference/responses/input-tokens>.

use super::from_anthropic::{OUTPUT_NAME, image_url, insert_choice, reasoning_effort, tool_choice};
use crate::Error;
use crate::anthropic::messages::{InBlockKind, InContent, InMessage, MessagesRequest, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The body of `POST /v1/responses/input_tokens` for `request`.
pub fn request(request: &MessagesRequest, schema: &'static str) -> Result<Vec<u8>, Error> {
    request.refuse_unknown(schema)?;
    let mut input = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        let parts = system
            .texts("the system prompt", schema)?
            .into_iter()
            .map(input_text)
            .collect();
        input.push(message("system", Value::Array(parts)));
    }
    for turn in &request.messages {
        items(turn, &mut input, schema)?;
    }
    let mut out = Map::new();
    out.insert("model".into(), request.model.clone().into());
    out.insert("input".into(), Value::Array(input));
    if let Some(effort) = reasoning_effort(request)? {
        out.insert("reasoning".into(), json!({"effort": effort}));
    }
    if let Some(schema) = request.output_schema(schema)? {
        let format =
            json!({"type": "json_schema", "name": OUTPUT_NAME, "schema": schema, "strict": true});
        out.insert("text".into(), json!({"format": format}));
    }
    let choice = tool_choice(request, |name| json!({"type": "function", "name": name}))?;
    if let Some(tools) = request.tools.as_ref().filter(|t| !t.is_empty()) {
        let tools = tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("type".into(), "function".into());
                function.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    function.insert("description".into(), description.clone().into());
                }
                function.insert("parameters".into(), tool.schema(schema)?);
                function.insert("strict".into(), false.into());
                Ok(Value::Object(function))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        out.insert("tools".into(), Value::Array(tools));
        insert_choice(choice, &mut out);
    }
    serde_json::to_vec(&out).map_err(|e| Error::invalid(format!("cannot encode request: {e}")))
}

fn message(role: &str, content: Value) -> Value {
    json!({"type": "message", "role": role, "content": content})
}

fn input_text(text: String) -> Value {
    json!({"type": "input_text", "text": text})
}

/// One Anthropic turn as Responses items, appended to `out`.
fn items(turn: &InMessage, out: &mut Vec<Value>, schema: &'static str) -> Result<(), Error> {
    let blocks = match &turn.content {
        InContent::Text(text) => {
            let role = match turn.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            out.push(message(role, text.clone().into()));
            return Ok(());
        }
        InContent::Blocks(blocks) => blocks,
    };
    match turn.role {
        Role::User => {
            let mut parts = Vec::new();
            for block in blocks {
                match block.known()? {
                    InBlockKind::Text { text } => parts.push(input_text(text.clone())),
                    InBlockKind::Image { source } => parts.push(json!({
                        "type": "input_image",
                        "image_url": image_url(source, schema)?,
                        "detail": "auto",
                    })),
                    InBlockKind::ToolResult {
                        tool_use_id,
                        content,
                        is_error: _,
                    } => {
                        let mut texts = match content {
                            Some(content) => content.texts("a tool result", schema)?,
                            None => Vec::new(),
                        };
                        // One text as a string, several as parts (as chat sends them).
                        let output = if texts.len() <= 1 {
                            Value::String(texts.pop().unwrap_or_default())
                        } else {
                            Value::Array(texts.into_iter().map(input_text).collect())
                        };
                        out.push(json!({
                            "type": "function_call_output",
                            "call_id": tool_use_id,
                            "output": output,
                        }));
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
                out.push(message("user", Value::Array(parts)));
            }
        }
        Role::Assistant => {
            for block in blocks {
                match block.known()? {
                    InBlockKind::Text { text } => {
                        out.push(message("assistant", text.clone().into()));
                    }
                    InBlockKind::ToolUse { id, name, input } => out.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": input.to_string(),
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
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct InputTokens {
    input_tokens: u64,
}

/// OpenAI's count (`{"object": "response.input_tokens", "input_tokens": n}`) as Anthropic's.
pub fn response(body: &[u8]) -> Option<Vec<u8>> {
    let parsed: InputTokens = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&json!({"input_tokens": parsed.input_tokens})).ok()
}
