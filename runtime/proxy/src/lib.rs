//! aigw's data plane: a tokio + hyper server that serves OpenAI-compatible traffic from a
//! compiled routing table (`aigw-table`), in process, without Envoy.
//!
//! The request path: [`handler`] (endpoint, body read once, model → `x-ai-eg-model`, rule in
//! table order) → [`forward`] (backend choice by weight and priority, failover, credentials,
//! mutations) → [`relay`] (the response streamed back chunk by chunk, usage read on the way).
//! Provider translation ([`translated`], over `aigw-providers`) turns the request into the
//! backend's API at [`forward`] and its answer back at [`relay`], per backend schema; AWS
//! backends are signed by [`auth`]. A pair this build cannot translate answers 501 naming it.
//!
//! *Invariant*: one table generation per request. [`Shared`] holds the current generation in
//! one atomic swap; a request takes it once ([`Shared::generation`]) and keeps its `Arc` until
//! its response ends. A reload builds the next generation completely (secrets resolved,
//! clients ready) before the swap; a table that fails is logged and the old one keeps serving.
//!
//! *Boundary*: this crate knows nothing of the compiler. `aigw serve` and the lean
//! `aigw-proxy` binary give it a table file; `aigw run` gives it tables it compiled itself.

pub mod access_log;
mod ambient;
pub mod auth;
pub mod authz;
pub mod body;
pub mod cache;
pub mod callers;
mod content;
pub mod cors;
pub mod costs;
mod credentials;
pub mod error;
pub mod exchange;
pub mod extproc;
mod filters;
pub mod follow;
pub mod forward;
pub mod generation;
pub mod guard;
pub mod handler;
pub mod jwt;
pub mod linger;
pub mod mcp;
pub mod metrics;
mod mirror;
pub mod plain;
pub mod quota;
pub mod ratelimit;
pub mod record;
pub mod redis_link;
pub mod relay;
pub mod reload;
pub mod secrets;
mod select;
pub mod serve;
pub mod server;
pub mod slots;
pub mod token;
pub mod trace;
pub mod translated;
pub mod upstream;
pub mod wasm;
pub mod workers;

use arc_swap::ArcSwapOption;
use generation::{BuildError, Generation};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use server::{Handle, Limits, Runtime, StartError};

/// Static process configuration, parsed once.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the Gateway listeners bind to.
    pub bind: IpAddr,
    /// Bind every listener to an ephemeral port on `bind` instead of the table's port (tests);
    /// [`Runtime::addr`] says where each table port went.
    pub ephemeral_ports: bool,
    /// The admin listener (`/health`, `/ready`, `/metrics`); `None` for none.
    pub admin: Option<SocketAddr>,
    /// Largest request body accepted (413 above it).
    pub body_limit: usize,
    /// Most backend attempts per request (one per priority level).
    pub max_attempts: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain: std::time::Duration,
    /// Where the clouds' identity services are (from the environment by default).
    pub endpoints: token::Endpoints,
    /// Where the access log goes; `None`: no access log.
    pub access_log: Option<access_log::Target>,
    /// The Redis that QuotaPolicy counts are shared in (`redis://host:port/db`); `None`: in
    /// process.
    pub quota_redis: Option<String>,
    /// What a quota check does when Redis cannot be asked.
    pub quota_fail: quota::FailMode,
    /// Where traces go (from the `OTEL_*` environment by default); `None`: no traces.
    pub traces: Option<trace::TraceConfig>,
    /// Serve as Envoy's external processor here instead of binding the Gateway listeners
    /// (Envoy owns those, and their TLS).
    pub extproc: Option<extproc::Listen>,
    /// What one client may hold of a listener: connections, header bytes, header time.
    pub limits: server::Limits,
    /// Threads that accept and serve each Gateway listener, each on a single-threaded runtime
    /// of its own ([`workers`]); 0 serves the listeners on the runtime that starts the gateway.
    pub workers: usize,
    /// What one backend may have of this process: requests in flight and waiting.
    pub upstream: slots::Limits,
}

