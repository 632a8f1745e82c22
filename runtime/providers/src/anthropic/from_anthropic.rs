//! Anthropic Messages → the Anthropic family (`Anthropic`, `GCPAnthropic`, `AWSAnthropic`):
//! the client's body with only what the platform needs changed, and the answer relayed as
//! Anthropic wrote it while its usage is read.
//!
//! Decisions (the reference's):
//! - `Anthropic`: the body goes as the client wrote it, with the client's `anthropic-version`
//!   header (or [`super::API_VERSION`] when it sent none);
//! - Vertex AI (`rawPredict`, `streamRawPredict`) and Bedrock (`invoke`,
//!   `invoke-with-response-stream`) name the model in the path: `model` leaves the body and
//!   `anthropic_version` enters it (the schema's version, or the platform's default); Bedrock
//!   also drops `stream` (its operation says it) and takes the `anthropic-beta` header as the
//!   body's `anthropic_beta` list;
//! - Bedrock's stream (event-stream frames wrapping each event as base64) is re-emitted as
//!   Anthropic's server-sent events, `event:` line included;
//! - `count_tokens`: Vertex AI's `count-tokens:rawPredict` keeps `model` in the body (without
//!   a `@default`/`@latest` suffix) and drops the fields that only shape the answer
//!   (`max_tokens`, sampling, `stop_sequences`, `stream`, `metadata`), as Anthropic's count
//!   takes none of them; Bedrock's CountTokens takes the invoke body, base64, as
//!   `input.invokeModel.body`, for a model id without its cross-region prefix (`us.`, `eu.`,
//!   `apac.`, `global.`), which CountTokens refuses, and answers `inputTokens`.

use super::RawUsage;
use crate::{Error, Usage};
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Where an Anthropic-family backend runs.
#[derive(Clone, Copy, Debug)]
pub enum Platform<'a> {
    Anthropic,
    Vertex {
        version: &'a str,
    },
    Bedrock {
        version: &'a str,
        /// The client's `anthropic-beta` header.
        beta: Option<&'a str>,
    },
}

/// The Messages body for `platform`; `None`: the client's, unchanged.
pub fn request(body: &[u8], platform: Platform<'_>) -> Result<Option<Vec<u8>>, Error> {
    if let Platform::Anthropic = platform {
        return Ok(None);
    }
    let mut object = object(body)?;
    place(&mut object, platform);
    Ok(Some(to_vec(&object)))
}

/// The `count_tokens` body for `platform`; `None`: the client's, unchanged.
pub fn count_request(body: &[u8], platform: Platform<'_>) -> Result<Option<Vec<u8>>, Error> {
    match platform {
        Platform::Anthropic => Ok(None),
        Platform::Vertex { version } => {
            let mut object = object(body)?;
            if let Some(Value::String(model)) = object.get_mut("model") {
                for suffix in ["@default", "@latest"] {
                    if let Some(bare) = model.strip_suffix(suffix) {
                        *model = bare.to_owned();
                    }
                }
            }
            // The count takes the conversation only: what shapes the answer is not its.
            for field in GENERATION_ONLY {
                object.remove(*field);
            }
            object.insert("anthropic_version".into(), version.into());
            Ok(Some(to_vec(&object)))
        }
        Platform::Bedrock { .. } => {
            let mut object = object(body)?;
            place(&mut object, platform);
            // InvokeModel's body requires `max_tokens`; counting ignores it.
            object.entry("max_tokens").or_insert(Value::from(1));
            let inner = base64::engine::general_purpose::STANDARD.encode(to_vec(&object));
            Ok(Some(to_vec(&serde_json::json!({
                "input": {"invokeModel": {"body": inner}}
            }))))
        }
    }
}

/// The Messages fields that shape the answer and not the input, which `count_tokens` does
/// not take.
const GENERATION_ONLY: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
];

/// A Bedrock model id as CountTokens takes it: without a cross-region inference prefix.
pub fn count_model(model: &str) -> &str {
    match model.split_once('.') {
        Some((region, rest))
            if matches!(
                region,
                "us" | "eu" | "apac" | "global" | "us-gov" | "jp" | "au"
            ) && rest.contains('.') =>
        {
            rest
        }
        _ => model,
    }
}

fn object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("the messages request is invalid: {e}")))
}

