//! Response caches (aigw's ResponseCachePolicy): an answer kept for `ttl` and served again,
//! without calling a backend, to the same request.
//!
//! - **The same request**: the SHA-256 of the policy, the route, the endpoint, the caller's
//!   client ID (unless the policy is `Shared`), whether it streams, and the body in canonical
//!   JSON (keys sorted at every depth, no whitespace, `stream` and `stream_options` left out),
//!   as the prompt guard left it. Key order and spacing do not make two requests differ; any
//!   other byte does.
//! - **Only deterministic requests** unless the policy says `nonDeterministic`: embeddings,
//!   and requests with `temperature: 0` and at most one choice (`n`).
//! - **What is kept**: a 200 answer whose body ended cleanly and is at most `maxEntryBytes`,
//!   exactly as the client received it (a stream as its events: a streamed request is
//!   answered from a streamed answer, a whole one from a whole one), with its content type and
//!   the token usage it reported.
//! - **Stores**: memory (per replica, `quick_cache` bounded by `maxBytes` with its S3-FIFO
//!   eviction; kept across table reloads while the policy's size stays), or the gateway's
//!   Redis (`SET … PX ttl`; a Redis that does not answer is a miss, never an error).
//! - **Answers** carry `x-aigw-cache: hit`, `miss` or `bypass` (the policy's bypass header
//!   is set: neither read nor written). A hit is logged with the usage it carries and
//!   `"cache":"hit"`; it charges no quota, records no request cost and counts no backend
//!   tokens, as no backend was called.

use crate::body::{Body, BoxError};
use crate::exchange::Endpoint;
use crate::redis_link::{Link, bounded};
use aigw_providers::Usage;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Response};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-aigw-cache");

type Digest = [u8; 32];
type Memory = quick_cache::sync::Cache<Digest, Arc<Entry>, Weight>;

/// One kept answer.
#[derive(Debug)]
pub struct Entry {
    expires: Instant,
    content_type: HeaderValue,
    pub body: Bytes,
    pub usage: Option<Usage>,
}

#[derive(Clone, Debug)]
struct Weight;

impl quick_cache::Weighter<Digest, Arc<Entry>> for Weight {
    fn weight(&self, _: &Digest, entry: &Arc<Entry>) -> u64 {
        // The key, the entry and its bookkeeping, and the body.
        (128 + entry.body.len()) as u64
    }
}

/// The process-wide stores, kept across reloads.
#[derive(Default)]
pub struct Stores {
    memory: Mutex<HashMap<String, (u64, Arc<Memory>)>>,
    redis: Option<Arc<Link>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    pub fn new(redis: Option<Arc<Link>>) -> Self {
        Stores {
            memory: Mutex::default(),
            redis,
        }
    }

    /// The memory store of policy `name` of `max_bytes` (a new one when the size changed).
    fn memory(&self, name: &str, max_bytes: u64) -> Arc<Memory> {
        let mut stores = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((size, store)) = stores.get(name)
            && *size == max_bytes
        {
            return store.clone();
        }
        let items = usize::try_from(max_bytes / 4096)
            .unwrap_or(usize::MAX)
            .max(16);
        let store = Arc::new(Memory::with_weighter(items, max_bytes, Weight));
        stores.insert(name.to_owned(), (max_bytes, store.clone()));
        store
    }
}

/// A generation's caches, parallel to the table's `caches`.
#[derive(Debug, Default)]
pub struct Caches {
    policies: Vec<Policy>,
}

#[derive(Debug)]
struct Policy {
    name: String,
    ttl: Duration,
    store: Store,
    max_entry: usize,
    shared: bool,
    bypass: HeaderName,
    non_deterministic: bool,
    /// hit, miss, bypass.
    counters: [Counter; 3],
}

#[derive(Debug)]
enum Store {
    Memory(Arc<Memory>),
    Redis(Arc<Link>),
}

/// What a policy makes of a request.
#[derive(Debug)]
pub enum Lookup {
    /// No cache, or not a request it keeps.
    Off,
    /// The bypass header is set.
    Bypass,
    Key(Key),
}

