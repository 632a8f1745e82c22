//! `cargo xtask bench controller [--routes 1000,10000] [--changes 5]`: how long an object
//! change takes to reach traffic through `aigw controller`. For each size, a fake API server
//! (runtime/testkit/kube) is seeded with that many AIGatewayRoutes, each with its own
//! AIServiceBackend, Backend and BackendSecurityPolicy (and one Secret they share), the
//! release `aigw controller` watches it, and a release `aigw serve --table-url` follows the
//! controller in front of the test upstream. Each change adds a route for a new model: its
//! backend's objects first, then the AIGatewayRoute by one server-side apply; the time runs from
//! just before that apply is sent until the data plane first answers 200 for the model (polled
//! every 2 ms). The controller's own compile time of each
//! change is read from its log.

use crate::process::{Running, free_port};
use aigw_testkit::{FakeKube, http, http_with};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> Result<()> {
    let mut sizes = vec![1000, 10_000];
    let mut changes = 5;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--routes" => {
                sizes = it
                    .next()
                    .context("--routes N[,N...]")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--changes" => changes = it.next().context("--changes N")?.parse()?,
            other => bail!("unknown flag `{other}` (--routes, --changes)"),
        }
    }
    let setup = super::proxy::setup("controller")?;
    println!("## bench controller: an object change → the data plane serving it\n");
    println!(
        "| routes | objects | first table (s) | change → served, median (ms) | min | max | controller compile, median (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for routes in sizes {
        let row = measure(&setup, routes, changes)?;
        println!("{row}");
    }
    Ok(())
}

fn seed(routes: usize, gateway: u16, upstream: u16) -> String {
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: default\nspec:\n  gatewayClassName: aigw\n  listeners:\n    - name: http\n      protocol: HTTP\n      port: {gateway}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: key\n  namespace: default\ndata:\n  apiKey: c2stYmVuY2g=\n"
    );
    for i in 0..routes {
        out.push_str(&route(i, &format!("m-{i}"), upstream));
    }
    out
}

fn route(i: usize, model: &str, upstream: u16) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: r-{i}\n  namespace: default\nspec:\n  parentRefs:\n    - name: gw\n  rules:\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {model}\n      backendRefs:\n        - name: b-{i}\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: b-{i}\n  namespace: default\nspec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: b-{i}\n    kind: Backend\n    group: gateway.envoyproxy.io\n\
---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: b-{i}\n  namespace: default\nspec:\n  endpoints:\n    - ip:\n        address: 127.0.0.1\n        port: {upstream}\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: k-{i}\n  namespace: default\nspec:\n  type: APIKey\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: b-{i}\n  apiKey:\n    secretRef:\n      name: key\n"
    );
    out
}

fn chat(gateway: u16, model: &str) -> u16 {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    http_with(
        gateway,
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        &body,
    )
    .0
}

fn wait(what: &str, secs: u64, mut done: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > Duration::from_secs(secs) {
            bail!("{what}: not within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(started.elapsed())
}

/// The controller's logged compile times, in ms.
fn compile_times(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("compiled the world"))
        .filter_map(|l| {
            l.split("ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Waits until the controller has compiled what it was given: no new compile in its log for
/// twice its last compile time (at least half a second).
fn settle(log: &Path) {
    let mut seen = compile_times(log);
    let mut quiet_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = compile_times(log);
        if now.len() != seen.len() {
            seen = now;
            quiet_since = Instant::now();
        }
        let last = seen.last().copied().unwrap_or(250);
        if quiet_since.elapsed() >= Duration::from_millis((2 * last).max(500)) {
            return;
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(setup: &super::proxy::Setup, routes: usize, changes: usize) -> Result<String> {
    let dir = setup.dir.join(format!("r{routes}"));
    std::fs::create_dir_all(&dir)?;
    let (_upstream, upstream) = Running::upstream(&setup.bin.join("aigw-mock-upstream"), &[])?;
    let gateway = free_port()?;
    let seed_file = dir.join("seed.yaml");
    std::fs::write(&seed_file, seed(routes, gateway, upstream))?;
    let kube = FakeKube::start_seeded("bench controller", &dir, Some(&seed_file))
        .context("the fake API server needs the venv's kubernetes client (.ci/run)")?;
    let table_port = free_port()?;
    let log = dir.join("controller.log");
    let started = Instant::now();
    let _controller = Running::spawn(
        "aigw controller",
        Command::new(setup.bin.join("aigw"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kube.kubeconfig())
            .args([
                "--listen",
                &format!("127.0.0.1:{table_port}"),
                "--identity",
                "bench",
            ])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?),
    )?;
    wait("the first table", 300, || {
        http(table_port, "GET", "/readyz").0 == 200
    })?;
    let first = started.elapsed();
    let _plane = Running::spawn(
        "aigw serve",
        Command::new(setup.bin.join("aigw"))
            .arg("serve")
            .args([
                "--table-url",
                &format!("http://127.0.0.1:{table_port}/v1/table"),
            ])
            .args(["--bind", "127.0.0.1", "--admin-port", "0"])
            .env("AIGW_SECRET_DEFAULT_KEY_APIKEY", "sk-bench")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("plane.log"))?),
    )?;
    wait("the data plane", 120, || chat(gateway, "m-0") == 200)?;
    let before = compile_times(&log).len();
    let mut took = Vec::new();
    for k in 0..changes {
        let i = routes + k;
        let model = format!("new-{i}");
        let object = route(i, &model, upstream);
        let documents: Vec<&str> = object
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .collect();
        // The backend's objects first (untimed), then the route that makes the model served:
        // one server-side apply, timed from just before it is sent.
        let (route_doc, rest) = documents.split_first().context("a route")?;
        for document in rest {
            kube.apply(document).map_err(|e| anyhow::anyhow!(e))?;
        }
        settle(&log);
        let path = format!(
            "/apis/aigateway.envoyproxy.io/v1beta1/namespaces/default/aigatewayroutes/r-{i}?fieldManager=bench&force=true"
        );
        let port: u16 = kube
            .url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("port")?;
        let t0 = Instant::now();
        let (code, answer) = http_with(
            port,
            "PATCH",
            &path,
            &[("Content-Type", "application/apply-patch+yaml")],
            route_doc,
        );
        if code >= 300 {
            bail!("the apply was refused: {code} {answer}");
        }
        wait("the change", 120, || chat(gateway, &model) == 200)?;
        let served = t0.elapsed();
        took.push(served.as_secs_f64() * 1000.0);
    }
    let compiles: Vec<f64> = compile_times(&log)
        .into_iter()
        .skip(before)
        .map(|ms| ms as f64)
        .collect();
    let min = took.iter().copied().fold(f64::INFINITY, f64::min);
    let max = took.iter().copied().fold(0.0, f64::max);
    Ok(format!(
        "| {routes} | {} | {:.1} | {:.0} | {min:.0} | {max:.0} | {:.0} |",
        routes * 4 + 2,
        first.as_secs_f64(),
        median(took),
        median(compiles)
    ))
}
