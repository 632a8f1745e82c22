//! `cargo xtask bench extproc`: aigw as Envoy's external processor, beside aigw standalone and
//! Envoy as a plain proxy, in one run against the same test upstream and the same load.
//!
//! Three paths to the release `aigw-mock-upstream`:
//! - Envoy as a plain HTTP proxy (the floor a proxy costs);
//! - `aigw-proxy` standalone, governance off (the same table as the next path);
//! - Envoy on the compiled `envoy.yaml` of those manifests, with `aigw-proxy extproc` as its
//!   processor: two gRPC streams per request (router level, upstream), the body buffered,
//!   parsed and replaced, the key injected, the answer's usage read into dynamic metadata and
//!   the compiled JSON access log written (to /dev/null).
//!
//! CPU per request is utime+stime from `/proc/<pid>/stat` over the measured run divided by the
//! requests; for the third path it is Envoy's and aigw's summed. The added latency is the
//! third path's p50 less the plain Envoy's, at one connection.

use super::proxy::{
    CHAT, Load, Profile, Route, Setup, aigw_manifests, clock_ticks_per_second, cpu_ticks, lua,
    parse_wrk, sanity, setup, start_aigw, start_envoy, wrk,
};
use crate::process::{Running, free_port};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};

struct Options {
    duration: u64,
    runs: usize,
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let Setup {
        envoy: envoy_bin,
        bin,
        dir,
    } = setup("extproc")?;
    let mock = bin.join("aigw-mock-upstream");
    let (_fast, fast) = Running::upstream(&mock, &["--name", "fast"])?;
    let (_paced, paced) = Running::upstream(&mock, &["--name", "paced", "--interval-ms", "20"])?;

    let plain_port = free_port()?;
    let mut plain = start_envoy(&envoy_bin, &dir, plain_port, fast, paced)?;
    plain.wait_for(plain_port)?;
    let (alone, alone_port, _) = start_aigw(&bin, &dir, [fast, paced], Profile::Plain, &[])?;
    let front_port = free_port()?;
    let (mut processor, processor_port) = start_processor(&bin, &dir, front_port, fast, paced)?;
    processor.wait_for(processor_port)?;
    let mut front = Running::spawn(
        "Envoy (with aigw extproc)",
        Command::new(&envoy_bin)
            .arg("-c")
            .arg(dir.join("compiled-extproc/envoy.yaml"))
            .args([
                "--concurrency",
                "2",
                "--log-level",
                "error",
                "--disable-hot-restart",
            ])
            .stdout(Stdio::null()),
    )?;
    front.wait_for(front_port)?;