#[derive(Debug)]
pub struct Key {
    policy: usize,
    digest: Digest,
}

impl Caches {
    pub fn compile(
        snapshot: &aigw_table::Snapshot,
        stores: &Stores,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, String> {
        let mut policies = Vec::new();
        for wire in &snapshot.table().caches {
            let store = match (&stores.redis, wire.redis) {
                (Some(link), true) => Store::Redis(link.clone()),
                (None, true) => {
                    tracing::warn!(policy = %wire.name, "the response cache is kept in each replica's memory: no Redis is configured (--quota-redis)");
                    Store::Memory(stores.memory(&wire.name, wire.max_bytes))
                }
                _ => Store::Memory(stores.memory(&wire.name, wire.max_bytes)),
            };
            let bypass = HeaderName::from_bytes(wire.bypass_header.as_bytes()).map_err(|_| {
                format!(
                    "ResponseCachePolicy `{}`: `{}` is not a header name",
                    wire.name, wire.bypass_header
                )
            })?;
            policies.push(Policy {
                name: wire.name.clone(),
                ttl: Duration::from_millis(wire.ttl_ms.max(1)),
                store,
                max_entry: usize::try_from(wire.max_entry_bytes).unwrap_or(usize::MAX),
                shared: wire.shared,
                bypass,
                non_deterministic: wire.non_deterministic,
                counters: metrics.cache_counters(&wire.name),
            });
        }
        Ok(Caches { policies })
    }

    /// The request's key under policy `index`, or why it has none.
    pub fn lookup(&self, index: Option<usize>, request: &Request<'_>) -> Lookup {
        let Some(policy) = index.and_then(|i| self.policies.get(i).map(|p| (i, p))) else {
            return Lookup::Off;
        };
        let (index, policy) = policy;
        if let Some(value) = request.headers.get(&policy.bypass)
            && !matches!(value.as_bytes(), b"false" | b"0")
        {
            policy.counters[2].inc();
            return Lookup::Bypass;
        }
        if !request.endpoint.cacheable() {
            return Lookup::Off;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(request.body) else {
            return Lookup::Off;
        };
        if !policy.non_deterministic && !deterministic(request.endpoint, &value) {
            return Lookup::Off;
        }
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            policy.name.as_bytes(),
            request.route.as_bytes(),
            request.endpoint.path().as_bytes(),
            if policy.shared {
                b""
            } else {
                request.client.unwrap_or_default().as_bytes()
            },
            if request.stream { b"s" } else { b"w" },
        ] {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part);
        }
        let mut canonical = Vec::with_capacity(request.body.len());
        write_canonical(&value, true, &mut canonical);
        context.update(&canonical);
        let mut digest = [0; 32];
        digest.copy_from_slice(context.finish().as_ref());
        Lookup::Key(Key {
            policy: index,
            digest,
        })
    }

    /// The kept answer for `key`, if there is a fresh one; counts the hit or miss.
    pub async fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let policy = self.policies.get(key.policy)?;
        let found = match &policy.store {
            Store::Memory(memory) => memory
                .get(&key.digest)
                .filter(|e| e.expires > Instant::now()),
            Store::Redis(link) => redis_get(link, &key.digest).await,
        };
        policy.counters[usize::from(found.is_none())].inc();
        found
    }

    /// `response` with `x-aigw-cache: miss`, its body kept as it is relayed when it is a
    /// 200 that ends cleanly within the size limit.
    pub fn keep(&self, key: Key, mut response: Response<Body>) -> Response<Body> {
        response
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static("miss"));
        if response.status() != http::StatusCode::OK {
            return response;
        }
        let Some(keeper) = self.keeper(key, response.headers()) else {
            return response;
        };
        let (parts, inner) = response.into_parts();
        let tee = Tee {
            inner,
            keeper: Some(keeper),
        };
        Response::from_parts(parts, Body::stream(tee))
    }

    /// What keeps a 200 answer of `headers` under `key` as its body goes by (for a front door
    /// that sees the body itself: Envoy's external processor).
    pub fn keeper(&self, key: Key, headers: &http::HeaderMap) -> Option<Keeper> {
        let policy = self.policies.get(key.policy)?;
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        Some(Keeper {
            held: Some(BytesMut::new()),
            limit: policy.max_entry,
            sink: Sink {
                digest: key.digest,
                ttl: policy.ttl,
                content_type,
                store: match &policy.store {
                    Store::Memory(m) => Store::Memory(m.clone()),
                    Store::Redis(l) => Store::Redis(l.clone()),
                },
            },
        })
    }
}

