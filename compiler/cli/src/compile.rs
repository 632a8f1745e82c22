//! `aigw compile`: the checked graph → artifacts, written into a directory or compared with it.
//!
//! Every artifact is a pure function of the graph (and, for `status.yaml`, of the diagnostics),
//! so the same objects give the same bytes whatever the order of files and documents. `--check`
//! compares what would be written with what is there and names every file that differs; it
//! never writes. `topology.svg` comes from the Graphviz on the machine, so it is written when
//! `dot` is found and never compared: its bytes depend on the Graphviz version.

mod sink;

use crate::Checked;
use std::io::Write;
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
    pub const ALL: &[Target] = &[
        Target::GatewayApi,
        Target::Envoy,
        Target::Table,
        Target::Topology,
    ];

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

/// A file produced in memory (by [`artifacts`]).
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
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What to produce.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub targets: &'a [Target],
    /// Where the Envoy bootstrap finds mounted Secrets and the aigw runtime.
    pub envoy: &'a aigw_target_envoy::Options,
    /// Render `topology.svg` with Graphviz when it is installed (its bytes depend on the
    /// Graphviz version, so committed outputs leave it out).
    pub svg: bool,
}

impl<'a> Plan<'a> {
    pub fn new(targets: &'a [Target], envoy: &'a aigw_target_envoy::Options) -> Self {
        Plan {
            targets,
            envoy,
            svg: true,
        }
    }
}

/// Produces the artifacts of `targets` in memory, with the default Envoy options.
pub fn artifacts(checked: &Checked, targets: &[Target]) -> Result<Vec<Artifact>, CompileError> {
    artifacts_with(checked, targets, &aigw_target_envoy::Options::default())
}

/// Produces the artifacts of `targets` in memory.
pub fn artifacts_with(
    checked: &Checked,
    targets: &[Target],
    envoy: &aigw_target_envoy::Options,
) -> Result<Vec<Artifact>, CompileError> {
    let sink = sink::Memory::default();
    produce(checked, &Plan::new(targets, envoy), &sink)?;
    let mut out = sink.into_artifacts();
    out.sort_by_key(|a| a.name);
    Ok(out)
}

/// Writes the artifacts into `dir` (created if needed) and returns their names, sorted. Each
/// file is streamed into a temporary file as it is produced; only when every artifact is
/// complete are they renamed into place, so a failure leaves `dir` as it was and a reader
/// never sees half a file.
pub fn write(
    checked: &Checked,
    plan: &Plan<'_>,
    dir: &Path,
) -> Result<Vec<&'static str>, CompileError> {
    // Not even the directory is made for an input with errors.
    checked_ir(checked)?;
    let sink = sink::Staging::new(dir)?;
    match produce(checked, plan, &sink) {
        Ok(()) => sink.commit(),
        Err(error) => {
            sink.abandon();
            Err(error)
        }
    }
}

/// Compares `dir` with what [`write`] would put there, streaming each artifact against the
/// file on disk; writes nothing.
pub fn compare(
    checked: &Checked,
    plan: &Plan<'_>,
    dir: &Path,
) -> Result<Vec<Difference>, CompileError> {
    let sink = sink::Comparing::new(dir);
    produce(checked, plan, &sink)?;
    Ok(sink.differences(plan.targets))
}

/// Runs the targets of `plan` into `sink`.
fn produce(checked: &Checked, plan: &Plan<'_>, sink: &dyn Sink) -> Result<(), CompileError> {
    let ir = checked_ir(checked)?;
    // Artifacts are independent functions of the graph: workers take them from one queue,
    // costliest first (by their instructions at 1,000 routes: the Gateway API resources, the
    // Envoy bootstrap, the statuses, the topology, the table), so that the cores finish
    // together.
    // The table feeds both the Envoy and the table target: it is built once, by whichever needs
    // it first.
    let table = std::sync::OnceLock::new();
    let diagnostics = &checked.diagnostics;
    let mut jobs: Vec<Job> = plan
        .targets
        .iter()
        .flat_map(|t| match t {
            Target::GatewayApi => &[Job::GatewayApi, Job::Status][..],
            Target::Envoy => &[Job::Envoy],
            Target::Table => &[Job::Table],
            Target::Topology => &[Job::Topology],
        })
        .copied()
        .collect();
    jobs.sort_unstable();
    jobs.dedup();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (table, jobs, next) = (&table, &jobs, &next);
                scope.spawn(move || {
                    while let Some(&job) =
                        jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        build(ir, diagnostics, plan, table, job, sink)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err(CompileError::Serialize {
                    name: "artifacts",
                    reason: "a target failed".into(),
                })
            })
        })
    })
}

