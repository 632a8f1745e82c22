//! `cargo xtask bench compile [--sizes 100,1000,10000]`: generates N routes on one Gateway,
//! each with its own AIServiceBackend, Backend, BackendSecurityPolicy and Secret (the objects a
//! real install of N model routes has, labelled as tools label them), written in block style as
//! people write YAML and in flow style as JSON as generators and `kubectl get -o json` write it;
//! then times `aigw check` and `aigw compile` on them with the release binary, several runs
//! each, and reports wall time and peak memory (from `/usr/bin/time -f %M` when present). The
//! generator is deterministic, so figures are comparable across commits.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How the manifests are written.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Indented block YAML, as people write it.
    Block,
    /// One JSON object per document (valid YAML flow style), as generators write it.
    Flow,
}

impl Style {
    fn name(self) -> &'static str {
        match self {
            Style::Block => "block",
            Style::Flow => "flow (JSON)",
        }
    }
}

/// Writes the benchmark manifests for `routes` routes.
pub fn generate(routes: usize, style: Style) -> String {
    match style {
        Style::Block => block(routes),
        Style::Flow => flow(routes),
    }
}

fn block(routes: usize) -> String {
    let mut out = String::with_capacity(routes * 1600);
    out.push_str(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: bench\n  namespace: default\nspec:\n  gatewayClassName: aigw\n  listeners:\n    - name: http\n      protocol: HTTP\n      port: 80\n",
    );
    for i in 0..routes {
        let labels = "  labels:\n    app.kubernetes.io/part-of: bench\n    app.kubernetes.io/managed-by: generator\n";
        let _ = write!(
            out,
            "---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: route-{i}\n  namespace: default\n{labels}spec:\n  parentRefs:\n    - name: bench\n  rules:\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: model-{i}\n      backendRefs:\n        - name: backend-{i}\n          weight: 1\n      timeouts:\n        request: 60s\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: backend-{i}\n  namespace: default\n{labels}spec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: upstream-{i}\n    kind: Backend\n    group: gateway.envoyproxy.io\n\
---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: upstream-{i}\n  namespace: default\n{labels}spec:\n  endpoints:\n    - fqdn:\n        hostname: upstream-{i}.example.com\n        port: 443\n\
---\napiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: key-{i}\n  namespace: default\n{labels}spec:\n  type: APIKey\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: backend-{i}\n  apiKey:\n    secretRef:\n      name: key-{i}\n\
---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: key-{i}\n  namespace: default\n{labels}type: Opaque\nstringData:\n  apiKey: sk-bench-{i}\n"
        );
    }
    out
}

