//! Child processes for the tasks that run servers (`demo`, `bench proxy`): killed when dropped,
//! so an error never leaves one behind, and waited for until they listen.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started server; `name` is what errors call it.
pub struct Running {
    pub child: Child,
    pub name: &'static str,
}

impl Running {
    pub fn spawn(name: &'static str, command: &mut Command) -> Result<Running> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Running { child, name })
    }

    /// Starts the test upstream and returns it with the port it says it listens on.
    pub fn upstream(binary: &std::path::Path, args: &[&str]) -> Result<(Running, u16)> {
        let mut upstream = Running::spawn(
            "the test upstream",
            Command::new(binary).args(args).stdout(Stdio::piped()),
        )?;
        let mut line = String::new();
        let stdout = upstream.child.stdout.take().context("upstream stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .context("the upstream did not say where it listens")?;
        Ok((upstream, port))
    }

    /// Waits until `port` accepts connections (or the process ends, saying why it could not).
    pub fn wait_for(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before serving", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not listen on port {port} within 30 s", self.name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `cargo` for a nested build, without the variables `cargo run` set for this process
/// (`CARGO_PKG_NAME=xtask`, `CARGO_MANIFEST_DIR`...): build scripts that watch them (ring's does)
/// would see them changed since the last build, and the nested build would compile half the
/// tree again (seen in CI: the demo's release build took 158 s after the same build had run).
pub fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else {
            continue;
        };
        let set_by_cargo_run = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || matches!(key, "CARGO_PRIMARY_PACKAGE" | "OUT_DIR");
        if set_by_cargo_run {
            command.env_remove(key);
        }
    }
    command
}

/// The build's target directory: `CARGO_TARGET_DIR` when set (relative to `root`), else
/// `root/target`, as cargo itself decides.
pub fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// GETs `path` from a local server (an admin listener) over one connection: the body.
pub fn get(port: u16, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// Numeric `--name value` flags: each of `names` takes the value given, else its default in
/// `values`; any other flag is an error that lists them.
pub fn numbers<const N: usize>(
    args: &[String],
    names: [&str; N],
    mut values: [u64; N],
) -> Result<[u64; N]> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        let Some(i) = names.iter().position(|n| n == arg) else {
            bail!("unknown option `{arg}` ({})", names.join(", "));
        };
        values[i] = value
            .parse()
            .with_context(|| format!("{arg} needs a number"))?;
    }
    Ok(values)
}
