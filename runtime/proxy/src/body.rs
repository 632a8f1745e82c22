//! Request and response bodies: the one body type the server answers with, the request body
//! read under its limit, the model read out of it (JSON or multipart), and the per-backend
//! rewrite of a JSON body (model override, body mutation, `stream_options.include_usage`).
//!
//! A client's request body is a [`RequestBody`]: it notes when it has been read to its end, so
//! the server can tell an HTTP/1.1 client that an answer sent before that (a refusal, an
//! error, an upstream that answered early) ends the connection ([`crate::linger`]).
//!
//! A JSON body is parsed once to read `model` and `stream` (serde skips the rest without
//! building it); it is parsed into a tree only when a backend needs it rewritten.

use crate::error::ProxyError;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: bytes in hand, or a stream relayed from an upstream.
pub struct Body(Inner);

enum Inner {
    Full(Option<Bytes>),
    Stream(Pin<Box<dyn http_body::Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl Body {
    pub fn full(bytes: Bytes) -> Self {
        Body(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub fn empty() -> Self {
        Body(Inner::Full(None))
    }

    pub fn stream(
        body: impl http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    ) -> Self {
        Body(Inner::Stream(Box::pin(body)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Stream(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(body) => body.size_hint(),
        }
    }
}

/// A client's request body, which notes when it has been read to its end.
pub struct RequestBody {
    inner: hyper::body::Incoming,
    /// `None` when the request came without a body (nothing to note).
    ended: Option<Arc<AtomicBool>>,
}

/// Whether the request body it came with was read to its end.
#[derive(Clone)]
pub struct ReadToEnd(Option<Arc<AtomicBool>>);

impl ReadToEnd {
    pub fn get(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|ended| ended.load(Ordering::Acquire))
    }
}

impl RequestBody {
    /// The body, and the note of whether it was read to its end.
    pub fn new(inner: hyper::body::Incoming) -> (Self, ReadToEnd) {
        let ended = (!http_body::Body::is_end_stream(&inner)).then(Arc::default);
        let note = ReadToEnd(ended.clone());
        (RequestBody { inner, ended }, note)
    }

    fn note_end(&self) {
        if let Some(ended) = &self.ended {
            ended.store(true, Ordering::Release);
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.note_end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read(body: RequestBody, limit: usize) -> Result<Bytes, ProxyError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::too_large(limit))
        }
        Err(_) => Err(ProxyError::bad_request(
            "the request body could not be read",
        )),
    }
}

/// What the gateway reads of a JSON request body.
#[derive(Debug, Default, Deserialize)]
pub struct Peek<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// The output limit, by whichever name the client API gives it (for quota estimates).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl Peek<'_> {
    /// The same, owning its model (to outlive the body it was read from).
    pub fn into_owned(self) -> Peek<'static> {
        Peek {
            model: self.model.map(|m| Cow::Owned(m.into_owned())),
            stream: self.stream,
            stream_options: self.stream_options,
            max_tokens: self.max_tokens,
            max_completion_tokens: self.max_completion_tokens,
            max_output_tokens: self.max_output_tokens,
        }
    }

    pub fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    /// The output limit the request sets, if any.
    pub fn max_output(&self) -> Option<u64> {
        self.max_tokens
            .or(self.max_completion_tokens)
            .or(self.max_output_tokens)
    }

    pub fn asked_for_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }
}

/// Reads `model`, `stream` and `stream_options` of a JSON body (400 when it is not a JSON
/// object).
pub fn peek(body: &[u8]) -> Result<Peek<'_>, ProxyError> {
    serde_json::from_slice(body)
        .map_err(|e| ProxyError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// The `model` field of a `multipart/form-data` body (audio transcriptions and translations).
pub fn multipart_model<'a>(content_type: &str, body: &'a [u8]) -> Option<&'a str> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    let mut models = starts.windows(2).filter_map(|pair| {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let head_end = memchr::memmem::find(part, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&part[..head_end]).ok()?;
        let named_model = head.lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("content-disposition:")
                && (line.contains("name=\"model\"")
                    || line.contains("name=model;")
                    || line.ends_with("name=model"))
        });
        if !named_model {
            return None;
        }
        let value = &part[head_end + 4..];
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        std::str::from_utf8(value).ok()
    });
    // Two `model` parts are refused: a backend that takes the last would run another model
    // than the one routed and allowed.
    let model = models.next()?;
    models.next().is_none().then_some(model)
}

