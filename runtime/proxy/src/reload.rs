//! Hot reload: watch where the table comes from, and on a change (or SIGHUP) load it again and
//! install it. Loading and building happen off to the side; only a complete, valid generation
//! is swapped in, and a failure is logged while the old generation keeps serving.
//!
//! Files are watched by polling their size and modification time (every `interval`): portable,
//! and immune to editors that replace files by renaming. A source is anything that can produce
//! a table and its secrets: a compiled `table.json` here, the manifests themselves for
//! `aigw run`.

use crate::secrets::Secrets;
use crate::server::Handle;
use aigw_table::Snapshot;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where tables come from.
pub trait Source: Send + Sync + 'static {
    /// Produces the table to serve, or says why it cannot.
    fn load(&self) -> Result<(Snapshot, Secrets), String>;
    /// The files (or directories) whose change means a new table.
    fn watched(&self) -> Vec<PathBuf>;
}

/// A compiled `table.json`, with secrets from a fixed place.
#[derive(Debug)]
pub struct TableFile {
    pub path: PathBuf,
    pub secrets: Secrets,
}

impl Source for TableFile {
    fn load(&self) -> Result<(Snapshot, Secrets), String> {
        let bytes =
            std::fs::read(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let snapshot =
            aigw_table::load(&bytes).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok((snapshot, self.secrets.clone()))
    }

    /// The table, and the mounted Secrets: a rotated key (or caller key) is a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.path.clone()];
        paths.extend(self.secrets.dir().map(Path::to_path_buf));
        paths
    }
}

/// A fingerprint of files: path, size and modification time of each (directories walked).
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for path in paths {
        walk(path, &mut out);
    }
    out.sort();
    out
}

fn walk(path: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(meta) = std::fs::metadata(path) else {
        out.push((path.to_path_buf(), u64::MAX, None));
        return;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                walk(&entry.path(), out);
            }
        }
    } else {
        out.push((path.to_path_buf(), meta.len(), meta.modified().ok()));
    }
}

/// Loads from `source` and installs the result; logs the outcome.
pub fn reload_now(runtime: &Handle, source: &dyn Source, why: &str) -> bool {
    let loaded = source.load().and_then(|(snapshot, secrets)| {
        runtime
            .reload(snapshot, &secrets)
            .map_err(|e| e.to_string())
    });
    match loaded {
        Ok(number) => {
            tracing::info!(generation = number, why, "routing table reloaded");
            true
        }
        Err(error) => {
            tracing::error!(%error, why, "routing table rejected; the previous one keeps serving");
            false
        }
    }
}

/// Watches `source` until the runtime stops: polls every `interval` and reloads on SIGHUP.
pub async fn watch(runtime: Handle, source: Arc<dyn Source>, interval: Duration) {
    watch_with(runtime, source, interval, Arc::new(|| {})).await;
}

/// [`watch`], calling `reloaded` (off the async workers) after each table it installed.
pub async fn watch_with(
    runtime: Handle,
    source: Arc<dyn Source>,
    interval: Duration,
    reloaded: Arc<dyn Fn() + Send + Sync>,
) {
    let mut seen = fingerprint(&source.watched());
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let hangup = async {
            match &mut hangups {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = tokio::time::sleep(interval) => "a watched file changed",
            _ = hangup => "SIGHUP",
        };
        let now = fingerprint(&source.watched());
        if why == "SIGHUP" || now != seen {
            seen = now;
            let (runtime, source, reloaded) = (runtime.clone(), source.clone(), reloaded.clone());
            // Loading may compile manifests: off the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                if reload_now(&runtime, source.as_ref(), why) {
                    reloaded();
                }
            })
            .await;
        }
    }
}
