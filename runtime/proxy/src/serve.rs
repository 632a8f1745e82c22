//! The `serve` command (`aigw serve`, and the lean `aigw-proxy` binary): serve a compiled
//! table, reload it when it changes or on SIGHUP, stop cleanly on SIGINT or SIGTERM. Also the
//! listener flags and the run loop `aigw run` shares.

use crate::follow::{self, Followed};
use crate::reload::{self, Source, TableFile};
use crate::secrets::Secrets;
use crate::{Config, DEFAULT_ADMIN_PORT, DEFAULT_BODY_LIMIT, Runtime};
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Flags of every serving command.
#[derive(clap::Args, Clone, Debug)]
pub struct ListenArgs {
    /// Address the Gateway listeners bind to.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Port of the admin listener (`/health`, `/ready`, `/metrics`); 0 turns it off.
    #[arg(long, default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// How often watched files are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub watch_interval_ms: u64,
    /// Write one JSON line per AI request here (`-` for standard output); none by default.
    #[arg(long, value_name = "FILE|-")]
    pub access_log: Option<crate::access_log::Target>,
    /// Share QuotaPolicy counts with other replicas in this Redis (`redis://host:port/db`);
    /// in process by default.
    #[arg(long, value_name = "URL")]
    pub quota_redis: Option<String>,
    /// When Redis cannot be asked: let requests through (`open`) or refuse them (`closed`).
    #[arg(long, value_enum, default_value_t = crate::quota::FailMode::Open)]
    pub quota_fail: crate::quota::FailMode,
    /// Connections a Gateway listener serves at once; past it, new ones wait to be accepted.
    #[arg(long, default_value_t = crate::Limits::default().max_connections)]
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; 431 above it.
    #[arg(long, default_value_t = crate::Limits::default().max_header_bytes)]
    pub max_header_bytes: usize,
    /// Time for a request's head to arrive, in milliseconds; the connection is closed after it.
    #[arg(long, default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// Threads serving the Gateway listeners, each with a runtime of its own that keeps its
    /// connections (one per core by default; 0 serves them on tokio's shared work-stealing
    /// pool instead). Not used by `extproc`, which has no Gateway listener.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Requests one backend may have in flight from this process; past it they queue (not
    /// used by `extproc`: Envoy sends the requests).
    #[arg(long, default_value_t = crate::slots::Limits::default().max_requests)]
    pub max_upstream_requests: usize,
    /// Requests that may queue for one backend; past it they are refused with 503 (and fail
    /// over to the rule's next priority).
    #[arg(long, default_value_t = crate::slots::Limits::default().max_pending)]
    pub max_upstream_pending: usize,
}

impl ListenArgs {
    pub fn config(&self) -> Config {
        Config {
            bind: self.bind,
            admin: (self.admin_port != 0).then(|| SocketAddr::new(self.bind, self.admin_port)),
            body_limit: self.body_limit,
            access_log: self.access_log.clone(),
            quota_redis: self.quota_redis.clone(),
            quota_fail: self.quota_fail,
            limits: crate::Limits {
                max_connections: self.max_connections,
                max_header_bytes: self.max_header_bytes,
                header_timeout: Duration::from_millis(self.header_timeout_ms),
            },
            workers: self.workers.unwrap_or_else(crate::workers::per_core),
            upstream: crate::slots::Limits {
                max_requests: self.max_upstream_requests,
                max_pending: self.max_upstream_pending,
            },
            ..Config::default()
        }
    }
}

/// `serve --table FILE`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// The compiled routing table (`table.json` from `aigw compile`).
    #[arg(long, required_unless_present = "table_url")]
    pub table: Option<PathBuf>,
    /// Follow the table an `aigw controller` publishes (`http://HOST:8081/v1/table`); with
    /// `--table`, that file caches the last table installed, for starts while the controller
    /// is down.
    #[arg(long, value_name = "URL")]
    pub table_url: Option<String>,
    /// Mounted Secrets: `<dir>/<namespace>/<name>/<key>` (the environment is also read:
    /// `AIGW_SECRET_<NAMESPACE>_<NAME>_<KEY>`).
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    #[command(flatten)]
    pub listen: ListenArgs,
    /// Set by `extproc`: serve as Envoy's external processor here.
    #[arg(skip)]
    pub extproc: Option<crate::extproc::Listen>,
}

/// `extproc --table FILE`: serve the table as Envoy's external processor.
#[derive(clap::Args, Clone, Debug)]
pub struct ExtprocArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Where the processor listens: `host:port`, or `unix:PATH` (the compiled Envoy config's
    /// `aigw-extproc` cluster points at the reference's `127.0.0.1:1063`).
    #[arg(long, default_value = crate::extproc::DEFAULT_LISTEN)]
    pub listen: crate::extproc::Listen,
}

/// Runs `extproc` to completion on a new tokio runtime.
pub fn extproc(args: ExtprocArgs) -> anyhow::Result<()> {
    let mut serve_args = args.serve;
    serve_args.extproc = Some(args.listen);
    serve(serve_args)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs `serve` to completion on a new tokio runtime.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let secrets = Secrets::from_environment().with_dir(args.secrets_dir.clone());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut config = args.listen.config();
    config.extproc = args.extproc.clone();
    let interval = Duration::from_millis(args.listen.watch_interval_ms);
    tokio.block_on(async move {
        if let Some(url) = &args.table_url {
            let followed = Followed::start(url, args.table.clone(), secrets).await;
            let follower = followed.clone();
            run_with(config, followed, interval, move |handle| {
                // The first table serves: it is the cache now, as every later one will be.
                follower.write_cache();
                Some(tokio::spawn(follow::follow(handle, follower)))
            })
            .await
        } else {
            let path = args
                .table
                .clone()
                .context("--table or --table-url is needed")?;
            run(config, Arc::new(TableFile { path, secrets }), interval).await
        }
    })
}

/// Loads the first table from `source` (failing if it cannot), serves it, reloads on change,
/// and returns after SIGINT or SIGTERM once in-flight requests drained.
pub async fn run(
    config: Config,
    source: Arc<dyn Source>,
    interval: Duration,
) -> anyhow::Result<()> {
    run_with(config, source, interval, |_| None).await
}

/// [`run`], with one more task started beside the watcher (and stopped with it).
async fn run_with(
    config: Config,
    source: Arc<dyn Source>,
    interval: Duration,
    also: impl FnOnce(crate::server::Handle) -> Option<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<()> {
    let (snapshot, secrets) = source
        .load()
        .map_err(|e| anyhow::anyhow!(e))
        .context("loading the routing table")?;
    let runtime = Runtime::start(config, snapshot, &secrets).await?;
    let watcher = tokio::spawn(reload::watch(runtime.handle(), source, interval));
    let other = also(runtime.handle());
    stopped().await?;
    tracing::info!("shutting down: draining in-flight requests");
    watcher.abort();
    if let Some(task) = other {
        task.abort();
    }
    runtime.shutdown().await;
    Ok(())
}

/// Returns on SIGINT or SIGTERM.
pub async fn stopped() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
