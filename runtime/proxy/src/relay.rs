//! The response body relayed from the backend to the client, frame by frame: never buffered
//! whole. On the way it enforces the rule's request deadline and stream idle timeout, reads the
//! token usage (from the JSON body, or from the stream's usage chunk: every kind the provider
//! reports, OpenAI's `prompt_tokens_details` and `completion_tokens_details`, the Responses
//! API's `input_tokens_details` and `output_tokens_details`, Anthropic's cache counts, Cohere's
//! `meta.billed_units`) and the answer's model, and can drop the usage chunk the gateway asked
//! for on the client's behalf. It carries the request's [`Record`], which it fills and which
//! closes when the relay is dropped: at the end, or when the client leaves mid-stream.
//!
//! Server-sent events are relayed as whole events: bytes of an event split across upstream
//! frames wait for the rest of that event (and only for it), so that an event is never cut in
//! two and the usage chunk can be recognised and removed.

use crate::body::BoxError;
use crate::record::Record;
use aigw_providers::Usage;
use aigw_providers::sse::{event_end, event_end_after};
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Non-streamed bodies are kept for the usage read only up to this size.
const USAGE_SCAN_LIMIT: usize = 4 << 20;
/// The most bytes of one unfinished event (or translated message) held while waiting for its
/// end; an upstream that sends more in one event has its stream cut with an error.
pub const EVENT_LIMIT: usize = 32 << 20;

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

/// The response body as the client gets it: the upstream's, relayed by a [`Relayer`] under the
/// rule's deadline and idle timeout.
pub struct Relay {
    inner: hyper::body::Incoming,
    /// The rule's request deadline; none for a plain route without `timeouts.request`.
    deadline: Option<Pin<Box<Sleep>>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    core: Relayer,
}

/// What the relay does to the bytes, whoever reads them from the upstream: this server's
/// [`Relay`], or Envoy handing them to the external processor ([`crate::extproc`]) chunk by
/// chunk.
pub struct Relayer {
    mode: Mode,
    /// Read token usage from this body.
    scan: bool,
    /// The body so far (whole mode, while scanning), the unfinished event (events mode), or
    /// the translated bytes not yet handed on (translate mode).
    held: BytesMut,
    /// How much of `held` is known to hold no event end (events mode): each search resumes
    /// there, so an event that arrives in many pieces is scanned once.
    searched: usize,
    usage: Option<Usage>,
    record: Record,
    finished: bool,
    /// The prompt guard that masks the answer's events, and its generation.
    guard: Option<(std::sync::Arc<crate::generation::Generation>, usize)>,
}

impl Relay {
    pub fn new(
        inner: hyper::body::Incoming,
        mode: Mode,
        scan: bool,
        deadline: Option<Instant>,
        idle: Option<Duration>,
        record: Record,
    ) -> Self {
        Relay {
            inner,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            core: Relayer::new(mode, scan, record),
        }
    }

    /// Masks the answer's events with prompt guard `index` of `generation`.
    pub fn guarded(
        mut self,
        generation: &std::sync::Arc<crate::generation::Generation>,
        index: Option<usize>,
    ) -> Self {
        self.core = self.core.guarded(generation, index);
        self
    }
}

impl Relayer {
    pub fn new(mode: Mode, scan: bool, record: Record) -> Self {
        Relayer {
            mode,
            scan,
            held: BytesMut::new(),
            searched: 0,
            usage: None,
            record,
            finished: false,
            guard: None,
        }
    }

    /// Masks the answer's events with prompt guard `index` of `generation`.
    pub fn guarded(
        mut self,
        generation: &std::sync::Arc<crate::generation::Generation>,
        index: Option<usize>,
    ) -> Self {
        self.guard = index.map(|i| (generation.clone(), i));
        self
    }

    /// The request's account, which the relay fills.
    pub fn record(&mut self) -> &mut Record {
        &mut self.record
    }

    /// What the client gets now of the upstream's next chunk `data` (nothing while an event
    /// or a translated piece is incomplete).
    pub fn chunk(&mut self, data: Bytes) -> Option<Bytes> {
        self.record.first_byte();
        match &mut self.mode {
            Mode::Translate(translator) => {
                translator.feed(&data, &mut self.held);
                if let Some(text) = self.record.output() {
                    crate::content::events(&self.held, text);
                }
                if self.held.is_empty() {
                    return None;
                }
                let chunk = self.held.split().freeze();
                Some(self.guard(chunk))
            }
            Mode::Whole => {
                if self.scan && self.held.len() + data.len() <= USAGE_SCAN_LIMIT {
                    self.held.extend_from_slice(&data);
                }
                Some(data)
            }
            Mode::Events { .. } => {
                self.held.extend_from_slice(&data);
                self.take_events(false)
            }
        }
    }

    /// Whether the unfinished event held passed [`EVENT_LIMIT`]: the stream cannot go on.
    pub fn overflowed(&self) -> bool {
        match &self.mode {
            Mode::Events { .. } => self.held.len() > EVENT_LIMIT,
            Mode::Translate(translator) => translator.pending() > EVENT_LIMIT,
            Mode::Whole => false,
        }
    }

