//! `cargo xtask soak [--duration S] [--connections N] [--workers N]`: the data plane under mixed load for a
//! while (issue #21), with the promises checked at the end:
//! - the load: `wrk` at N connections (256 by default) for S seconds (60), each connection
//!   sending in turn whole chat completions, streams of a paced upstream (3 deltas 300 ms
//!   apart), translations to Anthropic and to Bedrock (SigV4, event stream), and a model no
//!   route serves (an expected 404), through a release `aigw-proxy` with governance on (costs,
//!   a quota, the access log);
//! - a table reload every second during it (SIGHUP);
//! - zero unexpected answers (anything but 200, and 404 for the unknown model) and zero
//!   socket errors;
//! - resident memory flat: at most 10% above what it was after the warm-up (half the
//!   run, at least 5 s);
//! - no leaked descriptors: after the load, no client connection is left, upstream
//!   connections are only those the pool keeps idle (at most one per concurrent request), and
//!   every other descriptor count is back where it was;
//! - SIGTERM during a stream drains it: the stream in flight ends whole, and the process exits.
//!
//! CI runs a short one (`--duration 8 --connections 32`); the figures of a full run are in
//! BENCHMARKS.md.

use crate::bench::proxy::{Profile, Setup, setup, start_aigw, write_request};
use crate::process::{Running, get};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BODIES: [&str; 10] = [
    r#"{"model":"bench","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"Count"}]}"#,
    r#"{"model":"bench-stream","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count"}]}"#,
    r#"{"model":"bench-anthropic","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench-bedrock","messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"bench-bedrock","stream":true,"messages":[{"role":"user","content":"Say hi"}]}"#,
    r#"{"model":"no-such-model","messages":[{"role":"user","content":"Say hi"}]}"#,
];

pub fn run(args: &[String]) -> Result<()> {
    // `--workers`: the data plane's serving threads (`u64::MAX`: its default, one per core).
    let [duration, connections, workers] = crate::process::numbers(
        args,
        ["--duration", "--connections", "--workers"],
        [60, 256, u64::MAX],
    )?;
    let connections = u32::try_from(connections)?;
    let workers = workers.to_string();
    let flags: &[&str] = if workers == u64::MAX.to_string() {
        &[]
    } else {
        &["--workers", &workers]
    };
    let Setup { bin, dir, .. } = setup("soak")?;
    let mock = bin.join("aigw-mock-upstream");
    let (_fast, fast) = Running::upstream(&mock, &["--name", "fast"])?;
    let (_paced, paced) = Running::upstream(&mock, &["--name", "paced", "--interval-ms", "300"])?;
    let (mut aigw, port, admin) = start_aigw(&bin, &dir, [fast, paced], Profile::Governed, flags)?;
    // The admin listener comes up after the Gateway listeners' workers.
    aigw.wait_for(admin)?;
    let pid = aigw.pid();

    let script = dir.join("soak.lua");
    std::fs::write(&script, lua())?;
    let before_fds = descriptors(pid)?;
    let generation_before = generation(admin)?;
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let mut wrk = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{duration}s"),
        ])
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(&script)
        .arg(&url)
        .stdout(Stdio::piped())
        .spawn()
        .context("running wrk")?;

    let started = Instant::now();
    // The allocator's arenas take their size in steps in the first 20–25 s of this load (seen
    // in the timeline, with either serving model), then stay flat: growth is measured over the
    // second half of the run, where a leak would still show as a slope and a step would not.
    let warm_at = Duration::from_secs((duration / 2).max(5));
    let (mut warm, mut peak, mut reloads) = (None, 0u64, 0u32);
    let mut timeline = Vec::new();
    while wrk.try_wait()?.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()?;
        reloads += 1;
        let rss = rss_kib(pid)?;
        if reloads % 5 == 0 {
            timeline.push(format!(
                "{} s {:.1}",
                started.elapsed().as_secs(),
                rss as f64 / 1024.0
            ));
        }
        if started.elapsed() >= warm_at {
            warm.get_or_insert(rss);
            peak = peak.max(rss);
        }
    }
    let mut output = String::new();
    wrk.stdout
        .take()
        .context("wrk output")?
        .read_to_string(&mut output)?;
    let load =
        crate::bench::proxy::parse_wrk(&output).with_context(|| format!("wrk said:\n{output}"))?;
    let counts = statuses(&output)?;
    std::thread::sleep(Duration::from_secs(2));
    let after_fds = descriptors(pid)?;
    let generation_after = generation(admin)?;
    let warm = warm.context("the run was shorter than its warm-up")?;

    println!("\n## Soak: {duration} s at {connections} connections, a reload every second\n");
    println!(
        "| requests | requests/s | p50 | p99 | 200 | 404 (unknown model) | other statuses | socket errors | reloads (generations) | RSS after warm-up → peak | descriptors before → after |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {reloads} ({}) | {:.1} → {:.1} MiB | {before_fds} → {after_fds} |",
        load.requests,
        load.per_second,
        load.p50,
        load.p99,
        counts.ok,
        counts.not_found,
        counts.other,
        counts.socket_errors,
        generation_after - generation_before,
        warm as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    println!("\nRSS (MiB) every 5 s: {}", timeline.join(", "));
    let mut broken = Vec::new();
    if counts.other > 0 || counts.socket_errors > 0 {
        broken.push(format!(
            "{} unexpected statuses and {} socket errors",
            counts.other, counts.socket_errors
        ));
    }
    if counts.ok == 0 || counts.not_found == 0 {
        broken.push("the mix did not run (no 200 or no 404)".to_owned());
    }
    if peak as f64 > warm as f64 * 1.10 {
        broken.push(format!(
            "RSS grew from {warm} KiB to {peak} KiB (more than 10%)"
        ));
    }
    // What is open after the load: no client connection, and upstream connections only as
    // many as the pool keeps idle (at most one per request that was in flight at once).
    let sockets = sockets(pid, port)?;
    println!(
        "\nAfter the load: {} client connections, {} pooled upstream connections, {} other descriptors.",
        sockets.clients,
        sockets.upstream,
        after_fds - sockets.clients - sockets.upstream
    );
    if sockets.clients > 0 {
        broken.push(format!("{} client connections left open", sockets.clients));
    }
    if sockets.upstream > connections as usize {
        broken.push(format!(
            "{} upstream connections for {connections} clients",
            sockets.upstream
        ));
    }
    if after_fds - sockets.clients - sockets.upstream > before_fds + 2 {
        broken.push(format!(
            "descriptors {before_fds} → {after_fds}, not counting sockets"
        ));
    }
    if generation_after < generation_before + u64::from(reloads.saturating_sub(2)) {
        broken.push(format!(
            "{reloads} reloads asked, {} generations loaded",
            generation_after - generation_before
        ));
    }
    match drain(port, pid, &mut aigw) {
        Ok(took) => println!(
            "\nSIGTERM during a stream: the stream ended whole and the process exited in {took:?}."
        ),
        Err(error) => broken.push(format!("drain: {error}")),
    }
    if !broken.is_empty() {
        bail!("the soak broke its promises:\n- {}", broken.join("\n- "));
    }
    Ok(())
}

