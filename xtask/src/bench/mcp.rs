//! `cargo xtask bench mcp`: the latency an MCP `tools/call` gains through aigw's MCP gateway.
//!
//! One server, the test upstream's minimal MCP endpoint (`aigw-mock-upstream`, `/mcp`, JSON
//! answers that cost next to nothing), reached two ways under the same load: directly, and
//! through a lean `aigw-proxy` serving a compiled MCPRoute (one session opened first with
//! `initialize`; every call then names the tool `fast__echo`, which the gateway splits, checks
//! against the server's tool selector and forwards with the server's API key). Load comes from
//! `wrk` at 1 and 32 connections, keep-alive; the two paths take turns, several runs each.
//!
//! Reported: requests/s, p50 and p99 (wrk's), the added p50 (through minus direct, of the median
//! runs) and aigw's CPU per call.

use super::proxy::{Setup, clock_ticks_per_second, cpu_ticks, parse_wrk, setup, wrk};
use crate::process::{Running, free_port};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DIRECT: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
const THROUGH: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fast__echo","arguments":{"text":"hi"}}}"#;

pub fn run(args: &[String]) -> Result<()> {
    let [duration, runs] = crate::process::numbers(args, ["--duration", "--runs"], [5, 3])?;
    let runs = usize::try_from(runs)?;
    let Setup { bin, dir, .. } = setup("mcp")?;
    let (upstream, upstream_port) =
        Running::upstream(&bin.join("aigw-mock-upstream"), &["--name", "fast"])?;
    let (port, admin) = (free_port()?, free_port()?);
    let mut aigw = start(&bin, &dir, port, admin, upstream_port)?;
    aigw.wait_for(port)?;
    let session = initialize(port)?;

    let direct_script = dir.join("direct.lua");
    std::fs::write(&direct_script, lua(DIRECT, "mock-session"))?;
    let through_script = dir.join("through.lua");
    std::fs::write(&through_script, lua(THROUGH, &session))?;
    for (port, body, session) in [
        (upstream_port, DIRECT, "mock-session"),
        (port, THROUGH, session.as_str()),
    ] {
        let answer = post(port, body, session)?;
        if !answer.contains("\"text\":\"hi\"") {
            bail!("tools/call is not answered on port {port}:\n{answer}");
        }
    }

    println!(
        "\n## MCP tools/call (JSON answers, keep-alive; {runs} runs of {duration} s per path and load, each after a 2 s warm-up, the paths taking turns; the median run shown)\n"
    );
    println!(
        "| path | connections | requests/s | p50 | p99 | added p50 | aigw CPU µs/call | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let ticks = 1_000_000.0 / clock_ticks_per_second()?;
    for connections in [1, 32] {
        let mut direct = Vec::new();
        let mut through = Vec::new();
        for _ in 0..runs.max(1) {
            let url = format!("http://127.0.0.1:{upstream_port}/mcp");
            wrk(&url, connections, 2, &direct_script)?;
            direct.push(parse_wrk(&wrk(
                &url,
                connections,
                duration,
                &direct_script,
            )?)?);
            let url = format!("http://127.0.0.1:{port}/mcp");
            wrk(&url, connections, 2, &through_script)?;
            let before = cpu_ticks(aigw.pid())?;
            let mut load = parse_wrk(&wrk(&url, connections, duration, &through_script)?)?;
            let after = cpu_ticks(aigw.pid())?;
            load.cpu_us_per_request = (after - before) as f64 * ticks / load.requests.max(1) as f64;
            through.push(load);
        }
        let median = |loads: &mut Vec<super::proxy::Load>| {
            loads.sort_by(|a, b| {
                super::proxy::wrk_micros(&a.p50)
                    .unwrap_or(0.0)
                    .total_cmp(&super::proxy::wrk_micros(&b.p50).unwrap_or(0.0))
            });
            let middle = loads.len() / 2;
            loads.swap_remove(middle)
        };
        let (d, t) = (median(&mut direct), median(&mut through));
        let added = super::proxy::wrk_micros(&t.p50)? - super::proxy::wrk_micros(&d.p50)?;
        println!(
            "| direct to the server | {connections} | {:.0} | {} | {} | | | {} |",
            d.per_second, d.p50, d.p99, d.errors
        );
        println!(
            "| through aigw (MCPRoute) | {connections} | {:.0} | {} | {} | **{:.0} µs** | {:.1} | {} |",
            t.per_second, t.p50, t.p99, added, t.cpu_us_per_request, t.errors
        );
    }
    drop(upstream);
    Ok(())
}

/// Compiles an MCPRoute to the server and starts `aigw-proxy` on its table.
fn start(bin: &Path, dir: &Path, port: u16, admin: u16, upstream: u16) -> Result<Running> {
    let manifests = dir.join("mcp.yaml");
    std::fs::write(&manifests, manifests_text(port, upstream))?;
    let out = dir.join("compiled");
    super::proxy::compile(bin, &manifests, &out)?;
    let secrets = dir.join("secrets");
    let key = secrets.join("default/mcp-key");
    std::fs::create_dir_all(&key)?;
    std::fs::write(key.join("apiKey"), "mcp-bench-key")?;
    Running::spawn(
        "aigw-proxy",
        Command::new(bin.join("aigw-proxy"))
            .arg("--table")
            .arg(out.join("table.json"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .args(["--bind", "127.0.0.1", "--admin-port", &admin.to_string()])
            .env("RUST_LOG", "warn"),
    )
}

fn manifests_text(port: u16, upstream: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench, namespace: default}}
spec:
  gatewayClassName: aigw
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: MCPRoute
metadata: {{name: bench, namespace: default}}
spec:
  parentRefs: [{{name: bench}}]
  backendRefs:
    - name: fast
      kind: Backend
      group: gateway.envoyproxy.io
      path: /mcp
      toolSelector: {{exclude: [secret]}}
      securityPolicy: {{apiKey: {{secretRef: {{name: mcp-key}}}}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: fast, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: {upstream}}}}}]
"#
    )
}

/// `initialize` through the gateway; its session id.
fn initialize(port: u16) -> Result<String> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let answer = post(port, body, "")?;
    let session = answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_owned())
        })
        .with_context(|| format!("initialize gave no session:\n{answer}"))?;
    Ok(session)
}

/// One POST on a fresh connection; the whole answer, head and body.
fn post(port: u16, body: &str, session: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let session = if session.is_empty() {
        String::new()
    } else {
        format!("Mcp-Session-Id: {session}\r\n")
    };
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

fn lua(body: &str, session: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\nwrk.headers[\"Mcp-Session-Id\"] = \"{session}\"\nwrk.headers[\"Mcp-Protocol-Version\"] = \"2025-06-18\"\n"
    )
}
