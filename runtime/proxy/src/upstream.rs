//! Upstream HTTP clients: one keep-alive pool for plain HTTP and one per distinct upstream TLS
//! setting (server name and trusted CAs), kept across table generations so that a reload does
//! not drop warm connections. Sockets set `TCP_NODELAY`; TLS is rustls on ring, trusting the
//! system's CAs unless the BackendTLSPolicy names CA bundles, with SNI and the certificate name
//! from the policy's hostname.
//!
//! The clients requests go through are [`Pools`]: one pool per serving thread
//! ([`crate::workers`]), so an upstream connection is used only by the thread whose runtime
//! drives it and a request never waits on another thread to be sent. The side clients (token
//! services, key sets, trace export) share one pool.

use crate::error::ProxyError;
use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The request body sent upstream: the whole (possibly rewritten) request body, reusable
/// across attempts.
pub type UpstreamBody = crate::body::Body;

/// A pooled client.
pub type Client = Pool<HttpsConnector<HttpConnector>, UpstreamBody>;

/// What a TLS client is keyed by: the server name, whether the system CAs are trusted, and the
/// PEM bundles of the policy's CA references.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsKey {
    pub server_name: String,
    pub system: bool,
    pub bundles: Vec<Bytes>,
}

/// The pools of one upstream setting, one per serving thread (and one for the threads that
/// are not workers, index 0).
#[derive(Clone)]
pub struct Pools(Arc<[Client]>);

impl Pools {
    fn new(count: usize, connector: impl Fn() -> HttpsConnector<HttpConnector>) -> Self {
        Pools((0..count.max(1)).map(|_| pool(connector())).collect())
    }

    /// Sends `request` through the calling thread's pool.
    pub fn request(
        &self,
        request: http::Request<UpstreamBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.0[crate::workers::index() % self.0.len()].request(request)
    }
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pools").field(&self.0.len()).finish()
    }
}

/// The clients of a running gateway.
#[derive(Clone)]
pub struct Clients {
    plain: Pools,
    tls: Arc<Mutex<HashMap<TlsKey, Pools>>>,
    system_roots: Arc<rustls::RootCertStore>,
    /// Pools per upstream setting: the workers' and one more.
    count: usize,
    /// Every backend's request slots.
    slots: crate::slots::Registry,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http
}

fn pool(connector: HttpsConnector<HttpConnector>) -> Client {
    Pool::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

impl Clients {
    /// Clients with one pool per setting (for the side clients and tests).
    pub fn new() -> Self {
        Self::for_workers(0, crate::slots::Limits::default())
    }

    /// Clients with a pool per setting for each of `workers` serving threads and one more, and
    /// backends bounded by `limits`.
    /// Reads the system's CA certificates once (a missing or partly unreadable store leaves
    /// fewer roots; TLS to a backend then fails with a clear upstream error).
    pub fn for_workers(workers: usize, limits: crate::slots::Limits) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!(
                "no system CA certificates were found: TLS to backends that trust the system CAs will fail"
            );
        }
        let count = workers + 1;
        let config = client_config(roots.clone());
        let plain = Pools::new(count, || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http_connector())
        });
        Clients {
            plain,
            tls: Arc::default(),
            system_roots: Arc::new(roots),
            count,
            slots: crate::slots::Registry::new(limits),
        }
    }

    /// The request slots of backend `name` (the same across generations).
    pub fn slots(&self, name: &str) -> Arc<crate::slots::Slots> {
        self.slots.of(name)
    }

    /// The plain-HTTP client of the side work (token services, key sets, traces).
    pub fn plain(&self) -> Client {
        self.plain.0[0].clone()
    }

    /// The plain-HTTP pools requests go through.
    pub fn plain_pools(&self) -> Pools {
        self.plain.clone()
    }

    /// The pools for `key`, made on first use.
    pub fn tls(&self, key: &TlsKey) -> Result<Pools, ProxyError> {
        let mut clients = self
            .tls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let mut roots = if key.system || key.bundles.is_empty() {
            (*self.system_roots).clone()
        } else {
            rustls::RootCertStore::empty()
        };
        for bundle in &key.bundles {
            for cert in <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(bundle) {
                let cert = cert.map_err(|_| ProxyError::internal("a CA bundle of a BackendTLSPolicy is not PEM"))?;
                roots.add(cert).map_err(|_| ProxyError::internal("a CA certificate of a BackendTLSPolicy could not be used"))?;
            }
        }
        let config = client_config(roots);
        let name = server_name(&key.server_name)?;
        let client = Pools::new(self.count, || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config.clone())
                .https_or_http()
                .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone()))
                .enable_all_versions()
                .wrap_connector(http_connector())
        });
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

fn server_name(name: &str) -> Result<rustls_pki_types::ServerName<'static>, ProxyError> {
    rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|_| {
        ProxyError::internal("the TLS hostname of a BackendTLSPolicy is not a valid server name")
    })
}

fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The kind of fault of a request that got no response, for the metrics: `dns` (the name did
/// not resolve), `connect` (refused or unreachable), `tls` (the handshake or the certificate
/// failed), `closed` (the connection was reset or ended before the answer), `io`, or `other`.
pub fn fault(error: &hyper_util::client::legacy::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    let mut kind = if error.is_connect() {
        "connect"
    } else {
        "other"
    };
    while let Some(inner) = source {
        // An I/O error's `source` skips the error it wraps (hyper-rustls wraps rustls's I/O
        // error, which wraps the handshake's `rustls::Error`, in one more): walk into it.
        let mut next = inner.source();
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) {
                return "closed";
            }
            if kind == "other" {
                kind = "io";
            }
            if let Some(wrapped) = io.get_ref() {
                next = Some(wrapped as &(dyn std::error::Error + 'static));
            }
        }
        if inner.downcast_ref::<rustls::Error>().is_some() {
            return "tls";
        }
        if let Some(hyper) = inner.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_closed())
        {
            return "closed";
        }
        // hyper-util's resolver error says so in its text, and has no type of its own.
        if error.is_connect() && inner.to_string().starts_with("dns error") {
            return "dns";
        }
        source = next;
    }
    kind
}

/// The fault of a backend's answer by its status: `status_429`, `status_5xx`, or none.
pub fn status_fault(status: http::StatusCode) -> Option<&'static str> {
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        Some("status_429")
    } else if status.is_server_error() {
        Some("status_5xx")
    } else {
        None
    }
}

/// What went wrong with a request that got no response: a connect failure, a connection closed
/// before the answer, or another I/O failure (for the 502's message; any of them fails over).
pub fn describe(error: &hyper_util::client::legacy::Error) -> &'static str {
    if error.is_connect() {
        return "the backend could not be connected to";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(hyper) = inner.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_closed())
        {
            return "the backend closed the connection before answering";
        }
        if inner.downcast_ref::<std::io::Error>().is_some() {
            return "the connection to the backend failed";
        }
        source = inner.source();
    }
    "the request to the backend failed"
}
