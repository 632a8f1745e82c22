//! The `aigw` binary: argument parsing, rendering and exit codes. Exit 0 when there is no error
//! (warnings allowed), 1 when the input has errors, 2 on usage or I/O failure.

use aigw_compiler::compile::{self, Target};
use aigw_compiler::{CheckOptions, Checked, check, inputs};
use aigw_diag::{RenderOptions, Severity, render_json, render_text};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, as in `aigw-proxy`: `aigw run` and `aigw serve` are the same data plane.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aigw",
    version,
    about = "An AI gateway built as a compiler of Envoy AI Gateway manifests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests: syntax, admission rules and the whole resource graph.
    Check {
        /// Files, directories (recursively, *.yaml and *.yml) or `-` for stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Treat unresolved references as warnings (objects defined elsewhere).
        #[arg(long)]
        open: bool,
        /// Check each object alone, as an API server's admission does.
        #[arg(long)]
        admission_only: bool,
    },
    /// Check manifests, then write the artifacts (Gateway API resources, status, the routing
    /// table, the topology) into a directory, or with `--check` verify that it is up to date.
    Compile {
        /// Files, directories (recursively, *.yaml and *.yml) or `-` for stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The output directory.
        #[arg(long)]
        out: PathBuf,
        /// Targets to produce (all by default).
        #[arg(long, value_enum, value_delimiter = ',')]
        target: Vec<TargetArg>,
        /// Write nothing; exit 1 when the directory differs from what would be written.
        #[arg(long)]
        check: bool,
        /// Treat unresolved references as warnings (objects defined elsewhere).
        #[arg(long)]
        open: bool,
        /// Format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Where Envoy finds mounted Secrets (`<dir>/<namespace>/<name>/<key>`), for envoy.yaml.
        #[arg(long, default_value = "/etc/aigw/secrets")]
        secrets_dir: String,
        /// Where Envoy finds aigw's external processor (`aigw extproc --listen`), for
        /// envoy.yaml: `host:port` or `unix:PATH`.
        #[arg(long, value_name = "ADDRESS", default_value = aigw_proxy::extproc::DEFAULT_LISTEN)]
        extproc: aigw_proxy::extproc::Listen,
    },
    /// Check and compile manifests in process and serve them, recompiling when they change.
    /// With no paths, the configuration comes from the environment (OPENAI_API_KEY,
    /// OPENAI_BASE_URL, AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT, ANTHROPIC_API_KEY).
    Run {
        /// Files or directories (recursively, *.yaml and *.yml).
        paths: Vec<PathBuf>,
        /// Mounted Secrets (`<dir>/<namespace>/<name>/<key>`), besides the Secrets given with
        /// the manifests and `AIGW_SECRET_<NAMESPACE>_<NAME>_<KEY>` in the environment.
        #[arg(long)]
        secrets_dir: Option<PathBuf>,
        /// Treat unresolved references as warnings (objects defined elsewhere).
        #[arg(long)]
        open: bool,
        /// Put a real Envoy in front, on the compiled `envoy.yaml`, with this process as its
        /// external processor; a change of routes or backends hot-restarts Envoy.
        #[arg(long)]
        envoy: bool,
        /// The Envoy binary for `--envoy` (default: `AIGW_ENVOY`, else `envoy` on PATH).
        #[arg(long, value_name = "PATH", requires = "envoy")]
        envoy_bin: Option<PathBuf>,
        #[command(flatten)]
        listen: aigw_proxy::serve::ListenArgs,
    },
    /// Serve a compiled routing table (`table.json`); reload it when it changes or on SIGHUP.
    Serve(aigw_proxy::serve::ServeArgs),
    /// Serve a compiled routing table as Envoy's external processor (gRPC ext_proc), for the
    /// compiled `envoy.yaml`; reload it as `serve` does.
    Extproc(aigw_proxy::serve::ExtprocArgs),
    /// Watch a cluster's AI Gateway objects, compile them on every change, write their status
    /// conditions (as leader) and serve the table to data planes (`serve --table-url`).
    Controller(aigw_compiler::controller::ControllerArgs),
    /// Print the CustomResourceDefinitions aigw reads: aigw's own policy kinds (`aigw.dev`) and,
    /// unless `--own`, the reference's AI Gateway kinds as aigw's model reads them.
    Crds {
        /// Only aigw's own kinds (for clusters that have the reference's CRDs installed).
        #[arg(long)]
        own: bool,
    },
    /// Install manifests for Kubernetes.
    #[command(subcommand)]
    Deploy(DeployCommand),
}