    let paths = [
        (
            Route {
                name: "Envoy (plain proxy)",
                port: plain_port,
                pid: plain.pid(),
                body: CHAT,
            },
            None,
        ),
        (
            Route {
                name: "aigw-proxy standalone",
                port: alone_port,
                pid: alone.pid(),
                body: CHAT,
            },
            None,
        ),
        (
            Route {
                name: "Envoy + aigw extproc",
                port: front_port,
                pid: front.pid(),
                body: CHAT,
            },
            Some(processor.pid()),
        ),
    ];
    for (path, _) in &paths {
        sanity(path)?;
    }
    let script = dir.join("chat.lua");
    std::fs::write(&script, lua(CHAT))?;
    println!(
        "\n## Envoy with aigw as its external processor ({} runs of {} s per path and load, each after a 2 s warm-up, the paths taking turns; the run of median CPU shown)\n",
        options.runs, options.duration
    );
    println!(
        "| path | connections | requests/s | p50 | p99 | CPU µs/request: median (Envoy + aigw) | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut medians = Vec::new();
    for connections in [1, 32] {
        let mut loads: Vec<Vec<(Load, f64, f64)>> = paths.iter().map(|_| Vec::new()).collect();
        for _ in 0..options.runs.max(1) {
            for ((path, second), loads) in paths.iter().zip(&mut loads) {
                loads.push(measure(
                    path,
                    *second,
                    connections,
                    options.duration,
                    &script,
                )?);
            }
        }
        for ((path, second), mut loads) in paths.iter().zip(loads) {
            loads.sort_by(|a, b| a.0.cpu_us_per_request.total_cmp(&b.0.cpu_us_per_request));
            let errors: u64 = loads.iter().map(|l| l.0.errors).sum();
            let (load, first, other) = &loads[loads.len() / 2];
            let split = match second {
                Some(_) => format!(" ({first:.1} + {other:.1})"),
                None => String::new(),
            };
            println!(
                "| {} | {connections} | {:.0} | {} | {} | **{:.1}**{split} | {errors} |",
                path.name, load.per_second, load.p50, load.p99, load.cpu_us_per_request
            );
            medians.push((
                path.name,
                connections,
                load.cpu_us_per_request,
                super::proxy::wrk_micros(&load.p50).ok(),
            ));
        }
    }
    let find = |name: &str, c: u32| medians.iter().find(|m| m.0 == name && m.1 == c);
    for c in [1, 32] {
        if let (Some(front), Some(alone)) = (
            find("Envoy + aigw extproc", c),
            find("aigw-proxy standalone", c),
        ) {
            println!(
                "\nAt {c} connection(s): Envoy + aigw extproc costs {:.2}× aigw standalone in CPU (goal: at most 2×).",
                front.2 / alone.2
            );
        }
    }
    if let (Some(front), Some(plain)) = (
        find("Envoy + aigw extproc", 1),
        find("Envoy (plain proxy)", 1),
    ) && let (Some(a), Some(b)) = (front.3, plain.3)
    {
        println!(
            "At 1 connection: the external processor adds {:.0} µs to plain Envoy's p50 (goal: under 150 µs).",
            a - b
        );
    }
    Ok(())
}

/// Compiles the bench manifests for Envoy in front on `front_port` and starts
/// `aigw-proxy extproc` on the processor's port, which it returns.
fn start_processor(
    bin: &Path,
    dir: &Path,
    front_port: u16,
    fast: u16,
    paced: u16,
) -> Result<(Running, u16)> {
    let manifests = dir.join("bench-extproc.yaml");
    std::fs::write(
        &manifests,
        aigw_manifests(front_port, fast, paced, Profile::Plain),
    )?;
    let port = free_port()?;
    let out = dir.join("compiled-extproc");
    let secrets = dir.join("secrets");
    let compiled = Command::new(bin.join("aigw"))
        .arg("compile")
        .arg(&manifests)
        .arg("--out")
        .arg(&out)
        .arg("--secrets-dir")
        .arg(&secrets)
        .arg("--extproc")
        .arg(format!("127.0.0.1:{port}"))
        .output()?;
    if !compiled.status.success() {
        bail!(
            "aigw compile failed:\n{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
    }
    let admin = free_port()?.to_string();
    let running = Running::spawn(
        "aigw-proxy extproc",
        Command::new(bin.join("aigw-proxy"))
            .arg("extproc")
            .arg("--table")
            .arg(out.join("table.json"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--admin-port", &admin])
            .env("RUST_LOG", "warn"),
    )?;
    Ok((running, port))
}

/// One measured run: wrk's figures with the CPU of `path`'s process and of `second` summed,
/// and each part.
fn measure(
    path: &Route,
    second: Option<u32>,
    connections: u32,
    duration: u64,
    script: &Path,
) -> Result<(Load, f64, f64)> {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", path.port);
    wrk(&url, connections, 2, script)?;
    let ticks = |pid: Option<u32>| pid.map_or(Ok(0), cpu_ticks);
    let before = (cpu_ticks(path.pid)?, ticks(second)?);
    let output = wrk(&url, connections, duration, script)?;
    let after = (cpu_ticks(path.pid)?, ticks(second)?);
    let mut load = parse_wrk(&output).with_context(|| format!("wrk said:\n{output}"))?;
    if load.requests == 0 {
        bail!("{} served no request", path.name);
    }
    let per_request = 1_000_000.0 / clock_ticks_per_second()? / load.requests as f64;
    let first = (after.0 - before.0) as f64 * per_request;
    let other = (after.1 - before.1) as f64 * per_request;
    load.cpu_us_per_request = first + other;
    Ok((load, first, other))
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        duration: 10,
        runs: 3,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => options.duration = value()?.parse().context("--duration")?,
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            other => bail!("unknown option `{other}` (--duration S, --runs N)"),
        }
    }
    Ok(options)
}
