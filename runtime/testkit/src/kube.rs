//! A fake Kubernetes API server for controller tests: `kube/fake_apiserver.py` (list, watch,
//! get, server-side apply, status subresources, Leases, Events, over the real wire protocol)
//! run on loopback by the venv's Python, with a kubeconfig pointing at it, and `kube/kubectl.py`
//! (the official `kubernetes` client) as the tests' own client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running fake API server; stopped when dropped.
pub struct FakeKube {
    child: Child,
    python: PathBuf,
    port: u16,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kube")
}

impl FakeKube {
    /// Starts the server for `test` (None, with a SKIP line, where the venv lacks the
    /// `kubernetes` client; a failure under CI). `dir` holds its port file and the kubeconfig.
    pub fn start(test: &str, dir: &Path) -> Option<FakeKube> {
        FakeKube::start_seeded(test, dir, None)
    }

    /// [`FakeKube::start`], with the objects of the YAML file `seed` created before it serves.
    pub fn start_seeded(test: &str, dir: &Path, seed: Option<&Path>) -> Option<FakeKube> {
        let python = crate::python(test, &["kubernetes", "yaml"])?;
        let port_file = dir.join("fake-kube.port");
        let log = std::fs::File::create(dir.join("fake-kube.log")).ok()?;
        let child = Command::new(&python)
            .arg(scripts().join("fake_apiserver.py"))
            .args(["--port", "0", "--bookmark-interval", "0.5", "--port-file"])
            .arg(&port_file)
            .args(
                seed.map(|s| vec!["--seed".as_ref(), s.as_os_str()])
                    .unwrap_or_default(),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .ok()?;
        let started = Instant::now();
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the fake API server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let kubeconfig = dir.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: aigw-system\nusers:\n- name: fake\n  user:\n    token: fake-token\n"
        );
        std::fs::write(&kubeconfig, config).ok()?;
        Some(FakeKube {
            child,
            python,
            port,
            kubeconfig,
            dir: dir.to_path_buf(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fake-kube.log")).unwrap_or_default()
    }

    /// Runs `kubectl.py` with `args`; its stdout, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.python)
            .arg(scripts().join("kubectl.py"))
            .args(["--server", &self.url()])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Server-side applies the YAML `documents` as `kubectl apply --server-side` would.
    pub fn apply(&self, documents: &str) -> Result<String, String> {
        let file = self.dir.join(format!("apply-{}.yaml", fastish_id()));
        std::fs::write(&file, documents).map_err(|e| e.to_string())?;
        self.kubectl(&["apply", &file.display().to_string()])
    }

    /// One object, as JSON.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> serde_json::Value {
        self.kubectl(&["get", api_version, kind, namespace, name])
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Every write the server has received (`/fake/requests`).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let (_, body) = http(self.port, "GET", "/fake/requests");
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// A test hook: `compact`, `close-watches`, `requests/clear`.
    pub fn hook(&self, name: &str) {
        let (status, body) = http(self.port, "POST", &format!("/fake/{name}"));
        assert_eq!(status, 200, "/fake/{name}: {body}");
    }
}

fn fastish_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 request on loopback with no body; (status, body). Status 0 when the
/// connection fails.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    http_with(port, method, path, &[], "")
}

/// [`http`] with request headers and a body.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(head, body)| {
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                dechunk(body)
            } else {
                body.to_owned()
            }
        })
        .unwrap_or_default();
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
