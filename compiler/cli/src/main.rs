//! The `aigw` binary: argument parsing, rendering and exit codes. Exit 0 when there is no error
//! (warnings allowed), 1 when the input has errors, 2 on usage or I/O failure.

use aigw_compiler::{check, inputs, CheckOptions};
use aigw_diag::{render_json, render_text, RenderOptions, Severity};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "aigw", version, about = "An AI gateway built as a compiler of Envoy AI Gateway manifests")]
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { paths, format, open, admission_only } => {
            run_check(&paths, format, CheckOptions { open, admission_only })
        }
    }
}

fn run_check(paths: &[PathBuf], format: Format, options: CheckOptions) -> ExitCode {
    let sources = match inputs::read_inputs(paths) {
        Ok(sources) => sources,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let checked = check(sources, options);
    let rendered = match format {
        Format::Text => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let mut text = render_text(&checked.diagnostics, &checked.sources, RenderOptions { color });
            text.push_str(&summary(&checked));
            text
        }
        Format::Json => render_json(&checked.diagnostics, &checked.sources),
    };
    // Text goes to stderr as compilers do; JSON is the command's output, on stdout.
    let written = match format {
        Format::Text => std::io::stderr().write_all(rendered.as_bytes()),
        Format::Json => std::io::stdout().write_all(rendered.as_bytes()),
    };
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
