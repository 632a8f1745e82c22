//! `cargo xtask`: project tasks that are not tests. `demo` runs the gateway in front of the
//! test upstream and sends requests through it; `conformance` runs the reference corpus in
//! place and prints the figures; `compile` compiles the repository's valid cases into committed
//! outputs (or `--check`s them); `docs` regenerates the CLI reference of the book and builds it;
//! `fuzz` runs the property-based fuzz targets long; `soak` runs the data plane under mixed load with reloads and checks memory, descriptors and the drain; `bench` runs the benchmarks.

#![expect(
    clippy::print_stdout,
    reason = "xtask reports to the terminal that ran it"
)]

mod bench;
mod compile;
mod demo;
mod fuzz;
mod process;
mod soak;

use anyhow::{Context, Result, bail};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance(),
        Some("bench") => bench::run(&args[1..]),
        Some("compile") => compile::run(&args[1..]),
        Some("demo") => demo::run(),
        Some("docs") => docs(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo | conformance | compile [--check] | docs | fuzz [--cases N] | soak [--duration S] [--connections N] | bench [compile|proxy|extproc|controller|mcp] [...]>"
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

/// `cargo xtask docs`: rewrites the generated chapter of the book (the CLI reference, from the
/// binary's help) through the test that checks it, then builds the book when `mdbook` is in the
/// venv (`.ci/run` installs it).
fn docs() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = process::cargo()
        .args(["test", "-p", "aigw-compiler", "--test", "it", "docs::"])
        .env("UPDATE_DOCS", "1")
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("the docs tests failed");
    }
    let mdbook = root.join(".venv/bin/mdbook");
    if mdbook.exists() {
        let out = process::target_dir(&root).join("book");
        let status = std::process::Command::new(mdbook)
            .args(["build", "docs", "-d"])
            .arg(&out)
            .current_dir(&root)
            .status()?;
        if !status.success() {
            bail!("mdbook build failed");
        }
        println!("the book is in {}", out.display());
    }
    Ok(())
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