fn flow(routes: usize) -> String {
    let mut out = String::with_capacity(routes * 1600);
    out.push_str(
        r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "bench", "namespace": "default"}, "spec": {"gatewayClassName": "aigw", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}"#,
    );
    out.push('\n');
    for i in 0..routes {
        let meta = |name: String| {
            format!(
                r#""metadata": {{"name": "{name}", "namespace": "default", "labels": {{"app.kubernetes.io/part-of": "bench", "app.kubernetes.io/managed-by": "generator"}}}}"#
            )
        };
        let _ = writeln!(
            out,
            r#"---
{{"apiVersion": "aigateway.envoyproxy.io/v1beta1", "kind": "AIGatewayRoute", {}, "spec": {{"parentRefs": [{{"name": "bench"}}], "rules": [{{"matches": [{{"headers": [{{"type": "Exact", "name": "x-ai-eg-model", "value": "model-{i}"}}]}}], "backendRefs": [{{"name": "backend-{i}", "weight": 1}}], "timeouts": {{"request": "60s"}}}}]}}}}
---
{{"apiVersion": "aigateway.envoyproxy.io/v1beta1", "kind": "AIServiceBackend", {}, "spec": {{"schema": {{"name": "OpenAI"}}, "backendRef": {{"name": "upstream-{i}", "kind": "Backend", "group": "gateway.envoyproxy.io"}}}}}}
---
{{"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend", {}, "spec": {{"endpoints": [{{"fqdn": {{"hostname": "upstream-{i}.example.com", "port": 443}}}}]}}}}
---
{{"apiVersion": "aigateway.envoyproxy.io/v1beta1", "kind": "BackendSecurityPolicy", {}, "spec": {{"type": "APIKey", "targetRefs": [{{"group": "aigateway.envoyproxy.io", "kind": "AIServiceBackend", "name": "backend-{i}"}}], "apiKey": {{"secretRef": {{"name": "key-{i}"}}}}}}}}
---
{{"apiVersion": "v1", "kind": "Secret", {}, "type": "Opaque", "stringData": {{"apiKey": "sk-bench-{i}"}}}}"#,
            meta(format!("route-{i}")),
            meta(format!("backend-{i}")),
            meta(format!("upstream-{i}")),
            meta(format!("key-{i}")),
            meta(format!("key-{i}")),
        );
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    let mut sizes = vec![100, 1_000, 10_000];
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--sizes" => {
                let list = iter.next().context("--sizes needs a list")?;
                sizes = list
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--sizes")?;
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = crate::process::cargo()
        .args(["build", "--release", "--bin", "aigw", "--bin", "aigw-proxy"])
        .args(["--bin", "aigw-mock-upstream"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let binary = crate::process::target_dir(&root).join("release/aigw");
    let dir = crate::process::target_dir(&root).join("bench");
    std::fs::create_dir_all(&dir)?;
    println!(
        "| routes | style | documents | input | check: wall, CPU | check peak RSS | compile (all targets): wall, CPU | compile peak RSS | table.json |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for routes in sizes {
        for style in [Style::Block, Style::Flow] {
            let tag = match style {
                Style::Block => "block",
                Style::Flow => "flow",
            };
            let file = dir.join(format!("compile-{routes}-{tag}.yaml"));
            let out = dir.join(format!("out-{routes}-{tag}"));
            let text = generate(routes, style);
            std::fs::write(&file, &text)?;
            let check: Vec<String> = vec!["check".into(), file.display().to_string()];
            let compile: Vec<String> = vec![
                "compile".into(),
                file.display().to_string(),
                "--out".into(),
                out.display().to_string(),
            ];
            let (check_wall, check_rss) = measure(&binary, &check)?;
            let (compile_wall, compile_rss) = measure(&binary, &compile)?;
            let table = std::fs::metadata(out.join("table.json"))
                .map(|m| m.len())
                .unwrap_or(0);
            println!(
                "| {routes} | {} | {} | {:.1} MiB | {check_wall} | {check_rss} | {compile_wall} | {compile_rss} | {:.1} MiB |",
                style.name(),
                1 + 5 * routes,
                mib(text.len() as u64),
                mib(table),
            );
        }
    }
    println!(
        "(5 runs each: median wall, fastest wall, median CPU (user + system); the table load benchmark: `cargo bench -p aigw-table --bench load`, after this)"
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Five runs: the median wall time (and the fastest), the median CPU time (user + system) and
/// the peak RSS, formatted. This machine's wall times move by a fifth between runs as its host
/// gets busier, and its system time spikes when memory is faulted in: CPU time says more of the
/// binary. CPU and memory come from GNU time where installed.
fn measure(binary: &Path, args: &[String]) -> Result<(String, String)> {
    let mut runs: Vec<Run> = (0..5).map(|_| time(binary, args)).collect::<Result<_>>()?;
    runs.sort_by_key(|r| r.wall);
    let wall = format!(
        "{:.1} ms (fastest {:.1})",
        ms(runs[2].wall),
        ms(runs[0].wall)
    );
    let mut cpu: Vec<Duration> = runs.iter().filter_map(|r| r.cpu).collect();
    cpu.sort();
    let wall = match cpu.get(cpu.len() / 2) {
        Some(c) if cpu.len() == runs.len() => format!("{wall}, CPU {:.1} ms", ms(*c)),
        _ => wall,
    };
    let rss = runs.iter().filter_map(|r| r.peak_kib).max().map_or_else(
        || "n/a".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    );
    Ok((wall, rss))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    wall: Duration,
    cpu: Option<Duration>,
    peak_kib: Option<u64>,
}

fn time(binary: &Path, args: &[String]) -> Result<Run> {
    let gnu_time = Path::new("/usr/bin/time").exists();
    let mut command = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "aigw-bench %U %S %M"]).arg(binary);
        c
    } else {
        Command::new(binary)
    };
    let start = Instant::now();
    let output = command.args(args).output()?;
    let wall = start.elapsed();
    if !output.status.success() {
        bail!(
            "aigw {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let fields: Vec<&str> = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("aigw-bench "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let seconds = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let cpu = match (seconds(0), seconds(1)) {
        (Some(user), Some(system)) => Some(Duration::from_secs_f64(user + system)),
        _ => None,
    };
    let peak_kib = fields.get(2).and_then(|f| f.parse().ok());
    Ok(Run {
        wall,
        cpu,
        peak_kib,
    })
}
