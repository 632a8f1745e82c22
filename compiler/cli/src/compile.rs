//! `aigw compile`: the checked graph → artifacts, written into a directory or compared with it.
//!
//! Every artifact is a pure function of the graph (and, for `status.yaml`, of the diagnostics),
//! so the same objects give the same bytes whatever the order of files and documents. `--check`
//! compares what would be written with what is there and names every file that differs; it
//! never writes. `topology.svg` comes from the Graphviz on the machine, so it is written when
//! `dot` is found and never compared: its bytes depend on the Graphviz version.

use crate::Checked;
use std::path::Path;

/// One target of `aigw compile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `gateway-api.yaml` and `status.yaml`.
    GatewayApi,
    /// `envoy.yaml`.
    Envoy,
    /// `table.json`.
    Table,
    /// `topology.dot`, `topology.mmd` (and `topology.svg` with Graphviz).
    Topology,
}

impl Target {
    pub const ALL: &[Target] = &[Target::GatewayApi, Target::Envoy, Target::Table, Target::Topology];

    /// The files a target owns.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Target::GatewayApi => &["gateway-api.yaml", "status.yaml"],
            Target::Envoy => &["envoy.yaml"],
            Target::Table => &["table.json"],
            Target::Topology => &["topology.dot", "topology.mmd", "topology.svg"],
        }
    }
}

/// A file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    /// Compared by `--check` (false for machine-dependent renderings).
    pub checked: bool,
}

/// Why artifacts could not be produced or written.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the input has errors; nothing was written")]
    HasErrors,
    #[error("could not serialize {name}: {reason}")]
    Serialize { name: &'static str, reason: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Produces the artifacts of `targets` from a checked input without errors, with the default
/// Envoy options.
pub fn artifacts(checked: &Checked, targets: &[Target]) -> Result<Vec<Artifact>, CompileError> {
    artifacts_with(checked, targets, &aigw_target_envoy::Options::default())
}

/// Produces the artifacts of `targets`; `envoy` says where the Envoy bootstrap finds mounted
/// Secrets and the aigw runtime.
pub fn artifacts_with(checked: &Checked, targets: &[Target], envoy: &aigw_target_envoy::Options) -> Result<Vec<Artifact>, CompileError> {
    let Some(ir) = checked.ir.as_ref().filter(|_| !checked.has_errors()) else {
        return Err(CompileError::HasErrors);
    };
    // Targets are independent functions of the graph: build them on two threads (the Gateway
    // API target, the largest, alone on one), which halves the wall time and, unlike a thread
    // per target, keeps at most two targets' output in memory at once.
    let diagnostics = &checked.diagnostics;
    let (first, rest): (Vec<Target>, Vec<Target>) = targets.iter().partition(|t| **t == Target::GatewayApi);
    let parts: Vec<Result<Vec<Artifact>, CompileError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = [first, rest]
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    // The Envoy target is built from the table: make it once for both.
                    let table = std::cell::OnceCell::new();
                    group.into_iter().map(|t| build(ir, diagnostics, envoy, &table, t)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![Err(CompileError::Serialize { name: "artifacts", reason: "a target failed".into() })]))
            .collect()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part?);
    }
    out.sort_by_key(|a| a.name);
    Ok(out)
}

