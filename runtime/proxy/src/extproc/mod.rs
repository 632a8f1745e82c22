//! aigw as Envoy's external processor: an `envoy.service.ext_proc.v3.ExternalProcessor` gRPC
//! server (tonic, protos from `envoy-types`) that does inside Envoy's request and response
//! phases what the standalone server does, through the same code: [`crate::handler::admit`]
//! (model, rule, caller policies, guard, cache), [`crate::forward::prepare`] (the backend's
//! request: translation, credentials, SigV4 over the final body), and the answer's translation
//! ([`crate::translated`], [`crate::relay::Relayer`]).
//!
//! The compiled Envoy config calls it twice per request, as the reference does:
//! - the router-level filter ([`router`]) sees the client's headers and buffered body, admits
//!   the request, sets `x-ai-eg-model` and clears the route cache so Envoy picks the rule's
//!   cluster, and later translates the answer (buffered, or streamed chunk by chunk);
//! - the upstream filter of each backend cluster ([`attempt`]) sees each attempt's headers
//!   with the endpoint's backend name (host metadata), and replaces the request with that
//!   backend's: path, host, headers, credentials and body. A retry that Envoy sends to another
//!   priority is another attempt, maybe to another schema; the answer is translated for the
//!   attempt that made it.
//!
//! The two streams of one request meet in [`Pending`] by the internal request id the router
//! stream puts on the request (`x-ai-eg-internal-req-id`); the router stream owns the entry
//! and removes it when it ends. Failover and retries stay Envoy's.
//!
//! *Invariant*: a request uses the generation its router phase took, in both streams, even when
//! a reload swaps in another meanwhile.

mod attempt;
mod router;
mod wire;

use crate::Shared;
use crate::generation::Generation;
use crate::handler::Admitted;
use crate::record::Record;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::{
    ProcessingRequest, ProcessingResponse, processing_request::Request as Message,
};
use foldhash::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

pub use wire::NAMESPACE;

/// The request header that carries the internal request id from the router stream to the
/// upstream streams (the reference's name).
pub const REQUEST_ID_HEADER: &str = "x-ai-eg-internal-req-id";

/// The attribute the upstream filter is sent: the backend of the endpoint Envoy chose.
pub const BACKEND_ATTRIBUTE: &str = "xds.upstream_host_metadata.filter_metadata['aigateway.envoy.io']['per_route_rule_backend_name']";

/// Where the processor listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => Ok(Listen::Unix(path.into())),
            Some(_) => Err("`unix:` needs a socket path".into()),
            None => text
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| format!("`{text}` is neither `host:port` nor `unix:PATH`")),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The default address: the reference's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1063";

/// One request in flight between its router stream and its upstream streams.
pub(crate) struct Flight {
    pub generation: Arc<Generation>,
    pub admitted: Admitted,
    /// The request's account (out of `admitted`, so that the exchange can be borrowed while
    /// it is written to).
    pub record: Record,
    /// The attempt Envoy sent last: its answer is the one the router phase sees.
    pub current: Option<attempt::Current>,
}

/// Requests in flight, by internal id.
#[derive(Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    flights: std::sync::Mutex<HashMap<u64, Arc<Mutex<Flight>>>>,
}

impl Pending {
    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn insert(&self, id: u64, flight: Arc<Mutex<Flight>>) {
        if let Ok(mut flights) = self.flights.lock() {
            flights.insert(id, flight);
        }
    }

    fn get(&self, id: u64) -> Option<Arc<Mutex<Flight>>> {
        self.flights.lock().ok()?.get(&id).cloned()
    }

    fn remove(&self, id: u64) {
        if let Ok(mut flights) = self.flights.lock() {
            flights.remove(&id);
        }
    }
}

/// The gRPC service.
#[derive(Clone)]
pub struct Processor {
    shared: Arc<Shared>,
    pending: Arc<Pending>,
}

impl Processor {
    pub fn new(shared: Arc<Shared>) -> Self {
        Processor {
            shared,
            pending: Arc::new(Pending::default()),
        }
    }
}

/// What one gRPC stream is, once its first message said.
enum Session {
    Start,
    Router(Box<router::Router>),
    Attempt,
}