impl Entry {
    /// The kept answer as a response.
    pub fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::full(self.body.clone()));
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(CACHE_HEADER, HeaderValue::from_static("hit"));
        response
    }
}

/// What a request is looked up by.
pub struct Request<'a> {
    pub headers: &'a http::HeaderMap,
    pub endpoint: Endpoint,
    pub route: &'a str,
    pub client: Option<&'a str>,
    pub body: &'a [u8],
    pub stream: bool,
}

/// Embeddings; otherwise `temperature` 0 and at most one choice.
fn deterministic(endpoint: Endpoint, body: &serde_json::Value) -> bool {
    if endpoint == Endpoint::Embeddings {
        return true;
    }
    let cold = body
        .get("temperature")
        .and_then(serde_json::Value::as_f64)
        .is_some_and(|t| t == 0.0);
    let one = body
        .get("n")
        .is_none_or(|n| n.is_null() || n.as_u64() == Some(1));
    cold && one
}

/// `value` as canonical JSON: object keys sorted (bytewise), no whitespace; at the top level
/// `stream` and `stream_options` are left out (the key says whether the request streams).
fn write_canonical(value: &serde_json::Value, top: bool, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, _)| !(top && (*k == "stream" || *k == "stream_options")))
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(v, false, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, false, out);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// Where a relayed answer is kept when it ends.
struct Sink {
    digest: Digest,
    ttl: Duration,
    content_type: HeaderValue,
    store: Store,
}

/// An answer's body kept whole on the side, up to a limit, and stored when it ended cleanly.
pub struct Keeper {
    /// None once past the limit (or after a failure).
    held: Option<BytesMut>,
    limit: usize,
    sink: Sink,
}

impl Keeper {
    /// The next bytes of the answer, as the client gets them.
    pub fn push(&mut self, data: &[u8]) {
        if let Some(held) = &mut self.held {
            if held.len() + data.len() > self.limit {
                self.held = None;
            } else {
                held.extend_from_slice(data);
            }
        }
    }

    /// The answer failed: nothing is kept.
    pub fn fail(&mut self) {
        self.held = None;
    }

    /// The answer ended cleanly: it is stored (unless it outgrew the limit).
    pub fn store(self) {
        let Some(held) = self.held else { return };
        let sink = self.sink;
        let body = held.freeze();
        let sse = sink
            .content_type
            .to_str()
            .is_ok_and(|c| c.starts_with("text/event-stream"));
        let entry = Entry {
            expires: Instant::now() + sink.ttl,
            usage: crate::relay::usage_in(&body, sse),
            content_type: sink.content_type,
            body,
        };
        match sink.store {
            Store::Memory(memory) => memory.insert(sink.digest, Arc::new(entry)),
            Store::Redis(link) => {
                tokio::spawn(redis_set(link, sink.digest, entry, sink.ttl));
            }
        }
    }
}

/// A response body passed on as it is, and kept on the side by its [`Keeper`].
struct Tee {
    inner: Body,
    keeper: Option<Keeper>,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(keeper), Some(data)) = (&mut this.keeper, frame.data_ref()) {
                    keeper.push(data);
                }
                if this.inner.is_end_stream() {
                    this.store();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(keeper) = &mut this.keeper {
                    keeper.fail();
                }
            }
            Poll::Ready(None) => this.store(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Tee {
    fn store(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.store();
        }
    }
}

