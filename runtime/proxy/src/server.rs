//! Listeners: one socket per Gateway listener port (HTTP/1.1 and h2c; HTTPS with the
//! certificate of the listener's Secret, ALPN h2 and http/1.1), plus the admin listener.
//! Accepted sockets set `TCP_NODELAY`. Shutdown stops accepting and lets in-flight requests
//! finish, up to [`crate::Config::drain`].
//!
//! Every Gateway listener is bounded ([`Limits`]): a request's head must arrive within
//! `header_timeout` (slow-header clients are closed, HTTP/1.1 and h2 alike) and fit in
//! `max_header_bytes` (431 above it: Envoy's default is 60 KiB), and a listener serves at most
//! `max_connections` at once: past that, accepting waits until one closes, so new clients queue
//! in the kernel's backlog rather than being refused, and a connection already open is never cut
//! to make room. A connection the server ends lingers, so the client reads its last answer
//! rather than a reset ([`crate::linger`]).
//!
//! Ports are bound when the runtime starts; a reloaded table that adds a port is served on the
//! ports already bound (a restart binds the new one; the reload logs it). HTTPS certificates
//! are likewise read at start.

use crate::body::Body;
use crate::error::ProxyError;
use crate::generation::BuildError;
use crate::linger::Lingering;
use crate::secrets::{Missing, Secrets};
use crate::{Config, Shared, handler};
use aigw_table::{Protocol, Snapshot};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The bounds of every Gateway listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once per listener.
    pub max_connections: usize,
    /// Bytes of a request head (HTTP/1.1 request line and headers; h2 header list).
    pub max_header_bytes: usize,
    /// Time for a request's head to arrive, from when the connection awaits it: its start, or
    /// the end of the previous answer (hyper's timer). So it is also how long a kept-alive
    /// HTTP/1.1 connection may stay idle.
    pub header_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_header_bytes: 64 << 10,
            header_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Time for a TLS handshake: the head's time, at most 10 s (a client that never finishes
    /// its handshake is a slow head too).
    pub fn handshake_timeout(&self) -> std::time::Duration {
        self.header_timeout.min(std::time::Duration::from_secs(10))
    }

    /// hyper's builder for these limits. Its HTTP/1.1 read buffer is also the head's limit,
    /// and may not be smaller than 8 KiB.
    fn builder(&self) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(self.max_header_bytes.max(8 << 10));
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));
        builder
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("listener on port {port}: {missing}")]
    Certificate { port: u16, missing: Missing },
    #[error(
        "listener on port {port}: the certificate or key of secret `{secret}` cannot be used: {reason}"
    )]
    InvalidCertificate {
        port: u16,
        secret: String,
        reason: String,
    },
    #[error("the access log or the quota store cannot be set up: {0}")]
    AccessLog(std::io::Error),
    #[error("the external processor could not listen on {listen}: {source}")]
    Extproc {
        listen: String,
        source: std::io::Error,
    },
    #[error("the listeners' workers could not start: {0}")]
    Workers(std::io::Error),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<Shared>,
    /// Table port → where it is served.
    addrs: BTreeMap<u16, SocketAddr>,
    /// Where the external processor listens, when it is served.
    extproc: Option<crate::extproc::Listen>,
    admin: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Runtime {
    /// Resolves `snapshot` into the first generation, binds its listeners and the admin
    /// listener, and starts serving.
    pub async fn start(
        mut config: Config,
        snapshot: Snapshot,
        secrets: &Secrets,
    ) -> Result<Runtime, StartError> {
        if let Some(traces) = crate::trace::TraceConfig::from_table(&snapshot) {
            config.traces = traces;
        }
        let mut ports: BTreeMap<u16, Option<TlsAcceptor>> = BTreeMap::new();
        let listeners = snapshot.listeners().filter(|_| config.extproc.is_none());
        for (_, _, listener) in listeners {
            let tls = match (listener.protocol, ports.get(&listener.port)) {
                (_, Some(Some(_))) => continue,
                (Protocol::Https, _) => Some(acceptor(listener, secrets)?),
                (Protocol::Http, _) => None,
            };
            ports.insert(listener.port, tls);
        }
        let shared = Arc::new(Shared::new(config.clone()).map_err(StartError::AccessLog)?);
        shared.install(snapshot, secrets)?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut addrs = BTreeMap::new();
        let mut sockets = Vec::new();
        for (port, tls) in ports {
            let addr = SocketAddr::new(config.bind, if config.ephemeral_ports { 0 } else { port });
            let (socket, bound) = bind(addr).await?;
            addrs.insert(port, bound);
            tracing::info!(port, %bound, tls = tls.is_some(), workers = config.workers, "listening");
            // One bound on connections per listener, whichever worker accepts them.
            let slots = Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_connections.max(1),
            ));
            sockets.push((Listening { port, tls, slots }, socket));
        }
        let serve = {
            let (shared, stopped) = (shared.clone(), stopped.clone());
            move |listening, socket| accept(socket, listening, shared.clone(), stopped.clone())
        };
        if config.workers == 0 {
            for (listening, socket) in sockets {
                tasks.spawn(serve(listening, socket));
            }
        } else if !sockets.is_empty() {
            let workers = crate::workers::spawn(sockets, config.workers, serve)
                .await
                .map_err(StartError::Workers)?;
            tasks.spawn(workers);
        }
        let extproc = match &config.extproc {
            None => None,
            Some(listen) => {
                let (socket, bound) =
                    crate::extproc::tokio_listener::bind(listen)
                        .await
                        .map_err(|source| StartError::Extproc {
                            listen: listen.to_string(),
                            source,
                        })?;
                tracing::info!(%bound, "external processor listening");
                tasks.spawn(crate::extproc::serve(
                    shared.clone(),
                    socket,
                    stopped.clone(),
                ));
                Some(bound)
            }
        };
        let admin = match config.admin {
            None => None,
            Some(addr) => {
                let (socket, bound) = bind(addr).await?;
                tracing::info!(%bound, "admin listening");
                tasks.spawn(admin(socket, shared.clone(), stopped.clone()));
                Some(bound)
            }
        };
        Ok(Runtime {
            shared,
            addrs,
            extproc,
            admin,
            stop,
            tasks,
        })
    }

    /// Where the table's `port` is served.
    pub fn addr(&self, port: u16) -> Option<SocketAddr> {
        self.addrs.get(&port).copied()
    }

    /// Where the external processor listens (the port it got, when asked for 0).
    pub fn extproc_addr(&self) -> Option<&crate::extproc::Listen> {
        self.extproc.as_ref()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Makes `snapshot` the served table (see [`Shared::install`]).
    pub fn reload(&self, snapshot: Snapshot, secrets: &Secrets) -> Result<u64, BuildError> {
        self.handle().reload(snapshot, secrets)
    }

    /// A handle that reloads this runtime from elsewhere (a watcher task).
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
            ports: Arc::new(self.addrs.keys().copied().collect()),
        }
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain time), and returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds `addr`; returns the socket and the address it got (the port, when `addr` asked for 0).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Bind { addr, source };
    let socket = TcpListener::bind(addr).await.map_err(error)?;
    let bound = socket.local_addr().map_err(error)?;
    Ok((socket, bound))
}