    /// The rest the client gets once the upstream body ended; the usage is read then.
    pub fn end(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if let Mode::Translate(translator) = &mut self.mode {
            translator.finish(&mut self.held);
            if let Some(text) = self.record.output() {
                crate::content::events(&self.held, text);
            }
            let rest = self.held.split().freeze();
            let rest = self.guard(rest);
            self.finish();
            return (!rest.is_empty()).then_some(rest);
        }
        let rest = self.take_events(true);
        self.finish();
        rest
    }

    /// `chunk` (whole events) as the guard leaves it.
    fn guard(&self, chunk: Bytes) -> Bytes {
        match &self.guard {
            Some((generation, index)) => generation
                .guards
                .events(*index, &chunk)
                .map_or(chunk, Bytes::from),
            None => chunk,
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
            let found = event_end_after(&self.held, self.searched);
            if found.is_none() {
                self.searched = self.held.len();
            }
            let end =
                found.or_else(|| (at_end && !self.held.is_empty()).then_some(self.held.len()));
            let Some(end) = end else { break };
            let event = self.held.split_to(end).freeze();
            self.searched = 0;
            let (usage, usage_only) = if self.scan || strip_usage {
                event_usage(&event, &mut self.record)
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
        (!out.is_empty()).then(|| self.guard(out.freeze()))
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        match &self.mode {
            Mode::Whole if self.scan => {
                self.usage = json_usage(&self.held, &mut self.record);
                self.held = BytesMut::new();
            }
            Mode::Translate(translator) => self.usage = translator.usage(),
            _ => {}
        }
        if let Some(usage) = self.usage {
            self.record.usage(usage);
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
                this.core.record.fault("timeout");
                return Poll::Ready(Some(Err(
                    "the request timed out while the response was being relayed".into(),
                )));
            }
            if let Some((_, idle)) = &mut this.idle
                && idle.as_mut().poll(cx).is_ready()
            {
                this.core.record.fault("idle_timeout");
                return Poll::Ready(Some(Err(
                    "the stream was idle longer than its idle timeout".into(),
                )));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(error))) => {
                    this.core.record.fault("closed");
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Ready(None) => {
                    return Poll::Ready(this.core.end().map(|b| Ok(Frame::data(b))));
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
            let out = this.core.chunk(data);
            if this.core.overflowed() {
                this.core.record.fault("event_limit");
                tracing::warn!(
                    limit = EVENT_LIMIT,
                    "an upstream stream event passed the limit: the stream is cut"
                );
                return Poll::Ready(Some(Err(
                    "an event of the upstream's stream is larger than the gateway holds (32 MiB)"
                        .into(),
                )));
            }
            if let Some(out) = out {
                // A body of known length ends with its last frame: the server may not poll
                // again.
                if this.inner.is_end_stream() && matches!(this.core.mode, Mode::Whole) {
                    this.core.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.core.finished && self.core.held.is_empty()
    }
}

impl Drop for Relayer {
    fn drop(&mut self) {
        // A client that goes away mid-stream still used the tokens counted so far.
        self.finish();
    }
}

/// The usage an event reports, and whether the event is only a usage chunk (`choices: []`).
/// The first event that names a model gives the record its response model.
fn event_usage(event: &[u8], record: &mut Record) -> (Option<Usage>, bool) {
    if let Some(text) = record.output() {
        crate::content::events(event, text);
    }
    let has_usage = memchr::memmem::find(event, b"\"usage\"").is_some();
    let wants_model =
        record.wants_response_model() && memchr::memmem::find(event, b"\"model\"").is_some();
    if !has_usage && !wants_model {
        return (None, false);
    }
    let mut found = (None, false);
    for line in event.split(|b| *b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(data.trim_ascii()) else {
            continue;
        };
        note_model(&value, record);
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

/// The usage a whole answer reports: a JSON body, or a stream's events.
pub(crate) fn usage_in(body: &[u8], sse: bool) -> Option<Usage> {
    let mut none = Record::default();
    if !sse {
        return json_usage(body, &mut none);
    }
    let mut found = None;
    let mut rest = body;
    while !rest.is_empty() {
        let end = event_end(rest).unwrap_or(rest.len());
        let (event, tail) = rest.split_at(end);
        if let (Some(usage), _) = event_usage(event, &mut none) {
            found = Some(usage);
        }
        rest = tail;
    }
    found
}

/// Records the usage (and model) of a whole JSON answer read elsewhere.
pub(crate) fn whole_usage(body: &[u8], record: &mut Record) {
    if let Some(usage) = json_usage(body, record) {
        record.usage(usage);
    }
}

fn json_usage(body: &[u8], record: &mut Record) -> Option<Usage> {
    let value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    note_model(&value, record);
    if let Some(text) = record.output() {
        crate::content::answer(&value, text);
    }
    usage_of(&value)
}

/// The answer's `model` (also a Responses API event's `response.model`, or an Anthropic
/// `message_start`'s `message.model`).
fn note_model(value: &serde_json::Value, record: &mut Record) {
    let model = value
        .get("model")
        .or_else(|| value.get("response")?.get("model"))
        .or_else(|| value.get("message")?.get("model"))
        .and_then(|m| m.as_str());
    if let Some(model) = model {
        record.response_model(model);
    }
}

/// The usage of an OpenAI response (chat, completions, embeddings), a Responses API object
/// or its `response.completed` event, an Anthropic message or event (relayed natively), or a
/// Cohere answer's billed units.
fn usage_of(value: &serde_json::Value) -> Option<Usage> {
    let usage = value
        .get("usage")
        .filter(|u| u.is_object())
        .or_else(|| {
            value
                .get("response")?
                .get("usage")
                .filter(|u| u.is_object())
        })
        .or_else(|| value.get("message")?.get("usage").filter(|u| u.is_object()))
        .or_else(|| {
            value
                .get("meta")?
                .get("billed_units")
                .filter(|u| u.is_object())
        })?;
    let count = |path: &[&str]| {
        path.iter()
            .try_fold(usage, |v, key| v.get(*key))
            .and_then(serde_json::Value::as_u64)
    };
    let first = |paths: &[&[&str]]| paths.iter().find_map(|p| count(p)).unwrap_or(0);
    let output = first(&[&["completion_tokens"], &["output_tokens"]]);
    let reasoning = first(&[
        &["completion_tokens_details", "reasoning_tokens"],
        &["output_tokens_details", "reasoning_tokens"],
    ]);
    // Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's prompt
    // tokens include its cached ones.
    let anthropic_read = count(&["cache_read_input_tokens"]);
    let anthropic_write = count(&["cache_creation_input_tokens"]);
    let (input, cached, created) = if anthropic_read.is_some() || anthropic_write.is_some() {
        let (read, write) = (anthropic_read.unwrap_or(0), anthropic_write.unwrap_or(0));
        (first(&[&["input_tokens"]]) + read + write, read, write)
    } else {
        (
            first(&[&["prompt_tokens"], &["input_tokens"]]),
            first(&[
                &["prompt_tokens_details", "cached_tokens"],
                &["input_tokens_details", "cached_tokens"],
            ]),
            first(&[&["prompt_tokens_details", "cache_creation_tokens"]]),
        )
    };
    Some(Usage {
        input,
        output,
        cached_input: cached,
        cache_creation_input: created,
        reasoning,
        total: count(&["total_tokens"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, total: Option<u64>) -> Usage {
        Usage {
            input,
            output,
            total,
            ..Usage::default()
        }
    }

    #[test]
    fn events_are_split_at_blank_lines_and_usage_chunks_recognised() {
        let mut record = Record::default();
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
        let chunk = br#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(
            event_usage(chunk, &mut record),
            (Some(usage(3, 4, Some(7))), true)
        );
        let last = br#"data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(
            event_usage(last, &mut record),
            (Some(usage(3, 4, None)), false)
        );
        let responses = br#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}}}"#;
        assert_eq!(
            json_usage(responses, &mut record),
            Some(usage(5, 6, Some(11)))
        );
        assert_eq!(event_usage(b"data: [DONE]", &mut record), (None, false));
    }

    #[test]
    fn every_kind_of_token_is_read_from_each_shape() {
        let read = |body: &str| json_usage(body.as_bytes(), &mut Record::default());
        let openai = read(
            r#"{"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":40},"completion_tokens_details":{"reasoning_tokens":20}}}"#,
        );
        assert_eq!(
            openai,
            Some(Usage {
                input: 100,
                output: 50,
                cached_input: 40,
                cache_creation_input: 0,
                reasoning: 20,
                total: Some(150),
            })
        );
        let responses = read(
            r#"{"object":"response","usage":{"input_tokens":10,"output_tokens":7,"total_tokens":17,"input_tokens_details":{"cached_tokens":4},"output_tokens_details":{"reasoning_tokens":3}}}"#,
        );
        assert_eq!(
            responses.map(|u| (u.input, u.cached_input, u.reasoning)),
            Some((10, 4, 3))
        );
        // Anthropic's input excludes its cache reads and writes.
        let anthropic = read(
            r#"{"type":"message","usage":{"input_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":9}}"#,
        );
        assert_eq!(
            anthropic.map(|u| (u.input, u.cached_input, u.cache_creation_input, u.output)),
            Some((125, 100, 20, 9))
        );
        let cohere = read(r#"{"meta":{"billed_units":{"input_tokens":12,"output_tokens":3}}}"#);
        assert_eq!(cohere.map(|u| (u.input, u.output)), Some((12, 3)));
        // The answer's model is noted once.
        let mut record = Record::default();
        assert!(
            !record.wants_response_model(),
            "a closed record wants nothing"
        );
        let start = br#"data: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}"#;
        assert_eq!(event_usage(start, &mut record).0.map(|u| u.input), Some(5));
    }
}