#[derive(Subcommand)]
enum DeployCommand {
    /// Render the install manifests (namespace, service accounts, RBAC, the controller and
    /// data-plane Deployments and Services, PodDisruptionBudgets) to stdout.
    Render {
        /// A values file merged over the defaults (`aigw deploy values` prints them).
        #[arg(long, value_name = "FILE")]
        values: Option<PathBuf>,
    },
    /// Print the default values, each with its comment.
    Values,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    GatewayApi,
    Envoy,
    Table,
    Topology,
}

impl From<TargetArg> for Target {
    fn from(target: TargetArg) -> Self {
        match target {
            TargetArg::GatewayApi => Target::GatewayApi,
            TargetArg::Envoy => Target::Envoy,
            TargetArg::Table => Target::Table,
            TargetArg::Topology => Target::Topology,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            paths,
            secrets_dir,
            open,
            envoy,
            envoy_bin,
            listen,
        } => {
            let envoy = envoy.then(|| aigw_compiler::front::envoy_binary(envoy_bin));
            serving(run_manifests(paths, secrets_dir, open, listen, envoy))
        }
        Command::Serve(args) => {
            aigw_proxy::serve::init_logging();
            serving(aigw_proxy::serve::serve(args))
        }
        Command::Extproc(args) => {
            aigw_proxy::serve::init_logging();
            serving(aigw_proxy::serve::extproc(args))
        }
        Command::Crds { own } => print_crds(own),
        Command::Deploy(DeployCommand::Values) => {
            print_out(aigw_target_deploy::DEFAULT_VALUES.as_bytes())
        }
        Command::Deploy(DeployCommand::Render { values }) => render_deploy(values.as_deref()),
        Command::Controller(args) => {
            aigw_proxy::serve::init_logging();
            serving(aigw_compiler::controller::controller(args))
        }
        Command::Check {
            paths,
            format,
            open,
            admission_only,
        } => run_check(
            &paths,
            format,
            CheckOptions {
                open,
                admission_only,
            },
        ),
        Command::Compile {
            paths,
            out,
            target,
            check,
            open,
            format,
            secrets_dir,
            extproc,
        } => {
            let mut targets: Vec<Target> = target.into_iter().map(Target::from).collect();
            if targets.is_empty() {
                targets = Target::ALL.to_vec();
            }
            targets.sort();
            targets.dedup();
            let envoy = aigw_target_envoy::Options {
                secrets_dir,
                ..aigw_compiler::run::extproc_options(&extproc)
            };
            run_compile(&paths, &out, &targets, &envoy, check, open, format)
        }
    }
}

fn run_compile(
    paths: &[PathBuf],
    out: &std::path::Path,
    targets: &[Target],
    envoy: &aigw_target_envoy::Options,
    verify: bool,
    open: bool,
    format: Format,
) -> ExitCode {
    let sources = match read(paths) {
        Ok(sources) => sources,
        Err(code) => return code,
    };
    let mut checked = check(
        sources,
        CheckOptions {
            open,
            admission_only: false,
        },
    );
    checked.require_objects();
    if report(&checked, format).is_err() {
        return ExitCode::from(2);
    }
    let plan = compile::Plan::new(targets, envoy);
    let code = if verify {
        match compile::compare(&checked, &plan, out) {
            Ok(differences) if differences.is_empty() => {
                eprintln!("compile check ok: {} is up to date", out.display());
                ExitCode::SUCCESS
            }
            Ok(differences) => {
                eprintln!(
                    "compile check failed: {} is out of date ({} file(s)):",
                    out.display(),
                    differences.len()
                );
                for difference in &differences {
                    eprintln!("  {difference}");
                }
                eprintln!("run `aigw compile` without --check to update it");
                ExitCode::from(1)
            }
            Err(error) => compile_failed(&error),
        }
    } else {
        match compile::write(&checked, &plan, out) {
            Ok(names) => {
                eprintln!("compiled into {}: {}", out.display(), names.join(", "));
                ExitCode::SUCCESS
            }
            Err(error) => compile_failed(&error),
        }
    };
    std::mem::forget(checked);
    code
}