/// How one backend wants the JSON body changed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rewrite<'a> {
    pub model: Option<&'a str>,
    pub mutation: Option<&'a aigw_table::Mutation>,
    /// Ask for a usage chunk at the end of a stream.
    pub include_usage: bool,
}

impl Rewrite<'_> {
    pub fn is_empty(&self) -> bool {
        self.model.is_none() && self.mutation.is_none_or(|m| m.is_empty()) && !self.include_usage
    }
}

/// Applies `rewrite` to a JSON object body. Body mutation values are JSON text; a value that is
/// not valid JSON is set as a string (the reference's behaviour for plain words).
pub fn rewrite(body: &[u8], rewrite: &Rewrite<'_>) -> Result<Bytes, ProxyError> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|_| ProxyError::bad_request("the request body is not a JSON object"))?;
    if let Some(mutation) = rewrite.mutation {
        for name in &mutation.remove {
            object.shift_remove(name);
        }
        for set in &mutation.set {
            let value = serde_json::from_str(&set.value)
                .unwrap_or_else(|_| serde_json::Value::String(set.value.clone()));
            object.insert(set.name.clone(), value);
        }
    }
    if let Some(model) = rewrite.model {
        object.insert(
            "model".to_owned(),
            serde_json::Value::String(model.to_owned()),
        );
    }
    if rewrite.include_usage {
        let options = object
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        }
    }
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|_| ProxyError::internal("the request body could not be written"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_read_from_json_and_multipart_bodies() {
        let peeked = peek(
            br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true}"#,
        )
        .expect("json");
        assert_eq!(peeked.model.as_deref(), Some("gpt-4o"));
        assert!(peeked.streaming() && !peeked.asked_for_usage());
        assert!(
            peek(b"{\"model\": ").is_err(),
            "a truncated body is refused"
        );
        assert!(
            peek(b"[1]").is_err(),
            "a body that is not an object is refused"
        );

        let form = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--xyz--\r\n";
        assert_eq!(
            multipart_model("multipart/form-data; boundary=xyz", form),
            Some("whisper-1")
        );
        assert_eq!(
            multipart_model("multipart/form-data; boundary=\"xyz\"", form),
            Some("whisper-1")
        );
        assert_eq!(
            multipart_model("multipart/form-data; boundary=other", form),
            None
        );
        // Two models: a backend that reads the last would run one nobody routed or allowed.
        let twice = b"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nallowed\r\n--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ndenied\r\n--xyz--\r\n";
        assert_eq!(
            multipart_model("multipart/form-data; boundary=xyz", twice),
            None
        );
    }

    #[test]
    fn a_rewrite_sets_and_removes_top_level_fields_and_keeps_the_rest_in_order() {
        let mutation = aigw_table::Mutation {
            set: vec![
                aigw_table::NameValue {
                    name: "temperature".into(),
                    value: "0.5".into(),
                },
                aigw_table::NameValue {
                    name: "user".into(),
                    value: "team-a".into(),
                },
            ],
            remove: vec!["top_p".into()],
        };
        let body = br#"{"model":"a","top_p":1,"stream":true,"messages":[]}"#;
        let out = rewrite(
            body,
            &Rewrite {
                model: Some("b"),
                mutation: Some(&mutation),
                include_usage: true,
            },
        )
        .expect("rewrite");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            r#"{"model":"b","stream":true,"messages":[],"temperature":0.5,"user":"team-a","stream_options":{"include_usage":true}}"#
        );
    }
}
