//! `cargo xtask demo`: the README's first command. Builds `aigw` and the test upstream, starts
//! the upstream and `aigw run` on `testdata/demo/demo.yaml` (both on free loopback ports),
//! sends a chat completion and a streamed one through the gateway, prints them, and stops
//! everything. No network and no keys: the upstream is the repository's own.

use crate::process::{Running, free_port};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = crate::process::cargo()
        .args([
            "build",
            "--release",
            "--bin",
            "aigw",
            "--bin",
            "aigw-mock-upstream",
            // The same selection as every release build of the repository (CI, the benches):
            // another set of packages resolves other features and rebuilds half the tree.
            "--bin",
            "aigw-proxy",
        ])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let bin = crate::process::target_dir(&root).join("release");

    let (upstream, upstream_port) = Running::upstream(
        &bin.join("aigw-mock-upstream"),
        &["--name", "mock-openai", "--interval-ms", "150"],
    )?;
    println!("test upstream (OpenAI-compatible) on 127.0.0.1:{upstream_port}");

    let port = free_port()?;
    let manifest = std::fs::read_to_string(root.join("testdata/demo/demo.yaml"))?
        .replace("port: 65001", &format!("port: {upstream_port}"))
        .replace("port: 1975", &format!("port: {port}"));
    let dir = crate::process::target_dir(&root).join("demo");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("demo.yaml");
    std::fs::write(&path, manifest)?;
    let log = dir.join("access.log");
    let _ = std::fs::remove_file(&log);
    let admin = free_port()?;
    let mut gateway = Running::spawn(
        "aigw run",
        Command::new(bin.join("aigw"))
            .arg("run")
            .arg(&path)
            .args(["--bind", "127.0.0.1", "--admin-port", &admin.to_string()])
            .arg("--access-log")
            .arg(&log)
            .env("RUST_LOG", "warn"),
    )?;
    gateway.wait_for(port)?;
    println!("aigw run {} serving on 127.0.0.1:{port}\n", path.display());

    let chat = r#"{"model":"demo-model","messages":[{"role":"user","content":"Say hello"}]}"#;
    println!("$ curl http://127.0.0.1:{port}/v1/chat/completions -d '{chat}'");
    let (head, body) = post(port, chat, |_| {})?;
    println!("{}", head.lines().next().unwrap_or_default());
    let json: serde_json::Value =
        serde_json::from_slice(&body).context("the chat completion is JSON")?;
    println!("{}\n", serde_json::to_string_pretty(&json)?);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("the chat completion failed");
    }

    let streamed =
        r#"{"model":"demo-model","stream":true,"messages":[{"role":"user","content":"Count"}]}"#;
    println!("$ curl -N http://127.0.0.1:{port}/v1/chat/completions -d '{streamed}'");
    let started = Instant::now();
    let mut pending = Vec::new();
    let (head, _) = post(port, streamed, |bytes| {
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            println!(
                "[{:>4} ms] {}",
                started.elapsed().as_millis(),
                String::from_utf8_lossy(&event).trim_end()
            );
        }
    })?;
    if !head.contains(" 200 ") {
        bail!(
            "the streamed chat completion failed: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    // What the gateway recorded of the two requests: the access log and the GenAI metrics.
    let mut lines = String::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log).unwrap_or_default();
        if lines.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("\n$ cat {}", log.display());
    print!("{lines}");
    if lines.lines().count() < 2 || !lines.contains("\"weighted\"") {
        bail!("the access log has no line with the request costs");
    }
    let metrics = crate::process::get(admin, "/metrics")?;
    println!("\n$ curl http://127.0.0.1:{admin}/metrics | grep gen_ai_client_token_usage_sum");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("gen_ai_client_token_usage_sum"))
    {
        println!("{line}");
    }
    if !metrics.contains("gen_ai_server_request_duration_seconds") {
        bail!("the GenAI metrics are missing");
    }
    println!("\ndone: stopping aigw and the test upstream");
    drop(gateway);
    drop(upstream);
    Ok(())
}

/// POSTs a chat completion as HTTP/1.0 (so the answer is delimited by the connection's end, not
/// chunked), handing body bytes to `each` as they arrive; returns the head and the whole body.
fn post(port: u16, body: &str, mut each: impl FnMut(&[u8])) -> Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAuthorization: Bearer anything\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut received = Vec::new();
    let mut head_end = None;
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        match head_end {
            None => {
                if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    head_end = Some(end + 4);
                    each(&received[end + 4..]);
                }
            }
            Some(_) => each(&buffer[..n]),
        }
    }
    let end = head_end.context("the gateway sent no response head")?;
    Ok((
        String::from_utf8_lossy(&received[..end]).into_owned(),
        received[end..].to_vec(),
    ))
}
