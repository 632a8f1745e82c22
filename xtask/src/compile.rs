//! `cargo xtask compile [--check]`: the GitOps flow on the repository's own manifests. Every
//! valid case under `testdata/compile` (every case without `# expect: error`) is compiled into a
//! committed `testdata/compiled/<area>/<case>/` directory; with `--check`, nothing is written and the task fails
//! when any directory is stale, exactly as `aigw compile --check` does.

use aigw_compiler::compile::{artifacts, compare, write, Target};
use aigw_compiler::{check, inputs, CheckOptions};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The valid cases: (output directory, input paths, options).
fn cases(root: &Path) -> Result<Vec<(PathBuf, Vec<PathBuf>, CheckOptions)>> {
    let mut out = Vec::new();
    let mut areas: Vec<PathBuf> = std::fs::read_dir(root.join("testdata/compile"))?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    areas.sort();
    for area in areas {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&area)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            let is_case = entry.extension().is_some_and(|e| e == "yaml") || entry.is_dir();
            if !is_case {
                continue;
            }
            let text = if entry.is_dir() {
                let mut text = String::new();
                for file in std::fs::read_dir(&entry)?.flatten() {
                    text.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
                }
                text
            } else {
                std::fs::read_to_string(&entry)?
            };
            if text.contains("# expect: error") {
                continue;
            }
            let stem = entry.file_stem().context("case name")?.to_string_lossy().into_owned();
            let options = CheckOptions { open: text.contains("# options: --open"), admission_only: false };
            let area_name = area.file_name().context("area name")?;
            out.push((root.join("testdata/compiled").join(area_name).join(stem), vec![entry], options));
        }
    }
    Ok(out)
}

pub fn run(args: &[String]) -> Result<()> {
    let verify = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask compile [--check]"),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    // Relative paths, so that artifacts do not depend on where the checkout lives.
    std::env::set_current_dir(&root)?;
    let mut stale = 0;
    for (out, paths, options) in cases(&root)? {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.strip_prefix(&root).unwrap_or(p).to_path_buf()).collect();
        let out = out.strip_prefix(&root).unwrap_or(&out).to_path_buf();
        let sources = inputs::read_inputs(&paths).map_err(|e| anyhow::anyhow!("{e}"))?;
        let checked = check(sources, options);
        let produced = artifacts(&checked, Target::ALL).with_context(|| format!("{}", out.display()))?;
        // topology.svg depends on the machine's Graphviz: never committed.
        let produced: Vec<_> = produced.into_iter().filter(|a| a.checked).collect();
        if verify {
            let differences = compare(&out, Target::ALL, &produced);
            for difference in &differences {
                eprintln!("{}: {difference}", out.display());
            }
            stale += differences.len();
        } else {
            write(&out, &produced)?;
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