/// wrk's script: the bodies in turn per connection, and the statuses counted per thread.
fn lua() -> String {
    let bodies: Vec<String> = BODIES.iter().map(|b| format!("'{b}'")).collect();
    format!(
        r#"local bodies = {{{}}}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0; ok = 0; notfound = 0; other = 0 end
function request()
  n = n + 1
  local body = bodies[(n % #bodies) + 1]
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer client-key"}}, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 404 then notfound = notfound + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("ok"); b = b + t:get("notfound"); c = c + t:get("other") end
  local e = summary.errors
  io.write(string.format("soak-statuses ok=%d notfound=%d other=%d socket=%d\n", a, b, c, e.connect + e.read + e.write + e.timeout))
end
"#,
        bodies.join(", ")
    )
}

struct Statuses {
    ok: u64,
    not_found: u64,
    other: u64,
    socket_errors: u64,
}

fn statuses(output: &str) -> Result<Statuses> {
    let line = output
        .lines()
        .find(|l| l.starts_with("soak-statuses"))
        .with_context(|| format!("no status counts in wrk's output:\n{output}"))?;
    let field = |name: &str| -> Result<u64> {
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("{name} in `{line}`"))?;
        Ok(value.parse()?)
    };
    Ok(Statuses {
        ok: field("ok")?,
        not_found: field("notfound")?,
        other: field("other")?,
        socket_errors: field("socket")?,
    })
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn descriptors(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The process's TCP sockets: connections accepted on the listener `port`, and connections
/// to other ports (upstreams), from `/proc/<pid>/fd` and `/proc/<pid>/net/tcp{,6}`.
struct Sockets {
    clients: usize,
    upstream: usize,
}

fn sockets(pid: u32, port: u16) -> Result<Sockets> {
    let mut inodes = std::collections::HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let (mut clients, mut upstream) = (0, 0);
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state), Some(inode)) =
                (fields.get(1), fields.get(2), fields.get(3), fields.get(9))
            else {
                continue;
            };
            // 0A is LISTEN: the listeners themselves.
            if !inodes.contains(*inode) || *state == "0A" {
                continue;
            }
            if port_of(local) == Some(port) {
                clients += 1;
            } else if port_of(remote).is_some_and(|p| p != 0) {
                upstream += 1;
            }
        }
    }
    Ok(Sockets { clients, upstream })
}

fn generation(admin: u16) -> Result<u64> {
    let metrics = get(admin, "/metrics")?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("aigw_table_generation "))
        .context("aigw_table_generation in /metrics")?
        .trim()
        .parse::<f64>()
        .map(|g| g as u64)
        .context("the generation gauge")
}

/// A stream in flight when SIGTERM arrives ends whole; the process then exits.
fn drain(port: u16, pid: u32, aigw: &mut Running) -> Result<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write_request(&mut stream, port, BODIES[4], "Connection: close\r\n")?;
    let mut reader = BufReader::new(stream);
    // Wait for the first event, then ask the process to stop.
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the stream ended before its first event");
        }
    }
    let asked = Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    if !rest.contains("data: [DONE]") {
        bail!("the stream was cut by the shutdown:\n{rest}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while aigw.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("the process did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(asked.elapsed())
}
