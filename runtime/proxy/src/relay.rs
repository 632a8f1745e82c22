//! The response body relayed from the backend to the client, frame by frame: never buffered
//! whole. On the way it enforces the rule's request deadline and stream idle timeout, reads the
//! token usage (from the JSON body, or from the stream's usage chunk), and can drop the usage
//! chunk the gateway asked for on the client's behalf.
//!
//! Server-sent events are relayed as whole events: bytes of an event split across upstream
//! frames wait for the rest of that event (and only for it), so that an event is never cut in
//! two and the usage chunk can be recognised and removed.

use crate::body::BoxError;
use crate::metrics::{Metrics, Usage};
use aigw_providers::sse::event_end;
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Non-streamed bodies are kept for the usage read only up to this size.
const USAGE_SCAN_LIMIT: usize = 4 << 20;

/// How the body is relayed.
#[derive(Debug)]
pub enum Mode {
    /// As it comes (a JSON or binary body).
    Whole,
    /// `text/event-stream`, event by event; `strip_usage` drops the usage-only chunk.
    Events { strip_usage: bool },
    /// A provider's stream translated into the client's API as it arrives; the translator
    /// reports the usage.
    Translate(Box<aigw_providers::StreamTranslator>),
}

pub struct Relay {
    inner: hyper::body::Incoming,
    mode: Mode,
    /// Read token usage from this body.
    scan: bool,
    /// The body so far (whole mode, while scanning), the unfinished event (events mode), or
    /// the translated bytes not yet handed on (translate mode).
    held: BytesMut,
    usage: Option<Usage>,
    /// The rule's request deadline; none for a plain route without `timeouts.request`.
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    metrics: Metrics,
    backend: Arc<str>,
    finished: bool,
}

impl Relay {
    pub fn new(
        inner: hyper::body::Incoming,
        mode: Mode,
        scan: bool,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        metrics: Metrics,
        backend: Arc<str>,
    ) -> Self {
        Relay {
            inner,
            mode,
            scan,
            held: BytesMut::new(),
            usage: None,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            metrics,
            backend,
            finished: false,
        }
    }

    /// Complete events out of `held`, minus a stripped usage chunk, noting usage.
    fn take_events(&mut self, at_end: bool) -> Option<Bytes> {
        let Mode::Events { strip_usage } = &self.mode else {
            return None;
        };
        let strip_usage = *strip_usage;
        let mut out = BytesMut::new();
        loop {
            let end = event_end(&self.held)
                .or_else(|| (at_end && !self.held.is_empty()).then_some(self.held.len()));
            let Some(end) = end else { break };
            let event = self.held.split_to(end).freeze();
            let (usage, usage_only) = if self.scan || strip_usage {
                event_usage(&event)
            } else {
                (None, false)
            };
            if usage.is_some() {
                self.usage = usage;
            }
            if !(strip_usage && usage_only) {
                out.extend_from_slice(&event);
            }
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        match &self.mode {
            Mode::Whole if self.scan => {
                self.usage = json_usage(&self.held);
                self.held = BytesMut::new();
            }
            Mode::Translate(translator) => {
                self.usage = translator.usage().map(|u| Usage {
                    input: u.input,
                    output: u.output,
                    total: u.total(),
                });
            }
            _ => {}
        }
        if let Some(usage) = self.usage {
            self.metrics.usage(&self.backend, usage);
        }
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(deadline) = &mut this.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Some(Err(
                    "the request timed out while the response was being relayed".into(),
                )));
            }
            if let Some((_, idle)) = &mut this.idle
                && idle.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Some(Err(
                    "the stream was idle longer than its idle timeout".into(),
                )));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => {
                    if let Mode::Translate(translator) = &mut this.mode
                        && !this.finished
                    {
                        translator.finish(&mut this.held);
                        let rest = this.held.split().freeze();
                        this.finish();
                        return Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(rest))));
                    }
                    let rest = this.take_events(true);
                    this.finish();
                    return Poll::Ready(rest.map(|b| Ok(Frame::data(b))));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            if let Some((duration, idle)) = &mut this.idle {
                idle.as_mut().reset(Instant::now() + *duration);
            }
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            };
            match &mut this.mode {
                Mode::Translate(translator) => {
                    translator.feed(&data, &mut this.held);
                    if !this.held.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                    }
                }
                Mode::Whole => {
                    if this.scan && this.held.len() + data.len() <= USAGE_SCAN_LIMIT {
                        this.held.extend_from_slice(&data);
                    }
                    // A body of known length ends with its last frame: the server may not
                    // poll again.
                    if this.inner.is_end_stream() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Mode::Events { .. } => {
                    this.held.extend_from_slice(&data);
                    if let Some(events) = this.take_events(false) {
                        return Poll::Ready(Some(Ok(Frame::data(events))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.held.is_empty()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A client that goes away mid-stream still used the tokens counted so far.
        self.finish();
    }
}

/// The usage an event reports, and whether the event is only a usage chunk (`choices: []`).
fn event_usage(event: &[u8]) -> (Option<Usage>, bool) {
    if memchr::memmem::find(event, b"\"usage\"").is_none() {
        return (None, false);
    }
    let mut found = (None, false);
    for line in event.split(|&b| b == b'\n') {
        let Some(payload) = line.strip_prefix(b"data:") else {
            continue;
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload.trim_ascii()) else {
            continue;
        };
        let usage = usage_of(&value);
        let usage_only = usage.is_some()
            && value
                .get("choices")
                .and_then(|c| c.as_array())
                .is_some_and(Vec::is_empty);
        if usage.is_some() {
            found = (usage, usage_only);
        }
    }
    found
}

fn json_usage(body: &[u8]) -> Option<Usage> {
    memchr::memmem::find(body, b"\"usage\"")?;
    usage_of(&serde_json::from_slice(body).ok()?)
}

/// `usage` of an OpenAI response (chat, completions, embeddings), or of a Responses API
/// object or its `response.completed` event.
fn usage_of(value: &serde_json::Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object()).or_else(|| {
        value
            .get("response")?
            .get("usage")
            .filter(|u| u.is_object())
    })?;
    let count = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| usage.get(*n)?.as_u64())
            .unwrap_or(0)
    };
    let input = count(&["prompt_tokens", "input_tokens"]);
    let output = count(&["completion_tokens", "output_tokens"]);
    let total = usage
        .get("total_tokens")
        .and_then(|t| t.as_u64())
        .unwrap_or(input + output);
    Some(Usage {
        input,
        output,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_at_blank_lines_and_usage_chunks_recognised() {
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
        let chunk = br#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(
            event_usage(chunk),
            (
                Some(Usage {
                    input: 3,
                    output: 4,
                    total: 7
                }),
                true
            )
        );
        let last = br#"data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(
            event_usage(last),
            (
                Some(Usage {
                    input: 3,
                    output: 4,
                    total: 7
                }),
                false
            )
        );
        let responses = br#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}}}"#;
        assert_eq!(
            json_usage(responses),
            Some(Usage {
                input: 5,
                output: 6,
                total: 11
            })
        );
        assert_eq!(event_usage(b"data: [DONE]"), (None, false));
    }
}
