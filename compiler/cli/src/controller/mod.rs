//! `aigw controller`: the compiler, run continuously against a cluster.
//!
//! It watches every kind the compiler reads ([`kinds`]), keeps a sanitized copy of the objects
//! ([`world`]: no Secret value ever enters it), and on change, debounced, compiles the whole
//! world with the same passes as `aigw compile` ([`reconcile`]). Then:
//! - a world without errors becomes the new table, served to data planes over HTTP
//!   ([`publish`]; `aigw serve --table-url` follows it); a world with errors leaves the last
//!   good table serving;
//! - the leader ([`lease`]) writes each object's status condition by server-side apply, and an
//!   Event when an object is refused or accepted again ([`writer`], [`status`]).
//!
//! Every replica watches, compiles and serves the table; only the leader writes.
//!
//! *Boundary*: the reconcile itself (world → compiled outcome → status bodies) is pure and
//! tested without a cluster; this module and [`feed`], [`lease`] and [`writer`] do the I/O.

mod feed;
pub mod kinds;
pub mod lease;
pub mod publish;
mod reader;
pub mod reconcile;
pub mod status;
pub mod world;
mod writer;

use anyhow::Context;
use feed::Feed;
use publish::{Board, Published, Report};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// `aigw controller` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ControllerArgs {
    /// The kubeconfig to use (default: `KUBECONFIG`, then `~/.kube/config`, then the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace (repeatable); the whole cluster by default.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Where the table server listens (`/v1/table`, `/healthz`, `/readyz`, `/v1/status`).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// The namespace of the leader-election Lease (default: the client's namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// The name of the leader-election Lease.
    #[arg(long, default_value = "aigw-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the host name and process id).
    #[arg(long)]
    pub identity: Option<String>,
    /// How long the Lease holds without renewal, in seconds (renewed every 2/15 of it).
    #[arg(long, default_value_t = 15.0)]
    pub lease_duration: f64,
    /// Also server-side apply the generated Gateway API resources (an HTTPRoute and two
    /// HTTPRouteFilters per AIGatewayRoute, owned by it), for clusters that run Envoy Gateway.
    #[arg(long)]
    pub apply_gateway_api: bool,
    /// How long to wait after a change for more changes before compiling, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub debounce_ms: u64,
}

/// Runs the controller on a new tokio runtime until SIGINT or SIGTERM.
pub fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(run(args))
}

async fn client(args: &ControllerArgs) -> anyhow::Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding a Kubernetes configuration")?,
    };
    kube::Client::try_from(config).context("making the Kubernetes client")
}

async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let client = client(&args).await?;
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let feed = Arc::new(Feed {
        world: Mutex::new(world::World::default()),
        changed: watch::channel(0).0,
        unsynced: watch::channel(usize::MAX).0,
    });
    feed::start(&client, &args.namespaces, &feed);

    let (table, table_rx) = watch::channel(None::<Published>);
    let (report, report_rx) = watch::channel(Report::default());
    let listener = publish::bind(args.listen)
        .await
        .with_context(|| format!("binding the table server on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, %identity, "aigw controller: serving the table");
    tokio::spawn(publish::serve(
        listener,
        Board {
            table: table_rx,
            report: report_rx,
        },
    ));

    let (leading, leading_rx) = watch::channel(false);
    let (stop, stop_rx) = watch::channel(false);
    let timing =
        lease::Timing::from_duration(Duration::from_secs_f64(args.lease_duration.max(1.0)));
    let leases = kube::Api::namespaced(client.clone(), &lease_namespace);
    let elector = lease::Elector::new(leases, &args.lease_name, &identity, timing);
    let election = tokio::spawn(elector.run(leading, stop_rx));

    let writer = writer::Writer::new(client, &identity);
    let debounce = Duration::from_millis(args.debounce_ms);
    let (outcome, outcome_rx) = watch::channel(None);
    let reconciler = tokio::spawn(reconcile_loop(
        feed.clone(),
        table,
        report.clone(),
        outcome,
        debounce,
        args.apply_gateway_api,
    ));
    let writes = tokio::spawn(write_loop(
        feed,
        writer,
        leading_rx,
        outcome_rx,
        report,
        args.apply_gateway_api,
    ));

    aigw_proxy::serve::stopped().await?;
    tracing::info!("shutting down: releasing the Lease");
    reconciler.abort();
    writes.abort();
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    Ok(())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "aigw".into());
    format!("{host}_{}", std::process::id())
}

