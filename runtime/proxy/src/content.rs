//! Prompt and answer content for traces, recorded only when asked for with the OpenTelemetry
//! GenAI instrumentations' opt-in, `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`
//! (in the environment or a GatewayConfig's env). Off, nothing here runs and no text leaves the
//! request. On, the request span gets:
//! - `gen_ai.input.messages`: the client's `messages` (chat, Anthropic), `input` (Responses,
//!   embeddings) or `prompt` (completions), as the JSON it sent;
//! - `gen_ai.system_instructions`: an Anthropic request's `system`;
//! - `gen_ai.output.messages`: the answer's text as the conventions' message list
//!   (`[{"role":"assistant","parts":[{"type":"text","content":…}]}]`), read from a whole answer
//!   (OpenAI choices, Anthropic text blocks, Responses output text) or gathered from a stream's
//!   text deltas, in the client's API.
//!
//! Each is cut at [`LIMIT`] bytes (at a character boundary), so a long conversation cannot make
//! a span, or the memory of a stream that gathers its text, unbounded.

use serde_json::Value;

/// The most bytes kept of each captured text.
pub const LIMIT: usize = 64 << 10;

/// The request's input attributes, `(name, JSON)`; none when the body is not a JSON object.
pub fn input(body: &[u8]) -> Vec<(&'static str, String)> {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let messages = ["messages", "input", "prompt"]
        .iter()
        .find_map(|field| request.get(*field));
    if let Some(messages) = messages {
        out.push(("gen_ai.input.messages", capped(messages.to_string())));
    }
    if let Some(system) = request.get("system") {
        out.push(("gen_ai.system_instructions", capped(system.to_string())));
    }
    out
}

/// Appends the text of a whole answer to `out`.
pub fn answer(value: &Value, out: &mut String) {
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        for choice in choices {
            let text = choice
                .get("message")
                .and_then(|m| m.get("content"))
                .or_else(|| choice.get("text"));
            push(out, text.and_then(Value::as_str));
        }
    }
    if let Some(blocks) = value.get("content").and_then(Value::as_array) {
        for block in blocks {
            if block.get("type").and_then(Value::as_str) == Some("text") {
                push(out, block.get("text").and_then(Value::as_str));
            }
        }
    }
    if let Some(items) = value.get("output").and_then(Value::as_array) {
        for part in items
            .iter()
            .filter_map(|i| i.get("content").and_then(Value::as_array))
            .flatten()
        {
            if part.get("type").and_then(Value::as_str) == Some("output_text") {
                push(out, part.get("text").and_then(Value::as_str));
            }
        }
    }
}

/// Appends the text delta of one stream event's data to `out`.
pub fn delta(value: &Value, out: &mut String) {
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        for choice in choices {
            let text = choice
                .get("delta")
                .and_then(|d| d.get("content"))
                .or_else(|| choice.get("text"));
            push(out, text.and_then(Value::as_str));
        }
        return;
    }
    match value.get("type").and_then(Value::as_str) {
        // Anthropic.
        Some("content_block_delta") => {
            push(
                out,
                value
                    .get("delta")
                    .and_then(|d| d.get("text"))
                    .and_then(Value::as_str),
            );
        }
        // The Responses API.
        Some("response.output_text.delta") => push(out, value.get("delta").and_then(Value::as_str)),
        _ => {}
    }
}

/// Appends the text deltas of the `data:` lines of whole server-sent events to `out`.
pub fn events(chunk: &[u8], out: &mut String) {
    for line in chunk.split(|b| *b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        if let Ok(value) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            delta(&value, out);
        }
    }
}

/// `gen_ai.output.messages` of the answer's text.
pub fn output(text: &str) -> String {
    serde_json::json!([{
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
    }])
    .to_string()
}

fn push(out: &mut String, text: Option<&str>) {
    let Some(text) = text else { return };
    let room = LIMIT.saturating_sub(out.len());
    out.push_str(&text[..floor_boundary(text, room)]);
}

fn capped(mut text: String) -> String {
    text.truncate(floor_boundary(&text, LIMIT));
    text
}

/// The largest character boundary of `text` at or below `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_the_clients_own_json() {
        let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            input(chat.to_string().as_bytes()),
            [(
                "gen_ai.input.messages",
                r#"[{"role":"user","content":"hi"}]"#.to_owned()
            )]
        );
        let anthropic = json!({"model": "m", "system": "be brief", "messages": []});
        let got = input(anthropic.to_string().as_bytes());
        assert_eq!(
            got[1],
            ("gen_ai.system_instructions", "\"be brief\"".to_owned())
        );
        let completion = json!({"model": "m", "prompt": "once upon"});
        assert_eq!(
            input(completion.to_string().as_bytes())[0].1,
            "\"once upon\""
        );
        assert!(input(b"not json").is_empty());
    }

    #[test]
    fn answers_and_deltas_of_every_client_api_give_their_text() {
        let mut text = String::new();
        answer(
            &json!({"choices": [{"message": {"content": "chat"}}, {"text": " completion"}]}),
            &mut text,
        );
        answer(
            &json!({"content": [{"type": "text", "text": " anthropic"}, {"type": "tool_use"}]}),
            &mut text,
        );
        answer(
            &json!({"output": [{"content": [{"type": "output_text", "text": " responses"}]}]}),
            &mut text,
        );
        assert_eq!(text, "chat completion anthropic responses");
        let mut streamed = String::new();
        events(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
              event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"b\"}}\n\n\
              data: {\"type\":\"response.output_text.delta\",\"delta\":\"c\"}\n\ndata: [DONE]\n\n",
            &mut streamed,
        );
        assert_eq!(streamed, "abc");
        assert_eq!(
            output("abc"),
            r#"[{"role":"assistant","parts":[{"type":"text","content":"abc"}]}]"#
        );
    }

    #[test]
    fn captured_text_stops_at_the_limit_on_a_character_boundary() {
        let mut text = String::new();
        let long = "é".repeat(LIMIT);
        push(&mut text, Some(&long));
        push(&mut text, Some("more"));
        assert!(
            text.len() <= LIMIT && text.len() > LIMIT - 2,
            "{}",
            text.len()
        );
        assert!(text.chars().all(|c| c == 'é'));
        assert_eq!(capped("x".repeat(LIMIT + 10)).len(), LIMIT);
    }
}