fn redis_key(digest: &Digest) -> String {
    let mut key = String::with_capacity(75);
    key.push_str("aigw:cache:");
    for byte in digest {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// Redis holds `[content type length: u16][content type][usage: 6 × u64][body]`.
async fn redis_set(link: Arc<Link>, digest: Digest, entry: Entry, ttl: Duration) {
    let Ok(mut connection) = link.connection().await else {
        return;
    };
    let content_type = entry.content_type.as_bytes();
    let mut value = Vec::with_capacity(2 + content_type.len() + 48 + entry.body.len());
    value.extend_from_slice(&(content_type.len() as u16).to_le_bytes());
    value.extend_from_slice(content_type);
    let usage = entry.usage.unwrap_or_default();
    for n in [
        u64::from(entry.usage.is_some()),
        usage.input,
        usage.output,
        usage.cached_input,
        usage.reasoning,
        usage.total.unwrap_or(u64::MAX),
    ] {
        value.extend_from_slice(&n.to_le_bytes());
    }
    value.extend_from_slice(&entry.body);
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut set = redis::cmd("SET");
    set.arg(redis_key(&digest)).arg(value).arg("PX").arg(millis);
    if let Err(error) = bounded(set.query_async::<()>(&mut connection)).await {
        tracing::debug!(%error, "a response could not be kept in Redis");
    }
}

async fn redis_get(link: &Link, digest: &Digest) -> Option<Arc<Entry>> {
    let mut connection = link.connection().await.ok()?;
    let mut get = redis::cmd("GET");
    get.arg(redis_key(digest));
    let value = bounded(get.query_async::<Option<Vec<u8>>>(&mut connection))
        .await
        .ok()??;
    let ct_len = usize::from(u16::from_le_bytes(value.get(..2)?.try_into().ok()?));
    let content_type = HeaderValue::from_bytes(value.get(2..2 + ct_len)?).ok()?;
    let mut at = 2 + ct_len;
    let mut numbers = [0u64; 6];
    for n in &mut numbers {
        *n = u64::from_le_bytes(value.get(at..at + 8)?.try_into().ok()?);
        at += 8;
    }
    let usage = (numbers[0] == 1).then(|| Usage {
        input: numbers[1],
        output: numbers[2],
        cached_input: numbers[3],
        reasoning: numbers[4],
        total: (numbers[5] != u64::MAX).then_some(numbers[5]),
        ..Usage::default()
    });
    Some(Arc::new(Entry {
        // Redis expires it.
        expires: Instant::now() + Duration::from_secs(1),
        content_type,
        body: Bytes::copy_from_slice(value.get(at..)?),
        usage,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        let mut out = Vec::new();
        write_canonical(&serde_json::from_str(text).expect("json"), true, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn key_order_spacing_and_streaming_do_not_matter() {
        assert_eq!(
            canonical(
                r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}"#
            ),
            canonical(
                r#"{"messages":[{"content":"hi","role":"user"}],"model":"m","stream_options":{"include_usage":true}}"#
            ),
        );
        assert_eq!(
            canonical(r#"{"b": {"z": 1, "a": [2, {"y": "é\n"}]}}"#),
            r#"{"b":{"a":[2,{"y":"é\n"}],"z":1}}"#
        );
        assert_ne!(canonical(r#"{"a": "x"}"#), canonical(r#"{"a": "y"}"#));
        // Only the top level's `stream` is the request's.
        assert_eq!(
            canonical(r#"{"tools": [{"stream": 1}]}"#),
            r#"{"tools":[{"stream":1}]}"#
        );
    }

    #[test]
    fn only_cold_single_choice_requests_are_deterministic() {
        let chat = Endpoint::ChatCompletions;
        let json = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
        assert!(deterministic(chat, &json(r#"{"temperature": 0}"#)));
        assert!(deterministic(
            chat,
            &json(r#"{"temperature": 0.0, "n": 1}"#)
        ));
        assert!(!deterministic(chat, &json(r#"{}"#)));
        assert!(!deterministic(chat, &json(r#"{"temperature": 0.7}"#)));
        assert!(!deterministic(chat, &json(r#"{"temperature": 0, "n": 3}"#)));
        assert!(deterministic(Endpoint::Embeddings, &json(r#"{}"#)));
    }
}