/// Reloads a running runtime.
#[derive(Clone, Debug)]
pub struct Handle {
    shared: Arc<Shared>,
    ports: Arc<Vec<u16>>,
}

impl Handle {
    /// Makes `snapshot` the served table (see [`Shared::install`]).
    pub fn reload(&self, snapshot: Snapshot, secrets: &Secrets) -> Result<u64, BuildError> {
        let new_ports: Vec<u16> = snapshot
            .listeners()
            .map(|(_, _, l)| l.port)
            .filter(|p| !self.ports.contains(p))
            .collect();
        let number = self.shared.install(snapshot, secrets)?;
        if !new_ports.is_empty() {
            tracing::warn!(
                ?new_ports,
                "the new table listens on ports this process did not bind: restart to serve them"
            );
        }
        Ok(number)
    }
}

fn acceptor(listener: &aigw_table::Listener, secrets: &Secrets) -> Result<TlsAcceptor, StartError> {
    let port = listener.port;
    let Some(cert) = listener.certificates.first() else {
        return Err(StartError::InvalidCertificate {
            port,
            secret: "(none)".into(),
            reason: "an HTTPS listener needs a certificate".into(),
        });
    };
    let secret = format!("{}/{}", cert.namespace, cert.name);
    let invalid = |reason: String| StartError::InvalidCertificate {
        port,
        secret: secret.clone(),
        reason,
    };
    let chain = secrets
        .lookup(&cert.namespace, &cert.name, "tls.crt")
        .map_err(|missing| StartError::Certificate { port, missing })?;
    let key = secrets
        .lookup(&cert.namespace, &cert.name, "tls.key")
        .map_err(|missing| StartError::Certificate { port, missing })?;
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("tls.crt: {e}")))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key)
        .map_err(|_| invalid("tls.key holds no usable private key".into()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every worker serving a listener shares: its table port, its TLS and its connection
/// slots.
#[derive(Clone)]
struct Listening {
    port: u16,
    tls: Option<TlsAcceptor>,
    slots: Arc<tokio::sync::Semaphore>,
}

async fn accept(
    socket: TcpListener,
    Listening { port, tls, slots }: Listening,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = shared.config.limits.builder();
    let handshake = shared.config.limits.handshake_timeout();
    loop {
        // At the limit, wait for a connection to close before accepting the next.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        let stream = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(port, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(serve_one(shared, port, peer.ip(), request).await) }
        });
        match &tls {
            None => {
                let connection = graceful.watch(
                    builder
                        .serve_connection(TokioIo::new(Lingering::new(stream)), service)
                        .into_owned(),
                );
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(slot);
                });
            }
            Some(acceptor) => spawn_tls(
                acceptor.clone(),
                (stream, slot),
                handshake,
                builder.clone(),
                service,
                &graceful,
            ),
        }
    }
    drop(socket);
    let drain = shared.config.drain;
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