/// Waits for the first full list of every kind, then compiles on every change (debounced) and
/// publishes good tables. Each outcome goes to the writer, which never holds this loop up: the
/// first pass of a new leader can write thousands of statuses while tables keep flowing.
async fn reconcile_loop(
    feed: Arc<Feed>,
    table: watch::Sender<Option<Published>>,
    report: watch::Sender<Report>,
    outcome: watch::Sender<Option<Arc<reconcile::Compiled>>>,
    debounce: Duration,
    generate: bool,
) {
    let mut unsynced = feed.unsynced.subscribe();
    let _ = unsynced.wait_for(|n| *n == 0).await;
    tracing::info!("every kind listed; compiling");
    let mut changed = feed.changed.subscribe();
    let mut compiled_revision = None;
    let mut reader = reader::Reader::default();
    loop {
        let revision = feed
            .world
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revision();
        if compiled_revision != Some(revision) {
            let compiled = Arc::new(compile(&feed, &mut reader, generate).await);
            publish_outcome(&compiled, &table, &report);
            compiled_revision = Some(compiled.revision);
            outcome.send_replace(Some(compiled));
        }
        if changed.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(debounce).await;
    }
}

/// While leading, writes what the newest outcome says (statuses, and with
/// `--apply-gateway-api` the generated resources); again on every new outcome and on becoming
/// leader.
async fn write_loop(
    feed: Arc<Feed>,
    mut writer: writer::Writer,
    mut leading: watch::Receiver<bool>,
    mut outcome: watch::Receiver<Option<Arc<reconcile::Compiled>>>,
    report: watch::Sender<Report>,
    apply_gateway_api: bool,
) {
    let mut was_leading = false;
    loop {
        let is_leading = *leading.borrow_and_update();
        report.send_modify(|r| r.leader = is_leading);
        if is_leading && !was_leading {
            writer.forget();
        }
        was_leading = is_leading;
        let current = outcome.borrow_and_update().clone();
        if let (true, Some(compiled)) = (is_leading, current) {
            let wrote = writer.statuses(&compiled, &feed.world).await;
            if wrote.statuses + wrote.failed > 0 {
                tracing::info!(written = wrote.statuses, failed = wrote.failed, "statuses");
            }
            if apply_gateway_api && compiled.table.is_some() {
                let wrote = writer.generated(&compiled, &feed.world).await;
                if wrote.statuses + wrote.failed > 0 {
                    tracing::info!(
                        applied = wrote.statuses,
                        failed = wrote.failed,
                        "generated Gateway API resources"
                    );
                }
            }
        }
        let closed = tokio::select! {
            r = outcome.changed() => r.is_err(),
            r = leading.changed() => r.is_err(),
        };
        if closed {
            return;
        }
    }
}

/// Compiles a snapshot of the world on a blocking thread (it can take a second at 10,000
/// routes; the watchers keep going meanwhile), reading again only the objects that changed.
async fn compile(feed: &Feed, reader: &mut reader::Reader, generate: bool) -> reconcile::Compiled {
    let snapshot = feed
        .world
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .snapshot();
    let started = std::time::Instant::now();
    let mut taken = std::mem::take(reader);
    let compiled = tokio::task::spawn_blocking(move || {
        let compiled = reconcile::compile(&mut taken, &snapshot, generate);
        (compiled, taken)
    })
    .await;
    // A compile that panicked loses what the reader kept: the next one reads everything.
    let compiled = match compiled {
        Ok((compiled, kept)) => {
            *reader = kept;
            compiled
        }
        Err(_) => reconcile::compile(reader, &world::Snapshot::default(), false),
    };
    tracing::info!(
        revision = compiled.revision,
        errors = compiled.errors(),
        read = compiled.reads.read,
        reused = compiled.reads.reused,
        ms = started.elapsed().as_millis() as u64,
        "compiled the world"
    );
    compiled
}

fn publish_outcome(
    compiled: &reconcile::Compiled,
    table: &watch::Sender<Option<Published>>,
    report: &watch::Sender<Report>,
) {
    if let Some(bytes) = &compiled.table {
        let published = Published::new(bytes.clone());
        let same = table
            .borrow()
            .as_ref()
            .is_some_and(|p| p.etag == published.etag);
        if !same {
            tracing::info!(version = %published.etag, bytes = bytes.len(), "published a new table");
            table.send_replace(Some(published));
        }
    } else {
        tracing::warn!(
            errors = compiled.errors(),
            "the world has errors: the last good table keeps serving"
        );
    }
    let diagnostics =
        aigw_diag::render_json(&compiled.checked.diagnostics, &compiled.checked.sources);
    report.send_modify(|r| {
        r.revision = compiled.revision;
        r.errors = compiled.errors();
        r.diagnostics = diagnostics;
    });
}