fn to_vec(value: &impl serde::Serialize) -> Vec<u8> {
    // Serializing a JSON value into memory cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn place(object: &mut Map<String, Value>, platform: Platform<'_>) {
    object.remove("model");
    match platform {
        Platform::Anthropic => {}
        Platform::Vertex { version } => {
            object.insert("anthropic_version".into(), version.into());
        }
        Platform::Bedrock { version, beta } => {
            object.remove("stream");
            object.insert("anthropic_version".into(), version.into());
            let betas: Vec<Value> = beta
                .into_iter()
                .flat_map(|b| b.split(','))
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(Value::from)
                .collect();
            if !betas.is_empty() && !object.contains_key("anthropic_beta") {
                object.insert("anthropic_beta".into(), Value::Array(betas));
            }
        }
    }
}

#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: RawUsage,
}

/// The usage of a whole message (the body itself goes to the client unchanged).
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    let parsed: UsageOnly = serde_json::from_slice(body).ok()?;
    Some(parsed.usage.usage())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputTokens {
    input_tokens: u64,
}

/// Bedrock's CountTokens answer (`{"inputTokens": n}`) as Anthropic's.
pub fn count_response(body: &[u8]) -> Option<Vec<u8>> {
    let parsed: InputTokens = serde_json::from_slice(body).ok()?;
    Some(to_vec(
        &serde_json::json!({"input_tokens": parsed.input_tokens}),
    ))
}

/// What the relay reads of each event: its type, and usage where it has some.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    message: Option<UsageOnly>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

/// An Anthropic stream relayed event by event, as the provider wrote each one, with an
/// `event:` line; its usage read on the way. Ends with `message_stop` or one `error` event.
#[derive(Debug, Default)]
pub struct Passthrough {
    usage: Option<RawUsage>,
    ended: bool,
}

impl Passthrough {
    /// One event's JSON.
    pub fn event(&mut self, data: &[u8], out: &mut BytesMut) {
        if self.ended {
            return;
        }
        let Ok(head) = serde_json::from_slice::<EventHead<'_>>(data) else {
            self.fail(
                "api_error",
                "the provider sent a stream event that could not be read",
                out,
            );
            return;
        };
        match head.kind.as_ref() {
            "message_start" => {
                self.usage = head.message.map(|m| m.usage);
            }
            "message_delta" => {
                if let Some(later) = head.usage {
                    self.usage
                        .get_or_insert_with(RawUsage::default)
                        .merge(later);
                }
            }
            "message_stop" | "error" => self.ended = true,
            _ => {}
        }
        out.put_slice(b"event: ");
        out.put_slice(head.kind.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(data);
        out.put_slice(b"\n\n");
    }

    pub fn fail(&mut self, kind: &str, message: &str, out: &mut BytesMut) {
        if !self.ended {
            self.ended = true;
            super::reply::write_error(out, kind, message);
        }
    }

    /// The upstream closed: an error event unless the message stopped.
    pub fn finish(&mut self, out: &mut BytesMut) {
        self.fail(
            "api_error",
            "the provider's stream ended before its last event",
            out,
        );
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(|u| u.usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    #[test]
    fn bedrock_takes_the_version_and_betas_in_the_body() {
        let body = br#"{"model":"m","stream":true,"max_tokens":5,"messages":[]}"#;
        let platform = Platform::Bedrock {
            version: "bedrock-2023-05-31",
            beta: Some("a, b,"),
        };
        let out = request(body, platform).ok().flatten().unwrap_or_default();
        assert_eq!(
            json(&out),
            serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["a", "b"], "max_tokens": 5, "messages": []})
        );
    }

    #[test]
    fn counting_on_bedrock_wraps_the_invoke_body() {
        let body = br#"{"model":"m","messages":[]}"#;
        let platform = Platform::Bedrock {
            version: "bedrock-2023-05-31",
            beta: None,
        };
        let out = json(
            &count_request(body, platform)
                .ok()
                .flatten()
                .unwrap_or_default(),
        );
        let inner = out["input"]["invokeModel"]["body"]
            .as_str()
            .unwrap_or_default();
        let inner = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .unwrap_or_default();
        assert_eq!(
            json(&inner),
            serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1, "messages": []})
        );
        assert_eq!(
            count_model("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(count_model("anthropic.claude-v2"), "anthropic.claude-v2");
    }

    #[test]
    fn a_relayed_stream_keeps_its_events_and_reads_usage() {
        let mut relay = Passthrough::default();
        let mut out = BytesMut::new();
        relay.event(
            br#"{"type":"message_start","message":{"usage":{"input_tokens":7,"cache_read_input_tokens":3}}}"#,
            &mut out,
        );
        relay.event(
            br#"{"type":"message_delta","delta":{},"usage":{"output_tokens":4}}"#,
            &mut out,
        );
        relay.event(br#"{"type":"message_stop"}"#, &mut out);
        relay.finish(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        let usage = relay.usage().unwrap_or_default();
        assert_eq!((usage.input, usage.output, usage.cached_input), (10, 4, 3));
    }
}
