//! The tail-latency section of `cargo xtask bench proxy`: p50, p99 and p99.9 of each path at
//! one connection and at 32 (closed loop: `wrk`, each connection sends its next request when the
//! last is answered) and at a fixed 2,000 requests a second (open loop).
//!
//! The open loop is ours because wrk2 is not packaged here: 32 connections, each a thread with a
//! blocking socket, take request slots from one counter; slot `i` is due at `start + i / rate`,
//! and its latency runs from when it was due, not from when it was sent, so a proxy that stalls
//! is charged for every request that waited behind the stall (the coordinated-omission
//! correction wrk2 makes). The threads sleep until a slot is due, so the load itself costs little
//! CPU; what the generator's own wake-up late adds is in every path's figures alike.

use super::proxy::{Route, clock_ticks_per_second, cpu_ticks, parse_wrk, write_request, wrk};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The open loop's rate and connections.
const RATE: u64 = 2_000;
const RATE_CONNECTIONS: u64 = 32;

/// One measured run of one path under one load.
struct Tail {
    requests: u64,
    errors: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// The open loop's only: wrk reports no finer tail than p99.
    p999: Option<Duration>,
    cpu_us_per_request: f64,
}

#[derive(Clone, Copy)]
enum Load {
    Connections(u32),
    Rate,
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Connections(n) => format!("{n} connection{}", if n == 1 { "" } else { "s" }),
            Load::Rate => format!("{RATE} req/s ({RATE_CONNECTIONS} connections)"),
        }
    }
}

/// Prints the section for `paths`, `runs` runs of `duration` seconds per path and load.
pub(crate) fn section(paths: &[Route], script: &Path, duration: u64, runs: usize) -> Result<()> {
    println!(
        "\n## Tail latency ({runs} runs of {duration} s per path and load, each after a 2 s warm-up, the paths taking turns; the run of median p99 shown, every run's p99 in brackets)\n"
    );
    println!(
        "| path | load | requests/s | p50 | p99: median (all runs) | p99.9 | CPU µs/request | errors (all runs) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for load in [Load::Connections(1), Load::Connections(32), Load::Rate] {
        let mut results: Vec<Vec<Tail>> = paths.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (path, results) in paths.iter().zip(&mut results) {
                results.push(measure(path, load, script, duration)?);
            }
        }
        for (path, mut results) in paths.iter().zip(results) {
            let errors: u64 = results.iter().map(|r| r.errors).sum();
            results.sort_by_key(|r| r.p99);
            let all: Vec<String> = results.iter().map(|r| time(r.p99)).collect();
            let median = &results[results.len() / 2];
            println!(
                "| {} | {} | {:.0} | {} | **{}** ({}) | {} | {:.1} | {errors} |",
                path.name,
                load.label(),
                median.per_second,
                time(median.p50),
                time(median.p99),
                all.join(", "),
                median.p999.map_or_else(|| "—".to_owned(), time),
                median.cpu_us_per_request,
            );
        }
    }
    Ok(())
}

fn measure(path: &Route, load: Load, script: &Path, duration: u64) -> Result<Tail> {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", path.port);
    let warm = |seconds| match load {
        Load::Connections(n) => wrk(&url, n, seconds, script).map(drop),
        Load::Rate => open_loop(path, Duration::from_secs(seconds)).map(drop),
    };
    warm(2)?;
    let before = cpu_ticks(path.pid)?;
    let mut tail = match load {
        Load::Connections(n) => {
            let output = wrk(&url, n, duration, script)?;
            let load = parse_wrk(&output).with_context(|| format!("wrk said:\n{output}"))?;
            Tail {
                requests: load.requests,
                errors: load.errors,
                per_second: load.per_second,
                p50: wrk_time(&load.p50)?,
                p99: wrk_time(&load.p99)?,
                p999: None,
                cpu_us_per_request: 0.0,
            }
        }
        Load::Rate => open_loop(path, Duration::from_secs(duration))?,
    };
    let after = cpu_ticks(path.pid)?;
    let micros_per_tick = 1_000_000.0 / clock_ticks_per_second()?;
    tail.cpu_us_per_request =
        (after - before) as f64 * micros_per_tick / tail.requests.max(1) as f64;
    Ok(tail)
}

/// `RATE` requests a second for `duration` on `RATE_CONNECTIONS` connections.
fn open_loop(path: &Route, duration: Duration) -> Result<Tail> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let slots = RATE * duration.as_secs();
    let threads: Vec<_> = (0..RATE_CONNECTIONS)
        .map(|_| {
            let (next, port, body) = (next.clone(), path.port, path.body);
            std::thread::spawn(move || sender(port, body, &next, start, slots))
        })
        .collect();
    let mut latencies = Vec::with_capacity(usize::try_from(slots).unwrap_or(0));
    let mut errors = 0;
    for thread in threads {
        let (mut own, own_errors) = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        latencies.append(&mut own);
        errors += own_errors;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let at = |p| super::proxy::permille(&latencies, p);
    Ok(Tail {
        requests: latencies.len() as u64,
        errors,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(500),
        p99: at(990),
        p999: Some(at(999)),
        cpu_us_per_request: 0.0,
    })
}

/// One connection's share of the open loop: its latencies and its errors.
fn sender(
    port: u16,
    body: &'static str,
    next: &AtomicU64,
    start: Instant,
    slots: u64,
) -> Result<(Vec<Duration>, u64)> {
    let interval_ns = 1_000_000_000 / RATE;
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut connection = connect(port)?;
    loop {
        let slot = next.fetch_add(1, Ordering::Relaxed);
        if slot >= slots {
            return Ok((latencies, errors));
        }
        let due = start + Duration::from_nanos(slot * interval_ns);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match exchange(&mut connection, port, body) {
            Ok(true) => latencies.push(due.elapsed()),
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                connection = connect(port)?;
            }
        }
    }
}

fn connect(port: u16) -> Result<TcpStream> {
    let connection = TcpStream::connect(("127.0.0.1", port))?;
    connection.set_nodelay(true)?;
    connection.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(connection)
}

/// Sends one request and reads its whole answer; whether it was a 200.
fn exchange(connection: &mut TcpStream, port: u16, body: &str) -> Result<bool> {
    write_request(connection, port, body, "")?;
    let mut received = Vec::with_capacity(2048);
    let mut buffer = [0u8; 8192];
    // Where the head ends, whether it said 200, and the body's length unless it is chunked.
    let mut head: Option<(usize, bool, Option<usize>)> = None;
    loop {
        let n = connection.read(&mut buffer)?;
        if n == 0 {
            bail!("the connection closed");
        }
        received.extend_from_slice(&buffer[..n]);
        if head.is_none() {
            let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&received[..at]).to_ascii_lowercase();
            head = Some((
                at + 4,
                text.starts_with("http/1.1 200"),
                content_length(&text),
            ));
        }
        if let Some((end, ok, length)) = head {
            let whole = match length {
                Some(length) => received.len() >= end + length,
                None => received.ends_with(b"0\r\n\r\n"),
            };
            if whole {
                return Ok(ok);
            }
        }
    }
}

fn content_length(head: &str) -> Option<usize> {
    head.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
}

/// wrk's latency figures (`253.00us`, `2.49ms`) as a duration.
fn wrk_time(text: &str) -> Result<Duration> {
    let micros = super::proxy::wrk_micros(text)?;
    Ok(Duration::from_nanos((micros * 1e3) as u64))
}

fn time(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{} µs", d.as_micros())
    }
}
