//! The MCP gateway (issue #20) with the official `mcp` Python SDK on both sides: three servers
//! of `tests/mcp/servers.py` (streamable HTTP) behind the compiled `testdata/compile/valid/mcp.yaml`,
//! and `tests/mcp/client.py` connecting through the runtime: initialize, merged and filtered
//! lists with cursors, calls on each server, a tool error, progress streamed, prompts and
//! resources, credentials per server, list-changed notifications, DELETE, a server killed
//! mid-session, and a route that takes OAuth tokens (401 with its metadata, then a token
//! signed here). This side then reads the metrics and the access log the calls left.
//!
//! The SDK comes from the pinned venv; where it is absent the test says SKIP and passes, except
//! under CI, where it fails.

use crate::cloud::keys;
use crate::harness::compile;
use crate::jwt::{jwk, now, sign};
use aigw_proxy::access_log::Target;
use aigw_proxy::{Config, Runtime};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/compile/valid/mcp.yaml"
);
const SERVERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/servers.py");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");

/// One SDK server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(python: &Path, name: &str) -> Self {
        let mut child = Command::new(python)
            .args([SERVERS, name])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("its stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("it says its port");
        let said: Value = serde_json::from_str(&line).expect("a JSON line");
        let port = said["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("a port");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_through_the_gateway() {
    let Some(python) = aigw_testkit::python("the_sdk_through_the_gateway", &["mcp", "uvicorn"])
    else {
        return;
    };
    let (alpha, beta, gamma) = (
        Server::start(&python, "alpha"),
        Server::start(&python, "beta"),
        Server::start(&python, "gamma"),
    );
    let key = keys();
    let modulus = jwk(&key, "mcp")["n"].as_str().expect("n").to_owned();
    let text = std::fs::read_to_string(CASE)
        .expect("the MCP case")
        .replace("65101", &alpha.port.to_string())
        .replace("65102", &beta.port.to_string())
        .replace("65103", &gamma.port.to_string())
        .replace("MODULUS", &modulus);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mut config = Config::loopback();
    config.access_log = Some(Target::File(log.clone()));
    let (snapshot, secrets) = compile(&text);
    let runtime = Runtime::start(config, snapshot, &secrets)
        .await
        .expect("the runtime starts");
    let base = format!("http://{}", runtime.addr(8080).expect("port 8080"));
    let token = sign(
        &key,
        "mcp",
        &json!({"iss": "https://issuer.aigw.test", "aud": "aigw-mcp", "sub": "mcp-user", "exp": now() + 3600}),
    );
    let other = sign(
        &key,
        "mcp",
        &json!({"iss": "https://issuer.aigw.test", "aud": "aigw-mcp", "sub": "someone-else", "exp": now() + 3600}),
    );
    let (url, gamma_pid) = (format!("{base}/mcp"), gamma.child.id().to_string());
    let secure = format!("{base}/secure");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args([CLIENT, &url, &gamma_pid])
            .env("MCP_TOKEN", token)
            .env("MCP_OTHER_TOKEN", other)
            .env("MCP_SECURE_URL", secure)
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let said = String::from_utf8_lossy(&output.stdout);
    let report = format!("{said}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the SDK checks failed:\n{report}");
    let passed = said.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(passed, 12, "every SDK check ran:\n{report}");

    // Metrics: a series per operation, by server and tool, with the error type.
    let admin = runtime.admin_addr().expect("admin");
    let metrics = crate::governance::reqwest_like_get(&format!("http://{admin}/metrics")).await;
    for series in [
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",mcp_route="default/tools",mcp_backend="alpha",gen_ai_tool_name="echo",error_type=""}"#,
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",mcp_route="default/tools",mcp_backend="alpha",gen_ai_tool_name="fail",error_type="tool_error"}"#,
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/list",mcp_route="default/tools",mcp_backend="",gen_ai_tool_name="",error_type=""}"#,
        r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",mcp_route="default/tools",mcp_backend="gamma",gen_ai_tool_name="g1",error_type="unreachable"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    // The access log: a line per call, with its server, tool, error and duration.
    let calls = log_lines(&log, 10).await;
    let count = calls
        .iter()
        .find(|l| l["tool"] == "count")
        .unwrap_or_else(|| panic!("the count call is logged: {calls:?}"));
    assert_eq!(count["kind"], "mcp");
    assert_eq!(count["backend"], "alpha");
    assert_eq!(count["method"], "tools/call");
    assert_eq!(count["error"], Value::Null);
    assert!(
        count["duration_ms"].as_f64().is_some_and(|ms| ms >= 200.0),
        "{count}"
    );
    assert!(
        calls
            .iter()
            .any(|l| l["tool"] == "fail" && l["error"] == "tool_error"),
        "{calls:?}"
    );
    let text = std::fs::read_to_string(&log).expect("log");
    for secret in ["alpha-key", "beta-key", "client-token-for-the-gateway"] {
        assert!(!text.contains(secret), "no credential in the access log");
    }
    runtime.shutdown().await;
}

/// The MCP lines of the access log once there are at least `n` (bounded wait: the log is
/// written every 50 ms).
async fn log_lines(log: &PathBuf, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["kind"] == "mcp")
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found
}
