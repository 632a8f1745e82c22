//! What the gateway writes back to an Anthropic client when the backend speaks another API:
//! the message, its server-sent events and errors, all in Anthropic's shapes.
//!
//! Reference: <https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/api/messages-streaming>, <https://docs.anthropic.com/en/api/errors>.

use crate::{Ids, Usage};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde_json::Value;

/// Why the model stopped, as Anthropic names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    Refusal,
    ModelContextWindowExceeded,
}

/// A whole message (the non-streamed answer).
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<OutBlock>,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
    pub usage: OutUsage,
}

impl<'a> Message<'a> {
    pub fn new(id: &'a str, model: &'a str) -> Self {
        Message {
            id,
            kind: "message",
            role: "assistant",
            model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: OutUsage::default(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Anthropic's usage: `input_tokens` excludes the cache reads and writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl From<Usage> for OutUsage {
    fn from(u: Usage) -> Self {
        OutUsage {
            input_tokens: u
                .input
                .saturating_sub(u.cached_input)
                .saturating_sub(u.cache_creation_input),
            output_tokens: u.output,
            cache_creation_input_tokens: u.cache_creation_input,
            cache_read_input_tokens: u.cached_input,
        }
    }
}

/// `event: <name>\ndata: <json>\n\n` (the SDKs skip events without an `event:` line).
pub fn write_event(out: &mut BytesMut, name: &str, value: &impl Serialize) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    // Serializing our own types into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), value);
    out.put_slice(b"\n\n");
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorObjectOut<'a>,
}

#[derive(Serialize)]
struct ErrorObjectOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type": "error", "error": {"type", "message"}}`.
pub fn error_json(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&error_value(kind, message)).unwrap_or_default()
}

fn error_value<'a>(kind: &'a str, message: &'a str) -> impl Serialize + 'a {
    ErrorOut {
        kind: "error",
        error: ErrorObjectOut { kind, message },
    }
}

/// A stream's `error` event.
pub(crate) fn write_error(out: &mut BytesMut, kind: &str, message: &str) {
    write_event(out, "error", &error_value(kind, message));
}

/// The kind of content block open in a stream, and the provider's own key for it (its
/// block index, or the tool call's index), so that a new key opens a new block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKey {
    Text(u32),
    Thinking(u32),
    Tool(u32),
}

/// Writes a message as Anthropic's stream: `message_start`, content blocks opened, filled and
/// closed one at a time, then `message_delta` (stop reason and usage) and `message_stop`; or
/// a single `error` event. Translations of other providers' streams drive it.
#[derive(Debug)]
pub struct EventWriter {
    ids: Ids,
    model: String,
    started: bool,
    /// The open block and its index.
    open: Option<(BlockKey, u32)>,
    next_index: u32,
    stop: Option<StopReason>,
    ended: bool,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
}

#[derive(Serialize)]
struct BlockDeltaOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: DeltaOut<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