fn serving(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run_manifests(
    paths: Vec<PathBuf>,
    secrets_dir: Option<PathBuf>,
    open: bool,
    listen: aigw_proxy::serve::ListenArgs,
    envoy: Option<PathBuf>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    aigw_proxy::serve::init_logging();
    let (text, inline) = if paths.is_empty() {
        let (text, inline) = aigw_compiler::run::environment(|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!(e))?;
        eprintln!(
            "serving the configuration built from the environment on port {}",
            aigw_compiler::run::ENVIRONMENT_PORT
        );
        (Some(text), inline)
    } else {
        (None, Vec::new())
    };
    let source = aigw_compiler::run::Manifests {
        paths,
        text,
        secrets_dir,
        options: CheckOptions {
            open,
            admission_only: false,
        },
        inline,
    };
    let interval = std::time::Duration::from_millis(listen.watch_interval_ms);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let source = std::sync::Arc::new(source);
    match envoy {
        None => tokio.block_on(aigw_proxy::serve::run(listen.config(), source, interval)),
        Some(binary) => tokio.block_on(async move {
            let front =
                aigw_compiler::front::Front::start(listen.config(), source, interval, binary, None)
                    .await?;
            aigw_proxy::serve::stopped().await?;
            tracing::info!("shutting down: stopping Envoy, draining in-flight requests");
            front.shutdown().await;
            Ok(())
        }),
    }
}

/// Exit 1 for an input with errors (already reported), 2 for a failure to produce or write.
fn compile_failed(error: &compile::CompileError) -> ExitCode {
    if matches!(error, compile::CompileError::HasErrors) {
        return ExitCode::from(1);
    }
    eprintln!("error: {error}");
    ExitCode::from(2)
}

/// Reads the inputs; on failure says why and gives exit code 2.
fn read(paths: &[PathBuf]) -> Result<aigw_diag::SourceMap, ExitCode> {
    inputs::read_inputs(paths).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })
}

/// Writes the diagnostics: text to stderr, JSON lines to stdout.
fn report(checked: &Checked, format: Format) -> std::io::Result<()> {
    match format {
        Format::Text => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut text = render_text(
                &checked.diagnostics,
                &checked.sources,
                RenderOptions { color },
            );
            text.push_str(&summary(checked));
            std::io::stderr().write_all(text.as_bytes())
        }
        Format::Json => std::io::stdout()
            .write_all(render_json(&checked.diagnostics, &checked.sources).as_bytes()),
    }
}

fn run_check(paths: &[PathBuf], format: Format, options: CheckOptions) -> ExitCode {
    let sources = match read(paths) {
        Ok(sources) => sources,
        Err(code) => return code,
    };
    let checked = check(sources, options);
    let written = report(&checked, format);
    let code = if written.is_err() {
        ExitCode::from(2)
    } else if checked.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: let the OS take the graph back in one piece instead of freeing
    // every node of it (a tenth of the run for large inputs).
    std::mem::forget(checked);
    code
}

fn summary(checked: &aigw_compiler::Checked) -> String {
    let errors = checked.count(Severity::Error);
    let warnings = checked.count(Severity::Warning);
    let files = checked.sources.files().count();
    let verdict = if errors == 0 { "ok" } else { "failed" };
    format!("check {verdict}: {errors} error(s), {warnings} warning(s) in {files} file(s)\n")
}

/// Writes `bytes` to stdout: 0, or 2 when stdout fails.
fn print_out(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: writing to stdout: {error}");
            ExitCode::from(2)
        }
    }
}

fn print_crds(own: bool) -> ExitCode {
    let mut documents: Vec<serde_json::Value> = Vec::new();
    if !own {
        documents.extend(
            aigw_target_gateway_api::crds::reference_crds()
                .into_iter()
                .map(|(_, d)| d),
        );
    }
    documents.extend(
        aigw_target_gateway_api::crds::crds()
            .into_iter()
            .map(|(_, d)| d),
    );
    match aigw_target_gateway_api::to_yaml(documents) {
        Ok(text) => print_out(text.as_bytes()),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// `aigw deploy render`: 1 when the values are wrong, 2 when the file cannot be read.
fn render_deploy(values: Option<&std::path::Path>) -> ExitCode {
    let text = match values.map(std::fs::read_to_string).transpose() {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "error: {}: {error}",
                values.map(|p| p.display().to_string()).unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    let name = values.map(|p| p.display().to_string()).unwrap_or_default();
    let rendered = aigw_target_deploy::values(text.as_deref().map(|t| (name.as_str(), t)))
        .and_then(|values| aigw_target_deploy::render(&values));
    match rendered {
        Ok(manifests) => print_out(manifests.as_bytes()),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}