fn build(
    ir: &aigw_ir::Ir,
    diagnostics: &[aigw_diag::Diagnostic],
    envoy: &aigw_target_envoy::Options,
    table: &std::cell::OnceCell<aigw_table::Table>,
    target: Target,
) -> Result<Vec<Artifact>, CompileError> {
    let table = || table.get_or_init(|| aigw_target_table::table(ir));
    let artifact = |name, bytes: Vec<u8>| Artifact { name, bytes, checked: true };
    let yaml = |name, docs: Box<dyn Iterator<Item = serde_json::Value> + '_>| {
        aigw_target_gateway_api::to_yaml(docs).map(|text| artifact(name, text.into_bytes())).map_err(|e| CompileError::Serialize { name, reason: e.to_string() })
    };
    Ok(match target {
        Target::GatewayApi => vec![
            yaml("gateway-api.yaml", Box::new(aigw_target_gateway_api::resources(ir)))?,
            yaml("status.yaml", Box::new(aigw_target_gateway_api::status(ir, diagnostics)))?,
        ],
        Target::Envoy => {
            let bootstrap = aigw_target_envoy::bootstrap(table(), envoy);
            let yaml = aigw_target_envoy::to_yaml(&bootstrap).map_err(|e| CompileError::Serialize { name: "envoy.yaml", reason: e.to_string() })?;
            vec![artifact("envoy.yaml", yaml.into_bytes())]
        }
        Target::Table => {
            let json = aigw_table::to_json(table()).map_err(|e| CompileError::Serialize { name: "table.json", reason: e.to_string() })?;
            vec![artifact("table.json", json.into_bytes())]
        }
        Target::Topology => {
            let picture = aigw_target_topology::picture(ir);
            let dot = aigw_target_topology::dot(&picture);
            let mut out = vec![artifact("topology.mmd", aigw_target_topology::mermaid(&picture).into_bytes())];
            let shapes: usize = picture.namespaces.values().map(Vec::len).sum();
            if let Some(svg) = (shapes <= SVG_MAX_SHAPES).then(|| render_svg(&dot)).flatten() {
                out.push(Artifact { name: "topology.svg", bytes: svg, checked: false });
            }
            out.push(artifact("topology.dot", dot.into_bytes()));
            out
        }
    })
}

/// Graphviz layout grows much faster than the graph: past this many boxes no SVG is drawn (a
/// picture that large is unreadable anyway; the DOT and Mermaid files are still written).
pub const SVG_MAX_SHAPES: usize = 400;
/// And Graphviz is stopped if it takes longer than this.
const SVG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs Graphviz when it is installed; `None` when it is not, fails or runs too long.
fn render_svg(dot: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let mut stdin = child.stdin.take()?;
    let mut stdout = child.stdout.take()?;
    let text = dot.to_owned();
    // Write and read on other threads so a large graph cannot deadlock on full pipes.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let reader = std::thread::spawn(move || {
        let mut svg = Vec::new();
        stdout.read_to_end(&mut svg).map(|_| svg)
    });
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < SVG_TIMEOUT => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    writer.join().ok()?.ok()?;
    let svg = reader.join().ok()?.ok()?;
    status.success().then_some(svg)
}

/// Writes every artifact into `dir` (created if needed), each through a temporary file and a
/// rename so that a reader never sees half a file.
pub fn write(dir: &Path, artifacts: &[Artifact]) -> Result<(), CompileError> {
    let io = |path: &Path, source| CompileError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for artifact in artifacts {
        let path = dir.join(artifact.name);
        let temporary = dir.join(format!(".{}.tmp", artifact.name));
        std::fs::write(&temporary, &artifact.bytes).map_err(|e| io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// How a file in the output directory differs from what would be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    Missing(&'static str),
    Changed { name: &'static str, first_line: usize },
    /// A file of a selected target that would no longer be written.
    Stale(&'static str),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(name) => write!(f, "{name}: missing"),
            Difference::Changed { name, first_line } => write!(f, "{name}: differs from line {first_line}"),
            Difference::Stale(name) => write!(f, "{name}: would no longer be written"),
        }
    }
}

/// Compares `dir` with `artifacts` (the files of `targets`).
pub fn compare(dir: &Path, targets: &[Target], artifacts: &[Artifact]) -> Vec<Difference> {
    let mut out = Vec::new();
    for artifact in artifacts.iter().filter(|a| a.checked) {
        match std::fs::read(dir.join(artifact.name)) {
            Ok(bytes) if bytes == artifact.bytes => {}
            Ok(bytes) => out.push(Difference::Changed { name: artifact.name, first_line: first_difference(&bytes, &artifact.bytes) }),
            Err(_) => out.push(Difference::Missing(artifact.name)),
        }
    }
    for name in targets.iter().flat_map(|t| t.files()) {
        let owned = artifacts.iter().any(|a| a.name == *name);
        if !owned && *name != "topology.svg" && dir.join(name).exists() {
            out.push(Difference::Stale(name));
        }
    }
    out
}

/// 1-based line of the first byte where `a` and `b` differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    1 + a[..at].iter().filter(|&&c| c == b'\n').count()
}