/// The admin port the reference's data plane uses for its own admin endpoints.
pub const DEFAULT_ADMIN_PORT: u16 = 1064;
/// The default request body limit: 50 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 50 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ephemeral_ports: false,
            admin: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                DEFAULT_ADMIN_PORT,
            )),
            body_limit: DEFAULT_BODY_LIMIT,
            max_attempts: 5,
            drain: std::time::Duration::from_secs(10),
            endpoints: token::Endpoints::from_env(),
            access_log: None,
            quota_redis: None,
            quota_fail: quota::FailMode::Open,
            traces: trace::TraceConfig::from_env(),
            extproc: None,
            limits: server::Limits::default(),
            workers: 0,
            upstream: slots::Limits::default(),
        }
    }
}

impl Config {
    /// Everything on `127.0.0.1`, ephemeral ports (for tests).
    pub fn loopback() -> Self {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Config {
            bind: localhost,
            ephemeral_ports: true,
            admin: Some(SocketAddr::new(localhost, 0)),
            ..Config::default()
        }
    }
}

/// What every connection shares: the current generation and the process-wide parts.
pub struct Shared {
    current: ArcSwapOption<Generation>,
    loads: AtomicU64,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub clients: upstream::Clients,
    /// Where each AI request's account goes when it ends (metrics, access log).
    pub recorder: Arc<record::Recorder>,
    /// QuotaPolicy counts, kept across reloads.
    pub quotas: Arc<quota::Store>,
    /// Rate-limit counts, kept across reloads.
    pub limits: Arc<ratelimit::Counters>,
    /// Response caches' stores, kept across reloads.
    pub caches: cache::Stores,
    /// MCP gateway sessions, kept across reloads.
    pub mcp: mcp::Sessions,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The process-wide parts; fails only when the access log cannot be opened or the
    /// Redis URL cannot be read.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let metrics = metrics::Metrics::default();
        let redis = config
            .quota_redis
            .as_deref()
            .map(|url| redis_link::Link::new(url).map(Arc::new))
            .transpose()
            .map_err(std::io::Error::other)?;
        let caches = cache::Stores::new(redis.clone());
        let limits = Arc::new(ratelimit::Counters::new(
            redis.clone(),
            config.quota_fail,
            metrics.clone(),
        ));
        let quotas = match &redis {
            Some(link) => quota::Store::redis(link.clone(), config.quota_fail, metrics.clone()),
            None => quota::Store::local(),
        };
        let log = config
            .access_log
            .as_ref()
            .map(access_log::AccessLog::open)
            .transpose()?;
        let clients = upstream::Clients::for_workers(config.workers, config.upstream);
        // Needs the runtime: `Shared` is built inside it, when the gateway starts.
        let traces = config
            .traces
            .as_ref()
            .map(|c| trace::Traces::start(c, clients.plain(), metrics.clone()).map(Arc::new))
            .transpose()
            .map_err(std::io::Error::other)?;
        Ok(Shared {
            current: ArcSwapOption::empty(),
            loads: AtomicU64::new(0),
            recorder: Arc::new(record::Recorder {
                metrics: metrics.clone(),
                log,
                traces,
            }),
            config,
            metrics,
            clients,
            quotas: Arc::new(quotas),
            limits,
            caches,
            mcp: mcp::Sessions::default(),
        })
    }

    /// The generation a new request uses (and keeps until its response ends).
    pub fn generation(&self) -> Option<Arc<Generation>> {
        self.current.load_full()
    }

    /// Builds a generation from `snapshot` and makes it current; on failure the current one
    /// stays. Returns the new generation's number.
    pub fn install(
        &self,
        snapshot: aigw_table::Snapshot,
        secrets: &secrets::Secrets,
    ) -> Result<u64, BuildError> {
        let number = self.loads.fetch_add(1, Ordering::Relaxed) + 1;
        match Generation::build(
            number,
            snapshot,
            secrets,
            &self.clients,
            &self.config.endpoints,
            (&self.caches, &self.metrics),
        ) {
            Ok(generation) => {
                if generation.rate_limits.any_global() && !self.limits.shared() {
                    tracing::warn!(
                        "global rate limits are counted per replica: no Redis is configured (--quota-redis)"
                    );
                }
                self.current.store(Some(Arc::new(generation)));
                self.metrics.reload(true, number);
                Ok(number)
            }
            Err(error) => {
                self.metrics.reload(false, number);
                Err(error)
            }
        }
    }
}