impl Session {
    async fn handle(
        &mut self,
        processor: &Processor,
        request: ProcessingRequest,
    ) -> ProcessingResponse {
        let Some(message) = request.request else {
            return wire::Continue::default().into_response(wire::Phase::RequestHeaders);
        };
        if let (Session::Start, Message::RequestHeaders(headers)) = (&*self, &message) {
            let head = wire::Head::read(headers.headers.as_ref());
            if let Some(backend) = wire::attribute(&request.attributes, BACKEND_ATTRIBUTE) {
                *self = Session::Attempt;
                return attempt::headers(processor, head, backend).await;
            }
            let (router, answer) =
                router::Router::start(processor, head, &request.attributes, headers.end_of_stream)
                    .await;
            *self = Session::Router(Box::new(router));
            return answer;
        }
        match (self, message) {
            (Session::Router(router), message) => router.handle(processor, message).await,
            // An upstream stream is sent its request headers only; anything else passes.
            (_, message) => wire::Continue::default().into_response(phase(&message)),
        }
    }
}

pub(super) fn phase(message: &Message) -> wire::Phase {
    match message {
        Message::RequestHeaders(_) => wire::Phase::RequestHeaders,
        Message::RequestBody(_) => wire::Phase::RequestBody,
        Message::RequestTrailers(_) => wire::Phase::RequestTrailers,
        Message::ResponseHeaders(_) => wire::Phase::ResponseHeaders,
        Message::ResponseBody(_) => wire::Phase::ResponseBody,
        Message::ResponseTrailers(_) => wire::Phase::ResponseTrailers,
    }
}

type Answers =
    Pin<Box<dyn futures_util::Stream<Item = Result<ProcessingResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = Answers;

    async fn process(
        &self,
        request: tonic::Request<tonic::Streaming<ProcessingRequest>>,
    ) -> Result<tonic::Response<Answers>, tonic::Status> {
        let inbound = request.into_inner();
        let state = (inbound, Session::Start, self.clone());
        // One answer per message, in order; the session (and the router's entry in
        // `Pending`) ends with the stream.
        let answers = futures_util::stream::unfold(
            state,
            |(mut inbound, mut session, processor)| async move {
                let message = inbound.message().await.ok()??;
                let answer = session.handle(&processor, message).await;
                Some((Ok(answer), (inbound, session, processor)))
            },
        );
        Ok(tonic::Response::new(Box::pin(answers)))
    }
}

/// Serves the processor on `listen` until `stop` turns true.
pub async fn serve(
    shared: Arc<Shared>,
    listen: tokio_listener::Bound,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let service = ExternalProcessorServer::new(Processor::new(shared))
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let stopped = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    let server = tonic::transport::Server::builder();
    let result = match listen {
        tokio_listener::Bound::Tcp(socket) => {
            // Every message is a round trip: Nagle's algorithm would hold small answers back
            // for the peer's delayed ACK (tens of milliseconds). The builder's `tcp_nodelay`
            // does not reach sockets of a given listener; the incoming stream's does.
            let incoming =
                tonic::transport::server::TcpIncoming::from(socket).with_nodelay(Some(true));
            server
                .serve_with_incoming_shutdown(service, incoming, stopped)
                .await
        }
        tokio_listener::Bound::Unix(socket) => {
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(socket);
            server
                .serve_with_incoming_shutdown(service, incoming, stopped)
                .await
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, "the external processor stopped");
    }
}

/// Binding the processor's socket.
pub mod tokio_listener {
    use super::Listen;

    /// A bound socket.
    #[derive(Debug)]
    pub enum Bound {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }

    /// Binds `listen`; a stale Unix socket file is replaced. Returns where it listens.
    pub async fn bind(listen: &Listen) -> std::io::Result<(Bound, Listen)> {
        match listen {
            Listen::Tcp(addr) => {
                let socket = tokio::net::TcpListener::bind(addr).await?;
                let bound = socket.local_addr()?;
                Ok((Bound::Tcp(socket), Listen::Tcp(bound)))
            }
            Listen::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    std::fs::remove_file(path)?;
                }
                let socket = tokio::net::UnixListener::bind(path)?;
                Ok((Bound::Unix(socket), listen.clone()))
            }
        }
    }
}