/// Serves one request; an HTTP/1.1 answer sent before its body was read to its end closes the
/// connection ([`crate::linger`]).
async fn serve_one(
    shared: Arc<Shared>,
    port: u16,
    peer: std::net::IpAddr,
    request: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let http1 = request.version() <= http::Version::HTTP_11;
    let (parts, incoming) = request.into_parts();
    let (body, read) = crate::body::RequestBody::new(incoming);
    let request = Request::from_parts(parts, body);
    let mut response = handler::handle(shared, port, peer, request).await;
    crate::linger::close_unread(&mut response, http1, &read);
    response
}

fn spawn_tls<S>(
    acceptor: TlsAcceptor,
    (stream, slot): (TcpStream, tokio::sync::OwnedSemaphorePermit),
    handshake: std::time::Duration,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    service: S,
    graceful: &GracefulShutdown,
) where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<Body>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    // The handshake runs in the connection's task, not in the accept loop; graceful shutdown
    // covers the connection once it is up.
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(Ok(stream)) =
            tokio::time::timeout(handshake, acceptor.accept(Lingering::new(stream))).await
        else {
            return;
        };
        let _ = watcher
            .watch(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            )
            .await;
    });
}

async fn admin(socket: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            accepted = socket.accept() => match accepted { Ok((stream, _)) => stream, Err(_) => continue },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(admin_answer(&shared, request.uri().path())) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(connection);
    }
}

fn admin_answer(shared: &Shared, path: &str) -> Response<Body> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut response = Response::new(Body::full(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    };
    match path {
        "/health" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/ready" => match shared.generation() {
            Some(generation) => text(
                StatusCode::OK,
                format!("ready: table generation {}\n", generation.number),
                "text/plain",
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no routing table is loaded yet\n".into(),
                "text/plain",
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            shared.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        other => ProxyError::unsupported_path(other).response(),
    }
}
