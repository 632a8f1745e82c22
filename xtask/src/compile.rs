//! `cargo xtask compile [--check]`: the GitOps flow on the repository's own manifests. Every
//! valid case under `testdata/compile` (see `aigw_compiler::testdata`) is compiled into a
//! committed `testdata/compiled/<area>/<case>/` directory; with `--check`, nothing is written and the task fails
//! when any directory is stale, exactly as `aigw compile --check` does.

use aigw_compiler::compile::{Plan, Target, compare, write};
use aigw_compiler::{check, inputs};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub fn run(args: &[String]) -> Result<()> {
    let verify = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask compile [--check]"),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    // Relative paths, so that artifacts do not depend on where the checkout lives.
    std::env::set_current_dir(&root)?;
    let mut stale = 0;
    for case in aigw_compiler::testdata::cases(&root)?
        .into_iter()
        .filter(|c| c.artifacts)
    {
        let area = case.dir.file_name().context("area name")?;
        let out = Path::new("testdata/compiled").join(area).join(&case.name);
        let paths: Vec<PathBuf> = case
            .files
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap_or(p).to_path_buf())
            .collect();
        let sources = inputs::read_inputs(&paths).map_err(|e| anyhow::anyhow!("{e}"))?;
        let checked = check(sources, case.options);
        // topology.svg depends on the machine's Graphviz: never committed.
        let envoy = aigw_target_envoy::Options::default();
        let plan = Plan {
            svg: false,
            ..Plan::new(Target::ALL, &envoy)
        };
        if verify {
            let differences =
                compare(&checked, &plan, &out).with_context(|| format!("{}", out.display()))?;
            for difference in &differences {
                eprintln!("{}: {difference}", out.display());
            }
            stale += differences.len();
        } else {
            write(&checked, &plan, &out).with_context(|| format!("{}", out.display()))?;
            eprintln!("compiled {}", out.display());
        }
    }
    if stale > 0 {
        bail!("{stale} committed artifact(s) are stale: run `cargo xtask compile`");
    }
    if verify {
        eprintln!("compiled artifacts are up to date");
    }
    Ok(())
}