/// One artifact (or a pair made together), in the order of their cost, costliest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    GatewayApi,
    Envoy,
    Status,
    Topology,
    Table,
}

fn checked_ir(checked: &Checked) -> Result<&aigw_ir::Ir, CompileError> {
    checked
        .ir
        .as_ref()
        .filter(|_| !checked.has_errors())
        .ok_or(CompileError::HasErrors)
}

/// Where produced files go: memory, a staging directory, or a comparison with a directory.
pub(crate) trait Sink: Sync {
    /// Produces the file `name` by calling `write` with a writer; `checked` is false for
    /// machine-dependent files that `--check` ignores.
    fn file(
        &self,
        name: &'static str,
        checked: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), String>,
    ) -> Result<(), CompileError>;
}

fn build(
    ir: &aigw_ir::Ir,
    diagnostics: &[aigw_diag::Diagnostic],
    plan: &Plan<'_>,
    table: &std::sync::OnceLock<aigw_table::Table>,
    job: Job,
    sink: &dyn Sink,
) -> Result<(), CompileError> {
    let table = || table.get_or_init(|| aigw_target_table::table(ir));
    let error = |e: &dyn std::fmt::Display| e.to_string();
    match job {
        Job::GatewayApi => sink.file("gateway-api.yaml", true, &mut |w| {
            aigw_target_gateway_api::write_yaml(aigw_target_gateway_api::resources(ir), w)
                .map_err(|e| error(&e))
        }),
        Job::Status => sink.file("status.yaml", true, &mut |w| {
            aigw_target_gateway_api::write_yaml(aigw_target_gateway_api::status(ir, diagnostics), w)
                .map_err(|e| error(&e))
        }),
        Job::Envoy => {
            let bootstrap = aigw_target_envoy::bootstrap(table(), plan.envoy);
            sink.file("envoy.yaml", true, &mut |w| {
                aigw_target_envoy::write_yaml(&bootstrap, w).map_err(|e| error(&e))
            })
        }
        Job::Table => sink.file("table.json", true, &mut |w| {
            aigw_table::write_json(table(), w).map_err(|e| error(&e))
        }),
        Job::Topology => {
            let picture = aigw_target_topology::picture(ir);
            let dot = aigw_target_topology::dot(&picture);
            sink.file("topology.mmd", true, &mut |w| {
                w.write_all(aigw_target_topology::mermaid(&picture).as_bytes())
                    .map_err(|e| error(&e))
            })?;
            let shapes: usize = picture.namespaces.values().map(Vec::len).sum();
            if plan.svg
                && shapes <= SVG_MAX_SHAPES
                && let Some(svg) = render_svg(&dot)
            {
                sink.file("topology.svg", false, &mut |w| {
                    w.write_all(&svg).map_err(|e| error(&e))
                })?;
            }
            sink.file("topology.dot", true, &mut |w| {
                w.write_all(dot.as_bytes()).map_err(|e| error(&e))
            })
        }
    }
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
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
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
            Ok(None) if started.elapsed() < SVG_TIMEOUT => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
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

/// How a file in the output directory differs from what would be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    Missing(&'static str),
    Changed {
        name: &'static str,
        first_line: usize,
    },
    /// A file of a selected target that would no longer be written.
    Stale(&'static str),
}

impl Difference {
    /// The file that differs.
    pub fn name(&self) -> &'static str {
        match self {
            Difference::Missing(name)
            | Difference::Changed { name, .. }
            | Difference::Stale(name) => name,
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(name) => write!(f, "{name}: missing"),
            Difference::Changed { name, first_line } => {
                write!(f, "{name}: differs from line {first_line}")
            }
            Difference::Stale(name) => write!(f, "{name}: would no longer be written"),
        }
    }
}
