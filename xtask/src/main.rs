//! `cargo xtask`: project tasks that are not tests. `demo` runs the gateway in front of the
//! test upstream and sends requests through it; `conformance` runs the reference corpus in
//! place and prints the figures; `compile` compiles the repository's valid cases into committed
//! outputs (or `--check`s them); `bench` generates the compile benchmark inputs and times
//! `aigw check` and `aigw compile` on them.

#![expect(
    clippy::print_stdout,
    reason = "xtask reports to the terminal that ran it"
)]

mod bench;
mod compile;
mod demo;
mod process;

use anyhow::{Context, Result, bail};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance(),
        Some("bench") => bench::run(&args[1..]),
        Some("compile") => compile::run(&args[1..]),
        Some("demo") => demo::run(),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo | conformance | compile [--check] | bench [compile] [--sizes 100,1000,10000]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn conformance() -> Result<()> {
    use aigw_compiler::conformance::{corpus_dir, run_admission, run_examples};
    let Some(dir) = corpus_dir() else {
        eprintln!(
            "SKIP: reference corpus not found (set AIGW_CONFORMANCE_DIR or place ../shared beside the checkout)"
        );
        return Ok(());
    };
    let admission = run_admission(&dir).context("admission corpus")?;
    let examples = run_examples(&dir).context("examples")?;
    for failure in admission.failures.iter().chain(&examples.failures) {
        eprintln!("FAIL {failure}");
    }
    eprintln!(
        "admission verdicts: {}/{} match the reference",
        admission.passed, admission.total
    );
    eprintln!(
        "examples: {}/{} check without errors",
        examples.passed, examples.total
    );
    if !admission.failures.is_empty() || !examples.failures.is_empty() {
        bail!("conformance failed");
    }
    Ok(())
}
