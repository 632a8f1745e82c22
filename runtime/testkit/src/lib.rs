//! A recording, scriptable upstream that speaks the OpenAI API, for the runtime's tests, the
//! demo and the benchmarks. It is a real HTTP server on loopback (HTTP/1.1 and h2c, or HTTPS
//! with a given certificate, for the upstream TLS tests).
//!
//! What it answers:
//! - `POST /v1/chat/completions`: a chat completion naming the model it was asked for, or with
//!   `"stream": true` a server-sent event stream of `chunks` deltas, `interval` apart, then a
//!   usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`;
//! - `POST /v1/completions` and `POST /v1/embeddings`: their OpenAI shapes;
//! - `POST /v1/responses/input_tokens`: a count of [`COUNTED_TOKENS`];
//! - the providers' own paths (Anthropic, Bedrock, Vertex AI `rawPredict`, Azure OpenAI
//!   deployments): the canned replies of `testdata/upstream/` (see `providers`);
//! - `/mcp`: a minimal MCP server, for the MCP gateway's benchmark (see `mcp`);
//! - anything else: a JSON echo of the method and path.
//!
//! [`python`] finds the workspace's pinned Python venv for the oracle and SDK tests;
//! [`fuzz_cases`] is how many cases a fuzz target runs;
//! [`TokenEndpoint`] is a strict loopback OAuth2 token endpoint (Google's JWT-bearer grant,
//! Azure's client credentials, and the federated exchanges); [`MetadataServer`] the credential
//! services a workload finds beside it in a cloud (IMDSv2, the EKS Pod Identity agent, the GCE
//! metadata server). [`JwksServer`] publishes a JWK set, as an identity provider does.
//!
//! How it misbehaves, per server ([`Behavior`], changeable while it runs): a canned status and
//! body, a delay before the answer, a TCP reset instead of any answer, or a stream cut after
//! some chunks. Every request it receives is recorded (method, path, headers, body) unless
//! recording is off (benchmarks).
//!
//! It must not be a bottleneck: answers are built from small templates without parsing more
//! of the request than the `model` and `stream` fields.

mod envoy;
mod identity;
mod jwks;
mod kube;
mod mcp;
mod metadata;
mod providers;
mod python;
mod respond;
mod token;

use bytes::Bytes;
use http::HeaderMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;

pub use envoy::{Envoy, envoy, free_port};
pub use identity::{Federation, Seen};
pub use jwks::JwksServer;
pub use kube::{FakeKube, http, http_with};
pub use metadata::{
    AwsKeys, Call, GCP_PROJECT, IMDS_KEYS, IMDS_ROLE, Metadata, MetadataServer, POD_IDENTITY_KEYS,
};
pub use providers::{event_stream, wrapped};
pub use python::python;
pub use respond::{COUNTED_TOKENS, usage};
pub use token::{Accounts, TokenEndpoint};

/// How the server answers, beyond its defaults.
#[derive(Clone, Debug, Default)]
pub struct Behavior {
    /// Answer every request with this status (and `body`, or an OpenAI-style error).
    pub status: Option<u16>,
    pub body: Option<String>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Reset the connection (RST) once the request head arrived, answering nothing.
    pub reset: bool,
    /// Stream deltas (default 3) and the pause between them.
    pub chunks: Option<usize>,
    pub interval: Duration,
    /// Cut the stream (abort the connection) after this many deltas.
    pub cut_after: Option<usize>,
    /// After the first delta, send one event that never ends: `data: ` and then 64 KiB pieces
    /// with no line end, until the client leaves (at most 256 MiB).
    pub endless_event: bool,
    /// Headers added to the canned `status` answer (`Retry-After`, say).
    pub headers: Vec<(String, String)>,
    /// A whole (non-streamed) answer sends its head and the first half of its body, then
    /// nothing more until the client leaves.
    pub stall_body: bool,
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: http::Method,
    /// Path and query.
    pub uri: String,
    /// The authority asked for: the `:authority` of HTTP/2, else the `Host` header.
    pub authority: Option<String>,
    /// The HTTP version the request came in.
    pub version: http::Version,
    /// The TLS server name (SNI) the client asked for, on an HTTPS upstream.
    pub sni: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) name: String,
    pub(crate) behavior: Mutex<Behavior>,
    pub(crate) recorded: Mutex<Vec<Recorded>>,
    pub(crate) record: bool,
    /// Provider streams sent to their end, and those whose reader went away first.
    pub(crate) streams_finished: std::sync::atomic::AtomicU64,
    pub(crate) streams_abandoned: std::sync::atomic::AtomicU64,
}

/// A running upstream; it stops when dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves every connection of `listener` (HTTP/1.1 or h2c) with `answer`: the loop of the
/// loopback identity and metadata services.
pub(crate) async fn serve_each<F, Fut>(listener: TcpListener, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<http_body_util::Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let reply = answer(request);
                async move { Ok::<_, std::convert::Infallible>(reply.await) }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MockUpstream {
    /// Starts an upstream named `name` (it says so in the `x-mock-upstream` response header and
    /// in `system_fingerprint`) on `127.0.0.1:0`.
    pub async fn start(name: &str) -> std::io::Result<Self> {
        Self::bind(
            name,
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            true,
        )
        .await
    }

    /// Starts on `addr`; `record` false keeps no request log (for benchmarks).
    pub async fn bind(name: &str, addr: SocketAddr, record: bool) -> std::io::Result<Self> {
        Self::launch(name, TcpListener::bind(addr).await?, record, None)
    }

    /// Starts an HTTPS upstream on `127.0.0.1:0` presenting the PEM certificate chain and key
    /// (ALPN h2 and http/1.1).
    pub async fn start_tls(name: &str, chain: &[u8], key: &[u8]) -> std::io::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(key).map_err(std::io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(std::io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::launch(name, listener, true, Some(acceptor))
    }

    fn launch(
        name: &str,
        listener: TcpListener,
        record: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_owned(),
            behavior: Mutex::default(),
            recorded: Mutex::default(),
            record,
            streams_finished: Default::default(),
            streams_abandoned: Default::default(),
        });
        let task = tokio::spawn(respond::serve(listener, state.clone(), tls));
        Ok(MockUpstream { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Replaces how it answers from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.state.behavior) = behavior;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.recorded).clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        lock(&self.state.recorded).len()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Recorded> {
        lock(&self.state.recorded).last().cloned()
    }

    /// Provider streams (the canned replies sent piece by piece) sent to their end, and
    /// those abandoned because the reader went away: the gateway cancelled the upstream.
    pub fn streams(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.state.streams_finished.load(SeqCst),
            self.state.streams_abandoned.load(SeqCst),
        )
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.state.recorded).clear();
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every file below `dir` (at any depth) whose extension is one of `extensions`, sorted; none
/// when `dir` cannot be read. The fuzz targets' seeds.
pub fn files_below(dir: &std::path::Path, extensions: &[&str]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|x| extensions.iter().any(|e| x == *e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The cases a property-based fuzz target runs: `AIGW_FUZZ_CASES` when set (what
/// `cargo xtask fuzz` sets), else `default` (what the test command and CI run).
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("AIGW_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}