impl EventWriter {
    pub fn new(ids: Ids, model: &str) -> Self {
        EventWriter {
            ids,
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            stop: None,
            ended: false,
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The model has stopped; the message ends with the usage that may still follow.
    pub fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// `message_start`, once. Input usage is unknown until the end: `message_delta` carries
    /// the whole usage (the SDKs take its input counts).
    pub fn start(&mut self, out: &mut BytesMut) {
        if self.started || self.ended {
            return;
        }
        self.started = true;
        let message = Message::new(&self.ids.id, &self.model);
        write_event(
            out,
            "message_start",
            &serde_json::json!({"type": "message_start", "message": message}),
        );
    }

    pub fn text(&mut self, key: u32, text: &str, out: &mut BytesMut) {
        let index = self.block(BlockKey::Text(key), out);
        self.delta(index, DeltaOut::Text { text }, out);
    }

    pub fn thinking(&mut self, key: u32, thinking: &str, out: &mut BytesMut) {
        let index = self.block(BlockKey::Thinking(key), out);
        self.delta(index, DeltaOut::Thinking { thinking }, out);
    }

    pub fn signature(&mut self, key: u32, signature: &str, out: &mut BytesMut) {
        let index = self.block(BlockKey::Thinking(key), out);
        self.delta(index, DeltaOut::Signature { signature }, out);
    }

    /// Opens a tool-use block.
    pub fn tool_start(&mut self, key: u32, id: &str, name: &str, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((BlockKey::Tool(key), index));
        let start = BlockStart {
            kind: "content_block_start",
            index,
            content_block: StartBlock::ToolUse {
                id,
                name,
                input: Value::Object(serde_json::Map::new()),
            },
        };
        write_event(out, "content_block_start", &start);
    }

    /// Input JSON for the open tool-use block of `key`; `false` when that block is not the
    /// open one (Anthropic's blocks cannot interleave).
    pub fn tool_input(&mut self, key: u32, partial_json: &str, out: &mut BytesMut) -> bool {
        match self.open {
            Some((BlockKey::Tool(open), index)) if open == key => {
                self.delta(index, DeltaOut::InputJson { partial_json }, out);
                true
            }
            _ => self.ended,
        }
    }

    /// Closes the open block, if any.
    pub fn close(&mut self, out: &mut BytesMut) {
        if let Some((_, index)) = self.open.take() {
            write_event(
                out,
                "content_block_stop",
                &serde_json::json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// The model stopped: the open block is closed; the message ends at [`Self::end`].
    pub fn stop(&mut self, reason: StopReason, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        self.stop = Some(reason);
    }

    /// `message_delta` with the stop reason and usage, then `message_stop`.
    pub fn end(&mut self, usage: Option<Usage>, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        self.start(out);
        self.close(out);
        let usage = OutUsage::from(usage.unwrap_or_default());
        let stop = self.stop.unwrap_or(StopReason::EndTurn);
        write_event(
            out,
            "message_delta",
            &serde_json::json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": usage,
            }),
        );
        write_event(
            out,
            "message_stop",
            &serde_json::json!({"type": "message_stop"}),
        );
        self.ended = true;
    }

    /// Ends the stream with an `error` event, unless it has ended.
    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            write_error(out, kind, message);
        }
    }

    /// The upstream closed before its last event.
    pub fn cut(&mut self, out: &mut BytesMut) {
        self.fail(
            "api_error",
            "the provider's stream ended before its last event",
            out,
        );
    }

    /// An event that could not be read ends the stream.
    pub fn unreadable(&mut self, out: &mut BytesMut) {
        self.fail(
            "api_error",
            "the provider sent a stream event that could not be read",
            out,
        );
    }

    /// The index of the block for `key`, opening it (and closing another) as needed.
    fn block(&mut self, key: BlockKey, out: &mut BytesMut) -> u32 {
        if let Some((open, index)) = self.open
            && open == key
        {
            return index;
        }
        self.start(out);
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((key, index));
        let content_block = match key {
            BlockKey::Thinking(_) => StartBlock::Thinking {
                thinking: "",
                signature: "",
            },
            _ => StartBlock::Text { text: "" },
        };
        let start = BlockStart {
            kind: "content_block_start",
            index,
            content_block,
        };
        write_event(out, "content_block_start", &start);
        index
    }

    fn delta(&mut self, index: u32, delta: DeltaOut<'_>, out: &mut BytesMut) {
        if self.ended {
            return;
        }
        let event = BlockDeltaOut {
            kind: "content_block_delta",
            index,
            delta,
        };
        write_event(out, "content_block_delta", &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            id: "msg_1".into(),
            created: 0,
        }
    }

    fn events(out: &BytesMut) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| l.strip_prefix("event: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn blocks_open_and_close_one_at_a_time() {
        let mut w = EventWriter::new(ids(), "m");
        let mut out = BytesMut::new();
        w.thinking(0, "hm", &mut out);
        w.text(0, "a", &mut out);
        w.text(0, "b", &mut out);
        w.tool_start(0, "t1", "f", &mut out);
        assert!(w.tool_input(0, "{}", &mut out));
        assert!(!w.tool_input(1, "{}", &mut out));
        w.stop(StopReason::ToolUse, &mut out);
        w.end(None, &mut out);
        assert_eq!(
            events(&out),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(r#""index":2,"content_block":{"type":"tool_use""#));
        assert!(text.contains(r#""stop_reason":"tool_use""#));
    }

    #[test]
    fn a_failure_is_the_last_event() {
        let mut w = EventWriter::new(ids(), "m");
        let mut out = BytesMut::new();
        w.text(0, "a", &mut out);
        w.fail("overloaded_error", "busy", &mut out);
        w.text(0, "b", &mut out);
        w.end(None, &mut out);
        assert_eq!(events(&out).last().map(String::as_str), Some("error"));
        assert!(String::from_utf8_lossy(&out).ends_with(
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
        ));
    }

    #[test]
    fn usage_excludes_cache_from_input() {
        let usage = Usage {
            input: 100,
            output: 5,
            cached_input: 60,
            cache_creation_input: 10,
            reasoning: 0,
            total: None,
        };
        assert_eq!(
            OutUsage::from(usage),
            OutUsage {
                input_tokens: 30,
                output_tokens: 5,
                cache_creation_input_tokens: 10,
                cache_read_input_tokens: 60
            }
        );
    }
}
